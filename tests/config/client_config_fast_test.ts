import assert from "node:assert/strict";
import fc from "fast-check";
import {
  loadClientConfig,
  type NewClientProfile,
  renderClientConfig,
} from "../../lib/config/client_config.ts";
import { loadClientConfigFast } from "../../lib/config/client_config_fast.ts";
import { MAX_CONFIG_FILE_BYTES } from "../../lib/config/value_checks.ts";
import { encodeBase64 } from "../../lib/encoding.ts";
import { withTempDir } from "../support/files.ts";

const IS_WINDOWS = Deno.build.os === "windows";
const TEMP_PREFIX = "openme-client-config-fast-";

function randomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  crypto.getRandomValues(bytes);
  return bytes;
}

function profile(name: string): NewClientProfile {
  const privateKey = randomBytes(64);
  return {
    name,
    serverHost: "myserver.example.com",
    serverUdpPort: 54154,
    serverPubkeyB64: encodeBase64(randomBytes(32)),
    privateKeyB64: encodeBase64(privateKey),
    publicKeyB64: encodeBase64(privateKey.slice(32)),
    postKnock: null,
  };
}

async function writePrivate(path: string, text: string): Promise<void> {
  await Deno.writeTextFile(path, text, { mode: 0o600 });
  if (!IS_WINDOWS) await Deno.chmod(path, 0o600);
}

Deno.test("loadClientConfigFast reads what openme add prints, to what loadClientConfig reads", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/config.yaml`;
    await writePrivate(
      path,
      renderClientConfig([profile("default"), {
        ...profile("work"),
        serverHost: "198.51.100.7",
        serverUdpPort: 4000,
        postKnock: "ssh me@work.example.com",
      }]),
    );
    const fast = await loadClientConfigFast(path);
    assert.ok(fast !== null, "the fast path should read a file openme wrote");
    assert.deepEqual(fast, await loadClientConfig(path));
    assert.deepEqual([...fast.profiles.keys()], ["default", "work"]);
    assert.equal(
      fast.profiles.get("work")?.postKnock,
      "ssh me@work.example.com",
    );
  });
});

Deno.test("loadClientConfigFast leaves files with a problem to the full loader, which names the line", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/config.yaml`;
    const lines = renderClientConfig([profile("default")]).split("\n");
    const bad = lines.map((line) =>
      line.includes("server_udp_port") ? "    server_udp_port: 70000" : line
    ).join("\n");
    await writePrivate(path, bad);
    assert.equal(await loadClientConfigFast(path), null);
    await assert.rejects(
      loadClientConfig(path),
      /:4: profiles\.default\.server_udp_port: port 70000 out of range/,
    );
  });
});

Deno.test("loadClientConfigFast leaves missing, odd and loose-mode files to the full loader", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const good = renderClientConfig([profile("default")]);
    assert.equal(await loadClientConfigFast(`${dir}/missing.yaml`), null);
    assert.equal(await loadClientConfigFast(dir), null, "a directory");

    const latin1 = `${dir}/latin1.yaml`;
    await Deno.writeFile(
      latin1,
      new Uint8Array([0x61, 0x3a, 0x20, 0xe9, 0x0a]),
      { mode: 0o600 },
    );
    assert.equal(await loadClientConfigFast(latin1), null, "not UTF-8");

    const big = `${dir}/big.yaml`;
    await writePrivate(big, good + "#".repeat(MAX_CONFIG_FILE_BYTES) + "\n");
    assert.equal(await loadClientConfigFast(big), null, "too large");

    const anchors = `${dir}/anchors.yaml`;
    await writePrivate(anchors, good.replace("profiles:", "profiles: &all"));
    assert.equal(
      await loadClientConfigFast(anchors),
      null,
      "YAML beyond plain maps",
    );
    assert.equal((await loadClientConfig(anchors)).profiles.size, 1);

    if (!IS_WINDOWS) {
      const loose = `${dir}/loose.yaml`;
      await writePrivate(loose, good);
      await Deno.chmod(loose, 0o644);
      assert.equal(await loadClientConfigFast(loose), null, "mode 0644");
      const full = await loadClientConfig(loose);
      assert.match(
        full.warnings.join("\n"),
        /file mode 0644 lets other users read/,
      );
    }
  });
});

Deno.test("loadClientConfigFast and loadClientConfig agree on generated profiles, and the fast path reads plain ones", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/config.yaml`;
    let fastCount = 0;
    const runs = 150;
    await fc.assert(
      fc.asyncProperty(
        fc.stringMatching(/^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,12}$/),
        fc.oneof(
          fc.constantFrom(
            "myserver.example.com",
            "198.51.100.7",
            "2001:db8::7",
            "vpn.example.org",
          ),
          fc.stringMatching(/^[a-z0-9][a-z0-9.:-]{0,30}$/),
        ),
        fc.integer({ min: 1, max: 65535 }),
        fc.option(fc.string({ maxLength: 30 }), { nil: null }),
        async (name, host, port, postKnock) => {
          const base = profile(name);
          const written: NewClientProfile = {
            ...base,
            serverHost: host,
            serverUdpPort: port,
            postKnock,
          };
          let text: string;
          try {
            text = renderClientConfig([written]);
          } catch {
            return; // a value openme itself refuses to write
          }
          await writePrivate(path, text);
          let full: unknown;
          try {
            full = await loadClientConfig(path);
          } catch {
            full = null;
          }
          const fast = await loadClientConfigFast(path);
          if (fast === null) return;
          fastCount++;
          assert.deepEqual(fast, full, text);
        },
      ),
      { numRuns: runs },
    );
    assert.ok(
      fastCount > runs / 2,
      `fast path read only ${fastCount} of ${runs}`,
    );
  });
});

Deno.test("loadClientConfigFast reads a hand-written file with comments and a key seed", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/config.yaml`;
    const seed = encodeBase64(randomBytes(32));
    await writePrivate(
      path,
      [
        "# written by hand",
        "profiles:",
        "  laptop:   # the one I carry",
        "    server_host: 203.0.113.9",
        `    server_pubkey: '${encodeBase64(randomBytes(32))}'`,
        `    private_key: "${seed}"`,
        "",
      ].join("\n"),
    );
    const fast = await loadClientConfigFast(path);
    assert.ok(fast !== null);
    assert.deepEqual(fast, await loadClientConfig(path));
    assert.equal(fast.profiles.get("laptop")?.serverUdpPort, 54154);
    assert.equal(fast.profiles.get("laptop")?.publicKey, null);
  });
});
