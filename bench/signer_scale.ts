/**
 * How a knock's cost and the server's memory grow with the number of
 * registered clients, as root in testbed network namespaces with real nft:
 *
 * `deno run -A bench/signer_scale.ts [--quick] [COUNT...]` (default counts
 * 1, 100, 1000, 10000). Prints Markdown tables on standard output and
 * progress on standard error.
 *
 * For each count, `openme serve` runs from source with the release binary's
 * V8 flags and a config of that many clients: generated ones, then the one
 * `openme add` made, registered last. Three phases of knocks, each from
 * fresh source addresses at 5 a second and each for its own source
 * (bench/scale_probe.ts), measure knock→open and the server's CPU per knock
 * (all its threads, from /proc, idle use subtracted):
 *
 * - hinted: our client's knocks (key hint), by distinct clients, the last by
 *   the client registered last;
 * - recent: that client again, now the most recently active, with random
 *   replay nonces as other v1 clients build them (no hint);
 * - inactive: clients that never knocked and sit near the end of the scan
 *   order, with random nonces: each first knock scans about all the keys.
 *
 * Beside them: the floor (one Ed25519 check in-process; one `nft add rule`
 * run as a process in the server namespace), the time `loadServerConfig`
 * takes in-process, idle RSS (after V8 has returned the pages of the config
 * load, which it does some 10 s later) and RSS after the phases, and the
 * server's drop counters.
 *
 * @module
 */

import { loadServerConfig } from "../lib/config/server_config.ts";
import {
  ed25519Sign,
  ed25519Verify,
  generateEd25519KeyPair,
  prepareEd25519VerifyKey,
  randomBytes,
} from "../lib/protocol/crypto.ts";
import { encodeBase64 } from "../lib/encoding.ts";
import { SignerSearch } from "../lib/server/signer_search.ts";
import { readStateFile } from "../lib/server/state_file.ts";
import {
  DENO_RUN,
  run,
  runOk,
  SERVER_V4,
  testbedUnavailable,
} from "../scripts/testbed.ts";
import {
  idleCpuRate,
  KNOCK_PORT,
  median,
  percentile,
  PROTECTED_PORT,
  readCpuTime,
  readRssMiB,
  type RunningServer,
  ServerBed,
  sleep,
  sourceAddresses,
} from "./harness.ts";
import type { ScaleKnock, ScaleProbeSpec } from "./scale_probe.ts";
import type { ProbeResult } from "./harness.ts";

const SCALE_PROBE_TS = new URL("./scale_probe.ts", import.meta.url).pathname;
/** The release binary's V8 flag (scripts/compile.ts). */
const RELEASE_V8_FLAGS = "--v8-flags=--max-semi-space-size=2";
/** Knocks from new addresses: 5 a second. */
const INTERVAL_MS = 200;
/** How long a knock may take to open its port. */
const OPEN_TIMEOUT_MS = 5000;

const quick = Deno.args.includes("--quick");
const counts = Deno.args.filter((a) => !a.startsWith("--")).map(Number);
const COUNTS = counts.length > 0 ? counts : [1, 100, 1000, 10000];
const KNOCKS = quick ? 10 : 40;
/** Idle time before the idle RSS is read: V8 collects the config load's garbage some 30 s after it, and returns the pages about 10 s later. */
const SETTLE_MS = quick ? 5000 : 60_000;

function progress(message: string): void {
  console.error(`[signer_scale] ${message}`);
}

function fmt(value: number, digits = 1): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "n/a";
}

interface Phase {
  name: "hinted" | "recent" | "inactive";
  knocks: ScaleKnock[];
}

interface PhaseResult {
  cpuUsPerKnock: number;
  opened: number;
  p50: number;
  p99: number;
}

interface CountResult {
  count: number;
  loadMs: number;
  startMs: number;
  idleRssMiB: number;
  afterRssMiB: number;
  phases: Map<string, PhaseResult>;
  drops: string;
}

