import assert from "node:assert/strict";
import {
  processAlive,
  type RunningServer,
  ServerBed,
  sleep,
  sourceAddresses,
} from "../bench/harness.ts";
import { DEFAULT_TOOL_TIMEOUT_MS } from "../lib/firewall/exec.ts";
import {
  CLIENT_V4,
  CLIENT_V4_ALT,
  findOnPath,
  SERVER_V4,
  testbedUnavailable,
  waitFor,
} from "../scripts/testbed.ts";

// Process-level fault injection against the real CLI (`deno run main.ts
// serve` in a testbed's server namespace, real nft): a firewall tool that is
// missing, fails or hangs; rules deleted behind the server's back; a state
// file that cannot be written; the config deleted or corrupted while
// serving; SIGTERM in the middle of a burst of knocks. The server must keep
// serving and never claim a port is open when it is not.

/**
 * Deadline for anything the server should do soon (log a line, open or close
 * a session, stop): generous, since other tests share the machine; the
 * slowest expected event, the 5 s tool timeout, fits in it ten times.
 */
const EVENT_TIMEOUT_MS = 60_000;

const skip = testbedUnavailable("nft");
if (skip !== null) console.warn(`SKIP fault injection tests: ${skip}`);

/** Where a real tool lives (the fake nft wraps the real one). */
function toolPath(name: string): string {
  const path = findOnPath(name);
  if (path === null) throw new Error(`no ${name} on PATH`);
  return path;
}

/**
 * A directory to put alone in the server's PATH: `ip`, `deno` and a
 * fake `nft` that runs the real one unless a flag file says otherwise:
 * `fail` (exit 1 with a message), `hang` (write its pid to hang.pid and sleep
 * ten minutes); rename `nft` away to make the tool missing.
 */
async function fakeToolDir(parent: string): Promise<string> {
  const dir = `${parent}/fakebin`;
  await Deno.mkdir(dir);
  const realNft = toolPath("nft");
  const sleepBin = toolPath("sleep");
  const script = `#!/bin/bash
dir="\${0%/*}"
if [ -e "$dir/fail" ]; then
  echo "fake nft: injected failure" >&2
  exit 1
fi
if [ -e "$dir/hang" ]; then
  echo $$ > "$dir/hang.pid"
  exec ${sleepBin} 600
fi
exec ${realNft} "$@"
`;
  await Deno.writeTextFile(`${dir}/nft`, script, { mode: 0o755 });
  // The server is started as `ip netns exec NS deno ...` with this PATH.
  await Deno.symlink(toolPath("ip"), `${dir}/ip`);
  await Deno.symlink(toolPath("deno"), `${dir}/deno`);
  return dir;
}

interface StateSession {
  ip: string;
}

async function activeSessions(server: RunningServer): Promise<string[]> {
  const state = JSON.parse(await Deno.readTextFile(server.stateFile));
  return (state.active_sessions as StateSession[]).map((s) => s.ip);
}

/** Output of the server since a mark (an earlier output length). */
function since(server: RunningServer, mark: number): string {
  return server.proc.output().slice(mark);
}

async function waitForLog(
  server: RunningServer,
  mark: number,
  pattern: RegExp,
  what: string,
  timeoutMs = EVENT_TIMEOUT_MS,
): Promise<void> {
  try {
    await waitFor(() => pattern.test(since(server, mark)), {
      timeoutMs,
      what,
    });
  } catch (err) {
    throw new Error(
      `${(err as Error).message}; server output since:\n${since(server, mark)}`,
    );
  }
}

/** Lines at WARN or ERROR level since a mark. */
function problemLines(server: RunningServer, mark: number): string[] {
  return since(server, mark).split("\n").filter((l) =>
    /^(WARN|ERROR)\b/.test(l)
  );
}

async function knockOk(sb: ServerBed, target: string): Promise<void> {
  const result = await sb.knock(target);
  assert.equal(result.code, 0, `openme knock --ip ${target}: ${result.stderr}`);
}

