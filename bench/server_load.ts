/**
 * Server-level measurements for bench/RESULTS.md, as root, inside testbed
 * network namespaces (real nft / iptables):
 *
 * `deno run -A bench/server_load.ts [--quick] [--other=COMMAND] [cpu] [latency] [startup] [memory] [flood] [gate] [shutdown]`
 *
 * (no section named: all of them). Prints Markdown tables on standard output
 * and progress on standard error. `--quick` shrinks the counts for a smoke
 * run; the figures in RESULTS.md come from a full run.
 *
 * - cpu: CPU time per datagram at a steady rate from 200 sources, read from
 *   /proc/PID/task/TID/schedstat (ns, all threads) before and after, idle use
 *   subtracted, for 40-byte junk, 165-byte junk and valid repeat knocks, and
 *   the RSS after each: of `openme serve` (knock gate on, and off), of its
 *   floors run in the same
 *   process shape (bench/udp_sink.ts: a bare `node:dgram` loop, and that loop
 *   doing only the crypto), and of `--other=COMMAND` when given: any server
 *   taking the SPEC's command line (such as another openme implementation),
 *   under exactly the same load. Every process gets the release V8 flags.
 * - latency: knock sent → first TCP connect to the protected port, 20 knocks,
 *   nft and iptables, beside a bare `nft add rule` / `iptables -I`.
 * - startup: `deno task openme knock` against `deno run` of an empty script
 *   (bench/knock_startup.ts, which also runs on its own, without root).
 * - memory: `bench/memory_probe.ts` (in-process, see there) and the real
 *   server's RSS.
 * - flood: the 165-byte junk rate that saturates a core, legitimate knocks
 *   during floods at half and twice that rate, and beside one noisy source.
 * - gate: the same server with the knock gate off (open_knock_port false
 *   and a plain accept of the knock port) and on, in one run: one noisy
 *   source at twice the saturating rate beside 10 legitimate knocks, and
 *   server CPU per datagram for junk and knocks from 200 sources at 1,500/s,
 *   off and on alternating, median of 5 rounds.
 * - shutdown: how long the server's stop takes with 504 sessions, nft and
 *   iptables.
 *
 * @module
 */

import type { GateCounters } from "../lib/firewall/backend.ts";
import { nftGate, parseNftJson } from "../lib/firewall/inspect.ts";
import { getLogLevel, setLogLevel } from "../lib/log.ts";
import { MAX_SESSIONS_PER_CLIENT } from "../lib/server/session_manager.ts";
import {
  applyDefaultDeny,
  CLIENT_V4,
  CLIENT_V4_ALT,
  DENO_RUN,
  type NsProcess,
  run,
  runOk,
  testbedUnavailable,
  waitFor,
} from "../scripts/testbed.ts";
import {
  type CpuPerDatagram,
  cpuPerDatagram,
  cpuUtilisationUnder,
  idleCpuRate,
  KNOCK_PORT,
  type LoadKind,
  type ManySessionsServer,
  median,
  percentile,
  readRssMiB,
  readUdpCounters,
  runFlood,
  type RunningServer,
  ServerBed,
  sourceAddresses,
  startServerWithSessions,
} from "./harness.ts";
import { measureStartup } from "./knock_startup.ts";
import type { SinkMode } from "./udp_sink.ts";
import type { MemoryReport } from "./memory_probe.ts";

/** The V8 flags of the release binary (scripts/compile.ts). */
const RELEASE_V8_FLAGS = "--v8-flags=--max-semi-space-size=2";
/** Unmeasured load of each kind before the CPU runs of a process. */
const WARM_UP_MS = 200;
/** Rounds of the CPU runs (the table shows medians). */
const CPU_ROUNDS = 5;
const UDP_SINK_TS = new URL("./udp_sink.ts", import.meta.url).pathname;
const MEMORY_PROBE_TS = new URL("./memory_probe.ts", import.meta.url).pathname;
const SINK_PORT = 54155;
/** Steady rate of the CPU runs. */
const CPU_RATE = 1500;
/** Sources of the many-source runs: each sends 7.5/s, under the 20/s per-source limit. */
const MANY_SOURCES = 200;
/** Sources of the floods. */
const FLOOD_SOURCES = 700;
/** Clients of the shutdown runs: each holds MAX_SESSIONS_PER_CLIENT sessions. */
const SHUTDOWN_CLIENTS = 63;
/** V8 flag that caps the young generation (see RESULTS.md, memory). */
const SMALL_YOUNG_GEN = "--max-semi-space-size=2";

const quick = Deno.args.includes("--quick");
const other = Deno.args.find((a) => a.startsWith("--other="))?.slice(8) ??
  null;
