/**
 * Tests of `openme profiles` through the CLI: the list, one profile with its
 * private key redacted, and the errors.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { REDACTED } from "../../../lib/cli/commands/profiles.ts";
import { keyFingerprint } from "../../../lib/protocol/crypto.ts";
import { encodeBase64 } from "../../../lib/encoding.ts";
import { openme, writeTestProfile } from "../../support/cli.ts";
import { withTempDir } from "../../support/files.ts";

async function withConfig(
  fn: (
    config: string,
    privateKeys: string[],
    publicKey: Uint8Array,
  ) => Promise<void>,
): Promise<void> {
  await withTempDir("openme-profiles-", async (dir) => {
    const config = join(dir, "client.yaml");
    const privateKeys: string[] = [];
    let lastPublic: Uint8Array = new Uint8Array();
    for (
      const [name, host, port] of [
        ["work", "vpn.example.com", 54154],
        ["home", "198.51.100.7", 40000],
      ] as const
    ) {
      const client = await writeTestProfile(config, {
        name,
        host,
        port,
        postKnock: name === "home" ? "ssh me@198.51.100.7" : undefined,
      });
      privateKeys.push(encodeBase64(client.privateKey));
      lastPublic = client.publicKey;
    }
    await fn(config, privateKeys, lastPublic);
  });
}

Deno.test("profiles lists every profile with its server", async () => {
  await withConfig(async (config) => {
    const result = await openme(["--client-config", config, "profiles"]);
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
    const result = await openme([
      "--client-config",
      config,
      "profiles",
      "home",
    ]);
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
    const result = await openme([
      "--client-config",
      config,
      "profiles",
      "nope",
    ]);
    assert.equal(result.code, 1);
    assert.match(
      result.err,
      /no profile "nope" in .* \(profiles: work, home\)/,
    );
  });
});

Deno.test("profiles without a client config says how to create one", async () => {
  await withTempDir("openme-profiles-", async (dir) => {
    const result = await openme([
      "--client-config",
      join(dir, "none.yaml"),
      "profiles",
    ]);
    assert.equal(result.code, 1);
    assert.match(
      result.err,
      /no client config at .*none\.yaml: import one with `openme import FILE`/,
    );
  });
});
