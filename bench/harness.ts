/**
 * Shared set-up for the load benchmarks and the process-level tests
 * (tests/flood_test.ts, tests/fault_injection_test.ts,
 * tests/e2e/shutdown_many_sessions_test.ts): a testbed with a server config
 * and one registered client, `openme serve` started from source in the server
 * namespace, the load generator and knock probe started in the client
 * namespace, an in-process server holding hundreds of sessions, and readers
 * for a process's CPU time and memory.
 *
 * Everything runs inside the testbed's network namespaces and uses
 * documentation addresses only.
 *
 * @module
 */

import { loadClientConfig } from "../lib/config/client_config.ts";
import { encodeBase64 } from "../lib/encoding.ts";
import { IptablesBackend } from "../lib/firewall/iptables.ts";
import { NftBackend } from "../lib/firewall/nft.ts";
import type { IpAddress } from "../lib/ip.ts";
import {
  type Ed25519KeyPair,
  generateEd25519KeyPair,
  generateX25519KeyPair,
} from "../lib/protocol/crypto.ts";
import { buildKnock } from "../lib/protocol/packet.ts";
import { OpenmeServer } from "../lib/server/daemon.ts";
import {
  MAX_PENDING_OPENS_PER_CLIENT,
  MAX_SESSIONS_PER_CLIENT,
} from "../lib/server/session_manager.ts";
import {
  CLIENT_V4,
  CLIENT_V4_ALT,
  DENO_RUN,
  MAIN_TS,
  type NsProcess,
  openmeCommand,
  runOk,
  SERVER_V4,
  Testbed,
  type TestbedBackend,
  waitFor,
} from "../scripts/testbed.ts";

/** Absolute path of the load generator script. */
export const LOAD_GENERATOR_TS: string =
  new URL("./load_generator.ts", import.meta.url).pathname;

/** Absolute path of the knock probe script. */
export const KNOCK_PROBE_TS: string =
  new URL("./knock_probe.ts", import.meta.url).pathname;

/** UDP knock port the benches and tests use (the default). */
export const KNOCK_PORT = 54154;

/** The protected TCP port the testbed listens on. */
export const PROTECTED_PORT = 22;

/** Options for {@linkcode ServerBed.create}. */
export interface ServerBedOptions {
  /** Namespace name prefix, unique per caller. */
  prefix: string;
  /** Firewall of the testbed and the server (default nft). */
  backend?: TestbedBackend;
  /** `knock_timeout` written into the server config (default 30s). */
  knockTimeout?: string;
}

/** Options for {@linkcode ServerBed.startServer}. */
export interface StartServerOptions {
  /** Extra environment for the server process (e.g. a PATH with fake tools first). */
  env?: Record<string, string>;
  /** `--log-level` (default info). */
  logLevel?: "debug" | "info" | "warn" | "error";
  /** State file path (default `<dir>/state.json`). */
  stateFile?: string;
  /** Read the server's pid from the state file (default true; needs a writable state file). */
  pidFromStateFile?: boolean;
  /** `main.ts` to run (default this checkout's; A/B runs pass another checkout's). */
  mainTs?: string;
  /** Extra `deno run` flags (e.g. `--cpu-prof`). */
  denoFlags?: string[];
}

/** A running `openme serve`. */
export interface RunningServer {
  /** The process started through `ip netns exec` (which execs deno in place). */
  proc: NsProcess;
  /** The server's pid (deno's, in the root pid namespace). */
  pid: number;
  /** State file path. */
  stateFile: string;
}

/** CPU time a process has used so far. */
export interface CpuTime {
  /** utime + stime from /proc/PID/stat, in clock ticks. */
  ticks: number;
  /** The same in milliseconds (ticks / CLK_TCK). */
  statMs: number;
  /** Sum of the on-CPU time of every thread from /proc/PID/task/TID/schedstat, in ms (ns resolution). */
  schedMs: number;
}