const requested = Deno.args.filter((a) => !a.startsWith("--"));
const sections = requested.length > 0
  ? requested
  : ["cpu", "latency", "startup", "memory", "flood", "gate", "shutdown"];
const cpuDurationMs = 2000;

function progress(message: string): void {
  console.error(`[server_load] ${message}`);
}

function fmt(value: number, digits = 1): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "n/a";
}

/** One server (or floor) under test: how to start it in the server namespace, and the port it listens on. */
interface Contender {
  label: string;
  port: number;
  start(sb: ServerBed): Promise<{ pid: number; stop(): Promise<unknown> }>;
}

/** What one contender did under the loads of one round. */
interface ContenderRun {
  idleRssMiB: number;
  /** Per load: µs of CPU per datagram, and RSS after it. */
  loads: { us: number; rssMiB: number }[];
}

/** The loads of the CPU runs: all from MANY_SOURCES addresses round robin. */
const CPU_LOADS: { label: string; kind: LoadKind; target: string | null }[] = [
  { label: "40 bytes of junk", kind: "short", target: null },
  { label: "165 bytes, version 1, junk", kind: "junk165", target: null },
  { label: "valid knock, refresh path", kind: "valid", target: CLIENT_V4 },
];

/** A floor: the UDP sink in one of its modes, started with the release V8 flags like the server. */
/** Starts the UDP sink in one of its modes in the server namespace, with the release V8 flags like the server. */
async function startSink(sb: ServerBed, mode: SinkMode): Promise<NsProcess> {
  const sink = sb.bed.spawn(sb.bed.serverNs, [
    ...DENO_RUN,
    RELEASE_V8_FLAGS,
    UDP_SINK_TS,
    String(SINK_PORT),
    mode,
    sb.configPath,
  ]);
  await waitFor(() => sink.output().includes("ready"), {
    timeoutMs: 20_000,
    what: `udp sink (${mode})`,
  });
  return sink;
}

/** A floor: the UDP sink in one of its modes. */
function sinkContender(label: string, mode: SinkMode): Contender {
  return {
    label,
    port: SINK_PORT,
    async start(sb) {
      const sink = await startSink(sb, mode);
      return { pid: sink.child.pid, stop: () => sink.stop("SIGKILL") };
    },
  };
}

/** Opens the sinks' UDP port in the bed's default-deny ruleset. */
async function acceptSinkPort(sb: ServerBed, backend: string): Promise<void> {
  const port = String(SINK_PORT);
  await sb.bed.execOk(
    sb.bed.serverNs,
    backend === "nft"
      ? ["nft", "insert", "rule", "inet", "filter", "input", "udp", "dport"]
        .concat([port, "accept"])
      : ["iptables", "-w", "-I", "INPUT", "-p", "udp", "--dport", port]
        .concat(["-j", "ACCEPT"]),
  );
}

/** Another server command, given the SPEC's command line (`--config FILE --log-level info serve --state-file FILE`); it must run the server in its own process, not a child. */
function otherContender(command: string): Contender {
  return {
    label: `\`${command}\``,
    port: KNOCK_PORT,
    async start(sb) {
      const proc = sb.bed.spawn(sb.bed.serverNs, [
        ...command.split(" ").filter((word) => word !== ""),
        "--config",
        sb.configPath,
        "--log-level",
        "info",
        "serve",
        "--state-file",
        `${sb.bed.dir}/other-state.json`,
      ]);
      await waitFor(async () => {
        const ss = await sb.bed.exec(sb.bed.serverNs, [
          "ss",
          "-Hlun",
          `sport = :${KNOCK_PORT}`,
        ]);
        return ss.stdout.trim() !== "";
      }, { timeoutMs: 30_000, what: `${command} to listen` });
      return { pid: proc.child.pid, stop: () => proc.stop("SIGTERM") };
    },
  };
}

async function runContender(
  sb: ServerBed,
  contender: Contender,
  many: string[],
): Promise<ContenderRun> {
  const specOf = (load: typeof CPU_LOADS[number], durationMs: number) => ({
    ...sb.loadSpec(load.kind, { rate: CPU_RATE, durationMs, sources: many }),
    port: contender.port,
    target: load.target,
    prime: load.kind === "valid",
  });
  const running = await contender.start(sb);
  try {
    const run: ContenderRun = {
      idleRssMiB: readRssMiB(running.pid),
      loads: [],
    };
    // A few datagrams of each kind first, so that no load pays for compiling
    // the code the next one runs.
    for (const load of CPU_LOADS) {
      await (await sb.startLoad(specOf(load, WARM_UP_MS))).go();
    }
    const idle = await idleCpuRate(running.pid, 1000);
    for (const load of CPU_LOADS) {
      const spec = specOf(load, cpuDurationMs);
      const measured = await cpuPerDatagram(sb, running.pid, idle, spec);
      run.loads.push({
        us: measured.usPerDatagram,
        rssMiB: readRssMiB(running.pid),
      });
    }
    return run;
  } finally {
    await running.stop();
  }
}

