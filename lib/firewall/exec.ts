/**
 * Runs firewall tools (`nft`, `iptables`, `ip6tables`, `ip`) as subprocesses
 * with argument arrays, never through a shell, with a time limit, and
 * serialises each backend's operations.
 *
 * `runTool` never throws for a process-level problem: a missing binary, a
 * refused permission or a timeout come back in the result (`error`,
 * `timedOut`), and the backends turn a failed result into a FirewallError
 * that says which tool, which arguments and what to check.
 *
 * @module
 */

import * as log from "../log.ts";
import { FirewallError } from "./backend.ts";

/** Default time limit for one tool run, in milliseconds. */
export const DEFAULT_TOOL_TIMEOUT_MS = 5000;
/** Most bytes kept from each of stdout and stderr; the rest is read and discarded. */
export const MAX_TOOL_OUTPUT_BYTES = 16 * 1024 * 1024;
/** How long to wait for the output pipes to close after the tool exited or was killed. */
export const OUTPUT_DRAIN_GRACE_MS = 1000;
/** Default bound on operations waiting in an OperationQueue. */
export const DEFAULT_MAX_QUEUED_OPERATIONS = 1024;

/** Options for {@linkcode runTool}. */
export interface RunToolOptions {
  /** Text written to the tool's standard input (which is closed afterwards); no stdin when absent. */
  stdin?: string;
  /** Time limit in milliseconds (default 5000); the tool's process group gets SIGKILL after it. */
  timeoutMs?: number;
  /** Extra environment variables; a PATH here is also used to find the command. */
  env?: Record<string, string>;
}

/** What a tool run produced. */
export interface ToolResult {
  /** The command as given (resolved through PATH). */
  command: string;
  /** The arguments as given. */
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

interface OutputCollector {
  done: Promise<Uint8Array>;
  cancel(): Promise<void>;
}

function collectOutput(stream: ReadableStream<Uint8Array>): OutputCollector {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let kept = 0;
  async function readAll(): Promise<Uint8Array> {
    while (true) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch {
        break;
      }
      if (chunk.done) break;
      const room = MAX_TOOL_OUTPUT_BYTES - kept;
      if (room > 0) {
        const part = chunk.value.length <= room
          ? chunk.value
          : chunk.value.subarray(0, room);
        chunks.push(part);
        kept += part.length;
      }
    }
    const out = new Uint8Array(kept);
    let offset = 0;
    for (const part of chunks) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  }
  return {
    done: readAll(),
    cancel: async () => {
      try {
        await reader.cancel();
      } catch {
        // Already closed.
      }
    },
  };
}

function describeSpawnError(
  command: string,
  err: unknown,
  env?: Record<string, string>,
): string {
  if (err instanceof Deno.errors.NotFound) {
    const path = env?.PATH ?? Deno.env.get("PATH") ?? "";
    return `command not found: ${command} (searched PATH=${path})`;
  }
  if (err instanceof Deno.errors.PermissionDenied) {
    return `permission denied starting ${command}`;
  }
  if (err instanceof Deno.errors.NotCapable) {
    return `Deno lacks permission to run ${command} (start openme with --allow-run)`;
  }
  return `could not start ${command}: ${
    err instanceof Error ? err.message : String(err)
  }`;
}

function killProcessGroup(child: Deno.ChildProcess): void {
  // The child leads its own process group (detached), so helpers it started
  // (e.g. a shell script's `sleep`) die with it and cannot hold the pipes open.
  try {
    Deno.kill(-child.pid, "SIGKILL");
    return;
  } catch {
    // Fall through to killing the child alone.
  }
  try {
    child.kill("SIGKILL");
  } catch {
    // Already gone.
  }
}

async function writeStdin(
  child: Deno.ChildProcess,
  text: string,
): Promise<void> {
  const writer = child.stdin.getWriter();
  try {
    await writer.write(new TextEncoder().encode(text));
    await writer.close();
  } catch {
    // The tool exited without reading all input; its exit status tells why.
    try {
      await writer.abort();
    } catch {
      // Already closed.
    }
  }
}

function delay(ms: number): { promise: Promise<void>; cancel(): void } {
  let id: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<void>((resolve) => {
    id = setTimeout(resolve, ms);
  });
  return { promise, cancel: () => clearTimeout(id) };
}

