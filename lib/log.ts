/**
 * Levelled logging to standard error, one line per event, for journald; a
 * burst of lines in `serve` is written together.
 *
 * @module
 */

/** Log levels, in increasing severity. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Every log level, most verbose first. */
export const LOG_LEVELS: readonly LogLevel[] = [
  "debug",
  "info",
  "warn",
  "error",
];

/** Longest time the default sink holds a line back when batching. */
export const LOG_FLUSH_DELAY_MS = 100;

/** Lines written one by one within LOG_FLUSH_DELAY_MS before batching holds any. */
export const LOG_BURST_LINES = 5;

/** Characters held before they are written without waiting. */
const LOG_FLUSH_BYTES = 16_384;

let currentRank = LOG_LEVELS.indexOf("info");
let sink: (line: string) => void = defaultSink;
const encoder = new TextEncoder();
let batching = false;
/** Lines (each ending in a newline) held back by the default sink. */
let held = "";
/** The timer that ends the current burst window; null outside one. */
let flushTimer: ReturnType<typeof setTimeout> | null = null;
/** Lines written one by one in the current window. */
let windowLines = 0;

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

/** Writes the lines the default sink holds now. */
export function flushLog(): void {
  if (flushTimer !== null) {
    clearTimeout(flushTimer);
    flushTimer = null;
  }
  windowLines = 0;
  if (held === "") return;
  const text = held;
  held = "";
  writeStderr(text);
}

/** Lets the default sink hold lines in bursts, written at the latest when the process exits. */
export function enableLogBatching(): void {
  if (batching) return;
  batching = true;
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
      flushTimer = setTimeout(flushLog, LOG_FLUSH_DELAY_MS);
      // Never keeps the process alive; unload writes what is held.
      Deno.unrefTimer(flushTimer);
    }
    return;
  }
  held += `${line}\n`;
  if (held.length >= LOG_FLUSH_BYTES) {
    writeStderr(held);
    held = "";
  }
}

/** Whether the text names a log level. */
export function isLogLevel(text: string): text is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(text);
}

/** Sets the lowest level that is written. */
export function setLogLevel(level: LogLevel): void {
  currentRank = LOG_LEVELS.indexOf(level);
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
  return LOG_LEVELS.indexOf(level) >= currentRank;
}

/** Writes one log line at the given level. */
export function log(level: LogLevel, message: string): void {
  if (!isLogEnabled(level)) return;
  sink(`${level.toUpperCase().padEnd(6)}${message}`); // "INFO  message"
  // Warnings and errors are not held back, nor the lines before them.
  if ((level === "warn" || level === "error") && held !== "") flushLog();
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
