import assert from "node:assert/strict";
import {
  generateEd25519KeyPair,
  generateX25519KeyPair,
  prepareEd25519VerifyKey,
  randomBytes,
} from "../../lib/protocol/crypto.ts";
import { encodeHex } from "../../lib/encoding.ts";
import {
  buildKnock,
  type BuildKnockOptions,
  KNOCK_PACKET_BYTES,
  openKnock,
  sealKnock,
  verifyKnockSignature,
} from "../../lib/protocol/packet.ts";
import { KnockVerifier } from "../../lib/server/verifier.ts";
import { buildKnockWeb, sealKnockWeb } from "../../lib/client/web_seal.ts";
import { ip } from "../support/literals.ts";

const NOW_MS = 1_750_000_000_000;
const NOW_NS = BigInt(NOW_MS) * 1_000_000n;
const server = generateX25519KeyPair();
const client = generateEd25519KeyPair();
const seed = client.privateKey.slice(0, 32);

function fixedRandomness(): BuildKnockOptions {
  return {
    ephemeralPrivateKey: randomBytes(32),
    aeadNonce: randomBytes(12),
    replayNonce: randomBytes(16),
    timestampNs: NOW_NS,
  };
}

Deno.test("buildKnockWeb gives the bytes of buildKnock for the same randomness: 64-byte and seed keys, IPv4, IPv6 and no target", async () => {
  const targets = [ip("192.0.2.7"), ip("2001:db8::42"), null, undefined];
  for (const clientPrivateKey of [client.privateKey, seed]) {
    const keys = { serverPublicKey: server.publicKey, clientPrivateKey };
    for (const target of targets) {
      for (let round = 0; round < 5; round++) {
        const options = { ...fixedRandomness(), target };
        const web = await buildKnockWeb(keys, options);
        assert.equal(web.length, KNOCK_PACKET_BYTES);
        assert.equal(encodeHex(web), encodeHex(buildKnock(keys, options)));
      }
    }
  }
});

Deno.test("an unclamped ephemeral key is clamped the same way as buildKnock does", async () => {
  const keys = {
    serverPublicKey: server.publicKey,
    clientPrivateKey: client.privateKey,
  };
  for (const fill of [0x00, 0xff]) {
    const options = {
      ...fixedRandomness(),
      ephemeralPrivateKey: new Uint8Array(32).fill(fill),
    };
    assert.equal(
      encodeHex(await buildKnockWeb(keys, options)),
      encodeHex(buildKnock(keys, options)),
    );
  }
});

Deno.test("sealKnockWeb gives the bytes of sealKnock for the same plaintext and randomness", async () => {
  const keys = { serverPublicKey: server.publicKey, clientPrivateKey: seed };
  const plaintext = {
    timestampNs: -5n,
    replayNonce: randomBytes(16),
    target: ip("198.51.100.200"),
  };
  const options = {
    ephemeralPrivateKey: randomBytes(32),
    aeadNonce: randomBytes(12),
  };
  assert.equal(
    encodeHex(await sealKnockWeb(keys, plaintext, options)),
    encodeHex(sealKnock(keys, plaintext, options)),
  );
});

Deno.test("a buildKnockWeb packet opens with openKnock and verifies under the client key", async () => {
  const packet = await buildKnockWeb(
    { serverPublicKey: server.publicKey, clientPrivateKey: client.privateKey },
    { target: ip("2001:db8:1::5"), timestampNs: NOW_NS },
  );
  const opened = openKnock(packet, server.privateKey);
  assert.notEqual(opened, null);
  assert.equal(opened!.plaintext.timestampNs, NOW_NS);
  assert.deepEqual(opened!.plaintext.target, {
    family: 6,
    text: "2001:db8:1::5",
  });
  assert.equal(
    verifyKnockSignature(
      opened!.packet,
      prepareEd25519VerifyKey(client.publicKey),
    ),
    true,
  );
  assert.equal(openKnock(packet, generateX25519KeyPair().privateKey), null);
});

