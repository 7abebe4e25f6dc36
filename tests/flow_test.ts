/**
 * The whole admin-to-knock flow in-process: `openme init` → `openme add` →
 * the printed client block parsed as a client config → a knock built from it
 * → the server-side verifier, built from the loaded server config, accepts it
 * for the right client; the client's effective ports are the ones granted.
 */
import assert from "node:assert/strict";
import {
  type ClientProfile,
  parseClientConfig,
} from "../lib/config/client_config.ts";
import { formatPortRange } from "../lib/config/ports.ts";
import {
  loadServerConfig,
  type ServerConfig,
} from "../lib/config/server_config.ts";
import {
  generateX25519KeyPair,
  keyFingerprint,
} from "../lib/protocol/crypto.ts";
import { parseIp } from "../lib/ip.ts";
import { setLogSink } from "../lib/log.ts";
import { buildKnock, KNOCK_PACKET_BYTES } from "../lib/protocol/packet.ts";
import { KnockVerifier, type VerifierClient } from "../lib/server/verifier.ts";
import { openmeOk, withServerConfig } from "./support/cli.ts";

setLogSink(() => {});

const SOURCE = parseIp("198.51.100.20")!;

/** The verifier's view of the config's valid clients. */
function verifierClients(config: ServerConfig): VerifierClient[] {
  return config.clients.map((c) => ({
    name: c.name,
    publicKey: c.ed25519PublicKey,
    expires: c.expires,
  }));
}

/** A verifier as `openme serve` builds one: server key, replay window and every valid client. */
function verifierFor(config: ServerConfig): KnockVerifier {
  return new KnockVerifier({
    serverPrivateKey: config.privateKey,
    replayWindowMs: config.replayWindowMs,
    clients: verifierClients(config),
  });
}

/** Runs `openme add` and parses the printed block as a client config. */
async function addClient(
  path: string,
  args: string[],
): Promise<{ profile: ClientProfile; fingerprint: string }> {
  const result = await openmeOk(["--config", path, "add", ...args]);
  assert.equal(result.out.split("\n")[0], "profiles:");
  const config = parseClientConfig(result.out, { path: `${args[0]}.yaml` });
  assert.equal(config.profiles.size, 1);
  const profile = [...config.profiles.values()][0];
  const fingerprint = /^# fingerprint: ([0-9a-f]{16})$/m.exec(result.out)?.[1];
  assert.ok(fingerprint !== undefined, result.out);
  return { profile, fingerprint };
}

/** Runs fn with a fresh `openme init` config (knock port 40000, in etc/openme/ of a temp dir) that also has a devops port group. */
async function withServer(fn: (path: string) => Promise<void>): Promise<void> {
  await withServerConfig({
    prefix: "openme-flow-",
    file: "etc/openme/config.yaml",
    initArgs: ["--server", "vpn.example.com", "--port", "40000"],
    edit: (text) => {
      const edited = text.replace(
        "  default: [22/tcp]\n",
        "  default: [22/tcp]\n  devops: [22/tcp, 443/tcp, 8080-8090/tcp]\n",
      );
      assert.notEqual(edited, text);
      return edited;
    },
  }, fn);
}

function knockFrom(
  profile: ClientProfile,
  target: string | null = null,
): Uint8Array {
  return buildKnock(
    {
      serverPublicKey: profile.serverPublicKey,
      clientPrivateKey: profile.privateKey,
    },
    { target: target === null ? null : parseIp(target) },
  );
}

Deno.test("init → add → knock from the printed block → the verifier accepts it for that client", async () => {
  await withServer(async (path) => {
    const alice = await addClient(path, ["alice"]);
    const bob = await addClient(path, ["bob", "--ports", "devops,2222/tcp"]);
    const config = await loadServerConfig(path);
    assert.equal(alice.profile.serverHost, "vpn.example.com");
    assert.equal(alice.profile.serverUdpPort, config.udpPort);
    assert.equal(keyFingerprint(bob.profile.publicKey!), bob.fingerprint);

    const verifier = verifierFor(config);
    const packet = knockFrom(bob.profile);
    assert.equal(packet.length, KNOCK_PACKET_BYTES);
    const result = await verifier.verify(packet, SOURCE);
    assert.ok(result.ok, result.ok ? "" : `rejected: ${result.reason}`);
    assert.equal(result.client.name, "bob");
    assert.deepEqual(result.target, SOURCE, "wildcard target means the source");

    const fromAlice = await verifier.verify(knockFrom(alice.profile), SOURCE);
    assert.ok(fromAlice.ok);
    assert.equal(fromAlice.client.name, "alice");
  });
});