/** Runs one tool with an argument array and a time limit; never throws for a missing or hanging tool. */
export async function runTool(
  command: string,
  args: string[],
  options: RunToolOptions = {},
): Promise<ToolResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS;
  const base = { command, args: [...args], timeoutMs };
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(command, {
      args,
      env: options.env,
      stdin: options.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      detached: true,
    }).spawn();
  } catch (err) {
    return {
      ...base,
      code: null,
      success: false,
      stdout: "",
      stderr: "",
      timedOut: false,
      error: describeSpawnError(command, err, options.env),
    };
  }

  const stdout = collectOutput(child.stdout);
  const stderr = collectOutput(child.stderr);
  const stdinDone = options.stdin === undefined
    ? Promise.resolve()
    : writeStdin(child, options.stdin);

  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killProcessGroup(child);
  }, timeoutMs);
  let status: Deno.CommandStatus;
  try {
    status = await child.status;
  } finally {
    clearTimeout(timer);
  }
  await stdinDone;

  // Normally the pipes close with the process; bound the wait in case a
  // grandchild outside the process group still holds them.
  const grace = delay(OUTPUT_DRAIN_GRACE_MS);
  const drained = await Promise.race([
    Promise.all([stdout.done, stderr.done]).then(() => true),
    grace.promise.then(() => false),
  ]);
  grace.cancel();
  if (!drained) {
    await stdout.cancel();
    await stderr.cancel();
  }
  const decoder = new TextDecoder();
  const outText = decoder.decode(await stdout.done);
  const errText = decoder.decode(await stderr.done);
  return {
    ...base,
    code: status.signal === null ? status.code : null,
    success: status.success && !timedOut,
    stdout: outText,
    stderr: errText,
    timedOut,
    error: null,
  };
}

/** Options for {@linkcode netnsCommandLine}. */
export interface NetnsCommandLineOptions {
  /** Network namespace the tool runs in, or null to run it directly. Must already be validated. */
  netns: string | null;
}

/** A command and its arguments, ready for {@linkcode runTool}. */
export interface CommandLine {
  /** The program to start. */
  command: string;
  /** Its arguments. */
  args: string[];
}

/** Returns the command line that runs a tool, as `ip netns exec NETNS TOOL ...` when a namespace is given. */
export function netnsCommandLine(
  tool: string,
  args: string[],
  options: NetnsCommandLineOptions,
): CommandLine {
  if (options.netns === null) return { command: tool, args };
  return {
    command: "ip",
    args: ["netns", "exec", options.netns, tool, ...args],
  };
}

/** Options for {@linkcode runFirewallTool}. */
export interface RunFirewallToolOptions {
  /** Network namespace the tool runs in, or null to run it directly. Must already be validated. */
  netns: string | null;
  /** Text written to the tool's standard input; no stdin when absent. */
  stdin?: string;
  /** Time limit in milliseconds (default 5000). */
  timeoutMs?: number;
  /** Extra environment variables for the tool. */
  env?: Record<string, string>;
}

/** Runs a firewall tool, in a network namespace when one is given, and logs the command line at debug level. */
export function runFirewallTool(
  tool: string,
  args: string[],
  options: RunFirewallToolOptions,
): Promise<ToolResult> {
  const line = netnsCommandLine(tool, args, { netns: options.netns });
  if (log.isLogEnabled("debug")) {
    const script = options.stdin === undefined
      ? ""
      : ` <<< ${JSON.stringify(options.stdin.trimEnd())}`;
    log.debug(
      `firewall: running ${[line.command, ...line.args].join(" ")}${script}`,
    );
  }
  return runTool(line.command, line.args, {
    stdin: options.stdin,
    timeoutMs: options.timeoutMs,
    env: options.env,
  });
}

/** Options for {@linkcode OperationQueue}. */
export interface OperationQueueOptions {
  /** Name used in the queue-full error, e.g. "nft". */
  name: string;
  /** Most operations that may be running or waiting (default 1024). */
  limit?: number;
}

/** Runs async operations one at a time in arrival order, with a bound on how many may wait. */
export class OperationQueue {
  /** Name used in the queue-full error. */
  readonly name: string;
  /** Most operations that may be running or waiting. */
  readonly limit: number;
  #tail: Promise<void> = Promise.resolve();
  #pending = 0;

  /** Creates an empty queue. */
  constructor(options: OperationQueueOptions) {
    this.name = options.name;
    this.limit = options.limit ?? DEFAULT_MAX_QUEUED_OPERATIONS;
  }

  /** Number of operations running or waiting. */
  get pending(): number {
    return this.#pending;
  }

  /** Runs the task after every earlier one settled; rejects with FirewallError when the queue is full. */
  run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#pending >= this.limit) {
      return Promise.reject(
        new FirewallError(
          `firewall: ${this.name} operation queue is full (${this.limit} operations waiting); ` +
            "the firewall tool is too slow or hanging — check the system load and the tool itself",
          { tool: this.name, args: [] },
        ),
      );
    }
    this.#pending++;
    const result = this.#tail.then(() => task()).finally(() => {
      this.#pending--;
    });
    this.#tail = result.then(() => undefined, () => undefined);
    return result;
  }
}