Deno.test("the server's verifier accepts a buildKnockWeb packet once, then calls it a replay", async () => {
  const verifier = new KnockVerifier({
    serverPrivateKey: server.privateKey,
    replayWindowMs: 60_000,
    clients: [{
      name: "alice",
      verifyKey: prepareEd25519VerifyKey(client.publicKey),
    }],
  });
  const packet = await buildKnockWeb(
    { serverPublicKey: server.publicKey, clientPrivateKey: seed },
    { timestampNs: NOW_NS },
  );
  const source = ip("192.0.2.1");
  const first = verifier.verify(packet, source, { nowMs: NOW_MS });
  assert.equal(first.ok, true);
  assert.equal(first.ok && first.client.name, "alice");
  const again = verifier.verify(packet, source, { nowMs: NOW_MS });
  assert.deepEqual(again, { ok: false, reason: "replay" });
});

Deno.test("buildKnockWeb stamps the current time by default and draws fresh randomness each call", async () => {
  const keys = {
    serverPublicKey: server.publicKey,
    clientPrivateKey: client.privateKey,
  };
  const before = BigInt(Date.now()) * 1_000_000n;
  const a = await buildKnockWeb(keys);
  const b = await buildKnockWeb(keys);
  const after = BigInt(Date.now()) * 1_000_000n;
  assert.notDeepEqual(a.subarray(1, 33), b.subarray(1, 33));
  assert.notDeepEqual(a.subarray(33, 45), b.subarray(33, 45));
  const pa = openKnock(a, server.privateKey)!.plaintext;
  const pb = openKnock(b, server.privateKey)!.plaintext;
  assert.notDeepEqual(pa.replayNonce, pb.replayNonce);
  assert.equal(pa.target, null);
  for (const ts of [pa.timestampNs, pb.timestampNs]) {
    assert.ok(ts >= before && ts <= after, `timestamp ${ts} out of range`);
  }
});

Deno.test("buildKnockWeb rejects bad keys as buildKnock does", async () => {
  const good = {
    serverPublicKey: server.publicKey,
    clientPrivateKey: client.privateKey,
  };
  const corrupt = client.privateKey.slice();
  corrupt[63] ^= 1;
  const badClientKeys = [new Uint8Array(31), new Uint8Array(33), corrupt];
  for (const clientPrivateKey of badClientKeys) {
    const keys = { ...good, clientPrivateKey };
    assert.throws(() => buildKnock(keys), RangeError);
    await assert.rejects(buildKnockWeb(keys), RangeError);
  }
  // Low-order points (all-zero shared secret) and a wrong size.
  const lowOrder = [
    new Uint8Array(32),
    Uint8Array.of(1, ...new Uint8Array(31)),
    new Uint8Array(31),
  ];
  for (const serverPublicKey of lowOrder) {
    const keys = { ...good, serverPublicKey };
    assert.throws(() => buildKnock(keys), RangeError);
    await assert.rejects(buildKnockWeb(keys), RangeError);
  }
  await assert.rejects(
    buildKnockWeb(good, { timestampNs: 2n ** 63n }),
    RangeError,
  );
  await assert.rejects(
    buildKnockWeb(good, { aeadNonce: new Uint8Array(8) }),
    RangeError,
  );
  await assert.rejects(
    buildKnockWeb(good, { replayNonce: new Uint8Array(15) }),
    RangeError,
  );
});

Deno.test("web_seal.ts loads no node: module, directly or through its imports", async () => {
  const url = new URL("../../lib/client/web_seal.ts", import.meta.url);
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", url.href],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  const graph = JSON.parse(new TextDecoder().decode(output.stdout)) as {
    modules: { specifier: string }[];
  };
  const specifiers = graph.modules.map((module) => module.specifier);
  assert.ok(
    specifiers.some((specifier) => specifier.endsWith("/chacha20_poly1305.ts")),
  );
  const nodeModules = specifiers.filter((specifier) =>
    specifier.startsWith("node:")
  );
  assert.deepEqual(nodeModules, [], `node: modules in the graph`);
});
