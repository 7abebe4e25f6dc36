import assert from "node:assert/strict";
import { FirewallError } from "../../lib/firewall/backend.ts";
import {
  describeToolFailure,
  firewallErrorFromResult,
  OperationQueue,
  runTool,
  type ToolProgram,
  type ToolResult,
} from "../../lib/firewall/exec.ts";
import { getLogLevel, setLogLevel, setLogSink } from "../../lib/log.ts";

/** Writes executable scripts into a fresh temp dir and returns the dir. */
async function makeToolDir(scripts: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "openme-exec-test-" });
  for (const [name, body] of Object.entries(scripts)) {
    const path = `${dir}/${name}`;
    await Deno.writeTextFile(path, `#!/bin/sh\n${body}\n`);
    await Deno.chmod(path, 0o755);
  }
  return dir;
}

function pathWith(dir: string): Record<string, string> {
  return { PATH: `${dir}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}` };
}

function processExists(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // A zombie waiting for its parent to reap it no longer runs.
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

Deno.test("runTool captures stdout, stderr and the exit code of a tool found through PATH", async () => {
  const dir = await makeToolDir({
    "fake-nft": 'echo "out:$*"; echo "err line" >&2; exit 3',
  });
  try {
    const result = await runTool(
      "fake-nft" as ToolProgram,
      ["list", "ruleset"],
      {
        env: pathWith(dir),
      },
    );
    assert.equal(result.code, 3);
    assert.equal(result.success, false);
    assert.equal(result.stdout, "out:list ruleset\n");
    assert.equal(result.stderr, "err line\n");
    assert.equal(result.timedOut, false);
    assert.equal(result.error, null);
    assert.deepEqual(result.args, ["list", "ruleset"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runTool passes arguments as an array without shell interpretation", async () => {
  const dir = await makeToolDir({
    "fake-args": 'for a in "$@"; do echo "[$a]"; done',
  });
  try {
    const result = await runTool("fake-args" as ToolProgram, [
      "a b",
      "$(id)",
      '"q"',
      ";ls",
    ], {
      env: pathWith(dir),
    });
    assert.equal(result.success, true);
    assert.equal(result.stdout, '[a b]\n[$(id)]\n["q"]\n[;ls]\n');
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runTool writes stdin to the tool and closes it", async () => {
  const dir = await makeToolDir({ "fake-cat": "cat; echo done" });
  try {
    const script = "insert rule inet filter openme tcp dport 22 accept\n";
    const result = await runTool("fake-cat" as ToolProgram, [], {
      stdin: script,
      env: pathWith(dir),
    });
    assert.equal(result.success, true);
    assert.equal(result.stdout, script + "done\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runTool kills a hanging tool and its children at the timeout and reports timedOut", async () => {
  const dir = await makeToolDir({
    // The shell starts sleep as a child, which would hold the pipes open if
    // only the shell were killed.
    "nft": 'echo started; sleep 30 & echo $! > "$PID_FILE"; wait',
  });
  const pidFile = `${dir}/sleep.pid`;
  try {
    const timeoutMs = 500;
    const result = await runTool("nft", ["-f", "-"], {
      timeoutMs,
      env: { ...pathWith(dir), PID_FILE: pidFile },
    });
    assert.equal(result.timedOut, true);
    assert.equal(result.success, false);
    assert.equal(result.code, null);
    assert.equal(result.timeoutMs, timeoutMs);
    assert.equal(result.stdout, "started\n");
    const sleepPid = Number((await Deno.readTextFile(pidFile)).trim());
    assert.ok(sleepPid > 0);
    let alive = processExists(sleepPid);
    // SIGKILL is immediate; the generous bound only covers a busy machine.
    for (let i = 0; i < 500 && alive; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      alive = processExists(sleepPid);
    }
    assert.equal(
      alive,
      false,
      `the tool's child ${sleepPid} survived the timeout`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runTool reports a missing binary as an error result instead of throwing", async () => {
  const dir = await makeToolDir({});
  try {
    const result = await runTool("openme-no-such-tool" as ToolProgram, ["-j"], {
      env: { PATH: dir },
    });
    assert.equal(result.success, false);
    assert.equal(result.code, null);
    assert.equal(result.timedOut, false);
    assert.ok(result.error !== null);
    assert.match(result.error, /command not found: openme-no-such-tool/);
    assert.ok(result.error.includes(dir), "the error names the PATH searched");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runTool reports success for exit code 0", async () => {
  const dir = await makeToolDir({ "fake-ok": "exit 0" });
  try {
    const result = await runTool("fake-ok" as ToolProgram, [], {
      env: pathWith(dir),
    });
    assert.equal(result.success, true);
    assert.equal(result.code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("OperationQueue runs operations one at a time in arrival order", async () => {
  const queue = new OperationQueue("nft");
  const events: string[] = [];
  let running = 0;
  let maxRunning = 0;
  const tasks: Promise<number>[] = [];
  for (let i = 0; i < 5; i++) {
    tasks.push(queue.run(async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      events.push(`start ${i}`);
      await new Promise((resolve) => setTimeout(resolve, 5 * (5 - i)));
      events.push(`end ${i}`);
      running--;
      return i;
    }));
  }
  assert.deepEqual(await Promise.all(tasks), [0, 1, 2, 3, 4]);
  assert.equal(maxRunning, 1);
  const expected: string[] = [];
  for (let i = 0; i < 5; i++) expected.push(`start ${i}`, `end ${i}`);
  assert.deepEqual(events, expected);
});

Deno.test("OperationQueue keeps going after a failed operation", async () => {
  const queue = new OperationQueue("nft");
  const failed = queue.run(() => Promise.reject(new Error("boom")));
  const next = queue.run(() => Promise.resolve("ok"));
  await assert.rejects(failed, /boom/);
  assert.equal(await next, "ok");
});

Deno.test("OperationQueue rejects operations beyond its bound with a FirewallError", async () => {
  const queue = new OperationQueue("iptables", 2);
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const first = queue.run(() => gate);
  const second = queue.run(() => Promise.resolve());
  let ranThird = false;
  const third = queue.run(() => {
    ranThird = true;
    return Promise.resolve();
  });
  await assert.rejects(third, (err: unknown) => {
    assert.ok(err instanceof FirewallError);
    assert.match(
      err.message,
      /iptables operation queue is full \(2 operations waiting\)/,
    );
    return true;
  });
  assert.equal(ranThird, false);
  release();
  await first;
  await second;
  // The queue is empty again: a new operation runs.
  assert.equal(await queue.run(() => Promise.resolve("runs")), "runs");
});

Deno.test("runTool runs the tool with stdin and env and logs the command line at debug level", async () => {
  const dir = await makeToolDir({ "fake-fw": 'echo "args:$*"; cat' });
  const lines: string[] = [];
  const previousSink = setLogSink((line) => lines.push(line));
  const previousLevel = getLogLevel();
  setLogLevel("debug");
  try {
    const result = await runTool("fake-fw" as ToolProgram, ["-f", "-"], {
      netns: null,
      stdin: "flush ruleset\n",
      timeoutMs: 2000,
      env: pathWith(dir),
    });
    assert.equal(result.success, true);
    assert.equal(result.command, "fake-fw");
    assert.equal(result.timeoutMs, 2000);
    assert.equal(result.stdout, "args:-f -\nflush ruleset\n");
    assert.ok(
      lines.some((line) =>
        line.includes('firewall: running fake-fw -f - <<< "flush ruleset"')
      ),
      lines.join("\n"),
    );
  } finally {
    setLogLevel(previousLevel);
    setLogSink(previousSink);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runTool starts ip netns exec when a namespace is given and refuses a namespace name that could be an option", async () => {
  const dir = await makeToolDir({ "ip": 'echo "ip:$*"' });
  try {
    const result = await runTool("nft", ["list", "ruleset"], {
      netns: "om-exec-test",
      env: pathWith(dir),
    });
    assert.equal(result.success, true);
    assert.equal(result.command, "ip");
    assert.deepEqual(result.args, [
      "netns",
      "exec",
      "om-exec-test",
      "nft",
      "list",
      "ruleset",
    ]);
    assert.equal(
      result.stdout,
      "ip:netns exec om-exec-test nft list ruleset\n",
    );
    for (const bad of ["-x", "a b", ""]) {
      await assert.rejects(
        runTool("nft", [], { netns: bad, env: pathWith(dir) }),
        (err: unknown) =>
          err instanceof FirewallError &&
          /invalid network namespace name/.test(err.message),
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function result(overrides: Partial<ToolResult>): ToolResult {
  return {
    command: "nft",
    args: ["-e", "-a", "-f", "-"],
    code: 1,
    success: false,
    stdout: "",
    stderr: "",
    timedOut: false,
    timeoutMs: 5000,
    error: null,
    ...overrides,
  };
}

Deno.test("describeToolFailure puts stderr on one line without caret markers or blank lines, bounded", () => {
  const stderr =
    "/dev/stdin:1:39-40: Error: Could not process rule: No such file or directory\n" +
    "delete rule inet filter openme handle 99\n" +
    "                                      ^^\n\n";
  assert.equal(
    describeToolFailure(result({ stderr })),
    "nft -e -a -f - failed (exit 1): /dev/stdin:1:39-40: Error: Could not process rule: No such file or directory | delete rule inet filter openme handle 99",
  );
  const long = describeToolFailure(result({ stderr: "x".repeat(1000) }));
  assert.ok(long.endsWith("x".repeat(400) + "..."), long);
  assert.equal(
    describeToolFailure(result({ code: null })),
    "nft -e -a -f - failed (killed by a signal)",
  );
});

Deno.test("firewallErrorFromResult names the action, the command line, exit code, stderr and what to check", () => {
  const err = firewallErrorFromResult(
    result({ code: 1, stderr: "Error: Operation not permitted\n" }),
    "opening 22/tcp for 192.0.2.2",
  );
  assert.ok(err instanceof FirewallError);
  assert.equal(
    err.message,
    "firewall: opening 22/tcp for 192.0.2.2: nft -e -a -f - failed (exit 1): Error: Operation not permitted; " +
      "is nftables installed and are you root (CAP_NET_ADMIN)?",
  );
  const inNetns = firewallErrorFromResult(
    result({
      command: "ip",
      args: ["netns", "exec", "ns1", "ip6tables", "-w", "-S", "INPUT"],
    }),
    "listing chain INPUT",
  );
  assert.equal(
    inNetns.message,
    "firewall: listing chain INPUT: ip netns exec ns1 ip6tables -w -S INPUT failed (exit 1); " +
      "is iptables installed and are you root (CAP_NET_ADMIN)?",
  );
});

Deno.test("firewallErrorFromResult explains a timeout and a missing binary", () => {
  const timedOut = firewallErrorFromResult(
    result({ code: null, timedOut: true, timeoutMs: 250 }),
    "listing table inet filter",
  );
  assert.match(
    timedOut.message,
    /^firewall: listing table inet filter: nft -e -a -f - did not finish within 250 ms and was killed; is nftables installed/,
  );
  const missing = firewallErrorFromResult(
    result({ code: null, error: "command not found: nft (searched PATH=/x)" }),
    "listing table inet filter",
  );
  assert.match(missing.message, /could not run: command not found: nft/);
});