/** One Ed25519 check with a raw key (what a scan does per key) and with a prepared key, µs: medians of 5 rounds of 2000. */
function ed25519FloorUs(): { raw: number; prepared: number } {
  const pair = generateEd25519KeyPair();
  const message = randomBytes(101);
  const signature = ed25519Sign(pair.privateKey, message);
  const prepared = prepareEd25519VerifyKey(pair.publicKey);
  const time = (key: Uint8Array | typeof prepared): number => {
    const rounds: number[] = [];
    for (let round = 0; round < 5; round++) {
      const started = performance.now();
      for (let i = 0; i < 2000; i++) ed25519Verify(key, message, signature);
      rounds.push((performance.now() - started) * 1000 / 2000);
    }
    return median(rounds);
  };
  return { raw: time(pair.publicKey), prepared: time(prepared) };
}

/** The time from the start of a scan to its result, ms (median of 7): the signer among the last of `count` clients, on this thread alone and with the worker pool. */
async function scanMs(
  count: number,
): Promise<{ oneThread: number; pool: number; workers: number }> {
  const clients = Array.from({ length: count }, () => generateEd25519KeyPair());
  const workers = Math.min(4, navigator.hardwareConcurrency);
  const time = async (search: SignerSearch<{ publicKey: Uint8Array }>) => {
    search.setClients(clients);
    const times: number[] = [];
    for (let i = 0; i < 8; i++) {
      // A signer that has not knocked yet, near the end of the order.
      const signer = clients[count - 1 - i];
      const signedBytes = randomBytes(101);
      const knock = {
        signedBytes,
        signature: ed25519Sign(signer.privateKey, signedBytes),
      };
      const started = performance.now();
      await search.find(knock, {
        hint: "",
        source: { family: 4, text: `192.0.2.${i + 1}` },
      });
      // The first round starts the workers.
      if (i > 0) times.push(performance.now() - started);
    }
    search.close();
    return median(times);
  };
  return {
    oneThread: await time(new SignerSearch({ workers: 0 })),
    pool: await time(new SignerSearch({ workers })),
    workers,
  };
}

/** One `nft add rule` as its own process in the namespace, ms: median of 20, in a table of its own that is removed afterwards. */
async function nftAddRuleMs(ns: string): Promise<number> {
  const nft = ["ip", "netns", "exec", ns, "nft"];
  await runOk([...nft, "add table inet openme_floor"]);
  await runOk([...nft, "add chain inet openme_floor c"]);
  const times: number[] = [];
  try {
    for (let i = 0; i < 20; i++) {
      const started = performance.now();
      await runOk([
        ...nft,
        `add rule inet openme_floor c ip saddr 192.0.2.${
          i + 10
        } tcp dport 22 accept comment "openme"`,
      ]);
      times.push(performance.now() - started);
    }
  } finally {
    await run([...nft, "delete table inet openme_floor"]);
  }
  return median(times);
}

/** Inserts `generated` before the clients of the config `openme add` wrote, so that its own client is registered last. */
async function addClients(
  configPath: string,
  generated: { publicKey: Uint8Array }[],
): Promise<void> {
  if (generated.length === 0) return;
  const text = await Deno.readTextFile(configPath);
  const entries = generated.map((client, i) =>
    `  c${i}:\n    ed25519_pubkey: ${
      encodeBase64(client.publicKey)
    }\n    allowed_ports: [default]\n`
  ).join("");
  const edited = text.replace(/^clients:\n/m, `clients:\n${entries}`);
  if (edited === text) throw new Error(`no clients: line in ${configPath}`);
  await Deno.writeTextFile(configPath, edited);
}