/** Measures server CPU per datagram for one load; idle use (ms per ms) is subtracted. */
async function measureCpu(
  sb: ServerBed,
  pid: number,
  idleRate: number,
  options: {
    kind: LoadKind;
    sources: string[];
    target?: string | null;
    prime?: boolean;
    port?: number;
  },
): Promise<CpuPerDatagram> {
  const spec = {
    ...sb.loadSpec(options.kind, {
      rate: CPU_RATE,
      durationMs: cpuDurationMs,
      sources: options.sources,
    }),
    target: options.target ?? null,
    prime: options.prime ?? false,
  };
  if (options.port !== undefined) spec.port = options.port;
  return await cpuPerDatagram(sb, pid, idleRate, spec);
}

async function stopAndReadState(
  server: RunningServer,
): Promise<{ accepted: number; drops: Record<string, number> }> {
  await server.proc.stop("SIGTERM");
  try {
    const state = JSON.parse(await Deno.readTextFile(server.stateFile));
    return { accepted: state.accepted ?? 0, drops: state.drops ?? {} };
  } catch {
    return { accepted: 0, drops: {} };
  }
}

function describeOutcome(
  counts: { accepted: number; drops: Record<string, number> },
): string {
  const parts = Object.entries(counts.drops).sort((a, b) => b[1] - a[1])
    .map(([reason, n]) => `${n} ${reason}`);
  if (counts.accepted > 0) parts.unshift(`${counts.accepted} accepted`);
  return parts.join(", ");
}

async function cpuSection(sb: ServerBed, out: string[]): Promise<number> {
  const many = sourceAddresses(MANY_SOURCES);
  await sb.addClientAddresses(many);
  await acceptSinkPort(sb, "nft");
  const contenders: Contender[] = [
    sinkContender("bare `node:dgram` loop", "bare"),
    sinkContender("loop + X25519", "x25519"),
    sinkContender("loop + the crypto (floor)", "crypto"),
    {
      label: "openme serve",
      port: KNOCK_PORT,
      async start(sb) {
        const server = await sb.startServer({ denoFlags: [RELEASE_V8_FLAGS] });
        return { pid: server.pid, stop: () => server.proc.stop("SIGTERM") };
      },
    },
    {
      label: "openme serve, gate off",
      port: KNOCK_PORT,
      async start(sb) {
        await setGate(sb, false);
        const server = await sb.startServer({ denoFlags: [RELEASE_V8_FLAGS] });
        return {
          pid: server.pid,
          async stop() {
            await server.proc.stop("SIGTERM");
            await setGate(sb, true);
          },
        };
      },
    },
  ];
  if (other !== null) contenders.push(otherContender(other));
  const runs = new Map<Contender, ContenderRun[]>(
    contenders.map((c) => [c, []]),
  );
  const rounds = quick ? 1 : CPU_ROUNDS;
  for (let round = 0; round < rounds; round++) {
    for (const contender of contenders) {
      const run = await runContender(sb, contender, many);
      runs.get(contender)!.push(run);
      progress(
        `round ${round + 1}: ${contender.label}: ${
          run.loads.map((l) => fmt(l.us)).join(" / ")
        } µs, RSS ${fmt(run.idleRssMiB)} → ${
          run.loads.map((l) => fmt(l.rssMiB)).join(" / ")
        } MiB`,
      );
    }
  }
  const usOf = (c: Contender, load: number): number =>
    median(runs.get(c)!.map((r) => r.loads[load].us));
  out.push(
    `### Server CPU per datagram (${CPU_RATE}/s from ${MANY_SOURCES} sources, ${
      CPU_RATE * cpuDurationMs / 1000
    } datagrams per load, median of ${rounds} rounds)\n`,
  );
  out.push(
    `Every process runs with the release binary's \`${RELEASE_V8_FLAGS}\`. The loops bind the knock socket as the server does (bench/udp_sink.ts). "loop + X25519" does only the key agreement of each 165-byte datagram; "loop + the crypto" does what a datagram costs at least, through the library calls the server makes: nothing for 40 bytes, the key agreement, HKDF and AEAD open for 165 bytes, and that plus one Ed25519 verify for a valid knock. "openme serve" runs with the knock gate (the default), "gate off" with open_knock_port false and a plain accept of the knock port, like the loops.\n`,
  );
  out.push(`| datagram | ${contenders.map((c) => c.label).join(" | ")} |`);
  out.push(`|---|${contenders.map(() => "---:").join("|")}|`);
  CPU_LOADS.forEach((load, i) => {
    out.push(
      `| ${load.label} | ${
        contenders.map((c) => `${fmt(usOf(c, i))} µs`).join(" | ")
      } |`,
    );
  });
  out.push(
    "\nRSS (MiB) idle, then after each load in turn, of the first round:\n",
  );
  out.push(
    `| process | idle | ${
      CPU_LOADS.map((l) => `after ${l.label}`).join(" | ")
    } | after / idle |`,
  );
  out.push(`|---|---:|${CPU_LOADS.map(() => "---:").join("|")}|---:|`);
  for (const c of contenders) {
    const r = runs.get(c)![0];
    const peak = Math.max(...r.loads.map((l) => l.rssMiB));
    out.push(
      `| ${c.label} | ${fmt(r.idleRssMiB)} | ${
        r.loads.map((l) => fmt(l.rssMiB)).join(" | ")
      } | ${fmt(peak / r.idleRssMiB, 2)} |`,
    );
  }
  out.push("");
  return usOf(contenders[3], 1);
}

