/**
 * The live demo: builds a two-namespace test network (scripts/testbed.ts),
 * runs the real `openme init`, `add`, `serve`, `knock` and `sessions` in it,
 * and narrates each step as it happens: port 22 closed, knock, port 22 open
 * (with the measured time), the session, the firewall rule, port 22 closed
 * again after `knock_timeout`, a replayed packet ignored, and a clean
 * shutdown that leaves no rule. The host's own firewall is never touched.
 * Namespaces, processes and files are removed at the end, on failure and on
 * Ctrl-C. Exit 0 only when every step behaved; 1 otherwise; 2 on a usage
 * error; 130 when interrupted.
 *
 * Usage (as root): `deno run --allow-all scripts/demo.ts [--backend nft|iptables]`
 * (or `sudo bash scripts/demo.sh`, which installs what is missing first).
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  type ClientProfile,
  parseClientConfig,
} from "../lib/config/client_config.ts";
import { encodeBase64 } from "../lib/encoding.ts";
import { buildKnock } from "../lib/protocol/packet.ts";
import {
  CLIENT_V4,
  type NsProcess,
  openmeCommand,
  run,
  SERVER_V4,
  Testbed,
  type TestbedBackend,
  testbedUnavailable,
} from "./testbed.ts";

/** Prefix of the network namespaces the demo creates. */
export const DEMO_NS_PREFIX = "om-demo";
/** The service port the demo opens with a knock. */
export const DEMO_SERVICE_PORT = 22;
/**
 * `knock_timeout` written into the demo's server config: long enough that the
 * session outlives the steps that show it (a CLI run and a rule listing) on a
 * busy machine, short enough to watch the port close.
 */
export const DEMO_KNOCK_TIMEOUT = "10s";
/** The same timeout in milliseconds. */
export const DEMO_KNOCK_TIMEOUT_MS = 10_000;
/** The server's knock port (openme's default). */
export const DEMO_KNOCK_PORT = 54154;
/** The client name registered with `openme add`. */
export const DEMO_CLIENT = "alice";
/** Exit code after Ctrl-C (128 + SIGINT). */
export const EXIT_INTERRUPTED = 130;
/** Exit code after SIGTERM (128 + SIGTERM). */
export const EXIT_TERMINATED = 143;

/** Poll interval while waiting for the port to open or close. */
const POLL_INTERVAL_MS = 50;
/**
 * Connect timeout of the first probe while polling (the link is local: a
 * SYN-ACK takes well under 1 ms); it includes the probe's start-up, so each
 * failed probe doubles it, up to CLOSED_PROBE_TIMEOUT_MS, in case the
 * machine is busy.
 */
const POLL_PROBE_TIMEOUT_MS = 250;
/** Connect timeout of a probe that must fail ("closed"). */
const CLOSED_PROBE_TIMEOUT_MS = 2000;
// The longest waits below are generous, for a busy machine; each ends as
// soon as what it waits for happens (within milliseconds when idle).
/** Longest wait for the port to open after a knock. */
const OPEN_WAIT_MS = 60_000;
/** Longest wait for the port to close after it opened. */
const CLOSE_WAIT_MS = DEMO_KNOCK_TIMEOUT_MS + 60_000;
/** How long the port must stay closed after the replayed packet. */
const REPLAY_WATCH_MS = 2000;
/** Longest wait for `openme serve` to report it is serving. */
const SERVE_READY_MS = 60_000;
/** Longest wait for the server to log the replay drop. */
const REPLAY_LOG_WAIT_MS = 30_000;
/** How long `openme serve` gets to shut down after SIGTERM. */
const SERVE_STOP_MS = 60_000;
/** After Ctrl-C, how long the story gets to stop before cleanup starts anyway. */
const ABORT_SETTLE_MS = 3000;
/** The whole demo is aborted (and cleaned up) after this long. */
const DEMO_DEADLINE_MS = 300_000;

const USAGE = "Usage: scripts/demo.sh [--backend nft|iptables]";

/** A step that did not behave; its message says what was expected and what happened. */
class StepFailed extends Error {
  /** Creates a step failure. */
  constructor(message: string) {
    super(message);
    this.name = "StepFailed";
  }
}

/** Terminal styles; every function returns the text unchanged in plain mode. */
export interface Style {
  /** A step heading. */
  heading(text: string): string;
  /** A ✓ line. */
  ok(text: string): string;
  /** A ✗ line. */
  fail(text: string): string;
  /** Command output and details. */
  dim(text: string): string;
}