/** Clock ticks per second of /proc/PID/stat times (`getconf CLK_TCK`; 100 on Linux). */
export const CLOCK_TICKS_PER_SECOND = 100;

/** Reads a process's CPU time from /proc (all threads). */
export function readCpuTime(pid: number): CpuTime {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // The command name may hold spaces: fields start after the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 (utime, stime) are at 11 and 12 counting from field 3.
  const ticks = Number(fields[11]) + Number(fields[12]);
  let schedNs = 0;
  for (const entry of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      const text = Deno.readTextFileSync(
        `/proc/${pid}/task/${entry.name}/schedstat`,
      );
      schedNs += Number(text.split(" ")[0]);
    } catch {
      // the thread exited between the listing and the read
    }
  }
  return {
    ticks,
    statMs: (ticks * 1000) / CLOCK_TICKS_PER_SECOND,
    schedMs: schedNs / 1e6,
  };
}

/** A process's CPU use while left alone for ms milliseconds, in ms of CPU time per ms of wall time. */
export async function idleCpuRate(pid: number, ms: number): Promise<number> {
  const before = readCpuTime(pid);
  const t0 = performance.now();
  await sleep(ms);
  const after = readCpuTime(pid);
  return (after.schedMs - before.schedMs) / (performance.now() - t0);
}

/** A process's CPU time per datagram of one load, in µs. */
export interface CpuPerDatagram {
  /** Datagrams the load generator sent. */
  sent: number;
  /** From the threads' schedstat (ns resolution). */
  usPerDatagram: number;
  /** From utime+stime of /proc/PID/stat (10 ms ticks). */
  statUs: number;
}

/** Time the load generator gets after it is ready, before the CPU time is read. */
const LOAD_SETTLE_MS = 500;
/** Time the process gets to finish the last datagrams after the load, before the CPU time is read again. */
const LOAD_DRAIN_MS = 300;

/**
 * Runs one load from the client namespace and returns the CPU time process
 * pid spent per datagram; idleRate (from {@linkcode idleCpuRate}) times the
 * wall time is subtracted.
 */
export async function cpuPerDatagram(
  serverBed: ServerBed,
  pid: number,
  idleRate: number,
  spec: LoadSpec,
): Promise<CpuPerDatagram> {
  const load = await serverBed.startLoad(spec);
  await sleep(LOAD_SETTLE_MS);
  const before = readCpuTime(pid);
  const t0 = performance.now();
  const result = await load.go();
  await sleep(LOAD_DRAIN_MS);
  const after = readCpuTime(pid);
  const idleMs = idleRate * (performance.now() - t0);
  return {
    sent: result.sent,
    usPerDatagram: ((after.schedMs - before.schedMs - idleMs) * 1000) /
      result.sent,
    statUs: ((after.statMs - before.statMs - idleMs) * 1000) / result.sent,
  };
}

/** What a load sent and the CPU a process used meanwhile. */
export interface CpuUtilisation {
  /** Datagrams the load generator sent. */
  sent: number;
  /** CPU time per wall time from the start of sending to the end (1 = one core busy). */
  utilisation: number;
}

/** Runs one load from the client namespace and returns how busy process pid was meanwhile. */
export async function cpuUtilisationUnder(
  serverBed: ServerBed,
  pid: number,
  spec: LoadSpec,
): Promise<CpuUtilisation> {
  const load = await serverBed.startLoad(spec);
  const before = readCpuTime(pid);
  const t0 = performance.now();
  const result = await load.go();
  const used = readCpuTime(pid).schedMs - before.schedMs;
  return { sent: result.sent, utilisation: used / (performance.now() - t0) };
}

/** Resident set size of a process in MiB (VmRSS from /proc/PID/status). */
export function readRssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (match === null) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) / 1024;
}

/** Whether a process is alive (signal 0). */
export function processAlive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

