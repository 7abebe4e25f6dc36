/**
 * Levelled logging to standard error, one line per event, for journald.
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

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

let currentLevel: LogLevel = "info";
let sink: (line: string) => void = defaultSink;

function defaultSink(line: string): void {
  console.error(line);
}

/** Whether the text names a log level. */
export function isLogLevel(text: string): text is LogLevel {
  return text === "debug" || text === "info" || text === "warn" ||
    text === "error";
}

/** Sets the lowest level that is written. */
export function setLogLevel(level: LogLevel): void {
  currentLevel = level;
}

/** Returns the lowest level that is written. */
export function getLogLevel(): LogLevel {
  return currentLevel;
}

/** Replaces where log lines go (tests capture them); returns the previous sink. */
export function setLogSink(
  next: (line: string) => void,
): (line: string) => void {
  const previous = sink;
  sink = next;
  return previous;
}

/** Whether a message at this level would be written. */
export function isLogEnabled(level: LogLevel): boolean {
  return RANK[level] >= RANK[currentLevel];
}

/** Writes one log line at the given level. */
export function log(level: LogLevel, message: string): void {
  if (!isLogEnabled(level)) return;
  sink(`${level.toUpperCase().padEnd(5)} ${message}`);
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
