/**
 * Levelled logging to standard error, one line per event, for journald.
 *
 * The default sink writes straight to standard error, one synchronous write
 * per line. A long-running command that handles its own termination signals
 * (`serve`) may call {@linkcode enableLogBatching}: then, once
 * {@linkcode LOG_BURST_LINES} lines came within {@linkcode LOG_FLUSH_DELAY_MS},
 * further lines in that time are collected and written together when it is
 * up (or at once when they reach {@linkcode LOG_FLUSH_BYTES}), so a server
 * logging every knock at line rate makes one write per batch instead of one
 * per line. Warnings and errors are never held back: they write whatever is
 * collected, then themselves. What is collected is also written by
 * {@linkcode flushLog} (the CLI calls it before printing anything itself),
 * when the process exits (the `unload` event: the end of the program,
 * `Deno.exit`, a signal handler that exits) and on an uncaught error. Only
 * a process killed by a signal it does not handle (SIGKILL, or a signal
 * before its owner installed a handler) loses held lines; commands that do
 * not opt in hold nothing.
 *
 * @module
 */

/** Log levels, in increasing severity. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** All log levels, in increasing severity. */
export const LOG_LEVELS: readonly LogLevel[] = [
  "debug",
  "info",
  "warn",
  "error",
];

/** Longest time the default sink holds a line back (it then writes all it holds at once). */
export const LOG_FLUSH_DELAY_MS = 100;

/** Lines the default sink writes one by one within LOG_FLUSH_DELAY_MS before it starts collecting. */
export const LOG_BURST_LINES = 5;

/** Characters the default sink collects before it writes them without waiting. */
export const LOG_FLUSH_BYTES = 16_384;

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
/** Each level's line prefix, padded to one width. */
const PREFIX: Record<LogLevel, string> = {
  debug: "DEBUG ",
  info: "INFO  ",
  warn: "WARN  ",
  error: "ERROR ",
};

let currentRank = RANK.info;
let sink: (line: string) => void = defaultSink;
const encoder = new TextEncoder();
/** Lines (each ending in a newline) held back by the default sink. */
let held = "";
/** Set while a burst window is open: the timer that ends it and writes what is held. */
let flushTimer: ReturnType<typeof setTimeout> | null = null;
/** Lines written one by one in the current window. */
let windowLines = 0;
/** Whether the default sink may hold lines back (see enableLogBatching); set once, with the exit hooks. */
let batching = false;

/** Writes text to standard error, all of it, synchronously; write errors are ignored (nowhere to report them). */
function writeStderr(text: string): void {
  let bytes = encoder.encode(text);
  try {
    while (bytes.length > 0) {
      const written = Deno.stderr.writeSync(bytes);
      if (written <= 0) return;
      bytes = bytes.subarray(written);
    }
  } catch {
    // Standard error closed: the line cannot go anywhere.
  }
}

/** Writes the lines the default sink holds now (it holds them at most LOG_FLUSH_DELAY_MS). */
export function flushLog(): void {
  if (flushTimer !== null) {
    clearTimeout(flushTimer);
    flushTimer = null;
  }
  windowLines = 0;
  writeHeld();
}

/** Writes the lines held back, if any. */
function writeHeld(): void {
  if (held === "") return;
  const text = held;
  held = "";
  writeStderr(text);
}

/**
 * Lets the default sink collect lines in bursts (at most
 * {@linkcode LOG_FLUSH_DELAY_MS}); for a long-running command that has
 * installed its own handlers for termination signals, so that held lines
 * are written at exit.
 */
export function enableLogBatching(): void {
  if (batching) return;
  batching = true;
  // Held lines are written when the process exits or dies of an uncaught
  // error; listeners that do not call preventDefault change nothing else.
  globalThis.addEventListener("unload", flushLog);
  globalThis.addEventListener("error", flushLog);
  globalThis.addEventListener("unhandledrejection", flushLog);
}

function defaultSink(line: string): void {
  if (!batching) {
    writeStderr(`${line}\n`);
    return;
  }
  if (windowLines < LOG_BURST_LINES) {
    writeStderr(`${line}\n`);
    windowLines++;
    if (flushTimer === null) {
      // The window ends by writing what was held; the next line is written at once.
      const timer = setTimeout(flushLog, LOG_FLUSH_DELAY_MS);
      // The timer never keeps the process alive; unload writes what is held.
      Deno.unrefTimer(timer);
      flushTimer = timer;
    }
    return;
  }
  held += `${line}\n`;
  if (held.length >= LOG_FLUSH_BYTES) writeHeld();
}

/** Whether the text names a log level. */
export function isLogLevel(text: string): text is LogLevel {
  return text === "debug" || text === "info" || text === "warn" ||
    text === "error";
}

/** Sets the lowest level that is written. */
export function setLogLevel(level: LogLevel): void {
  currentRank = RANK[level];
}

/** Returns the lowest level that is written. */
export function getLogLevel(): LogLevel {
  return LOG_LEVELS[currentRank];
}

/** Replaces where log lines go (tests capture them); returns the previous sink. */
export function setLogSink(
  next: (line: string) => void,
): (line: string) => void {
  const previous = sink;
  if (previous === defaultSink) flushLog();
  sink = next;
  return previous;
}

/** Whether a message at this level would be written. */
export function isLogEnabled(level: LogLevel): boolean {
  return RANK[level] >= currentRank;
}

/** Writes one log line at the given level. */
export function log(level: LogLevel, message: string): void {
  const rank = RANK[level];
  if (rank < currentRank) return;
  sink(PREFIX[level] + message);
  // Warnings and errors are not held back (nor are the lines before them).
  if (rank >= RANK.warn && held !== "") flushLog();
}

/** Writes a debug line. */
export function debug(message: string): void {
  log("debug", message);
}

/** Writes an info line. */
export function info(message: string): void {
  log("info", message);
}

/** Writes a warning line. */
export function warn(message: string): void {
  log("warn", message);
}

/** Writes an error line. */
export function error(message: string): void {
  log("error", message);
}