Deno.test("the clients' effective ports come from their groups and specs", async () => {
  await withServer(async (path) => {
    await addClient(path, ["alice"]);
    await addClient(path, ["bob", "--ports", "devops,2222/tcp"]);
    const config = await loadServerConfig(path);
    const ports = new Map(
      config.clients.map((c) => [c.name, c.ports.map(formatPortRange)]),
    );
    assert.deepEqual(ports.get("alice"), ["22/tcp"]);
    assert.deepEqual(
      [...ports.get("bob")!].sort(),
      ["22/tcp", "443/tcp", "2222/tcp", "8080-8090/tcp"].sort(),
    );
    assert.equal(
      config.healthPort,
      40000,
      "the health port is opened besides them",
    );
    for (const c of config.clients) {
      assert.ok(
        !c.ports.some((p) => p.port === 40000),
        "health port not in the client's own ports",
      );
      assert.equal(c.disableHealthPort, false);
    }
  });
});

Deno.test("a knock for an explicit --ip target is accepted for that address", async () => {
  await withServer(async (path) => {
    const { profile } = await addClient(path, ["alice"]);
    const verifier = verifierFor(await loadServerConfig(path));
    const result = await verifier.verify(
      knockFrom(profile, "203.0.113.9"),
      SOURCE,
    );
    assert.ok(result.ok);
    assert.equal(result.target.text, "203.0.113.9");
    const v6 = await verifier.verify(knockFrom(profile, "2001:db8::9"), SOURCE);
    assert.ok(v6.ok);
    assert.equal(v6.target.text, "2001:db8::9");
  });
});

Deno.test("the same packet twice: accepted once, then a replay", async () => {
  await withServer(async (path) => {
    const { profile } = await addClient(path, ["alice"]);
    const verifier = verifierFor(await loadServerConfig(path));
    const packet = knockFrom(profile);
    assert.ok((await verifier.verify(packet, SOURCE)).ok);
    assert.deepEqual(await verifier.verify(packet, SOURCE), {
      ok: false,
      reason: "replay",
    });
  });
});

Deno.test("after revoke, the reloaded verifier refuses the client's knocks", async () => {
  await withServer(async (path) => {
    const alice = await addClient(path, ["alice"]);
    const bob = await addClient(path, ["bob"]);
    const verifier = verifierFor(await loadServerConfig(path));
    assert.ok((await verifier.verify(knockFrom(alice.profile), SOURCE)).ok);
    await openmeOk(["--config", path, "revoke", "alice"]);
    verifier.setClients(verifierClients(await loadServerConfig(path)));
    assert.deepEqual(await verifier.verify(knockFrom(alice.profile), SOURCE), {
      ok: false,
      reason: "unknown_client",
    });
    const stillOk = await verifier.verify(knockFrom(bob.profile), SOURCE);
    assert.ok(stillOk.ok);
    assert.equal(stillOk.client.name, "bob");
  });
});

Deno.test("a client block from another server's init does not open this one", async () => {
  await withServer(async (path) => {
    const { profile } = await addClient(path, ["alice"]);
    const config = await loadServerConfig(path);
    const otherServer = generateX25519KeyPair();
    const foreign = buildKnock({
      serverPublicKey: otherServer.publicKey,
      clientPrivateKey: profile.privateKey,
    });
    assert.deepEqual(await verifierFor(config).verify(foreign, SOURCE), {
      ok: false,
      reason: "decrypt",
    });
  });
});

Deno.test("a client added with an expiry is accepted before it and refused after it", async () => {
  await withServer(async (path) => {
    const { profile } = await addClient(path, [
      "temp",
      "--expires",
      "2099-01-01T00:00:00Z",
    ]);
    const config = await loadServerConfig(path);
    const verifier = verifierFor(config);
    const expiresMs = Date.parse("2099-01-01T00:00:00Z");
    const stamp = (ms: number) => BigInt(ms) * 1_000_000n;
    const before = buildKnock(
      {
        serverPublicKey: profile.serverPublicKey,
        clientPrivateKey: profile.privateKey,
      },
      { timestampNs: stamp(expiresMs - 1000) },
    );
    assert.ok(
      (await verifier.verify(before, SOURCE, { nowMs: expiresMs - 1000 })).ok,
    );
    const after = buildKnock(
      {
        serverPublicKey: profile.serverPublicKey,
        clientPrivateKey: profile.privateKey,
      },
      { timestampNs: stamp(expiresMs + 1000) },
    );
    assert.deepEqual(
      await verifier.verify(after, SOURCE, { nowMs: expiresMs + 1000 }),
      {
        ok: false,
        reason: "expired",
      },
    );
  });
});
