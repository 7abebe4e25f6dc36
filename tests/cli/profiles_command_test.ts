/**
 * Tests of `openme profiles` through the CLI: the list, one profile with its
 * private key redacted, and the errors.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type CliIo, runCli } from "../../lib/cli/mod.ts";
import { REDACTED } from "../../lib/cli/profiles_command.ts";
import { upsertClientProfile } from "../../lib/config/client_config.ts";
import {
  generateEd25519KeyPair,
  generateX25519KeyPair,
  keyFingerprint,
} from "../../lib/crypto.ts";
import { encodeBase64 } from "../../lib/encoding.ts";

async function cli(
  argv: string[],
): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = {
    out: (text) => out.push(text),
    err: (text) => err.push(text),
  };
  const code = await runCli(argv, io);
  return { code, out: out.join("\n"), err: err.join("\n") };
}

async function withConfig(
  fn: (
    config: string,
    privateKeys: string[],
    publicKey: Uint8Array,
  ) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "openme-profiles-" });
  try {
    const config = join(dir, "client.yaml");
    const privateKeys: string[] = [];
    let lastPublic: Uint8Array = new Uint8Array();
    for (
      const [name, host, port] of [
        ["work", "vpn.example.com", 54154],
        ["home", "198.51.100.7", 40000],
      ] as const
    ) {
      const client = generateEd25519KeyPair();
      privateKeys.push(encodeBase64(client.privateKey));
      lastPublic = client.publicKey;
      await upsertClientProfile(config, {
        name,
        serverHost: host,
        serverUdpPort: port,
        serverPubkeyB64: encodeBase64(generateX25519KeyPair().publicKey),
        privateKeyB64: encodeBase64(client.privateKey),
        publicKeyB64: encodeBase64(client.publicKey),
        postKnock: name === "home" ? "ssh me@198.51.100.7" : undefined,
      });
    }
    await fn(config, privateKeys, lastPublic);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("profiles lists every profile with its server", async () => {
  await withConfig(async (config) => {
    const result = await cli(["--client-config", config, "profiles"]);
    assert.equal(result.code, 0, result.err);
    assert.deepEqual(result.out.split("\n"), [
      `profiles in ${config}:`,
      "  work             vpn.example.com:54154",
      "  home             198.51.100.7:40000",
    ]);
  });
});

Deno.test("profiles NAME shows the profile with the private key redacted", async () => {
  await withConfig(async (config, privateKeys, publicKey) => {
    const result = await cli(["--client-config", config, "profiles", "home"]);
    assert.equal(result.code, 0, result.err);
    assert.match(result.out, /server_host: +198\.51\.100\.7/);
    assert.match(result.out, /server_udp_port: +40000/);
    assert.match(result.out, new RegExp(`private_key: +${REDACTED}`));
    assert.match(
      result.out,
      new RegExp(`fingerprint: +${keyFingerprint(publicKey)}`),
    );
    assert.match(result.out, /post_knock: +ssh me@198\.51\.100\.7/);
    for (const key of privateKeys) assert.ok(!result.out.includes(key));
  });
});

Deno.test("profiles with an unknown name exits 1 and lists the profiles", async () => {
  await withConfig(async (config) => {
    const result = await cli(["--client-config", config, "profiles", "nope"]);
    assert.equal(result.code, 1);
    assert.match(
      result.err,
      /no profile "nope" in .* \(profiles: work, home\)/,
    );
  });
});

Deno.test("profiles without a client config says how to create one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "openme-profiles-" });
  try {
    const result = await cli([
      "--client-config",
      join(dir, "none.yaml"),
      "profiles",
    ]);
    assert.equal(result.code, 1);
    assert.match(
      result.err,
      /no client config at .*none\.yaml: import one with `openme import FILE`/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