/** One knock per target from CLIENT_V4, to the given port; the latencies of those that opened. */
async function probeOpens(
  sb: ServerBed,
  targets: string[],
  port: number,
): Promise<number[]> {
  const spec = sb.probeSpec(CLIENT_V4, targets);
  spec.port = port;
  spec.timeoutMs = 2000;
  // Longer than the bed's knock_timeout: each session has closed before the
  // next knock, so every knock opens a session with a free slot (a client
  // holds at most 8; a ninth first closes the oldest).
  spec.gapMs = LATENCY_GAP_MS;
  const result = await sb.probe(spec);
  return result.latenciesMs.filter((v): v is number => v !== null);
}

async function latencyFor(
  sb: ServerBed,
  out: string[],
  backend: "nft" | "iptables",
): Promise<void> {
  const targets = sourceAddresses(20, 90);
  await sb.addClientAddresses(targets);
  await acceptSinkPort(sb, backend);
  const server = await sb.startServer({ denoFlags: [RELEASE_V8_FLAGS] });
  let ours: number[];
  try {
    ours = await probeOpens(sb, targets, KNOCK_PORT);
  } finally {
    await server.proc.stop("SIGTERM");
  }
  // After the server, which removed its rules: the sink's stay.
  const sink = await startSink(sb, backend);
  let floor: number[];
  try {
    floor = await probeOpens(sb, targets, SINK_PORT);
  } finally {
    await sink.stop("SIGKILL");
  }
  const tool = [...sink.output().matchAll(/^tool (\S+)$/gm)].map((m) =>
    Number(m[1])
  );
  const [p50, floorP50, bare] = [median(ours), median(floor), median(tool)];
  out.push(
    `| ${backend} | ${ours.length}/${targets.length} | ${fmt(p50)} | ${
      fmt(percentile(ours, 95))
    } | ${fmt(floorP50)} | ${fmt(bare)} | ${fmt(p50 / bare, 2)} | ${
      fmt(p50 / floorP50, 2)
    } |`,
  );
  progress(
    `latency ${backend}: p50 ${fmt(p50)} ms, floor ${
      fmt(floorP50)
    } ms, bare tool ${fmt(bare)} ms`,
  );
}

/** knock_timeout of the latency beds: short, so sessions close between knocks. */
const LATENCY_KNOCK_TIMEOUT = "1s";
/** Pause between two latency knocks: the knock timeout plus time to close. */
const LATENCY_GAP_MS = 1300;

async function latencySection(out: string[]): Promise<void> {
  out.push("### Knock-to-open latency (20 knocks)\n");
  out.push(
    `From sending the knock to the first successful TCP connect to port 22 from the knocked address (a new connect is started every millisecond), median of 20 knocks. \`knock_timeout: ${LATENCY_KNOCK_TIMEOUT}\` and ${LATENCY_GAP_MS} ms between knocks, so each knock opens a new session while the client has free session slots. The floor: bench/udp_sink.ts verifying the same knocks and then running one bare \`nft insert rule\` / \`iptables -I\` (timed alone in the "bare tool" column), measured by the same probe. Every process runs with the release binary's \`${RELEASE_V8_FLAGS}\`.\n`,
  );
  out.push(
    "| firewall | opened | openme p50 ms | openme p95 ms | floor p50 ms | bare tool ms | openme / bare tool | openme / floor |",
  );
  out.push("|---|---:|---:|---:|---:|---:|---:|---:|");
  for (const backend of ["nft", "iptables"] as const) {
    const bed = await ServerBed.create({
      prefix: `om-bench-lat-${backend === "nft" ? "n" : "i"}`,
      backend,
      knockTimeout: LATENCY_KNOCK_TIMEOUT,
    });
    try {
      await latencyFor(bed, out, backend);
    } finally {
      await bed.destroy();
    }
  }
  out.push("");
}

