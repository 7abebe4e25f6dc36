/**
 * `openme sessions` (lib/cli/commands/sessions.ts): rendering of the SPEC §7
 * state file (sessions, last seen, drop counters), the command's errors for a
 * missing or broken state file, and `--watch` refreshing until Ctrl-C.
 */
import assert from "node:assert/strict";
import { renderSessions } from "../../../lib/cli/commands/sessions.ts";
import type { StateFile } from "../../../lib/server/state_file.ts";
import { setLogSink } from "../../../lib/log.ts";
import { openme, spawnMain } from "../../support/cli.ts";
import { withTempDir } from "../../support/files.ts";

setLogSink(() => {});

const NOW = Date.parse("2026-03-01T12:00:00Z");

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** A state file like SPEC §7's example, plus openme's counters. */
function sampleState(nowMs: number): StateFile {
  return {
    updated_at: iso(nowMs),
    active_sessions: [
      {
        client_name: "alice",
        ip: "203.0.113.4",
        ports: [
          { port: 22, proto: "tcp" },
          { port: 8080, proto: "tcp", end_port: 8090 },
        ],
        opened_at: iso(nowMs - 5_000),
        expires_at: iso(nowMs + 25_000),
      },
      {
        client_name: "bob",
        ip: "2001:db8::7",
        ports: [{ port: 53, proto: "udp" }],
        opened_at: iso(nowMs - 1_000),
        expires_at: iso(nowMs + 90_000),
      },
    ],
    last_seen: {
      alice: iso(nowMs - 5_000),
      bob: iso(nowMs - 1_000),
      carol: iso(nowMs - 3_725_000),
    },
    accepted: 3,
    drops: { decrypt: 2, replay: 3 },
  };
}

Deno.test("renderSessions lists each open session: client, ip, ports, opened, expires in", () => {
  const lines = renderSessions(sampleState(NOW), NOW).split("\n");
  const cells = (line: string): string[] => line.trim().split(/ {2,}/);
  assert.deepEqual(cells(lines[0]), [
    "CLIENT",
    "IP",
    "PORTS",
    "OPENED",
    "EXPIRES IN",
  ]);
  assert.deepEqual(cells(lines[1]), [
    "alice",
    "203.0.113.4",
    "22/tcp,8080-8090/tcp",
    iso(NOW - 5_000),
    "25s",
  ]);
  assert.deepEqual(cells(lines[2]), [
    "bob",
    "2001:db8::7",
    "53/udp",
    iso(NOW - 1_000),
    "1m30s",
  ]);
});

Deno.test("renderSessions shows last-seen times only for clients without an open session", () => {
  const text = renderSessions(sampleState(NOW), NOW);
  assert.match(text, /\nlast seen:\n {2}carol +\S+ \(1h2m ago\)\n/);
  assert.doesNotMatch(text.split("last seen:")[1], /alice|bob/);
});

Deno.test("renderSessions sums the drop counters by reason, most frequent first", () => {
  const text = renderSessions(sampleState(NOW), NOW);
  assert.match(
    text,
    /^accepted knocks: 3; dropped datagrams: 5 \(3 replay, 2 decrypt\)$/m,
  );
  assert.match(text, new RegExp(`^updated ${iso(NOW)}$`, "m"));
});

Deno.test("renderSessions of SPEC §7's plain state file: no sessions, no counters line", () => {
  const state: StateFile = {
    updated_at: iso(NOW),
    active_sessions: [],
    last_seen: {},
  };
  assert.equal(
    renderSessions(state, NOW),
    `no active sessions\nupdated ${iso(NOW)}`,
  );
});

Deno.test("sessions --state-file prints the rendered state file", async () => {
  await withTempDir("openme-cli-sessions-", async (dir) => {
    const path = `${dir}/sessions.json`;
    const now = Date.now();
    await Deno.writeTextFile(path, JSON.stringify(sampleState(now)));
    const result = await openme(["sessions", "--state-file", path]);
    assert.equal(result.code, 0, result.err);
    assert.match(
      result.out,
      /^alice +203\.0\.113\.4 +22\/tcp,8080-8090\/tcp /m,
    );
    assert.match(result.out, /^bob +2001:db8::7 +53\/udp /m);
    assert.match(result.out, /dropped datagrams: 5/);
  });
});

