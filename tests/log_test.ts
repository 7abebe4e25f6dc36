import assert from "node:assert/strict";
import {
  debug,
  error,
  info,
  isLogEnabled,
  isLogLevel,
  setLogLevel,
  setLogSink,
  warn,
} from "../lib/log.ts";

function capture(fn: () => void): string[] {
  const lines: string[] = [];
  const previous = setLogSink((line) => lines.push(line));
  try {
    fn();
  } finally {
    setLogSink(previous);
    setLogLevel("info");
  }
  return lines;
}

Deno.test("log level info hides debug lines and shows info, warn and error", () => {
  const lines = capture(() => {
    setLogLevel("info");
    debug("d");
    info("i");
    warn("w");
    error("e");
  });
  assert.deepEqual(lines, ["INFO  i", "WARN  w", "ERROR e"]);
});

Deno.test("log level warn hides info lines", () => {
  const lines = capture(() => {
    setLogLevel("warn");
    info("opened");
    warn("careful");
  });
  assert.deepEqual(lines, ["WARN  careful"]);
});

Deno.test("log level debug shows debug lines and isLogEnabled agrees", () => {
  const lines = capture(() => {
    setLogLevel("debug");
    assert.equal(isLogEnabled("debug"), true);
    debug("dropped");
  });
  assert.deepEqual(lines, ["DEBUG dropped"]);
  setLogLevel("error");
  assert.equal(isLogEnabled("warn"), false);
  setLogLevel("info");
});

Deno.test("isLogLevel accepts the four levels only", () => {
  for (const level of ["debug", "info", "warn", "error"]) {
    assert.equal(isLogLevel(level), true);
  }
  for (const level of ["", "INFO", "warning", "trace"]) {
    assert.equal(isLogLevel(level), false);
  }
});