async function startupSection(out: string[]): Promise<void> {
  const { results, table } = await measureStartup({
    runs: quick ? 3 : 20,
    hyperfine: false,
  });
  out.push("### Client start-up (bench/knock_startup.ts)\n");
  out.push(
    "Against a UDP sink on 127.0.0.1 in the measuring process; each command run once unmeasured, then the commands alternate.\n",
  );
  out.push(table);
  progress(
    `startup: deno task openme knock ${fmt(median(results[1].times))} ms`,
  );
}

async function memoryProbe(
  mode: string,
  count: number | null,
  v8Flags: string,
): Promise<MemoryReport> {
  const command = [
    ...DENO_RUN,
    `--v8-flags=--expose-gc${v8Flags === "" ? "" : `,${v8Flags}`}`,
    MEMORY_PROBE_TS,
    mode,
  ];
  if (count !== null) command.push(String(count));
  const result = await run(command, { timeoutMs: 600_000 });
  const line = result.stdout.trim().split("\n").pop() ?? "";
  if (result.code !== 0 || !line.startsWith("{")) {
    throw new Error(
      `memory probe ${mode} failed: ${result.stderr.slice(-500)}`,
    );
  }
  return JSON.parse(line) as MemoryReport;
}

async function memorySection(out: string[]): Promise<void> {
  const valid = quick ? 5000 : 100_000;
  const junk = quick ? 50_000 : 1_000_000;
  const plans: [string, number | null, string][] = [
    ["idle", null, ""],
    ["valid", valid, ""],
    ["junk", junk, ""],
    ["idle", null, SMALL_YOUNG_GEN],
    ["valid", valid, SMALL_YOUNG_GEN],
    ["junk", junk, SMALL_YOUNG_GEN],
  ];
  out.push(
    "### Memory (in-process `OpenmeServer` + no-op firewall, see bench/memory_probe.ts)\n",
  );
  out.push(
    "| workload | V8 flags | datagrams | RSS after, MiB | peak RSS, MiB | V8 heap used, MiB | time s | drops |",
  );
  out.push("|---|---|---:|---:|---:|---:|---:|---|");
  for (const [mode, count, flags] of plans) {
    progress(`memory ${mode} ${flags}`);
    const r = await memoryProbe(mode, count, flags);
    const drops = Object.entries(r.drops).map(([k, v]) => `${v} ${k}`).join(
      ", ",
    );
    out.push(
      `| ${mode} | ${
        flags === "" ? "default" : `\`${flags}\``
      } | ${r.datagrams} | ${fmt(r.rssMiB)} | ${fmt(r.peakRssMiB)} | ${
        fmt(r.heapUsedMiB)
      } | ${fmt(r.elapsedMs / 1000)} | ${drops} |`,
    );
  }
  out.push("");
}

/** The calibration's rate: about half a core's worth of 165-byte junk, by the CPU section's figure, or 3000/s without one. */
function calibrationRateFor(junkUsHint: number): number {
  return Number.isFinite(junkUsHint) && junkUsHint > 0
    ? Math.round(0.5e6 / junkUsHint)
    : 3000;
}

/** Loads a fresh server with 165-byte junk from the flood sources for 3 s: the share of a core it used and the rate that would fill one. */
async function calibrate(
  sb: ServerBed,
  flood: string[],
  rate: number,
): Promise<
  { sentCal: number; util: number; kernelDrops: number; saturation: number }
> {
  const server = await sb.startServer({ denoFlags: [RELEASE_V8_FLAGS] });
  const udp0 = await readUdpCounters(sb.bed.serverNs);
  const calibration = await cpuUtilisationUnder(
    sb,
    server.pid,
    sb.loadSpec("junk165", { rate, durationMs: 3000, sources: flood }),
  );
  const udp1 = await readUdpCounters(sb.bed.serverNs);
  await server.proc.stop("SIGTERM");
  return {
    sentCal: calibration.sent,
    util: calibration.utilisation,
    kernelDrops: udp1.rcvbufErrors - udp0.rcvbufErrors,
    saturation: Math.round(rate / calibration.utilisation),
  };
}

async function floodSection(
  sb: ServerBed,
  out: string[],
  junkUsHint: number,
): Promise<void> {
  const flood = sourceAddresses(FLOOD_SOURCES);
  const probeTargets = sourceAddresses(10, 743);
  await sb.addClientAddresses([...flood, ...probeTargets]);
  // Longer than any probe (10 knocks of at most 5 s): stopped when it is done.
  const durationMs = 60_000;

  const calibrationRate = calibrationRateFor(junkUsHint);
  const { sentCal, util, kernelDrops, saturation } = await calibrate(
    sb,
    flood,
    calibrationRate,
  );
  let server: RunningServer;
  progress(
    `calibration: ${calibrationRate}/s → ${
      fmt(util * 100)
    } % of a core; saturation ≈ ${saturation}/s`,
  );

  out.push("### Floods (165-byte junk with version 1)\n");
  out.push(
    `Calibration: ${sentCal} datagrams at ${calibrationRate}/s from ${FLOOD_SOURCES} sources used ${
      fmt(util * 100)
    } % of a core (${kernelDrops} dropped by the kernel), so one core saturates at about **${saturation}/s**.\n`,
  );
  out.push(
    "| flood | sources | sent/s | server CPU (1 = one core) | kernel drops | legit knocks opened ≤ 1 s | opened ≤ 5 s | p50 ms | RSS before → after MiB | server alive |",
  );
  out.push("|---|---:|---:|---:|---:|---:|---:|---:|---|---|");
  const scenarios: { label: string; rate: number; sources: string[] }[] = [
    { label: "at saturation", rate: saturation, sources: flood },
    {
      label: "half saturation",
      rate: Math.round(saturation / 2),
      sources: flood,
    },
    { label: "twice saturation", rate: saturation * 2, sources: flood },
    {
      label: "one noisy source at twice saturation",
      rate: saturation * 2,
      sources: [CLIENT_V4_ALT],
    },
  ];
  for (const scenario of scenarios) {
    server = await sb.startServer({ denoFlags: [RELEASE_V8_FLAGS] });
    try {
      const r = await runFlood(sb, server, {
        rate: scenario.rate,
        sources: scenario.sources,
        durationMs,
        probeFrom: CLIENT_V4,
        probeTargets,
        probeTimeoutMs: 5000,
      });
      const ok = r.latenciesMs.filter((v): v is number => v !== null);
      const withinOne = ok.filter((v) => v <= 1000).length;
      out.push(
        `| ${scenario.label} (${scenario.rate}/s asked) | ${scenario.sources.length} | ${r.sentPerSecond} | ${
          fmt(r.cpuUtilisation, 2)
        } | ${r.kernelDrops} | ${withinOne}/${r.latenciesMs.length} | ${ok.length}/${r.latenciesMs.length} | ${
          fmt(percentile(ok, 50))
        } | ${fmt(r.rssBeforeMiB)} → ${fmt(r.rssAfterMiB)} | ${
          r.alive ? "yes" : "NO"
        } |`,
      );
      progress(
        `${scenario.label}: ${withinOne}/${r.latenciesMs.length} opened within 1 s, ${ok.length} within 5 s, cpu ${
          fmt(r.cpuUtilisation, 2)
        }`,
      );
    } finally {
      await server.proc.stop("SIGTERM");
    }
  }
  out.push(
    "\n(sent/s: what the generator achieved; each flood ran from about 1 s before the first legitimate knock until the last one.)\n",
  );
}

/** The gate's drop counters, read from the server namespace's nft ruleset. */
async function gateCounters(sb: ServerBed): Promise<GateCounters> {
  const listed = await sb.bed.execOk(sb.bed.serverNs, [
    "nft",
    "-j",
    "list",
    "table",
    "inet",
    "filter",
  ]);
  return nftGate(parseNftJson(listed.stdout).rules).counters;
}

/** Comment of the plain accept of the knock port that stands in for the gate's absence. */
const NO_GATE_RULE = "bench: knock port without a gate";

/** Turns the knock gate off (open_knock_port false, a plain accept of the knock port after the jump) or on again. */
async function setGate(sb: ServerBed, on: boolean): Promise<void> {
  const text = await Deno.readTextFile(sb.configPath);
  await Deno.writeTextFile(
    sb.configPath,
    text.replace(/open_knock_port: \w+/, `open_knock_port: ${on}`),
  );
  const ns = sb.bed.serverNs;
  const listing = await sb.bed.execOk(ns, [
    "nft",
    "-a",
    "list",
    "chain",
    "inet",
    "filter",
    "input",
  ]);
  const handle = new RegExp(`"${NO_GATE_RULE}" # handle (\\d+)`).exec(
    listing.stdout,
  )?.[1];
  if (on && handle !== undefined) {
    await sb.bed.execOk(ns, [
      "nft",
      "delete",
      "rule",
      "inet",
      "filter",
      "input",
      "handle",
      handle,
    ]);
  } else if (!on && handle === undefined) {
    await sb.bed.execOk(ns, [
      "nft",
      `add rule inet filter input udp dport ${KNOCK_PORT} accept comment "${NO_GATE_RULE}"`,
    ]);
  }
}

