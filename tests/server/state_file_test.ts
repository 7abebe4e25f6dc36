/**
 * The session state file: atomic writes that never follow a symlink, reading
 * with clear errors, the text `openme sessions` renders from it, and the
 * replay nonce file beside it.
 */
import assert from "node:assert/strict";
import { renderSessions } from "../../lib/cli/commands/sessions.ts";
import {
  nonceFilePath,
  readStateBytes,
  readStateFile,
  type StateFile,
  writeNonceFile,
  writeStateFile,
} from "../../lib/server/state_file.ts";

const STATE: StateFile = {
  updated_at: "2026-01-02T03:04:05Z",
  active_sessions: [{
    client_name: "alice",
    ip: "203.0.113.4",
    ports: [
      { port: 22, proto: "tcp" },
      { port: 8080, proto: "tcp", end_port: 8090 },
    ],
    opened_at: "2026-01-02T03:04:00Z",
    expires_at: "2026-01-02T03:04:30Z",
  }],
  last_seen: {
    alice: "2026-01-02T03:04:00Z",
    bob: "2026-01-02T02:00:00Z",
  },
  accepted: 3,
  drops: { decrypt: 5, size: 1 },
  pid: 42,
};

Deno.test("writeStateFile writes indented JSON that readStateFile reads back, leaving no temp file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "openme-state-test-" });
  try {
    const path = `${dir}/sessions.json`;
    await writeStateFile(path, STATE);
    await writeStateFile(path, { ...STATE, accepted: 4 });
    const text = await Deno.readTextFile(path);
    assert.match(
      text,
      /^\{\n {2}"updated_at": .*\n {2}"accepted": 4,\n.*\n\}\n$/s,
    );
    const read = await readStateFile(path);
    assert.deepEqual(read, { ...STATE, accepted: 4 });
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    assert.deepEqual(names, ["sessions.json"]);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o644);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeStateFile fails when the directory is missing and leaves nothing behind", async () => {
  const dir = await Deno.makeTempDir({ prefix: "openme-state-test-" });
  try {
    await assert.rejects(writeStateFile(`${dir}/missing/s.json`, STATE));
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    assert.deepEqual(names, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readStateFile says what is wrong and where", async () => {
  const dir = await Deno.makeTempDir({ prefix: "openme-state-test-" });
  try {
    await assert.rejects(
      readStateFile(`${dir}/none.json`),
      /state file .*none\.json does not exist: is `openme serve` running\?/,
    );
    await Deno.writeTextFile(`${dir}/bad.json`, "{");
    await assert.rejects(
      readStateFile(`${dir}/bad.json`),
      /bad\.json: not valid JSON/,
    );
    await Deno.writeTextFile(`${dir}/shape.json`, '{"x":1}');
    await assert.rejects(
      readStateFile(`${dir}/shape.json`),
      /shape\.json: missing "active_sessions" list/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("renderSessions shows client, ip, ports, opened, expires in, last seen and the drop counters", () => {
  const now = Date.parse("2026-01-02T03:04:10Z");
  const text = renderSessions(STATE, now);
  const lines = text.split("\n");
  assert.match(lines[0], /^CLIENT\s+IP\s+PORTS\s+OPENED\s+EXPIRES IN$/);
  assert.match(
    lines[1],
    /^alice\s+203\.0\.113\.4\s+22\/tcp,8080-8090\/tcp\s+2026-01-02T03:04:00Z\s+20s$/,
  );
  assert.ok(text.includes("last seen:"));
  assert.match(text, /\n {2}bob\s+2026-01-02T02:00:00Z \(1h4m ago\)/);
  assert.ok(!/\n {2}alice /.test(text), "active clients are not repeated");
  assert.ok(
    text.includes(
      "accepted knocks: 3; dropped datagrams: 6 (5 decrypt, 1 size)",
    ),
  );
  assert.ok(text.endsWith("updated 2026-01-02T03:04:05Z"));
});

Deno.test("renderSessions says when nothing is open", () => {
  const text = renderSessions({
    updated_at: "2026-01-02T03:04:05Z",
    active_sessions: [],
    last_seen: {},
  }, Date.parse("2026-01-02T03:04:10Z"));
  assert.equal(text, "no active sessions\nupdated 2026-01-02T03:04:05Z");
});

Deno.test("writeStateFile never writes through a symlink planted at a temp name, and the state path is replaced, not followed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "openme-state-link-" });
  try {
    const victim = `${dir}/victim`;
    await Deno.writeTextFile(victim, "precious\n");
    // The name the writer used to pick: ".<name>.<pid>.tmp".
    await Deno.symlink(victim, `${dir}/.s.json.${Deno.pid}.tmp`);
    await Deno.symlink(victim, `${dir}/s.json`);
    await writeStateFile(`${dir}/s.json`, STATE);
    assert.equal(await Deno.readTextFile(victim), "precious\n");
    assert.equal((await Deno.lstat(`${dir}/s.json`)).isSymlink, false);
    assert.deepEqual(await readStateFile(`${dir}/s.json`), STATE);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the nonce file sits beside the state file", () => {
  assert.equal(
    nonceFilePath("/var/lib/openme/sessions.json"),
    "/var/lib/openme/sessions.nonces",
  );
  assert.equal(nonceFilePath("/tmp/state"), "/tmp/state.nonces");
});

Deno.test("the nonce file is written atomically, owner-only, and read back; missing is null", async () => {
  const dir = await Deno.makeTempDir({ prefix: "openme-nonce-file-" });
  const path = `${dir}/s.nonces`;
  try {
    assert.equal(await readStateBytes(path), null);
    const bytes = new Uint8Array([1, 2, 3]);
    await writeNonceFile(path, bytes);
    await writeNonceFile(path, bytes.subarray(1));
    assert.deepEqual(await readStateBytes(path), bytes.subarray(1));
    assert.equal((await Deno.stat(path)).mode! & 0o077, 0);
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    assert.deepEqual(names, ["s.nonces"], "no temp file left");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