function escaped(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The per-knock rules (comment "openme") for an address in the server namespace. */
async function knockRulesFor(
  sb: ServerBed,
  address: string,
): Promise<string[]> {
  const rules = await sb.bed.serverRules();
  return rules.split("\n").filter((l) =>
    l.includes(`saddr ${address} `) && l.includes('comment "openme"')
  );
}

Deno.test({
  name:
    "a firewall tool that fails, is missing or hangs: the knock is logged as failed, nothing is recorded as open, the hung call is killed at its timeout, and later knocks work once the tool works",
  ignore: skip !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(): Promise<void> {
    const sb = await ServerBed.create({ prefix: "om-fault-tool" });
    try {
      const extra = sourceAddresses(1, 200)[0];
      await sb.addClientAddresses([extra]);
      const fake = await fakeToolDir(sb.bed.dir);
      const server = await sb.startServer({ env: { PATH: fake } });

      const cases: {
        what: string;
        target: string;
        inject: () => Promise<void>;
        repair: () => Promise<void>;
      }[] = [
        {
          what: "nft exits non-zero",
          target: CLIENT_V4,
          inject: () => Deno.writeTextFile(`${fake}/fail`, ""),
          repair: () => Deno.remove(`${fake}/fail`),
        },
        {
          what: "nft is missing",
          target: CLIENT_V4_ALT,
          inject: () => Deno.rename(`${fake}/nft`, `${fake}/nft.off`),
          repair: () => Deno.rename(`${fake}/nft.off`, `${fake}/nft`),
        },
        {
          what: "nft hangs",
          target: extra,
          inject: () => Deno.writeTextFile(`${fake}/hang`, ""),
          repair: () => Deno.remove(`${fake}/hang`),
        },
      ];
      for (const c of cases) {
        await c.inject();
        const mark = server.proc.output().length;
        await knockOk(sb, c.target);
        await waitForLog(
          server,
          mark,
          new RegExp(`for ${escaped(c.target)} failed: could not open ports`),
          `the failed open to be logged (${c.what})`,
        );
        if (c.what === "nft hangs") {
          // Killed at the tool timeout, not left to sleep its 10 minutes.
          assert.match(
            since(server, mark),
            new RegExp(`did not finish within ${DEFAULT_TOOL_TIMEOUT_MS} ms`),
          );
          const pid = Number(
            (await Deno.readTextFile(`${fake}/hang.pid`)).trim(),
          );
          await waitFor(() => !processAlive(pid), {
            timeoutMs: EVENT_TIMEOUT_MS,
            what: `the hung nft (pid ${pid}) to be killed`,
          });
        }
        assert.ok(
          !(await activeSessions(server)).includes(c.target),
          `${c.what}: a session for ${c.target} is recorded as open`,
        );
        assert.deepEqual(await knockRulesFor(sb, c.target), []);
        assert.equal(
          await sb.bed.tcpOpen(SERVER_V4, 22, { from: c.target }),
          false,
          `${c.what}: port 22 reachable from ${c.target}`,
        );

        await c.repair();
        const markOk = server.proc.output().length;
        await knockOk(sb, c.target);
        await waitForLog(
          server,
          markOk,
          new RegExp(`opened \\S+ for ${escaped(c.target)} `),
          `the knock after the repair to open (${c.what})`,
        );
        await waitFor(
          async () => (await activeSessions(server)).includes(c.target),
          {
            timeoutMs: EVENT_TIMEOUT_MS,
            what: `a session for ${c.target} in the state file`,
          },
        );
        assert.equal(
          await sb.bed.tcpOpen(SERVER_V4, 22, {
            timeoutMs: EVENT_TIMEOUT_MS,
            from: c.target,
          }),
          true,
          `${c.what}: port 22 not reachable from ${c.target} after the repair`,
        );
      }
      assert.equal(await server.proc.stop("SIGTERM", EVENT_TIMEOUT_MS), 0);
    } finally {
      await sb.destroy();
    }
  },
});

Deno.test({
  name:
    "a rule deleted behind the server's back: the session still ends at its deadline, quietly",
  ignore: skip !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(): Promise<void> {
    const sb = await ServerBed.create({
      prefix: "om-fault-rule",
      knockTimeout: "3s",
    });
    try {
      const server = await sb.startServer();
      const mark = server.proc.output().length;
      await knockOk(sb, CLIENT_V4);
      await waitFor(
        async () => (await activeSessions(server)).includes(CLIENT_V4),
        { timeoutMs: EVENT_TIMEOUT_MS, what: "the session to open" },
      );
      // Delete the per-knock rules by handle, as an operator might.
      const listing = await sb.bed.exec(sb.bed.serverNs, [
        "nft",
        "-a",
        "list",
        "chain",
        "inet",
        "filter",
        "openme",
      ]);
      const handles = [
        ...listing.stdout.matchAll(
          /saddr 192\.0\.2\.2 .*comment "openme" # handle (\d+)/g,
        ),
      ].map((m) => m[1]);
      assert.ok(
        handles.length > 0,
        `no per-knock rules in:\n${listing.stdout}`,
      );
      for (const handle of handles) {
        await sb.bed.execOk(sb.bed.serverNs, [
          "nft",
          "delete",
          "rule",
          "inet",
          "filter",
          "openme",
          "handle",
          handle,
        ]);
      }
      await waitForLog(
        server,
        mark,
        /closed \S+ for 192\.0\.2\.2 \(client alice\): timeout/,
        "the session to end at its deadline",
      );
      await waitFor(
        async () => !(await activeSessions(server)).includes(CLIENT_V4),
        {
          timeoutMs: EVENT_TIMEOUT_MS,
          what: "the session to leave the state file",
        },
      );
      assert.deepEqual(problemLines(server, mark), []);
      // And the address can knock again.
      await knockOk(sb, CLIENT_V4);
      await waitFor(
        async () => (await activeSessions(server)).includes(CLIENT_V4),
        { timeoutMs: EVENT_TIMEOUT_MS, what: "the session to open again" },
      );
      assert.equal(await server.proc.stop("SIGTERM", EVENT_TIMEOUT_MS), 0);
    } finally {
      await sb.destroy();
    }
  },
});

Deno.test({
  name:
    "a state file that cannot be written: one warning, and knocks keep opening ports",
  ignore: skip !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(): Promise<void> {
    const sb = await ServerBed.create({ prefix: "om-fault-state" });
    try {
      // Unwritable from the start: the state directory does not exist.
      const missing = `${sb.bed.dir}/no-such-dir/state.json`;
      let server = await sb.startServer({
        stateFile: missing,
        pidFromStateFile: false,
      });
      let mark = 0;
      assert.equal(
        problemLines(server, mark).filter((l) =>
          l.includes("cannot write state file")
        ).length,
        1,
        server.proc.output(),
      );
      mark = server.proc.output().length;
      await knockOk(sb, CLIENT_V4);
      await waitForLog(
        server,
        mark,
        /opened \S+ for 192\.0\.2\.2 /,
        "the knock to open",
      );
      assert.equal(
        await sb.bed.tcpOpen(SERVER_V4, 22, {
          timeoutMs: EVENT_TIMEOUT_MS,
          from: CLIENT_V4,
        }),
        true,
      );
      assert.deepEqual(problemLines(server, mark), []);
      assert.equal(await server.proc.stop("SIGTERM", EVENT_TIMEOUT_MS), 0);

      // Unwritable while serving: the directory is replaced by a file.
      const stateDir = `${sb.bed.dir}/state`;
      await Deno.mkdir(stateDir);
      server = await sb.startServer({ stateFile: `${stateDir}/state.json` });
      await Deno.remove(stateDir, { recursive: true });
      await Deno.writeTextFile(stateDir, "not a directory\n");
      mark = server.proc.output().length;
      for (const target of [CLIENT_V4, CLIENT_V4_ALT]) {
        await knockOk(sb, target);
        await waitForLog(
          server,
          mark,
          new RegExp(`opened \\S+ for ${escaped(target)} `),
          `the knock for ${target} to open`,
        );
        assert.equal(
          await sb.bed.tcpOpen(SERVER_V4, 22, {
            timeoutMs: EVENT_TIMEOUT_MS,
            from: target,
          }),
          true,
          `port 22 from ${target}`,
        );
      }
      const warnings = problemLines(server, mark);
      assert.equal(warnings.length, 1, warnings.join("\n"));
      assert.match(warnings[0], /cannot write state file .*serving continues/);
      assert.equal(await server.proc.stop("SIGTERM", EVENT_TIMEOUT_MS), 0);
    } finally {
      await sb.destroy();
    }
  },
});

Deno.test({
  name:
    "the config deleted or corrupted while serving: the config in force stays, with one line each time, and knocks keep working",
  ignore: skip !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(): Promise<void> {
    const sb = await ServerBed.create({ prefix: "om-fault-config" });
    try {
      const good = await Deno.readTextFile(sb.configPath);
      const server = await sb.startServer();
      const extra = sourceAddresses(1, 201)[0];
      await sb.addClientAddresses([extra]);

      // Deleted.
      let mark = server.proc.output().length;
      await Deno.remove(sb.configPath);
      await waitForLog(
        server,
        mark,
        /config \S+ is gone/,
        "the deletion to be noticed",
      );
      await sleep(2000); // several polls: still one line
      assert.equal(problemLines(server, mark).length, 1, since(server, mark));
      await knockOk(sb, CLIENT_V4);
      await waitForLog(
        server,
        mark,
        /opened \S+ for 192\.0\.2\.2 /,
        "a knock while the config is gone",
      );

      // Corrupted.
      mark = server.proc.output().length;
      await Deno.writeTextFile(
        sb.configPath,
        "server: [this is: not, {valid\nclients: *nope\n",
        { mode: 0o600 },
      );
      await waitForLog(
        server,
        mark,
        /reload \(config file changed\) failed, the previous config stays in force/,
        "the corrupt config to be refused",
      );
      await sleep(2000);
      const lines = problemLines(server, mark);
      assert.equal(lines.length, 1, since(server, mark));
      assert.ok(!lines[0].includes("\n    at "), lines[0]);
      await knockOk(sb, CLIENT_V4_ALT);
      await waitForLog(
        server,
        mark,
        /opened \S+ for 192\.0\.2\.3 /,
        "a knock while the config is corrupt",
      );

      // Repaired: reloaded, and still serving.
      mark = server.proc.output().length;
      await Deno.writeTextFile(sb.configPath, good, { mode: 0o600 });
      await waitForLog(
        server,
        mark,
        /config reloaded/,
        "the repaired config to load",
      );
      await knockOk(sb, extra);
      await waitForLog(
        server,
        mark,
        new RegExp(`opened \\S+ for ${escaped(extra)} `),
        "a knock after the repair",
      );
      assert.deepEqual(problemLines(server, mark), []);
      assert.equal(await server.proc.stop("SIGTERM", EVENT_TIMEOUT_MS), 0);
    } finally {
      await sb.destroy();
    }
  },
});

Deno.test({
  name:
    "SIGTERM during a burst of knocks from 60 addresses: every rule added is removed before the server exits",
  ignore: skip !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(): Promise<void> {
    const sb = await ServerBed.create({ prefix: "om-fault-term" });
    try {
      const sources = sourceAddresses(60, 100);
      await sb.addClientAddresses(sources);
      const server = await sb.startServer();
      // Each source knocks for itself: 60 sessions to open, one nft call each.
      const load = await sb.startLoad({
        ...sb.loadSpec("valid", { rate: 600, durationMs: 1000, sources }),
        target: null,
      });
      const burst = load.go();
      await waitFor(() => /opened \S+ for /.test(server.proc.output()), {
        timeoutMs: EVENT_TIMEOUT_MS,
        what: "the first session of the burst to open",
      });
      const t0 = performance.now();
      const code = await server.proc.stop("SIGTERM", EVENT_TIMEOUT_MS);
      const stopMs = performance.now() - t0;
      await burst;
      const output = server.proc.output();
      const opened = output.match(/^INFO {2}opened /gm)?.length ?? 0;
      assert.ok(opened >= 1, output.slice(-3000));
      assert.equal(code, 0, output.slice(-3000));
      assert.match(output, /every rule it added is removed/);
      const rules = await sb.bed.serverRules();
      assert.ok(!rules.includes("openme"), `left behind:\n${rules}`);
      console.log(
        `SIGTERM after ${opened} sessions opened: stopped in ${
          stopMs.toFixed(0)
        } ms, no openme rule left`,
      );
    } finally {
      await sb.destroy();
    }
  },
});