/** Sleeps for the given milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The veth interface name inside a namespace (the testbed has exactly one). */
async function vethIn(ns: string): Promise<string> {
  const out = await runOk([
    "ip",
    "-n",
    ns,
    "-o",
    "link",
    "show",
    "type",
    "veth",
  ]);
  const match = /^\d+:\s+([^:@]+)[@:]/m.exec(out.stdout);
  if (match === null) throw new Error(`no veth in namespace ${ns}`);
  return match[1];
}

/**
 * Addresses for many-source traffic: 192.0.2.10 .. 192.0.2.254, then
 * 198.51.100.1 .. 198.51.100.254, then 203.0.113.1 .. 203.0.113.254
 * (documentation ranges only), at most 753.
 */
export function sourceAddresses(count: number, offset = 0): string[] {
  const all: string[] = [];
  for (let i = 10; i <= 254; i++) all.push(`192.0.2.${i}`);
  for (let i = 1; i <= 254; i++) all.push(`198.51.100.${i}`);
  for (let i = 1; i <= 254; i++) all.push(`203.0.113.${i}`);
  if (offset + count > all.length) {
    throw new RangeError(
      `sourceAddresses: at most ${
        all.length - offset
      } addresses from offset ${offset}, asked for ${count}`,
    );
  }
  return all.slice(offset, offset + count);
}

/** A testbed with a server config, one registered client ("alice") and helpers to serve and load it. */
export class ServerBed {
  /** The namespaces. */
  readonly bed: Testbed;
  /** Server config path. */
  readonly configPath: string;
  /** Client config path (alice's profile). */
  readonly clientConfigPath: string;
  /** Server X25519 public key, base64. */
  readonly serverPublicKey: string;
  /** Client Ed25519 private key, base64. */
  readonly clientPrivateKey: string;
  /** Veth interface in the client namespace. */
  readonly clientIf: string;
  /** Veth interface in the server namespace. */
  readonly serverIf: string;
  #extraAddresses = new Set<string>();

  private constructor(
    bed: Testbed,
    fields: {
      configPath: string;
      clientConfigPath: string;
      serverPublicKey: string;
      clientPrivateKey: string;
      clientIf: string;
      serverIf: string;
    },
  ) {
    this.bed = bed;
    this.configPath = fields.configPath;
    this.clientConfigPath = fields.clientConfigPath;
    this.serverPublicKey = fields.serverPublicKey;
    this.clientPrivateKey = fields.clientPrivateKey;
    this.clientIf = fields.clientIf;
    this.serverIf = fields.serverIf;
  }

  /** Builds the testbed, runs `openme init` and `openme add alice`; cleans up if a step fails. */
  static async create(options: ServerBedOptions): Promise<ServerBed> {
    const backend = options.backend ?? "nft";
    const bed = await Testbed.create({ prefix: options.prefix, backend });
    try {
      const configPath = `${bed.dir}/config.yaml`;
      const clientConfigPath = `${bed.dir}/alice.yaml`;
      await runOk(openmeCommand([
        "--config",
        configPath,
        "init",
        "--server",
        SERVER_V4,
        "--firewall",
        backend,
      ]));
      if (options.knockTimeout !== undefined) {
        const text = await Deno.readTextFile(configPath);
        const edited = text.replace(
          /^(\s*knock_timeout:\s*)\S+/m,
          `$1${options.knockTimeout}`,
        );
        if (edited === text) {
          throw new Error(`no knock_timeout line in ${configPath}`);
        }
        await Deno.writeTextFile(configPath, edited);
      }
      const added = await runOk(
        openmeCommand(["--config", configPath, "add", "alice"]),
      );
      await Deno.writeTextFile(clientConfigPath, added.stdout, { mode: 0o600 });
      const client = await loadClientConfig(clientConfigPath);
      const profile = client.profiles.get("default");
      if (profile === undefined) {
        throw new Error(`no "default" profile in ${clientConfigPath}`);
      }
      const serverBed = new ServerBed(bed, {
        configPath,
        clientConfigPath,
        serverPublicKey: encodeBase64(profile.serverPublicKey),
        clientPrivateKey: encodeBase64(profile.privateKey),
        clientIf: await vethIn(bed.clientNs),
        serverIf: await vethIn(bed.serverNs),
      });
      // Extra source ranges reach the server over the link (no replies needed,
      // but a route keeps reverse-path filtering and ARP happy).
      for (const net of ["198.51.100.0/24", "203.0.113.0/24"]) {
        await runOk([
          "ip",
          "-n",
          bed.serverNs,
          "route",
          "add",
          net,
          "dev",
          serverBed.serverIf,
        ]);
      }
      return serverBed;
    } catch (err) {
      await bed.destroy();
      throw err;
    }
  }

