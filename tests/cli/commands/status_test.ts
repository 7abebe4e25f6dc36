/**
 * Tests of `openme status` through the CLI against TCP listeners on
 * 127.0.0.1: it says which address and port it checked, and what to try
 * next when the port is closed.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  acceptingTcpListener,
  freeTcpPort,
  openme,
  writeTestProfile,
} from "../../support/cli.ts";
import { withTempDir } from "../../support/files.ts";

/** Runs fn with a client config holding profile "work" for 127.0.0.1:port. */
async function withProfile(
  port: number,
  fn: (config: string) => Promise<void>,
): Promise<void> {
  await withTempDir("openme-status-", async (dir) => {
    const config = join(dir, "client.yaml");
    await writeTestProfile(config, { name: "work", host: "127.0.0.1", port });
    await fn(config);
  });
}

Deno.test("status reports the reachable health port with its address and time", async () => {
  const listener = acceptingTcpListener();
  const port = listener.port;
  try {
    await withProfile(port, async (config) => {
      const result = await openme(["--client-config", config, "status"]);
      assert.equal(result.code, 0, result.err);
      assert.match(
        result.out,
        new RegExp(
          `^✓ 127\\.0\\.0\\.1: health port 127\\.0\\.0\\.1:${port} reachable \\(\\d+ ms\\) — your knock is open$`,
        ),
      );
    });
  } finally {
    await listener.close();
  }
});

Deno.test("status on a closed port names the address and port and suggests --knock", async () => {
  const port = freeTcpPort();
  await withProfile(port, async (config) => {
    const result = await openme(["--client-config", config, "status"]);
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
  const port = freeTcpPort();
  await withProfile(port, async (config) => {
    const result = await openme([
      "--client-config",
      config,
      "status",
      "--knock",
    ]);
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
    const result = await openme(["--client-config", config, "status", "home"]);
    assert.equal(result.code, 1);
    assert.match(result.err, /no profile "home" in .* \(profiles: work\)/);
  });
});