/** The demo's text styles: ANSI colours when `color`, plain text otherwise. */
export function makeStyle(color: boolean): Style {
  const wrap = (code: string) => (text: string): string =>
    color ? `\x1b[${code}m${text}\x1b[0m` : text;
  return {
    heading: wrap("1"),
    ok: wrap("32"),
    fail: wrap("31"),
    dim: wrap("2"),
  };
}

/** Outcome of one step, for the summary. */
interface StepRecord {
  /** Step title. */
  title: string;
  /** How it went; "interrupted" when a signal or the deadline stopped it. */
  outcome: "ok" | "failed" | "interrupted" | "not run";
}

/** Everything the demo created, so that cleanup can remove it whatever happened. */
interface DemoState {
  backend: TestbedBackend;
  style: Style;
  bedPromise: Promise<Testbed> | null;
  bed: Testbed | null;
  serve: NsProcess | null;
  serveExited: boolean;
  cleanup: Promise<string[]> | null;
  /** Set once a signal or the deadline took over; the main flow then stays quiet. */
  aborted: boolean;
  steps: StepRecord[];
}

const STEP_TITLES: readonly string[] = [
  "Build the test network",
  `Port ${DEMO_SERVICE_PORT} is closed`,
  "openme init and openme add",
  "openme serve in the server namespace",
  "openme knock from the client namespace",
  `Port ${DEMO_SERVICE_PORT} opens`,
  "openme sessions",
  "The rule in the firewall",
  `Port ${DEMO_SERVICE_PORT} closes after knock_timeout`,
  "A captured knock packet, sent once",
  "The same packet, replayed",
  "Clean shutdown",
  "Remove the test network",
];

function say(state: DemoState, text: string): void {
  if (!state.aborted) console.log(text);
}

function detail(state: DemoState, text: string): void {
  for (const line of text.replace(/\s+$/, "").split("\n")) {
    say(state, state.style.dim(`    ${line}`));
  }
}

function command(state: DemoState, where: string, text: string): void {
  say(state, state.style.dim(`    [${where}] $ ${text}`));
}

/** Stops the story at the next check once a signal or the deadline took over. */
function checkAborted(state: DemoState): void {
  if (state.aborted) throw new StepFailed("aborted");
}

function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs one step: prints its heading, then ✓ with the step's result or ✗ with the failure; rethrows failures. */
async function step(
  state: DemoState,
  index: number,
  fn: () => Promise<string>,
): Promise<void> {
  checkAborted(state);
  const title = STEP_TITLES[index];
  say(
    state,
    state.style.heading(`[${index + 1}/${STEP_TITLES.length}] ${title}`),
  );
  try {
    const result = await fn();
    state.steps[index].outcome = "ok";
    say(state, state.style.ok(`  ✓ ${result}`));
  } catch (err) {
    if (state.aborted) {
      state.steps[index].outcome = "interrupted";
      throw err;
    }
    state.steps[index].outcome = "failed";
    const message = err instanceof Error ? err.message : String(err);
    say(state, state.style.fail(`  ✗ ${message}`));
    throw err;
  }
}

function expectOk(
  what: string,
  result: { code: number; stdout: string; stderr: string },
): void {
  if (result.code !== 0) {
    throw new StepFailed(
      `${what} exited ${result.code}: ${
        (result.stderr.trim() || result.stdout.trim()).split("\n").slice(-3)
          .join(" | ")
      }`,
    );
  }
}

/** Polls the service port until it answers; returns ms from `sinceMs` to the first successful connect, or null. */
async function waitForOpen(
  state: DemoState,
  bed: Testbed,
  sinceMs: number,
  limitMs: number,
): Promise<number | null> {
  const rounds = Math.ceil(limitMs / POLL_INTERVAL_MS) + 1;
  const deadline = performance.now() + limitMs;
  let probeTimeoutMs = POLL_PROBE_TIMEOUT_MS;
  for (let i = 0; i < rounds && performance.now() < deadline; i++) {
    checkAborted(state);
    const open = await bed.tcpOpen(SERVER_V4, DEMO_SERVICE_PORT, {
      timeoutMs: probeTimeoutMs,
    });
    if (open) return performance.now() - sinceMs;
    probeTimeoutMs = Math.min(probeTimeoutMs * 2, CLOSED_PROBE_TIMEOUT_MS);
    await sleep(POLL_INTERVAL_MS);
  }
  return null;
}