  /** Adds IPv4 addresses (as /32) to the client's veth, in one `ip -batch` call; skips ones already added. */
  async addClientAddresses(addresses: string[]): Promise<void> {
    const fresh = addresses.filter((a) =>
      !this.#extraAddresses.has(a) && a !== CLIENT_V4 && a !== CLIENT_V4_ALT
    );
    if (fresh.length === 0) return;
    const script = fresh.map((a) => `addr add ${a}/32 dev ${this.clientIf}`)
      .join("\n") + "\n";
    await runOk(["ip", "-n", this.bed.clientNs, "-batch", "-"], {
      stdin: script,
    });
    for (const a of fresh) this.#extraAddresses.add(a);
  }

  /** Starts `openme serve` in the server namespace and waits until it serves. */
  async startServer(options: StartServerOptions = {}): Promise<RunningServer> {
    const stateFile = options.stateFile ?? `${this.bed.dir}/state.json`;
    await Deno.remove(stateFile).catch(() => {});
    const proc = this.bed.spawn(this.bed.serverNs, [
      ...DENO_RUN,
      ...(options.denoFlags ?? []),
      options.mainTs ?? MAIN_TS,
      "--config",
      this.configPath,
      "--log-level",
      options.logLevel ?? "info",
      "serve",
      "--state-file",
      stateFile,
    ], options.env ?? {});
    // Ready once it logs that it serves or, when info lines are off, once it
    // has written its first state file (after binding its sockets).
    let pid = proc.child.pid;
    const readState = async (): Promise<number | null> => {
      try {
        const state = JSON.parse(await Deno.readTextFile(stateFile));
        return typeof state.pid === "number" ? state.pid : null;
      } catch {
        return null;
      }
    };
    const useStateFile = options.pidFromStateFile !== false;
    try {
      await waitFor(
        async () =>
          proc.output().includes("openme serving") ||
          (useStateFile && (options.logLevel === "warn" ||
            options.logLevel === "error") &&
            (await readState()) !== null),
        { timeoutMs: 30_000, what: "openme serve to start" },
      );
      if (useStateFile) {
        await waitFor(async () => (await readState()) !== null, {
          timeoutMs: 10_000,
          what: `the pid in ${stateFile}`,
        });
        pid = (await readState()) as number;
      }
    } catch (err) {
      await proc.stop("SIGKILL").catch(() => {});
      throw new Error(`${(err as Error).message}; output:\n${proc.output()}`);
    }
    return { proc, pid, stateFile };
  }

  /** Runs `openme knock` with alice's profile in the client namespace (optionally for another address). */
  knock(target?: string): Promise<{ code: number; stderr: string }> {
    const args = ["--client-config", this.clientConfigPath, "knock"];
    if (target !== undefined) args.push("--ip", target);
    return this.bed.openme(this.bed.clientNs, args, { timeoutMs: 30_000 });
  }