/** Runs the probe's knocks and measures the server's CPU per knock. */
async function runPhase(
  sb: ServerBed,
  server: RunningServer,
  options: { phase: Phase; idleRate: number },
): Promise<PhaseResult> {
  const spec: ScaleProbeSpec = {
    server: SERVER_V4,
    port: KNOCK_PORT,
    tcpPort: PROTECTED_PORT,
    serverPublicKey: sb.serverPublicKey,
    knocks: options.phase.knocks,
    intervalMs: INTERVAL_MS,
    timeoutMs: OPEN_TIMEOUT_MS,
  };
  const before = readCpuTime(server.pid);
  const started = performance.now();
  const result = await sb.bed.exec(sb.bed.clientNs, [
    ...DENO_RUN,
    SCALE_PROBE_TS,
    JSON.stringify(spec),
  ], { timeoutMs: 120_000 + KNOCKS * (INTERVAL_MS + OPEN_TIMEOUT_MS) });
  const line = result.stdout.trim().split("\n").pop() ?? "";
  if (result.code !== 0 || !line.startsWith("{")) {
    throw new Error(`scale probe failed: ${result.stderr.trim()}`);
  }
  // Let the last sessions' firewall work finish before reading the CPU time.
  await sleep(1000);
  const after = readCpuTime(server.pid);
  const idleMs = options.idleRate * (performance.now() - started);
  const latencies = (JSON.parse(line) as ProbeResult).latenciesMs;
  const opened = latencies.filter((l): l is number => l !== null);
  return {
    cpuUsPerKnock: (after.schedMs - before.schedMs - idleMs) * 1000 /
      latencies.length,
    opened: opened.length,
    p50: percentile(opened, 50),
    p99: percentile(opened, 99),
  };
}

/** The phases' knocks for `count` clients: generated keys, then the `openme add` client's key. */
function phasesFor(
  generated: { privateKey: Uint8Array }[],
  lastKey: string,
): Phase[] {
  const sources = sourceAddresses(3 * KNOCKS);
  const key = (pair: { privateKey: Uint8Array }) =>
    encodeBase64(pair.privateKey);
  // Hinted: distinct clients from the end of the list, the last knock by the
  // client registered last, which is then the most recently active.
  const hintedKeys = [
    ...generated.slice(-(KNOCKS - 1)).map(key),
    lastKey,
  ];
  while (hintedKeys.length < KNOCKS) hintedKeys.unshift(lastKey);
  const phases: Phase[] = [
    {
      name: "hinted",
      knocks: hintedKeys.map((privateKey, i) => ({
        from: sources[i],
        privateKey,
        hinted: true,
      })),
    },
    {
      name: "recent",
      knocks: Array.from({ length: KNOCKS }, (_, i) => ({
        from: sources[KNOCKS + i],
        privateKey: lastKey,
        hinted: false,
      })),
    },
  ];
  // Inactive: clients that have not knocked, just before the hinted ones.
  const inactive = generated.slice(
    -(2 * KNOCKS - 1),
    -(KNOCKS - 1),
  );
  if (generated.length >= 2 * KNOCKS - 1) {
    phases.push({
      name: "inactive",
      knocks: inactive.map((pair, i) => ({
        from: sources[2 * KNOCKS + i],
        privateKey: key(pair),
        hinted: false,
      })),
    });
  }
  return phases;
}

async function measureCount(
  count: number,
  floor: { nftMs?: number },
): Promise<CountResult> {
  progress(`${count} clients: generating keys`);
  const generated = Array.from(
    { length: count - 1 },
    () => generateEd25519KeyPair(),
  );
  // Sessions close after a second, so that no client reaches its limit of
  // open sessions (whose oldest would be closed first).
  const sb = await ServerBed.create({
    prefix: `osc${count}`,
    knockTimeout: "1s",
  });
  try {
    await addClients(sb.configPath, generated);
    const loads: number[] = [];
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      const config = await loadServerConfig(sb.configPath);
      loads.push(performance.now() - started);
      if (config.clients.length !== count) {
        throw new Error(
          `loaded ${config.clients.length} clients, not ${count}`,
        );
      }
    }
    const phases = phasesFor(generated, sb.clientPrivateKey);
    await sb.addClientAddresses(sourceAddresses(3 * KNOCKS));
    const started = performance.now();
    const server = await sb.startServer({
      logLevel: "warn",
      denoFlags: [RELEASE_V8_FLAGS],
    });
    const startMs = performance.now() - started;
    floor.nftMs ??= await nftAddRuleMs(sb.bed.serverNs);
    progress(`${count} clients: serving, idle for ${SETTLE_MS / 1000} s`);
    for (let ms = 0; ms < SETTLE_MS; ms += 10_000) {
      await sleep(Math.min(10_000, SETTLE_MS - ms));
      progress(`${count} clients: RSS ${fmt(readRssMiB(server.pid))} MiB`);
    }
    const idleRssMiB = readRssMiB(server.pid);
    // 10 s: two of the periodic firewall checks fall inside.
    const idleRate = await idleCpuRate(server.pid, 10_000);
    const results = new Map<string, PhaseResult>();
    for (const phase of phases) {
      progress(`${count} clients: ${phase.name} knocks`);
      results.set(phase.name, await runPhase(sb, server, { phase, idleRate }));
    }
    const afterRssMiB = readRssMiB(server.pid);
    // Its last state file, written as it stops, has every drop counted.
    await server.proc.stop("SIGTERM", 30_000);
    const state = await readStateFile(server.stateFile);
    const drops = Object.entries(state.drops ?? {})
      .map(([reason, n]) => `${n} ${reason}`).join(", ") || "0";
    return {
      count,
      loadMs: median(loads),
      startMs,
      idleRssMiB,
      afterRssMiB,
      phases: results,
      drops,
    };
  } finally {
    await sb.destroy();
  }
}