/** When {@linkcode waitForClosed} saw the port closed. */
interface ClosedAt {
  /** ms from `sinceMs` to the start of the first probe that failed. */
  sinceMs: number;
  /** performance.now() when a longer probe had confirmed it: the port closed before then. */
  confirmedAt: number;
}

/**
 * Polls the service port until a connect fails and a longer probe confirms
 * it (a short probe may fail on a busy machine because it started slowly);
 * null when it stays open for `limitMs`.
 */
async function waitForClosed(
  state: DemoState,
  bed: Testbed,
  sinceMs: number,
  limitMs: number,
): Promise<ClosedAt | null> {
  const rounds = Math.ceil(limitMs / POLL_INTERVAL_MS) + 1;
  const deadline = performance.now() + limitMs;
  for (let i = 0; i < rounds && performance.now() < deadline; i++) {
    checkAborted(state);
    const probeStart = performance.now();
    const open = await bed.tcpOpen(SERVER_V4, DEMO_SERVICE_PORT, {
      timeoutMs: POLL_PROBE_TIMEOUT_MS,
    });
    if (!open) {
      const confirmed = !(await bed.tcpOpen(SERVER_V4, DEMO_SERVICE_PORT, {
        timeoutMs: CLOSED_PROBE_TIMEOUT_MS,
      }));
      if (confirmed) {
        return {
          sinceMs: probeStart - sinceMs,
          confirmedAt: performance.now(),
        };
      }
    }
    await sleep(POLL_INTERVAL_MS);
  }
  return null;
}

/** Lists the rules of openme's chain: `nft list chain inet filter openme`, or `iptables -S INPUT`. */
async function listOpenmeRules(bed: Testbed): Promise<string> {
  const cmd = bed.backend === "nft"
    ? ["nft", "list", "chain", "inet", "filter", "openme"]
    : ["iptables", "-w", "-S", "INPUT"];
  const result = await bed.exec(bed.serverNs, cmd);
  expectOk(cmd.join(" "), result);
  return result.stdout;
}

function ruleListingCommand(backend: TestbedBackend): string {
  return backend === "nft"
    ? "nft list chain inet filter openme"
    : "iptables -S INPUT";
}

/** The per-knock accept rule for the demo client and the service port in an nft or `iptables -S` listing, or null. */
export function findClientRule(listing: string): string | null {
  for (const line of listing.split("\n")) {
    const nftRule = line.includes(`ip saddr ${CLIENT_V4} `) &&
      line.includes(`dport ${DEMO_SERVICE_PORT} `) &&
      line.includes('comment "openme"');
    const iptablesRule = line.includes(`-s ${CLIENT_V4}/32 `) &&
      line.includes(`--dport ${DEMO_SERVICE_PORT} `) &&
      /--comment openme( |$)/.test(line);
    if (nftRule || iptablesRule) return line.trim();
  }
  return null;
}

/** Lines of a ruleset listing that belong to openme: its chain and rules with an openme comment (per-knock, knock port, drop). */
export function openmeRuleLines(ruleset: string): string[] {
  return ruleset.split("\n").filter((line) =>
    /comment "openme(-knock|-drop)?"/.test(line) ||
    /--comment "?openme(-knock|-drop)?"?( |$)/.test(line) ||
    /chain openme\b/.test(line)
  );
}

interface StateFileView {
  active_sessions?: { client_name: string; ip: string }[];
  drops?: Record<string, number>;
}

async function readState(path: string): Promise<StateFileView> {
  return JSON.parse(await Deno.readTextFile(path)) as StateFileView;
}

function replayDrops(state: StateFileView): number {
  return state.drops?.replay ?? 0;
}

/** Sends one datagram from the client namespace with a small node:dgram program. */
async function sendFromClient(bed: Testbed, packet: Uint8Array): Promise<void> {
  const code = `import { createSocket } from "node:dgram";
const bytes = Uint8Array.from(atob(${
    JSON.stringify(encodeBase64(packet))
  }), (c) => c.charCodeAt(0));
const socket = createSocket("udp4");
socket.send(bytes, ${DEMO_KNOCK_PORT}, ${JSON.stringify(SERVER_V4)}, (err) => {
  socket.close();
  if (err) { console.error(err.message); Deno.exit(1); }
});`;
  const result = await bed.exec(bed.clientNs, [
    "deno",
    "eval",
    "--no-config",
    code,
  ], { timeoutMs: 20_000 });
  expectOk("sending the packet", result);
}

function redactPrivateKey(text: string): string {
  return text.replace(/^(\s*private_key:\s*).+$/gm, "$1<redacted>");
}