  /** Starts the load generator in the client namespace; resolves once it has built its datagrams. */
  async startLoad(spec: LoadSpec): Promise<LoadRun> {
    const child = new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        this.bed.clientNs,
        ...DENO_RUN,
        LOAD_GENERATOR_TS,
        JSON.stringify(spec),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const lines = readLines(child.stdout);
    const stderrText = new Response(child.stderr).text();
    const kill = (): void => {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    };
    const first = await withTimeout(lines.next(), 120_000);
    if (first === null || first.done || first.value !== "ready") {
      kill();
      await child.status;
      throw new Error(
        `load generator did not get ready: ${
          first === null ? "timeout" : first.value
        }; stderr: ${await stderrText}`,
      );
    }
    const writer = child.stdin.getWriter();
    return {
      go: async (): Promise<LoadResult> => {
        await writer.write(new TextEncoder().encode("go\n"));
        await writer.close();
        const limit = spec.durationMs + 60_000;
        const line = await withTimeout(lines.next(), limit);
        if (line === null || line.done) {
          kill();
          await child.status;
          throw new Error(
            `load generator gave no result; stderr: ${await stderrText}`,
          );
        }
        await child.status;
        return JSON.parse(line.value) as LoadResult;
      },
      stop: async (): Promise<void> => {
        try {
          child.kill("SIGTERM");
        } catch {
          // already gone
        }
        const timer = setTimeout(kill, 3000);
        await child.status;
        clearTimeout(timer);
      },
      abort: async (): Promise<void> => {
        kill();
        await child.status;
      },
    };
  }

  /** Runs the knock probe in the client namespace and returns one latency (or null) per target. */
  async probe(spec: ProbeSpec): Promise<ProbeResult> {
    const result = await this.bed.exec(this.bed.clientNs, [
      ...DENO_RUN,
      KNOCK_PROBE_TS,
      JSON.stringify(spec),
    ], {
      timeoutMs: 60_000 +
        spec.targets.length * ((spec.timeoutMs ?? 1000) + (spec.gapMs ?? 0)),
    });
    const line = result.stdout.trim().split("\n").pop() ?? "";
    if (result.code !== 0 || !line.startsWith("{")) {
      throw new Error(
        `knock probe failed (${result.code}): ${result.stderr.trim()}`,
      );
    }
    return JSON.parse(line) as ProbeResult;
  }

  /** A base spec for the load generator aimed at this server. */
  loadSpec(
    kind: LoadKind,
    fields: { rate: number; durationMs: number; sources: string[] },
  ): LoadSpec {
    return {
      server: SERVER_V4,
      port: KNOCK_PORT,
      kind,
      rate: fields.rate,
      durationMs: fields.durationMs,
      sources: fields.sources,
      serverPublicKey: this.serverPublicKey,
      clientPrivateKey: this.clientPrivateKey,
      target: null,
      prime: false,
    };
  }

  /** A base spec for the knock probe aimed at this server. */
  probeSpec(from: string, targets: string[]): ProbeSpec {
    return {
      server: SERVER_V4,
      port: KNOCK_PORT,
      tcpPort: PROTECTED_PORT,
      clientConfig: this.clientConfigPath,
      from,
      targets,
      timeoutMs: 1000,
      gapMs: 50,
    };
  }

  /** Stops every process and removes the namespaces and files. */
  async destroy(): Promise<void> {
    await this.bed.destroy();
  }
}

/** What the load generator sends. */
export type LoadKind = "short" | "junk165" | "version2" | "valid";

/** The load generator's instructions (passed as JSON on its command line). */
export interface LoadSpec {
  /** Server address. */
  server: string;
  /** Server UDP port. */
  port: number;
  /** Datagram kind: 40 random bytes, 165 random bytes with version 1 or 2, or distinct valid knocks. */
  kind: LoadKind;
  /** Datagrams per second, in total over all sources. */
  rate: number;
  /** How long to send. */
  durationMs: number;
  /** Source addresses to send from, round robin (each must be on the client's interface). */
  sources: string[];
  /** Server public key (base64), for valid knocks. */
  serverPublicKey: string;
  /** Client private key (base64), for valid knocks. */
  clientPrivateKey: string;
  /** Target address of valid knocks; null: the packet's source. */
  target: string | null;
  /** Send one valid knock (from the first source) before reporting ready, to open the session. */
  prime: boolean;
}

