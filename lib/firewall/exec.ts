/**
 * Runs the firewall tools as subprocesses, without a shell and with a time
 * limit, and queues a backend's operations so they run one at a time.
 *
 * @module
 */

import * as log from "../log.ts";
import { type FirewallBackendOptions, FirewallError } from "./backend.ts";

/** Default time limit for one tool run, in milliseconds. */
export const DEFAULT_TOOL_TIMEOUT_MS = 5000;
/** Default bound on operations waiting in an OperationQueue. */
export const DEFAULT_MAX_QUEUED_OPERATIONS = 1024;
/** Characters allowed in a network namespace name. */
export const NETNS_NAME_PATTERN = /^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}$/;
/** Longest stderr excerpt a FirewallError message carries. */
export const MAX_ERROR_STDERR_CHARS = 400;

/** The programs {@linkcode runTool} starts for openme; the release binary's `--allow-run` lists each. */
export const TOOL_PROGRAMS = [
  "nft",
  "iptables",
  "ip6tables",
  "iptables-restore",
  "ip6tables-restore",
  "timedatectl",
] as const;
/** The programs started only with a network namespace set (tests, the demo): `ip netns exec`, and `cat` for the namespace's /proc/net. */
export const NETNS_PROGRAMS = ["ip", "cat"] as const;
/** A program {@linkcode runTool} may start. */
export type ToolProgram =
  | typeof TOOL_PROGRAMS[number]
  | typeof NETNS_PROGRAMS[number];

/** What a tool run produced. */
export interface ToolResult {
  /** The program started (`ip` when run in a namespace). */
  command: string;
  /** Its arguments. */
  args: string[];
  /** Exit code; null when the tool never ran or was killed by a signal. */
  code: number | null;
  /** True when the tool ran and exited with code 0. */
  success: boolean;
  /** Standard output as text. */
  stdout: string;
  /** Standard error as text. */
  stderr: string;
  /** True when the tool was killed because it ran past the time limit. */
  timedOut: boolean;
  /** The time limit that applied, in milliseconds. */
  timeoutMs: number;
  /** Why the tool could not be started (e.g. not found in PATH), or null when it ran. */
  error: string | null;
}

/** Runs one tool with an argument array and a time limit; never throws for a missing or hanging tool. */
export async function runTool(
  command: ToolProgram,
  args: string[],
  options: FirewallBackendOptions & { stdin?: string } = {},
): Promise<ToolResult> {
  const netns = options.netns ?? null;
  if (netns !== null && !NETNS_NAME_PATTERN.test(netns)) {
    throw new FirewallError(
      `firewall: invalid network namespace name ${JSON.stringify(netns)}: ` +
        "use 1-64 characters from A-Z a-z 0-9 _ . - (not starting with -)",
    );
  }
  const line = netns === null
    ? [command, ...args]
    : ["ip", "netns", "exec", netns, command, ...args];
  if (log.isLogEnabled("debug")) {
    const script = options.stdin === undefined
      ? ""
      : ` <<< ${JSON.stringify(options.stdin.trimEnd())}`;
    log.debug(`firewall: running ${line.join(" ")}${script}`);
  }
  const result: ToolResult = {
    command: line[0],
    args: line.slice(1),
    code: null,
    success: false,
    stdout: "",
    stderr: "",
    timedOut: false,
    timeoutMs: options.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS,
    error: null,
  };
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(result.command, {
      args: result.args,
      env: options.env,
      stdin: options.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      // Its own process group: a timeout kills the helpers it started too.
      detached: true,
    }).spawn();
  } catch (err) {
    const path = options.env?.PATH ?? Deno.env.get("PATH") ?? "";
    result.error = err instanceof Deno.errors.NotFound
      ? `command not found: ${result.command} (searched PATH=${path})`
      : `could not start ${result.command}: ${(err as Error).message}`;
    return result;
  }
  const timer = setTimeout(() => {
    result.timedOut = true;
    try {
      Deno.kill(-child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }, result.timeoutMs);
  try {
    if (options.stdin !== undefined) {
      const writer = child.stdin.getWriter();
      // A tool that exits without reading all input: its exit status tells why.
      writer.write(new TextEncoder().encode(options.stdin))
        .then(() => writer.close()).catch(() => {});
    }
    const output = await child.output();
    const decoder = new TextDecoder();
    result.stdout = decoder.decode(output.stdout);
    result.stderr = decoder.decode(output.stderr);
    result.code = output.signal === null ? output.code : null;
    result.success = output.success && !result.timedOut;
  } finally {
    clearTimeout(timer);
  }
  return result;
}

/** Says in one line why a tool run failed: it could not start, timed out, or exited non-zero (with its stderr). */
export function describeToolFailure(result: ToolResult): string {
  const commandLine = [result.command, ...result.args].join(" ");
  if (result.error !== null) {
    return `${commandLine} could not run: ${result.error}`;
  }
  if (result.timedOut) {
    return `${commandLine} did not finish within ${result.timeoutMs} ms and was killed`;
  }
  const code = result.code === null
    ? "killed by a signal"
    : `exit ${result.code}`;
  // One line: no blank lines, no caret markers under the failing statement.
  let detail = result.stderr.split("\n").map((line) => line.trim())
    .filter((line) => line !== "" && !/^[\^~ ]+$/.test(line)).join(" | ");
  if (detail.length > MAX_ERROR_STDERR_CHARS) {
    detail = detail.slice(0, MAX_ERROR_STDERR_CHARS) + "...";
  }
  return `${commandLine} failed (${code})` + (detail ? `: ${detail}` : "");
}

/** Builds the FirewallError for a failed tool run, naming what openme was doing and what to check. */
export function firewallErrorFromResult(
  result: ToolResult,
  action: string,
): FirewallError {
  // In a namespace the tool follows `ip netns exec NETNS`.
  const tool = result.command === "ip" ? result.args[3] : result.command;
  const pkg = tool === "nft" ? "nftables" : "iptables";
  const failure = describeToolFailure(result);
  return new FirewallError(
    `firewall: ${action}: ${failure}; is ${pkg} installed and are you root (CAP_NET_ADMIN)?`,
  );
}

/** Runs async operations one at a time in arrival order, with a bound on how many may wait. */
export class OperationQueue {
  readonly #name: string;
  readonly #limit: number;
  #tail: Promise<void> = Promise.resolve();
  #pending = 0;

  /** Creates an empty queue; `name` (e.g. "nft") appears in the queue-full error. */
  constructor(name: string, limit: number = DEFAULT_MAX_QUEUED_OPERATIONS) {
    this.#name = name;
    this.#limit = limit;
  }

  /** Runs the task after every earlier one settled; rejects with FirewallError when the queue is full. */
  run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#pending >= this.#limit) {
      return Promise.reject(
        new FirewallError(
          `firewall: ${this.#name} operation queue is full (${this.#limit} operations waiting); ` +
            "the firewall tool is too slow or hanging — check the system load and the tool itself",
        ),
      );
    }
    this.#pending++;
    const result = this.#tail.then(task).finally(() => this.#pending--);
    this.#tail = result.then(() => undefined, () => undefined);
    return result;
  }
}