/** Removes every process, namespace and file the demo created; returns what could not be removed. Runs once. */
function cleanup(state: DemoState): Promise<string[]> {
  if (state.cleanup !== null) return state.cleanup;
  state.cleanup = (async (): Promise<string[]> => {
    const problems: string[] = [];
    if (state.serve !== null && !state.serveExited) {
      await state.serve.stop("SIGTERM", SERVE_STOP_MS).catch(() => {});
      state.serveExited = true;
    }
    let bed = state.bed;
    if (bed === null && state.bedPromise !== null) {
      bed = await state.bedPromise.catch(() => null);
    }
    if (bed === null) return problems;
    await bed.destroy();
    const listed = await run(["ip", "netns", "list"]);
    for (const ns of [bed.serverNs, bed.clientNs]) {
      if (listed.stdout.split("\n").some((l) => l.split(" ")[0] === ns)) {
        problems.push(`namespace ${ns} is still there (ip netns del ${ns})`);
      }
    }
    try {
      await Deno.stat(bed.dir);
      problems.push(`directory ${bed.dir} is still there`);
    } catch {
      // removed, as it should be
    }
    return problems;
  })();
  return state.cleanup;
}

/** The demo's story, step by step; throws StepFailed at the first step that does not behave. */
async function story(state: DemoState): Promise<void> {
  let bed!: Testbed;
  let configPath = "";
  let clientConfigPath = "";
  let statePath = "";
  let profile!: ClientProfile;
  let openedAt = 0;
  let baseRuleset = "";
  let replaysBefore = 0;

  await step(state, 0, async () => {
    state.bedPromise = Testbed.create({
      prefix: DEMO_NS_PREFIX,
      backend: state.backend,
    });
    bed = await state.bedPromise;
    state.bed = bed;
    configPath = `${bed.dir}/config.yaml`;
    clientConfigPath = `${bed.dir}/${DEMO_CLIENT}.yaml`;
    statePath = `${bed.dir}/sessions.json`;
    detail(
      state,
      [
        `server namespace ${bed.serverNs}: ${SERVER_V4}/24, 2001:db8::1/64`,
        `client namespace ${bed.clientNs}: ${CLIENT_V4}/24, 2001:db8::2/64`,
        `joined by a veth pair; ${state.backend} default-deny ruleset in the server namespace`,
        `tiny TCP service listening on port ${DEMO_SERVICE_PORT} in the server namespace`,
        `work directory: ${bed.dir}`,
        "the host's own firewall and interfaces are not touched",
      ].join("\n"),
    );
    return `two namespaces joined by a veth pair (${state.backend})`;
  });

  await step(state, 1, async () => {
    const inside = await bed.exec(bed.serverNs, [
      "bash",
      "-c",
      `exec 3<>/dev/tcp/127.0.0.1/${DEMO_SERVICE_PORT}`,
    ], { timeoutMs: 5000 });
    if (inside.code !== 0) {
      throw new StepFailed(
        `the service on port ${DEMO_SERVICE_PORT} does not answer even inside the server namespace`,
      );
    }
    command(
      state,
      "client",
      `connect ${SERVER_V4}:${DEMO_SERVICE_PORT} (wait ${
        formatMs(CLOSED_PROBE_TIMEOUT_MS)
      })`,
    );
    const open = await bed.tcpOpen(SERVER_V4, DEMO_SERVICE_PORT, {
      timeoutMs: CLOSED_PROBE_TIMEOUT_MS,
    });
    if (open) {
      throw new StepFailed(
        `port ${DEMO_SERVICE_PORT} is reachable before any knock: the default-deny ruleset is not in force`,
      );
    }
    return `port ${DEMO_SERVICE_PORT} is closed to the client (the service runs, the firewall drops the SYN)`;
  });

  await step(state, 2, async () => {
    const initArgs = [
      "--config",
      configPath,
      "init",
      "--server",
      SERVER_V4,
      "--firewall",
      state.backend,
    ];
    command(state, "server", `openme ${initArgs.join(" ")}`);
    const init = await bed.openme(bed.serverNs, initArgs);
    expectOk("openme init", init);
    detail(state, init.stdout);
    const text = await Deno.readTextFile(configPath);
    const edited = text.replace(
      /^(\s*knock_timeout:\s*)\S+/m,
      `$1${DEMO_KNOCK_TIMEOUT}`,
    );
    if (edited === text) {
      throw new StepFailed(
        `${configPath} has no knock_timeout line to shorten`,
      );
    }
    await Deno.writeTextFile(configPath, edited);
    detail(
      state,
      `edited ${configPath}: knock_timeout: ${DEMO_KNOCK_TIMEOUT} (ports stay open ${DEMO_KNOCK_TIMEOUT})`,
    );
    const addArgs = ["--config", configPath, "add", DEMO_CLIENT];
    command(
      state,
      "server",
      `openme ${addArgs.join(" ")} > ${clientConfigPath}`,
    );
    const add = await bed.openme(bed.serverNs, addArgs);
    expectOk("openme add", add);
    if (!add.stdout.startsWith("profiles:")) {
      throw new StepFailed(
        `openme add printed no client config block starting with "profiles:" (got ${
          JSON.stringify(add.stdout.slice(0, 40))
        })`,
      );
    }
    await Deno.writeTextFile(clientConfigPath, add.stdout, { mode: 0o600 });
    detail(state, redactPrivateKey(add.stdout));
    const config = parseClientConfig(add.stdout, { path: clientConfigPath });
    const first = config.profiles.values().next();
    if (first.done === true) {
      throw new StepFailed("the client config printed by add has no profile");
    }
    profile = first.value;
    const fingerprint = /# fingerprint: ([0-9a-f]+)/.exec(add.stdout)?.[1] ??
      "?";
    return `server keys created; client ${DEMO_CLIENT} registered (key ${fingerprint}), its config saved`;
  });

  await step(state, 3, async () => {
    baseRuleset = await bed.serverRules();
    checkAborted(state);
    const args = [
      "--config",
      configPath,
      "--log-level",
      "debug",
      "serve",
      "--state-file",
      statePath,
    ];
    command(state, "server", `openme ${args.join(" ")} &`);
    const serve = bed.spawn(bed.serverNs, openmeCommand(args));
    state.serve = serve;
    serve.child.status.then(() => {
      state.serveExited = true;
    });
    const rounds = Math.ceil(SERVE_READY_MS / POLL_INTERVAL_MS);
    for (let i = 0; i < rounds; i++) {
      checkAborted(state);
      if (serve.output().includes("openme serving")) break;
      if (state.serveExited) break;
      await sleep(POLL_INTERVAL_MS);
    }
    const ready = serve.output().split("\n").find((l) =>
      l.includes("openme serving")
    );
    if (ready === undefined) {
      throw new StepFailed(
        state.serveExited
          ? `openme serve exited: ${
            serve.output().trim().split("\n").slice(-3).join(" | ")
          }`
          : `openme serve did not report "openme serving" within ${
            formatMs(SERVE_READY_MS)
          }`,
      );
    }
    detail(state, ready.replace(/^INFO\s+/, ""));
    return `the server listens for knocks on udp/${DEMO_KNOCK_PORT}; port ${DEMO_SERVICE_PORT} stays closed`;
  });

  let knockSentAt = 0;
  let knockStartedAt = 0;
  await step(state, 4, async () => {
    const args = ["--client-config", clientConfigPath, "knock"];
    command(state, "client", `openme ${args.join(" ")}`);
    knockStartedAt = performance.now();
    const knock = await bed.openme(bed.clientNs, args);
    knockSentAt = performance.now();
    expectOk("openme knock", knock);
    detail(state, knock.stdout || knock.stderr);
    return `one UDP packet (165 bytes) sent to ${SERVER_V4}:${DEMO_KNOCK_PORT}; the server never answers`;
  });

  await step(state, 5, async () => {
    const afterSend = await waitForOpen(state, bed, knockSentAt, OPEN_WAIT_MS);
    if (afterSend === null) {
      throw new StepFailed(
        `port ${DEMO_SERVICE_PORT} did not open within ${
          formatMs(OPEN_WAIT_MS)
        } of the knock`,
      );
    }
    openedAt = knockSentAt + afterSend;
    const total = openedAt - knockStartedAt;
    return `port ${DEMO_SERVICE_PORT} open ${
      formatMs(afterSend)
    } after the knock was sent (${
      formatMs(total)
    } including the CLI's start-up)`;
  });

  await step(state, 6, async () => {
    const args = ["sessions", "--state-file", statePath];
    command(state, "server", `openme ${args.join(" ")}`);
    const sessions = await bed.openme(bed.serverNs, args);
    expectOk("openme sessions", sessions);
    detail(state, sessions.stdout);
    const row = sessions.stdout.split("\n").find((l) =>
      l.startsWith(DEMO_CLIENT) && l.includes(CLIENT_V4)
    );
    if (row === undefined) {
      throw new StepFailed(
        `openme sessions shows no session of ${DEMO_CLIENT} from ${CLIENT_V4}`,
      );
    }
    return `one active session: ${DEMO_CLIENT} from ${CLIENT_V4}`;
  });

  await step(state, 7, async () => {
    command(state, "server", ruleListingCommand(bed.backend));
    const listing = await listOpenmeRules(bed);
    detail(state, listing);
    const rule = findClientRule(listing);
    if (rule === null) {
      throw new StepFailed(
        `no accept rule for ${CLIENT_V4} port ${DEMO_SERVICE_PORT} with comment openme in the listing`,
      );
    }
    return `rule: ${rule}`;
  });

  await step(state, 8, async () => {
    const closed = await waitForClosed(state, bed, openedAt, CLOSE_WAIT_MS);
    if (closed === null) {
      throw new StepFailed(
        `port ${DEMO_SERVICE_PORT} was still open ${
          formatMs(CLOSE_WAIT_MS)
        } after it opened (knock_timeout ${DEMO_KNOCK_TIMEOUT})`,
      );
    }
    // The session's deadline is knock_timeout after the server got the
    // knock, which was after knockStartedAt: a port seen closed before that
    // closed early, however late this process got to look.
    const sinceOpen = closed.sinceMs;
    if (closed.confirmedAt - knockStartedAt < DEMO_KNOCK_TIMEOUT_MS) {
      throw new StepFailed(
        `port ${DEMO_SERVICE_PORT} closed ${
          formatMs(closed.confirmedAt - knockStartedAt)
        } after the knock, before knock_timeout (${DEMO_KNOCK_TIMEOUT})`,
      );
    }
    const stillOpen = await bed.tcpOpen(SERVER_V4, DEMO_SERVICE_PORT, {
      timeoutMs: CLOSED_PROBE_TIMEOUT_MS,
    });
    if (stillOpen) {
      throw new StepFailed(
        `port ${DEMO_SERVICE_PORT} answered again after closing`,
      );
    }
    const listing = await listOpenmeRules(bed);
    const rule = findClientRule(listing);
    if (rule !== null) {
      throw new StepFailed(`the rule is still listed: ${rule}`);
    }
    return `port ${DEMO_SERVICE_PORT} closed again ${
      formatMs(sinceOpen)
    } after it opened (knock_timeout ${DEMO_KNOCK_TIMEOUT}); the rule is gone`;
  });

  let packet!: Uint8Array;
  await step(state, 9, async () => {
    packet = buildKnock({
      serverPublicKey: profile.serverPublicKey,
      clientPrivateKey: profile.privateKey,
    });
    detail(
      state,
      `built a knock from ${DEMO_CLIENT}'s keys with lib/packet.ts (${packet.length} bytes) and kept a copy, as an eavesdropper would`,
    );
    command(
      state,
      "client",
      `deno eval '<node:dgram sender>'  # ${packet.length} bytes to ${SERVER_V4}:${DEMO_KNOCK_PORT}`,
    );
    const sentAt = performance.now();
    await sendFromClient(bed, packet);
    const afterSend = await waitForOpen(state, bed, sentAt, OPEN_WAIT_MS);
    if (afterSend === null) {
      throw new StepFailed(
        `port ${DEMO_SERVICE_PORT} did not open for the fresh packet`,
      );
    }
    detail(
      state,
      `port ${DEMO_SERVICE_PORT} open ${
        formatMs(afterSend)
      } after sending; waiting for knock_timeout`,
    );
    const opened = sentAt + afterSend;
    const closed = await waitForClosed(state, bed, opened, CLOSE_WAIT_MS);
    if (closed === null) {
      throw new StepFailed(
        `port ${DEMO_SERVICE_PORT} did not close after knock_timeout`,
      );
    }
    replaysBefore = replayDrops(await readState(statePath));
    return `the packet opened port ${DEMO_SERVICE_PORT}, which closed again ${
      formatMs(closed.sinceMs)
    } later`;
  });

  await step(state, 10, async () => {
    const logBefore = serveReplayLines(state.serve).length;
    command(
      state,
      "client",
      `deno eval '<node:dgram sender>'  # the same ${packet.length} bytes again`,
    );
    await sendFromClient(bed, packet);
    const watchStart = performance.now();
    const rounds = Math.ceil(REPLAY_WATCH_MS / POLL_PROBE_TIMEOUT_MS) + 1;
    for (
      let i = 0;
      i < rounds && performance.now() - watchStart < REPLAY_WATCH_MS;
      i++
    ) {
      checkAborted(state);
      const open = await bed.tcpOpen(SERVER_V4, DEMO_SERVICE_PORT, {
        timeoutMs: POLL_PROBE_TIMEOUT_MS,
      });
      if (open) {
        throw new StepFailed(
          `the replayed packet opened port ${DEMO_SERVICE_PORT}`,
        );
      }
    }
    const logRounds = Math.ceil(REPLAY_LOG_WAIT_MS / POLL_INTERVAL_MS);
    let lines = serveReplayLines(state.serve);
    for (let i = 0; i < logRounds && lines.length <= logBefore; i++) {
      checkAborted(state);
      await sleep(POLL_INTERVAL_MS);
      lines = serveReplayLines(state.serve);
    }
    if (lines.length <= logBefore) {
      throw new StepFailed(
        "the server did not log the replayed packet as a replay",
      );
    }
    detail(state, `server log: ${lines[lines.length - 1]}`);
    const listing = await listOpenmeRules(bed);
    if (findClientRule(listing) !== null) {
      throw new StepFailed("a rule for the client appeared after the replay");
    }
    return `ignored: port ${DEMO_SERVICE_PORT} stayed closed for ${
      formatMs(REPLAY_WATCH_MS)
    }, no rule added, the server counted a replay`;
  });

  await step(state, 11, async () => {
    command(state, "server", "kill -TERM <openme serve>");
    const serve = state.serve;
    if (serve === null) throw new StepFailed("openme serve is not running");
    const code = await serve.stop("SIGTERM", SERVE_STOP_MS);
    state.serveExited = true;
    const last = serve.output().trim().split("\n").slice(-2).join("\n");
    detail(state, last.replace(/^INFO\s+/gm, ""));
    if (code !== 0) {
      throw new StepFailed(`openme serve exited ${code} on SIGTERM`);
    }
    const after = await bed.serverRules();
    const leftover = openmeRuleLines(after);
    if (leftover.length > 0) {
      throw new StepFailed(
        `openme's rules are still there: ${leftover.join(" | ")}`,
      );
    }
    if (after !== baseRuleset) {
      throw new StepFailed(
        "the ruleset differs from the one before openme serve started",
      );
    }
    const final = await readState(statePath);
    const replays = replayDrops(final);
    if (replays <= replaysBefore) {
      throw new StepFailed(
        `the state file counts ${replays} replay drop(s), as many as before the replay`,
      );
    }
    if ((final.active_sessions ?? []).length !== 0) {
      throw new StepFailed("the final state file still lists open sessions");
    }
    detail(
      state,
      `state file: drops.replay ${replaysBefore} → ${replays}, no active session`,
    );
    return "openme serve exited 0 on SIGTERM; no openme rule left, the ruleset is as before serve";
  });

  await step(state, 12, async () => {
    const names = `${bed.serverNs}, ${bed.clientNs}`;
    const problems = await cleanup(state);
    if (problems.length > 0) throw new StepFailed(problems.join("; "));
    return `namespaces ${names}, their processes and ${bed.dir} removed`;
  });
}