/** What the load generator reports when it is done. */
export interface LoadResult {
  /** Datagrams handed to the socket. */
  sent: number;
  /** Send errors. */
  errors: number;
  /** Time from the first to the last send, ms. */
  elapsedMs: number;
}

/** A started load generator, ready to send. */
export interface LoadRun {
  /** Starts sending and resolves with the result when done. */
  go(): Promise<LoadResult>;
  /** Asks the generator to stop sending early (it still reports); waits for it to exit. */
  stop(): Promise<void>;
  /** Kills the generator. */
  abort(): Promise<void>;
}

/** The knock probe's instructions. */
export interface ProbeSpec {
  /** Server address. */
  server: string;
  /** Server UDP port. */
  port: number;
  /** Protected TCP port to connect to. */
  tcpPort: number;
  /** Client config with the profile "default". */
  clientConfig: string;
  /** Address the knocks are sent from. */
  from: string;
  /** One try per target: knock for it, then connect from it. */
  targets: string[];
  /** Give up on a try after this long (default 1000 ms). */
  timeoutMs?: number;
  /** Pause between tries (default 50 ms). */
  gapMs?: number;
}

/** The knock probe's result. */
export interface ProbeResult {
  /** Per target: ms from sending the knock to the first TCP connect that succeeded, or null. */
  latenciesMs: (number | null)[];
}

/** UDP counters of a network namespace (from /proc/net/snmp). */
export interface UdpCounters {
  /** Datagrams delivered to sockets. */
  inDatagrams: number;
  /** Datagrams dropped because a socket's receive buffer was full. */
  rcvbufErrors: number;
}

/** Reads the UDP counters of a namespace. */
export async function readUdpCounters(ns: string): Promise<UdpCounters> {
  const out = await runOk(["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"]);
  const lines = out.stdout.split("\n").filter((l) => l.startsWith("Udp:"));
  if (lines.length < 2) {
    throw new Error(`no Udp lines in /proc/net/snmp of ${ns}`);
  }
  const names = lines[0].split(/\s+/);
  const values = lines[1].split(/\s+/).map(Number);
  const get = (name: string): number => values[names.indexOf(name)] ?? 0;
  return {
    inDatagrams: get("InDatagrams"),
    rcvbufErrors: get("RcvbufErrors"),
  };
}

/** Options for {@linkcode runFlood}. */
export interface FloodOptions {
  /** Datagram kind (default 165-byte junk with version 1). */
  kind?: LoadKind;
  /** Datagrams per second over all sources. */
  rate: number;
  /** Flood source addresses (must be on the client's interface). */
  sources: string[];
  /** Longest flood time; the generator stops by itself then. */
  durationMs: number;
  /** Address the probe's legitimate knocks come from (not a flood source). */
  probeFrom: string;
  /** One legitimate knock per target during the flood. */
  probeTargets: string[];
  /** Flood time before the probe starts (default 1000 ms). */
  probeDelayMs?: number;
  /** How long each legitimate knock may take to open its port (default 1000 ms). */
  probeTimeoutMs?: number;
}

/** What {@linkcode runFlood} saw. */
export interface FloodResult {
  /** What the generator sent (up to the moment it was stopped). */
  sent: number;
  /** Datagrams per second the generator achieved while it ran. */
  sentPerSecond: number;
  /** The probe's latencies (null: the port did not open within the probe's timeout). */
  latenciesMs: (number | null)[];
  /** Server CPU time per wall time while the flood ran (1 = one core busy). */
  cpuUtilisation: number;
  /** Server RSS before the flood, MiB. */
  rssBeforeMiB: number;
  /** Server RSS after the flood, MiB. */
  rssAfterMiB: number;
  /** Datagrams the kernel dropped because the server's socket buffer was full. */
  kernelDrops: number;
  /** Whether the server process was still alive afterwards. */
  alive: boolean;
}

