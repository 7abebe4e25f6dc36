/**
 * Tests of `openme status` through the CLI against TCP listeners on
 * 127.0.0.1: it says which address and port it checked, and what to try
 * next when the port is closed.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type CliIo, runCli } from "../../lib/cli/mod.ts";
import { upsertClientProfile } from "../../lib/config/client_config.ts";
import {
  generateEd25519KeyPair,
  generateX25519KeyPair,
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

async function withProfile(
  port: number,
  fn: (config: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "openme-status-" });
  try {
    const config = join(dir, "client.yaml");
    const client = generateEd25519KeyPair();
    await upsertClientProfile(config, {
      name: "work",
      serverHost: "127.0.0.1",
      serverUdpPort: port,
      serverPubkeyB64: encodeBase64(generateX25519KeyPair().publicKey),
      privateKeyB64: encodeBase64(client.privateKey),
      publicKeyB64: encodeBase64(client.publicKey),
    });
    await fn(config);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test("status reports the reachable health port with its address and time", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = (async () => {
    try {
      for await (const conn of listener) conn.close();
    } catch {
      // closed
    }
  })();
  const port = (listener.addr as Deno.NetAddr).port;
  try {
    await withProfile(port, async (config) => {
      const result = await cli(["--client-config", config, "status"]);
      assert.equal(result.code, 0, result.err);
      assert.match(
        result.out,
        new RegExp(
          `^✓ 127\\.0\\.0\\.1: health port 127\\.0\\.0\\.1:${port} reachable \\(\\d+ ms\\) — your knock is open$`,
        ),
      );
    });
  } finally {
    listener.close();
    await accepting;
  }
});

Deno.test("status on a closed port names the address and port and suggests --knock", async () => {
  const port = freePort();
  await withProfile(port, async (config) => {
    const result = await cli(["--client-config", config, "status"]);
    assert.equal(result.code, 1);
    const lines = result.out.split("\n");
    assert.equal(
      lines[0],
      `✗ 127.0.0.1: health port tcp 127.0.0.1:${port} not reachable within 3 s (ECONNREFUSED)`,
    );
    assert.equal(
      lines[1],
      "  try: openme status work --knock   (the port opens only after a knock)",
    );
  });
});

Deno.test("status --knock that does not open the port points at the server side", async () => {
  const port = freePort();
  await withProfile(port, async (config) => {
    const result = await cli(["--client-config", config, "status", "--knock"]);
    assert.equal(result.code, 1);
    assert.match(
      result.out,
      new RegExp(`^knocked 127\\.0\\.0\\.1:${port}$`, "m"),
    );
    assert.match(result.out, /not reachable within 3 s/);
    assert.match(result.out, /try: check the server log/);
    assert.match(result.out, new RegExp(`UDP ${port} reaches it`));
  });
});

Deno.test("status with an unknown profile lists the profiles", async () => {
  await withProfile(9, async (config) => {
    const result = await cli(["--client-config", config, "status", "home"]);
    assert.equal(result.code, 1);
    assert.match(result.err, /no profile "home" in .* \(profiles: work\)/);
  });
});