function serveReplayLines(serve: NsProcess | null): string[] {
  if (serve === null) return [];
  return serve.output().split("\n").filter((l) =>
    /dropped datagram from \S+: replay\b/.test(l)
  );
}

function printSummary(
  state: DemoState,
  elapsedMs: number,
  interrupted: string | null,
): boolean {
  const style = state.style;
  const passed = state.steps.filter((s) => s.outcome === "ok").length;
  const allOk = passed === state.steps.length;
  console.log("");
  console.log(style.heading("Summary"));
  for (const s of state.steps) {
    const line = s.outcome === "ok"
      ? style.ok(`  ✓ ${s.title}`)
      : s.outcome === "failed"
      ? style.fail(`  ✗ ${s.title}`)
      : style.dim(`  - ${s.title} (${s.outcome})`);
    console.log(line);
  }
  const verdict =
    `${passed}/${state.steps.length} steps behaved (${state.backend} backend, ${
      formatMs(elapsedMs)
    })`;
  if (interrupted !== null) {
    console.log(style.fail(`demo ${interrupted}: ${verdict}`));
    return false;
  }
  console.log(
    allOk
      ? style.ok(`demo passed: ${verdict}`)
      : style.fail(`demo FAILED: ${verdict}`),
  );
  return allOk;
}