async function main(): Promise<void> {
  const unavailable = testbedUnavailable("nft");
  if (unavailable !== null) {
    console.error(`signer_scale: ${unavailable}`);
    Deno.exit(1);
  }
  const loadavgBefore = (await Deno.readTextFile("/proc/loadavg")).trim();
  const ed25519 = ed25519FloorUs();
  const scans = [];
  for (const count of COUNTS.filter((n) => n >= 1000)) {
    progress(`${count} clients: scan times in-process`);
    scans.push({ count, ...await scanMs(count) });
  }
  const floor: { nftMs?: number } = {};
  const rows: CountResult[] = [];
  for (const count of COUNTS) rows.push(await measureCount(count, floor));
  const loadavg = (await Deno.readTextFile("/proc/loadavg")).trim();
  console.log(
    `Floor: one Ed25519 check ${fmt(ed25519.raw)} µs with a raw key (a scan's` +
      ` check; ${fmt(ed25519.prepared)} µs with a prepared key), one` +
      ` \`nft add rule\` ${fmt(floor.nftMs ?? NaN)} ms. ${KNOCKS} knocks per` +
      ` phase, 5 a second, each from a new address. Load average before the` +
      ` run: ${loadavgBefore}; after it: ${loadavg}.\n`,
  );
  console.log(
    "| clients | config load ms | serve start ms | idle RSS MiB | RSS after MiB | drops |",
  );
  console.log("|---:|---:|---:|---:|---:|---|");
  for (const r of rows) {
    console.log(
      `| ${r.count} | ${fmt(r.loadMs, 0)} | ${fmt(r.startMs, 0)} | ${
        fmt(r.idleRssMiB)
      } | ${fmt(r.afterRssMiB)} | ${r.drops} |`,
    );
  }
  console.log();
  console.log(
    "| clients | full scan, this thread ms | with the worker pool ms | workers | ratio |",
  );
  console.log("|---:|---:|---:|---:|---:|");
  for (const s of scans) {
    console.log(
      `| ${s.count} | ${fmt(s.oneThread)} | ${fmt(s.pool)} | ${s.workers} | ${
        fmt(s.oneThread / s.pool, 2)
      } |`,
    );
  }
  console.log();
  console.log(
    "| clients | knock | server CPU µs/knock | × 1 client | opened | knock→open p50 ms | p99 ms |",
  );
  console.log("|---:|---|---:|---:|---:|---:|---:|");
  const base = rows.find((r) => r.count === 1)?.phases;
  for (const r of rows) {
    for (const [name, p] of r.phases) {
      const ratio = p.cpuUsPerKnock / (base?.get(name)?.cpuUsPerKnock ?? NaN);
      console.log(
        `| ${r.count} | ${name} | ${fmt(p.cpuUsPerKnock, 0)} | ${
          fmt(ratio, 2)
        } | ${p.opened}/${KNOCKS} | ${fmt(p.p50)} | ${fmt(p.p99)} |`,
      );
    }
  }
}

if (import.meta.main) {
  await main();
}