async function gateSection(
  sb: ServerBed,
  out: string[],
  junkUsHint: number,
): Promise<void> {
  const many = sourceAddresses(MANY_SOURCES);
  const flood = sourceAddresses(FLOOD_SOURCES);
  const probeTargets = sourceAddresses(10, 743);
  await sb.addClientAddresses([...flood, ...probeTargets]); // many ⊂ flood
  const load = (await run(["cat", "/proc/loadavg"])).stdout.trim();

  // The saturating rate, with the gate off (as the flood section finds it).
  await setGate(sb, false);
  const calibrationRate = calibrationRateFor(junkUsHint);
  const { saturation } = await calibrate(sb, flood, calibrationRate);
  let server: RunningServer;
  progress(`gate: saturation ≈ ${saturation}/s`);

  const noisyRows: string[] = [];
  for (const on of [false, true]) {
    const gate = on ? "on" : "off";
    await setGate(sb, on);
    server = await sb.startServer({ denoFlags: [RELEASE_V8_FLAGS] });
    try {
      const r = await runFlood(sb, server, {
        rate: saturation * 2,
        sources: [CLIENT_V4_ALT],
        durationMs: 60_000,
        probeFrom: CLIENT_V4,
        probeTargets,
        probeTimeoutMs: 5000,
      });
      const ok = r.latenciesMs.filter((v): v is number => v !== null);
      const withinOne = ok.filter((v) => v <= 1000).length;
      noisyRows.push(
        `| ${gate} | one source, 165-byte junk at ${
          saturation * 2
        }/s asked (${r.sentPerSecond}/s sent) | ${
          fmt(r.cpuUtilisation, 2)
        } cores | ${withinOne}/10 opened ≤ 1 s, ${ok.length}/10 ≤ 5 s, p50 ${
          fmt(percentile(ok, 50))
        } ms, max ${
          fmt(Math.max(...ok))
        } ms; ${r.kernelDrops} socket-buffer drops |`,
      );
      progress(`gate ${gate}: noisy source: ${withinOne}/10 within 1 s`);
    } finally {
      await server.proc.stop("SIGTERM");
    }
  }

  const cpuPlans: { label: string; kind: LoadKind; target?: string }[] = [
    { label: "40-byte junk", kind: "short" },
    { label: "165-byte junk, version 2", kind: "version2" },
    { label: "165-byte junk, version 1", kind: "junk165" },
    {
      label: "valid knocks (distinct), refresh",
      kind: "valid",
      target: CLIENT_V4,
    },
  ];
  // Per plan and gate: µs per datagram of each round, and what the last round saw.
  const us = new Map<string, number[]>();
  const seen = new Map<string, string>();
  const rounds = quick ? 1 : CPU_ROUNDS;
  for (let round = 0; round < rounds; round++) {
    for (const plan of cpuPlans) {
      for (const on of [false, true]) {
        const key = `${on ? "on" : "off"} ${plan.label}`;
        await setGate(sb, on);
        server = await sb.startServer({ denoFlags: [RELEASE_V8_FLAGS] });
        const idle = await idleCpuRate(server.pid, 1000);
        const measured = await measureCpu(sb, server.pid, idle, {
          kind: plan.kind,
          sources: many,
          target: plan.target,
          prime: plan.kind === "valid",
        });
        const gateDrops = on ? await gateCounters(sb) : undefined;
        const counts = await stopAndReadState(server);
        us.set(key, [...(us.get(key) ?? []), measured.usPerDatagram]);
        seen.set(
          key,
          `openme: ${describeOutcome(counts) || "nothing"}${
            gateDrops === undefined
              ? ""
              : `; gate drops: ${gateDrops.size} size, ${gateDrops.version} version, ${gateDrops.rate} rate`
          }`,
        );
        progress(
          `gate ${key}, round ${round + 1}: ${
            fmt(measured.usPerDatagram)
          } µs/datagram`,
        );
      }
    }
  }
  await setGate(sb, true);
  out.push("### The knock gate, off and on (nft)\n");
  out.push(
    `Load average at the start: ${load}. Saturation (gate off, ${FLOOD_SOURCES} sources of 165-byte junk): about ${saturation}/s. "off": open_knock_port false and a plain accept of the knock port; "on": the default. Every server runs with \`${RELEASE_V8_FLAGS}\`. CPU: median of ${rounds} rounds (min–max), off and on alternating; "what happened" is the last round's.\n`,
  );
  out.push("| gate | load | server | what happened |");
  out.push("|---|---|---:|---|");
  out.push(...noisyRows);
  for (const plan of cpuPlans) {
    for (const gate of ["off", "on"]) {
      const values = us.get(`${gate} ${plan.label}`) ?? [];
      out.push(
        `| ${gate} | ${plan.label}, ${MANY_SOURCES} sources, ${CPU_RATE}/s | ${
          fmt(median(values))
        } µs/datagram (${fmt(Math.min(...values))}–${
          fmt(Math.max(...values))
        }) | ${seen.get(`${gate} ${plan.label}`)} |`,
      );
    }
  }
  out.push("");
}