/** Parses the demo's arguments; returns the backend, "help", or a usage error message. */
export function parseDemoArgs(
  argv: string[],
): { backend: TestbedBackend } | { help: true } | { error: string } {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        backend: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: false,
      strict: true,
    }).values;
  } catch (err) {
    return { error: (err as Error).message.split(". ")[0] };
  }
  if (values.help === true) return { help: true };
  const backend = values.backend ?? "nft";
  if (backend !== "nft" && backend !== "iptables") {
    return {
      error:
        `--backend "${backend}" is not a backend (expected nft or iptables)`,
    };
  }
  return { backend };
}

/** Runs the demo and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const parsed = parseDemoArgs(argv);
  if ("help" in parsed) {
    console.log(
      `${USAGE}\n\nRuns openme live in two throwaway network namespaces (as root): knock, port ${DEMO_SERVICE_PORT} opens, closes after ${DEMO_KNOCK_TIMEOUT}, a replay is ignored, shutdown leaves no rule. The host's firewall is not touched.`,
    );
    return 0;
  }
  if ("error" in parsed) {
    console.error(`demo: ${parsed.error}\n${USAGE}`);
    return 2;
  }
  const unavailable = testbedUnavailable(parsed.backend);
  if (unavailable !== null) {
    console.error(
      `demo: cannot run: ${unavailable}. Run it as root on Linux: sudo bash scripts/demo.sh${
        parsed.backend === "nft" ? "" : " --backend iptables"
      }`,
    );
    return 1;
  }
  const color = Deno.stdout.isTerminal() &&
    (Deno.env.get("NO_COLOR") ?? "") === "";
  const state: DemoState = {
    backend: parsed.backend,
    style: makeStyle(color),
    bedPromise: null,
    bed: null,
    serve: null,
    serveExited: false,
    cleanup: null,
    aborted: false,
    steps: STEP_TITLES.map((title) => ({ title, outcome: "not run" })),
  };
  const started = performance.now();
  const { promise: abortedBy, resolve: abort } = Promise.withResolvers<
    { code: number; why: string }
  >();
  const onInt = (): void =>
    abort({ code: EXIT_INTERRUPTED, why: "interrupted (Ctrl-C)" });
  const onTerm = (): void =>
    abort({ code: EXIT_TERMINATED, why: "terminated (SIGTERM)" });
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGTERM", onTerm);
  const deadline = setTimeout(
    () =>
      abort({
        code: 1,
        why: `the demo took longer than ${formatMs(DEMO_DEADLINE_MS)}`,
      }),
    DEMO_DEADLINE_MS,
  );
  console.log(
    state.style.heading(
      `openme live demo (${parsed.backend}): single packet authorization in two network namespaces`,
    ),
  );
  const storyDone = story(state).then(
    () => null,
    (err: unknown) => err,
  );
  const first = await Promise.race([
    storyDone.then((err) => ({ kind: "story" as const, err })),
    abortedBy.then((a) => ({ kind: "abort" as const, abort: a })),
  ]);
  clearTimeout(deadline);
  let code: number;
  if (first.kind === "abort") {
    state.aborted = true;
    console.log("");
    console.log(
      state.style.fail(
        `✗ ${first.abort.why}: removing namespaces and processes`,
      ),
    );
    // Let the story stop at its next check (in-flight commands are bounded), then clean up.
    let settleTimer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      storyDone,
      new Promise((resolve) => {
        settleTimer = setTimeout(resolve, ABORT_SETTLE_MS);
      }),
    ]);
    clearTimeout(settleTimer);
    const problems = await cleanup(state);
    for (const p of problems) console.log(state.style.fail(`  ✗ ${p}`));
    if (problems.length === 0) {
      console.log(state.style.ok("  ✓ cleaned up; nothing left behind"));
    }
    printSummary(state, performance.now() - started, first.abort.why);
    code = first.abort.code;
  } else {
    if (first.err !== null && !(first.err instanceof StepFailed)) {
      console.log(
        state.style.fail(
          `  ✗ unexpected error: ${
            first.err instanceof Error
              ? first.err.stack ?? first.err.message
              : String(first.err)
          }`,
        ),
      );
    }
    const problems = await cleanup(state);
    if (first.err !== null) {
      for (const p of problems) console.log(state.style.fail(`  ✗ ${p}`));
      console.log(
        problems.length === 0
          ? state.style.dim(
            "  cleaned up: namespaces, processes and files removed",
          )
          : "",
      );
    }
    const ok = printSummary(state, performance.now() - started, null);
    code = ok && problems.length === 0 ? 0 : 1;
  }
  Deno.removeSignalListener("SIGINT", onInt);
  Deno.removeSignalListener("SIGTERM", onTerm);
  return code;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
