/**
 * `openme revoke` (lib/cli/commands/revoke.ts), run in-process through runCli:
 * it removes exactly the named client from config.yaml or its clients.d
 * file, keeps everything else, and an unknown name exits 1 listing the
 * clients.
 */
import assert from "node:assert/strict";
import { dirname } from "node:path";
import { generateEd25519KeyPair } from "../../../lib/protocol/crypto.ts";
import { loadServerConfig } from "../../../lib/config/server_config.ts";
import { setLogSink } from "../../../lib/log.ts";
import { openme, openmeOk, withServerConfig } from "../../support/cli.ts";

setLogSink(() => {});

/** Runs fn with a fresh `openme init` config holding the given clients. */
async function withServer(
  clients: string[],
  fn: (path: string) => Promise<void>,
): Promise<void> {
  await withServerConfig({
    prefix: "openme-cli-revoke-",
    initArgs: ["--server", "h.example"],
    clients,
  }, fn);
}

Deno.test("revoke removes the client from the config and says a running server applies it", async () => {
  await withServer(["alice", "bob", "carol"], async (path) => {
    const result = await openme(["--config", path, "revoke", "bob"]);
    assert.equal(result.code, 0, result.err);
    assert.match(
      result.out,
      /^revoked bob: removed from .*config\.yaml; a running server applies it/,
    );
    const config = await loadServerConfig(path);
    assert.deepEqual(config.clients.map((c) => c.name), ["alice", "carol"]);
    const list = await openme(["--config", path, "list"]);
    assert.doesNotMatch(list.out, /^bob /m);
    assert.match(list.out, /^alice /m);
  });
});

Deno.test("revoke keeps comments, other clients' entries and the file mode", async () => {
  await withServer(["alice", "bob"], async (path) => {
    const before = await Deno.readTextFile(path);
    await openmeOk(["--config", path, "revoke", "alice"]);
    const after = await Deno.readTextFile(path);
    for (const line of before.split("\n")) {
      if (line.trimStart().startsWith("#")) {
        assert.ok(after.includes(line), line);
      }
    }
    const bobEntry = /\n {2}bob:\n(?: {4}.*\n)+/.exec(before)?.[0];
    assert.ok(bobEntry !== undefined);
    assert.ok(
      after.includes(bobEntry),
      "bob's entry is byte for byte the same",
    );
    assert.ok(!after.includes("\n  alice:"));
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
  });
});

Deno.test("revoking the last client leaves a valid config with no clients", async () => {
  await withServer(["alice"], async (path) => {
    await openmeOk(["--config", path, "revoke", "alice"]);
    const config = await loadServerConfig(path);
    assert.deepEqual(config.clients, []);
    const add = await openme(["--config", path, "add", "alice"]);
    assert.equal(add.code, 0, "the name can be added again");
  });
});

Deno.test("revoke of an unknown client exits 1 listing the clients, and changes nothing", async () => {
  await withServer(["alice", "bob"], async (path) => {
    const before = await Deno.readTextFile(path);
    const result = await openme(["--config", path, "revoke", "carol"]);
    assert.equal(result.code, 1);
    assert.match(
      result.err,
      /^openme: no client "carol" in .*config\.yaml or .*clients\.d \(clients: alice, bob\)$/,
    );
    assert.equal(result.out, "");
    assert.equal(await Deno.readTextFile(path), before);
  });
});

Deno.test("revoke with no clients at all says none", async () => {
  await withServer([], async (path) => {
    const result = await openme(["--config", path, "revoke", "alice"]);
    assert.equal(result.code, 1);
    assert.match(result.err, /\(clients: none\)/);
  });
});

Deno.test("revoke twice: the second run fails because the client is gone", async () => {
  await withServer(["alice", "bob"], async (path) => {
    await openmeOk(["--config", path, "revoke", "alice"]);
    const again = await openme(["--config", path, "revoke", "alice"]);
    assert.equal(again.code, 1);
    assert.match(again.err, /\(clients: bob\)/);
  });
});

Deno.test("revoke without NAME exits 2 with the usage line; without a config exits 1", async () => {
  const missing = await openme(["revoke"]);
  assert.equal(missing.code, 2);
  assert.match(missing.err, /missing NAME\nUsage: openme revoke NAME\n/);
  const noConfig = await openme([
    "--config",
    "/nonexistent/openme/c.yaml",
    "revoke",
    "x",
  ]);
  assert.equal(noConfig.code, 1);
  assert.match(noConfig.err, /\/nonexistent\/openme\/c\.yaml/);
  assert.doesNotMatch(noConfig.err, /^\s+at /m);
});

/** A clients.d file's text: a comment, then each client with a fresh key. */
function dropIn(...names: string[]): string {
  const lines = ["# from config management", "clients:"];
  for (const name of names) {
    const key = generateEd25519KeyPair().publicKey.toBase64();
    lines.push(
      `  # ${name}'s laptop`,
      `  ${name}:`,
      `    ed25519_pubkey: ${key}`,
    );
  }
  return `${lines.join("\n")}\n`;
}

Deno.test("revoke deletes a clients.d file that holds only that client, and edits one that holds others, keeping comments", async () => {
  await withServer(["alice"], async (path) => {
    const dir = `${dirname(path)}/clients.d`;
    await Deno.mkdir(dir, { mode: 0o755 });
    await Deno.writeTextFile(`${dir}/bob.yaml`, dropIn("bob"));
    await Deno.writeTextFile(`${dir}/team.yaml`, dropIn("carol", "dave"));
    await Deno.chmod(`${dir}/team.yaml`, 0o644);

    const bob = await openme(["--config", path, "revoke", "bob"]);
    assert.equal(bob.code, 0, bob.err);
    assert.equal(
      bob.out,
      `revoked bob: removed from ${dir}/bob.yaml (deleted); a running server applies it within 2 s`,
    );
    await assert.rejects(Deno.stat(`${dir}/bob.yaml`), Deno.errors.NotFound);

    const carol = await openme(["--config", path, "revoke", "carol"]);
    assert.equal(carol.code, 0, carol.err);
    assert.match(carol.out, /^revoked carol: removed from .*team\.yaml;/);
    const text = await Deno.readTextFile(`${dir}/team.yaml`);
    assert.ok(text.startsWith("# from config management\nclients:\n"), text);
    assert.match(text, /^ {2}# dave's laptop\n {2}dave:$/m);
    assert.doesNotMatch(text, /^ +carol:/m);
    assert.equal((await Deno.stat(`${dir}/team.yaml`)).mode! & 0o777, 0o644);
    const config = await loadServerConfig(path);
    assert.deepEqual(config.clients.map((c) => c.name), ["alice", "dave"]);
    assert.deepEqual(config.dropInErrors, []);
  });
});

Deno.test("revoke of a name defined twice removes both definitions", async () => {
  await withServer(["alice"], async (path) => {
    const dir = `${dirname(path)}/clients.d`;
    await Deno.mkdir(dir, { mode: 0o755 });
    await Deno.writeTextFile(`${dir}/a.yaml`, dropIn("alice", "erin"));
    const result = await openme(["--config", path, "revoke", "alice"]);
    assert.equal(result.code, 0, result.err);
    assert.equal(
      result.out,
      `revoked alice: removed from ${path} and ${dir}/a.yaml; a running server applies it within 2 s`,
    );
    const config = await loadServerConfig(path);
    assert.deepEqual(config.clients.map((c) => c.name), ["erin"]);
  });
});
