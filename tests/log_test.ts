import assert from "node:assert/strict";
import {
  debug,
  error,
  info,
  isLogEnabled,
  isLogLevel,
  LOG_BURST_LINES,
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

const LOG_MODULE = new URL("../lib/log.ts", import.meta.url).href;
/** The project's config: the CLI's imports ("yaml", ...) resolve through it. */
const DENO_JSON = new URL("../deno.json", import.meta.url).pathname;

/** Runs a script that imports lib/log.ts as `log`; returns its exit code and standard error. */
async function runLogScript(
  body: string,
  signal?: Deno.Signal,
): Promise<{ code: number; stderr: string }> {
  const dir = await Deno.makeTempDir({ prefix: "openme-log-test-" });
  try {
    const path = `${dir}/script.ts`;
    await Deno.writeTextFile(
      path,
      `import * as log from ${JSON.stringify(LOG_MODULE)};\n${body}\n`,
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        "--no-prompt",
        "--quiet",
        "--config",
        DENO_JSON,
        path,
      ],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    if (signal !== undefined) {
      // The script says "ready" on stdout once its lines are logged.
      const reader = child.stdout.getReader();
      let seen = "";
      while (!seen.includes("ready")) {
        const chunk = await reader.read();
        if (chunk.done) break;
        seen += new TextDecoder().decode(chunk.value);
      }
      reader.releaseLock();
      child.kill(signal);
    }
    const out = await child.output();
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function numberedLines(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `INFO  line ${i}`);
}

const LOG_MANY = `for (let i = 0; i < 200; i++) log.info(\`line \${i}\`);`;
/** What `serve` does once its signal handlers are in place. */
const BATCHING = "log.enableLogBatching();";
const CLI_MODULE = new URL("../lib/cli/mod.ts", import.meta.url).href;

Deno.test("without enableLogBatching every line is written at once, so a signal without a handler loses none", async () => {
  const killed = await runLogScript(
    `${LOG_MANY}
     console.log("ready");
     setTimeout(() => {}, 60_000);`,
    "SIGTERM",
  );
  assert.notEqual(killed.code, 0);
  assert.deepEqual(killed.stderr.trimEnd().split("\n"), numberedLines(200));
});

Deno.test("the CLI's own output comes after the log lines logged before it (held lines are written first)", async () => {
  const result = await runLogScript(
    `import { CONSOLE_IO } from ${JSON.stringify(CLI_MODULE)};
     ${BATCHING}
     ${LOG_MANY}
     CONSOLE_IO.err("openme: boom");
     Deno.exit(1);`,
  );
  assert.equal(result.code, 1);
  assert.deepEqual(result.stderr.trimEnd().split("\n"), [
    ...numberedLines(200),
    "openme: boom",
  ]);
});

Deno.test("with batching, the default sink writes every line, in order, when the program ends, exits, is stopped by SIGTERM or dies of an uncaught error", async () => {
  const ended = await runLogScript(`${BATCHING}\n${LOG_MANY}`);
  assert.equal(ended.code, 0);
  assert.deepEqual(ended.stderr.trimEnd().split("\n"), numberedLines(200));

  const exited = await runLogScript(`${BATCHING}\n${LOG_MANY}\nDeno.exit(3);`);
  assert.equal(exited.code, 3);
  assert.deepEqual(exited.stderr.trimEnd().split("\n"), numberedLines(200));

  const stopped = await runLogScript(
    `Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
     ${BATCHING}
     ${LOG_MANY}
     console.log("ready");
     setTimeout(() => {}, 60_000);`,
    "SIGTERM",
  );
  assert.equal(stopped.code, 0);
  assert.deepEqual(stopped.stderr.trimEnd().split("\n"), numberedLines(200));

  const died = await runLogScript(
    `${BATCHING}\n${LOG_MANY}\nsetTimeout(() => { throw new Error("boom"); }, 0);`,
  );
  assert.equal(died.code, 1);
  const lines = died.stderr.trimEnd().split("\n");
  assert.deepEqual(lines.slice(0, 200), numberedLines(200));
  assert.ok(died.stderr.includes("boom"), died.stderr);
});

Deno.test("with batching, the default sink writes a few lines at once, holds a burst at most LOG_FLUSH_DELAY_MS, and never holds back a warning", async () => {
  // A few lines: each is out before anything printed after it.
  const few = await runLogScript(
    `${BATCHING} log.info("one"); log.info("two"); console.error("direct");`,
  );
  assert.deepEqual(few.stderr.trimEnd().split("\n"), [
    "INFO  one",
    "INFO  two",
    "direct",
  ]);
  // A burst is written within the delay, while the program still runs.
  const burst = await runLogScript(
    `${BATCHING}
     ${LOG_MANY}
     setTimeout(() => console.error("later"), 2 * log.LOG_FLUSH_DELAY_MS);
     setTimeout(() => {}, 4 * log.LOG_FLUSH_DELAY_MS);`,
  );
  assert.deepEqual(burst.stderr.trimEnd().split("\n"), [
    ...numberedLines(200),
    "later",
  ]);
  // A warning writes what is held, then itself, at once.
  const warned = await runLogScript(
    `${BATCHING}\n${LOG_MANY}\nlog.warn("careful");\nconsole.error("direct");`,
  );
  assert.deepEqual(warned.stderr.trimEnd().split("\n"), [
    ...numberedLines(200),
    "WARN  careful",
    "direct",
  ]);
  // Replacing the sink writes what the default sink holds first.
  const replaced = await runLogScript(
    `${BATCHING}
     ${LOG_MANY}
     log.setLogSink((line) => console.error(\`captured \${line}\`));
     log.info("after");`,
  );
  assert.deepEqual(replaced.stderr.trimEnd().split("\n"), [
    ...numberedLines(200),
    "captured INFO  after",
  ]);
});

Deno.test("flushLog writes held lines at once", async () => {
  const flushed = await runLogScript(
    `${BATCHING}\n${LOG_MANY}\nlog.flushLog();\nconsole.error("direct");\nDeno.exit(0);`,
  );
  assert.deepEqual(flushed.stderr.trimEnd().split("\n"), [
    ...numberedLines(200),
    "direct",
  ]);
});

Deno.test("with batching, lines after the first LOG_BURST_LINES of a burst are held, then written within LOG_FLUSH_DELAY_MS", async () => {
  const result = await runLogScript(
    `${BATCHING}
     for (let i = 0; i < 10; i++) log.info(\`line \${i}\`);
     console.error("direct");
     setTimeout(() => console.error("later"), 2 * log.LOG_FLUSH_DELAY_MS);
     setTimeout(() => {}, 3 * log.LOG_FLUSH_DELAY_MS);`,
  );
  assert.deepEqual(result.stderr.trimEnd().split("\n"), [
    ...numberedLines(10).slice(0, LOG_BURST_LINES),
    "direct",
    ...numberedLines(10).slice(LOG_BURST_LINES),
    "later",
  ]);
});