async function shutdownSection(out: string[]): Promise<void> {
  const rounds = quick ? 1 : 5;
  const sessions = SHUTDOWN_CLIENTS * MAX_SESSIONS_PER_CLIENT;
  out.push(`### Shutdown with ${sessions} sessions\n`);
  out.push(
    "`OpenmeServer.stop()` in-process, from the call until every rule is removed and the state file written; its backend manages a network namespace of its own under the default-deny ruleset (the set-up of tests/e2e/shutdown_many_sessions_test.ts). The server is started and filled again for each round.\n",
  );
  out.push("| firewall | sessions | rounds | median ms | min ms | max ms |");
  out.push("|---|---:|---:|---:|---:|---:|");
  const previousLevel = getLogLevel();
  setLogLevel("warn");
  try {
    for (const backend of ["nft", "iptables"] as const) {
      const times: number[] = [];
      for (let i = 0; i < rounds; i++) {
        const ns = `om-bench-shut-${Deno.pid % 100000}-${i}`;
        const dir = await Deno.makeTempDir({
          prefix: "openme-bench-shutdown-",
        });
        await runOk(["ip", "netns", "add", ns]);
        let server: ManySessionsServer | null = null;
        try {
          await applyDefaultDeny(ns, backend);
          server = await startServerWithSessions(backend, {
            netns: ns,
            dir,
            clients: SHUTDOWN_CLIENTS,
          });
          const t0 = performance.now();
          await server.stop();
          times.push(performance.now() - t0);
        } finally {
          await server?.stop().catch(() => {});
          await run(["ip", "netns", "del", ns]);
          await Deno.remove(dir, { recursive: true });
        }
      }
      progress(
        `shutdown ${backend}: median ${fmt(median(times))} ms of ${rounds}`,
      );
      out.push(
        `| ${backend} | ${sessions} | ${rounds} | ${fmt(median(times))} | ${
          fmt(Math.min(...times))
        } | ${fmt(Math.max(...times))} |`,
      );
    }
  } finally {
    setLogLevel(previousLevel);
  }
  out.push("");
}

