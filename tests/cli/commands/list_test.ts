/**
 * `openme list` (lib/cli/commands/list.ts), run in-process through runCli:
 * name, fingerprint, effective ports (with the health port), expiry and
 * defining file per client; skipped clients, refused clients.d files and
 * warnings; a missing config.
 */
import assert from "node:assert/strict";
import { dirname } from "node:path";
import { parseClientConfig } from "../../../lib/config/client_config.ts";
import { decodeBase64 } from "../../../lib/encoding.ts";
import {
  generateEd25519KeyPair,
  keyFingerprint,
} from "../../../lib/protocol/crypto.ts";
import { setLogSink } from "../../../lib/log.ts";
import { openme, openmeOk, withServerConfig } from "../../support/cli.ts";

setLogSink(() => {});

/** Runs fn with a fresh `openme init` config (knock port 40000) that also has a devops port group. */
async function withServer(fn: (path: string) => Promise<void>): Promise<void> {
  await withServerConfig({
    prefix: "openme-cli-list-",
    initArgs: ["--server", "vpn.example.com", "--port", "40000"],
    edit: (text) =>
      text.replace(
        "  default: [22/tcp]\n",
        "  default: [22/tcp]\n  devops: [443/tcp, 8080-8090/tcp]\n",
      ),
  }, fn);
}

/** Adds a client and returns its fingerprint, computed from the printed public key. */
async function add(path: string, args: string[]): Promise<string> {
  const result = await openmeOk(["--config", path, "add", ...args]);
  const config = parseClientConfig(result.out, { path: "(add output)" });
  const profile = [...config.profiles.values()][0];
  return keyFingerprint(profile.publicKey!);
}

/** The table's rows as arrays of cells (cells are separated by two or more spaces). */
function rows(out: string): string[][] {
  return out.split("\n").map((line) => line.trim().split(/ {2,}/));
}

Deno.test("list with no clients says so and how to add one", async () => {
  await withServer(async (path) => {
    const result = await openme(["--config", path, "list"]);
    assert.equal(result.code, 0, result.err);
    assert.match(
      result.out,
      /^no clients in .*config\.yaml; add one with `openme add NAME`$/,
    );
  });
});

Deno.test("list shows name, fingerprint, effective ports with the health port, and expiry", async () => {
  await withServer(async (path) => {
    const alice = await add(path, ["alice"]);
    const bob = await add(path, [
      "bob",
      "--ports",
      "devops,2222/tcp",
      "--expires",
      "2099-12-31T23:59:59Z",
    ]);
    const result = await openme(["--config", path, "list"]);
    assert.equal(result.code, 0, result.err);
    const table = rows(result.out);
    assert.deepEqual(table[0], [
      "NAME",
      "FINGERPRINT",
      "PORTS",
      "EXPIRES",
      "FILE",
    ]);
    const text = await Deno.readTextFile(path);
    const lineOf = (name: string): number =>
      text.split("\n").indexOf(`  ${name}:`) + 1;
    assert.deepEqual(table[1], [
      "alice",
      alice,
      "22/tcp,40000/tcp (health)",
      "never",
      `config.yaml:${lineOf("alice")}`,
    ]);
    assert.deepEqual(table[2], [
      "bob",
      bob,
      "443/tcp,2222/tcp,8080-8090/tcp,40000/tcp (health)",
      "2099-12-31T23:59:59Z",
      `config.yaml:${lineOf("bob")}`,
    ]);
    assert.equal(table.length, 3);
    assert.equal(result.err, "");
  });
});

Deno.test("list leaves out the health port for disable_health_port clients and marks expired ones", async () => {
  await withServer(async (path) => {
    await add(path, ["quiet"]);
    await add(path, ["old", "--expires", "2099-01-01T00:00:00Z"]);
    let text = await Deno.readTextFile(path);
    text = text.replace(
      /(\n {2}quiet:\n(?: {4}.*\n)*)/,
      "$1    disable_health_port: true\n",
    ).replace("2099-01-01T00:00:00Z", "2001-01-01T00:00:00Z");
    await Deno.writeTextFile(path, text);
    const result = await openme(["--config", path, "list"]);
    assert.equal(result.code, 0, result.err);
    const table = rows(result.out);
    const quiet = table.find((r) => r[0] === "quiet")!;
    assert.equal(quiet[2], "22/tcp");
    const old = table.find((r) => r[0] === "old")!;
    assert.equal(old[3], "2001-01-01T00:00:00Z (expired)");
  });
});

Deno.test("list names a client the server would skip, with the warning on stderr", async () => {
  await withServer(async (path) => {
    await add(path, ["alice"]);
    const text = await Deno.readTextFile(path);
    await Deno.writeTextFile(
      path,
      `${text.trimEnd()}\n  broken:\n    ed25519_pubkey: not-base64!\n`,
    );
    const result = await openme(["--config", path, "list"]);
    assert.equal(result.code, 0, result.err);
    assert.match(result.out, /^alice /m);
    assert.match(
      result.out,
      /^broken +\(invalid entry: skipped by the server/m,
    );
    assert.match(result.err, /^warning: .*clients\.broken\.ed25519_pubkey/m);
  });
});

Deno.test("list without a config exits 1 naming the file and the fix", async () => {
  const result = await openme([
    "--config",
    "/nonexistent/openme/config.yaml",
    "list",
  ]);
  assert.equal(result.code, 1);
  assert.match(result.err, /\/nonexistent\/openme\/config\.yaml/);
  assert.match(result.err, /openme init/);
});

Deno.test("list shows the clients.d file each drop-in client comes from, and refused files as errors", async () => {
  await withServer(async (path) => {
    await add(path, ["alice"]);
    const dir = `${dirname(path)}/clients.d`;
    await Deno.mkdir(dir, { mode: 0o755 });
    const key = generateEd25519KeyPair().publicKey.toBase64();
    await Deno.writeTextFile(
      `${dir}/bob.yaml`,
      `clients:\n  bob:\n    ed25519_pubkey: ${key}\n`,
    );
    await Deno.writeTextFile(`${dir}/broken.yaml`, "clients: [\n");
    const result = await openme(["--config", path, "list"]);
    assert.equal(result.code, 0, result.err);
    const bob = rows(result.out).find((r) => r[0] === "bob")!;
    assert.equal(bob[1], keyFingerprint(decodeBase64(key)!));
    assert.equal(bob[4], "clients.d/bob.yaml:2");
    assert.match(
      result.err,
      /^error: config .*clients\.d\/broken\.yaml:1: invalid YAML: the \[ opened on this line is never closed .*; file refused/m,
    );
  });
});
