/**
 * A profile's `target_ip`: the address its knocks ask the server to open
 * (binding a knock to an address, for servers with
 * `require_explicit_target`), overridden by `knock --ip`.
 */

import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { join } from "node:path";
import { parseClientConfig } from "../../lib/config/client_config.ts";
import {
  generateEd25519KeyPair,
  generateX25519KeyPair,
  prepareX25519PrivateKey,
} from "../../lib/protocol/crypto.ts";
import {
  openKnockPacket,
  parseKnockPacket,
} from "../../lib/protocol/packet.ts";
import { openme } from "../support/cli.ts";
import { withTempDir } from "../support/files.ts";

const server = generateX25519KeyPair();
const client = generateEd25519KeyPair();

function profileText(port: number, targetIp: string): string {
  return [
    "profiles:",
    "  default:",
    "    server_host: 127.0.0.1",
    `    server_udp_port: ${port}`,
    `    server_pubkey: ${server.publicKey.toBase64()}`,
    `    private_key: ${client.privateKey.toBase64()}`,
    `    public_key: ${client.publicKey.toBase64()}`,
    `    target_ip: ${targetIp}`,
    "",
  ].join("\n");
}

Deno.test("target_ip is read as an address, and anything else is refused at its line", () => {
  const config = parseClientConfig(profileText(54154, "2001:DB8::20"), {
    path: "c.yaml",
  });
  assert.deepEqual(config.profiles.get("default")?.targetIp, {
    family: 6,
    text: "2001:db8::20",
  });
  assert.throws(
    () => parseClientConfig(profileText(54154, "myhost"), { path: "c.yaml" }),
    {
      message:
        /^config c\.yaml:8: profiles\.default\.target_ip: not an IP address: "myhost"/,
    },
  );
});

Deno.test("knock asks for the profile's target_ip, and --ip overrides it", async () => {
  await withTempDir("openme-target-ip-", async (dir) => {
    const socket = createSocket("udp4");
    const received: Uint8Array[] = [];
    socket.on("message", (msg) => received.push(new Uint8Array(msg)));
    await new Promise<void>((r) => socket.bind(0, "127.0.0.1", () => r()));
    try {
      const port = socket.address().port;
      const path = join(dir, "client.yaml");
      await Deno.writeTextFile(path, profileText(port, "198.51.100.20"), {
        mode: 0o600,
      });
      const first = await openme(["--client-config", path, "knock"]);
      assert.equal(first.code, 0, first.err);
      assert.equal(
        first.out,
        `knocked 127.0.0.1:${port} to open for 198.51.100.20`,
      );
      const second = await openme([
        "--client-config",
        path,
        "knock",
        "--ip",
        "192.0.2.7",
      ]);
      assert.equal(
        second.out,
        `knocked 127.0.0.1:${port} to open for 192.0.2.7`,
      );
      const deadline = Date.now() + 20_000;
      while (received.length < 2 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const key = prepareX25519PrivateKey(server.privateKey);
      const targets = received.map((datagram) =>
        openKnockPacket(parseKnockPacket(datagram)!, key)?.target?.text
      );
      assert.deepEqual(targets, ["198.51.100.20", "192.0.2.7"]);
    } finally {
      await new Promise<void>((r) => socket.close(() => r()));
    }
  });
});