async function main(): Promise<void> {
  const why = testbedUnavailable("nft") ?? testbedUnavailable("iptables");
  if (why !== null) {
    console.log(`server_load: skipped: ${why}`);
    return;
  }
  const out: string[] = [];
  const cpuModel = (await Deno.readTextFile("/proc/cpuinfo")).match(
    /^model name\s*:\s*(.*)$/m,
  )?.[1] ?? "unknown";
  out.push(
    `Run ${
      new Date().toISOString()
    }: ${navigator.hardwareConcurrency} cores (${cpuModel}), Deno ${Deno.version.deno}, V8 ${Deno.version.v8}, ${Deno.build.target}${
      quick ? ", --quick" : ""
    }; load average at the start: ${
      (await Deno.readTextFile("/proc/loadavg")).trim()
    }.\n`,
  );
  let junkManyUs = NaN;
  if (sections.includes("memory")) await memorySection(out);
  const sb = await ServerBed.create({ prefix: "om-bench" });
  try {
    if (sections.includes("cpu")) junkManyUs = await cpuSection(sb, out);
    if (sections.includes("latency")) await latencySection(out);
    if (sections.includes("startup")) await startupSection(out);
    if (sections.includes("flood")) await floodSection(sb, out, junkManyUs);
    if (sections.includes("gate")) await gateSection(sb, out, junkManyUs);
  } finally {
    await sb.destroy();
  }
  if (sections.includes("shutdown")) await shutdownSection(out);
  console.log(out.join("\n"));
}

if (import.meta.main) {
  await main();
}