/**
 * Floods the server from the client namespace and, during the flood, sends
 * one legitimate knock per probe target from another address; the flood is
 * stopped as soon as the probe is done (and stops by itself at durationMs).
 */
export async function runFlood(
  serverBed: ServerBed,
  server: RunningServer,
  options: FloodOptions,
): Promise<FloodResult> {
  const spec = serverBed.loadSpec(options.kind ?? "junk165", {
    rate: options.rate,
    durationMs: options.durationMs,
    sources: options.sources,
  });
  const load = await serverBed.startLoad(spec);
  const rssBeforeMiB = readRssMiB(server.pid);
  const udpBefore = await readUdpCounters(serverBed.bed.serverNs);
  const cpuBefore = readCpuTime(server.pid);
  const t0 = performance.now();
  const done = load.go();
  let latenciesMs: (number | null)[] = [];
  let cpuUtilisation = NaN;
  let rssAfterMiB = NaN;
  try {
    await sleep(options.probeDelayMs ?? 1000);
    const probeSpec = serverBed.probeSpec(
      options.probeFrom,
      options.probeTargets,
    );
    probeSpec.timeoutMs = options.probeTimeoutMs ?? 1000;
    const probe = await serverBed.probe(probeSpec);
    latenciesMs = probe.latenciesMs;
    const cpuAfter = readCpuTime(server.pid);
    cpuUtilisation = (cpuAfter.schedMs - cpuBefore.schedMs) /
      (performance.now() - t0);
    rssAfterMiB = readRssMiB(server.pid);
  } finally {
    await load.stop();
  }
  const result = await done.catch(() => null);
  const udpAfter = await readUdpCounters(serverBed.bed.serverNs);
  const elapsedMs = result?.elapsedMs ?? performance.now() - t0;
  const sent = result?.sent ??
    Math.round((options.rate * (performance.now() - t0)) / 1000);
  return {
    sent,
    sentPerSecond: elapsedMs > 0 ? Math.round((sent * 1000) / elapsedMs) : 0,
    latenciesMs,
    cpuUtilisation,
    rssBeforeMiB,
    rssAfterMiB,
    kernelDrops: udpAfter.rcvbufErrors - udpBefore.rcvbufErrors,
    alive: processAlive(server.pid),
  };
}

async function* readLines(
  stream: ReadableStream<Uint8Array>,
): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of stream) {
    buffer += decoder.decode(chunk, { stream: true });
    let newline = buffer.indexOf("\n");
    while (newline >= 0) {
      yield buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      newline = buffer.indexOf("\n");
    }
  }
  if (buffer !== "") yield buffer;
}

async function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
): Promise<T | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Median of a list of numbers. */
export function median(values: number[]): number {
  return percentile(values, 50);
}

/** Nearest-rank percentile of a list of numbers. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

/** Options for {@linkcode startServerWithSessions}. */
export interface ManySessionsOptions {
  /** Network namespace the backend's tools run in (made and deleted by the caller). */
  netns: string;
  /** Directory for the config and the state file. */
  dir: string;
  /** How many clients; each opens the most sessions a client may hold. */
  clients: number;
}

/** The server {@linkcode startServerWithSessions} started. */
export interface ManySessionsServer {
  /** How many sessions are open. */
  sessionCount(): number;
  /** Stops the server: removes every rule it added and writes its state file. */
  stop(): Promise<void>;
}

/** How many knocks are handed to the server before waiting for their opens (below its bound of 64 in flight). */
const SESSION_BATCH = 48;