Deno.test("sessions with a missing, non-JSON or wrong-shaped state file exits 1 with the path and no stack trace", async () => {
  await withTempDir("openme-cli-sessions-", async (dir) => {
    const missing = await openme([
      "sessions",
      "--state-file",
      `${dir}/none.json`,
    ]);
    assert.equal(missing.code, 1);
    assert.match(
      missing.err,
      /state file .*none\.json does not exist: is `openme serve` running\?/,
    );
    const broken = `${dir}/broken.json`;
    await Deno.writeTextFile(broken, "{not json");
    const bad = await openme(["sessions", "--state-file", broken]);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /state file .*broken\.json: not valid JSON/);
    const shape = `${dir}/shape.json`;
    await Deno.writeTextFile(shape, '{"sessions": []}');
    const wrong = await openme(["sessions", "--state-file", shape]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.err, /missing "active_sessions" list/);
    for (const r of [missing, bad, wrong]) {
      assert.doesNotMatch(r.err, /^\s+at /m);
      assert.equal(r.out, "");
    }
  });
});

Deno.test("sessions: wrong arguments exit 2 with the usage line", async () => {
  for (
    const argv of [["sessions", "extra"], ["sessions", "--state-file"], [
      "sessions",
      "--watch=1",
    ]]
  ) {
    const result = await openme(argv);
    assert.equal(result.code, 2, argv.join(" "));
    assert.match(
      result.err,
      /\nUsage: openme sessions \[--state-file PATH\] \[-w\|--watch\]\n/,
    );
  }
});

Deno.test("sessions --watch shows changes to the state file and exits 0 on Ctrl-C", async () => {
  const dir = await Deno.makeTempDir({ prefix: "openme-cli-sessions-" });
  const path = `${dir}/sessions.json`;
  const now = Date.now();
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      updated_at: iso(now),
      active_sessions: [],
      last_seen: {},
    }),
  );
  const child = spawnMain(["sessions", "-w", "--state-file", path]);
  let out = "";
  const decoder = new TextDecoder();
  const pump = (async () => {
    for await (const chunk of child.stdout) {
      out += decoder.decode(chunk, { stream: true });
    }
  })();
  const errText = new Response(child.stderr).text();
  const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  try {
    await waitUntil(() => out.includes("no active sessions"), 30_000);
    await Deno.writeTextFile(path, JSON.stringify(sampleState(Date.now())));
    await waitUntil(() => /^alice +203\.0\.113\.4/m.test(out), 20_000);
    child.kill("SIGINT");
    const status = await child.status;
    await pump;
    assert.equal(status.code, 0, await errText);
    assert.ok(
      !out.includes("\x1b["),
      "no screen clearing when stdout is not a terminal",
    );
  } finally {
    clearTimeout(killer);
    await Deno.remove(dir, { recursive: true });
  }
});

/** Polls a condition every 50 ms; throws after the timeout. */
async function waitUntil(
  condition: () => boolean,
  timeoutMs: number,
): Promise<void> {
  const rounds = Math.ceil(timeoutMs / 50);
  for (let i = 0; i < rounds; i++) {
    if (condition()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`condition not met within ${timeoutMs} ms`);
}

Deno.test("renderSessions shows the kernel gate's drops by reason next to openme's own", () => {
  const state = {
    ...sampleState(NOW),
    kernel_drops: { size: 40, version: 2, rate: 7 },
  };
  const lines = renderSessions(state, NOW).split("\n");
  const own = lines.findIndex((line) => line.startsWith("accepted knocks:"));
  assert.equal(
    lines[own + 1],
    "dropped by the kernel's knock gate: 49 (40 size, 2 version, 7 rate)",
  );
  assert.doesNotMatch(renderSessions(sampleState(NOW), NOW), /knock gate/);
});