/** Target address number n of the sessions: IPv4 from two documentation ranges, then IPv6. */
function sessionTarget(n: number): IpAddress {
  if (n < 250) return { family: 4, text: `192.0.2.${n + 1}` };
  if (n < 500) return { family: 4, text: `198.51.100.${n - 249}` };
  return { family: 6, text: `2001:db8::${(n + 1).toString(16)}` };
}

function manySessionsConfig(
  server: { privateKey: Uint8Array; publicKey: Uint8Array },
  clients: Map<string, Ed25519KeyPair>,
  firewall: TestbedBackend,
): string {
  const lines = [
    "server:",
    "  host: 192.0.2.1",
    "  udp_port: 54154",
    `  firewall: ${firewall}`,
    "  knock_timeout: 5m",
    "  replay_window: 5m",
    "  open_knock_port: true",
    "  drop_ports: true",
    `  private_key: ${encodeBase64(server.privateKey)}`,
    `  public_key: ${encodeBase64(server.publicKey)}`,
    "ports:",
    "  default: [22/tcp]",
    "clients:",
  ];
  for (const [name, keys] of clients) {
    lines.push(`  ${name}:`);
    lines.push(`    ed25519_pubkey: ${encodeBase64(keys.publicKey)}`);
    lines.push("    allowed_ports: [default]");
    lines.push("    disable_health_port: true");
  }
  return lines.join("\n") + "\n";
}

/**
 * Starts an in-process `OpenmeServer` whose nft or iptables backend manages
 * a network namespace, and opens clients × MAX_SESSIONS_PER_CLIENT sessions
 * (one 22/tcp rule each) by handing it knocks; stops it if that fails.
 */
export async function startServerWithSessions(
  backend: TestbedBackend,
  options: ManySessionsOptions,
): Promise<ManySessionsServer> {
  const serverKeys = generateX25519KeyPair();
  const clients = new Map<string, Ed25519KeyPair>();
  for (let i = 0; i < options.clients; i++) {
    clients.set(`c${i}`, generateEd25519KeyPair());
  }
  const configPath = `${options.dir}/config.yaml`;
  await Deno.writeTextFile(
    configPath,
    manySessionsConfig(serverKeys, clients, backend),
    { mode: 0o600 },
  );
  const server = await OpenmeServer.start(configPath, {
    stateFile: `${options.dir}/state.json`,
    backend: backend === "nft"
      ? new NftBackend({ netns: options.netns })
      : new IptablesBackend({ netns: options.netns }),
    hostname: "127.0.0.1",
    udpPort: 0,
    healthPort: 0,
    rateLimit: null,
    firewallCheckMs: 600_000,
  });
  try {
    // Client by client within each round: a batch holds few knocks of one
    // client, who may have only MAX_PENDING_OPENS_PER_CLIENT opens waiting.
    const knocks: Uint8Array[] = [];
    let n = 0;
    for (let j = 0; j < MAX_SESSIONS_PER_CLIENT; j++) {
      for (const keys of clients.values()) {
        knocks.push(buildKnock({
          serverPublicKey: serverKeys.publicKey,
          clientPrivateKey: keys.privateKey,
        }, { target: sessionTarget(n++) }));
      }
    }
    const batch = Math.min(
      SESSION_BATCH,
      options.clients * MAX_PENDING_OPENS_PER_CLIENT,
    );
    for (let start = 0; start < knocks.length; start += batch) {
      for (const knock of knocks.slice(start, start + batch)) {
        server.handleDatagram(knock, "127.0.0.1");
      }
      const want = Math.min(start + batch, knocks.length);
      await waitFor(() => server.sessions().length === want, {
        timeoutMs: 60_000,
        what: `${want} sessions`,
      });
    }
  } catch (err) {
    await server.stop().catch(() => {});
    throw err;
  }
  return {
    sessionCount: () => server.sessions().length,
    stop: () => server.stop(),
  };
}
