import assert from "node:assert/strict";
import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hkdfSync,
  sign,
} from "node:crypto";
import { Buffer } from "node:buffer";
import {
  clampX25519Scalar,
  ed25519KeyPairFromPrivateKey,
  generateEd25519KeyPair,
  generateX25519KeyPair,
  prepareEd25519VerifyKey,
  prepareX25519PrivateKey,
  randomBytes,
} from "../../lib/protocol/crypto.ts";
import {
  buildKnock,
  type KnockPacket,
  type KnockPlaintext,
  openKnockPacket,
  parseKnockPacket,
  sealKnock,
  verifyKnockSignature,
} from "../../lib/protocol/packet.ts";
import { hex, ip } from "../support/literals.ts";

const server = generateX25519KeyPair();
const serverKey = prepareX25519PrivateKey(server.privateKey);
const client = generateEd25519KeyPair();
const keys = {
  serverPublicKey: server.publicKey,
  clientPrivateKey: client.privateKey,
};

/** Parses and decrypts a datagram with the test server's key. */
function open(
  datagram: Uint8Array,
): { packet: KnockPacket; plaintext: KnockPlaintext } | null {
  const packet = parseKnockPacket(datagram);
  if (packet === null) return null;
  const plaintext = openKnockPacket(packet, serverKey);
  return plaintext === null ? null : { packet, plaintext };
}

Deno.test("buildKnock round trip: 165 bytes, version 1, decrypts and verifies under the client's key only", () => {
  const timestampNs = 1_700_000_000_123_456_789n;
  const packet = buildKnock(keys, { target: ip("192.0.2.7"), timestampNs });
  assert.equal(packet.length, 165);
  assert.equal(packet[0], 1);
  const opened = open(packet)!;
  assert.equal(opened.plaintext.timestampNs, timestampNs);
  assert.deepEqual(opened.plaintext.target, { family: 4, text: "192.0.2.7" });
  assert.equal(opened.plaintext.replayNonce.length, 16);
  const verifyKey = prepareEd25519VerifyKey(client.publicKey);
  assert.equal(verifyKnockSignature(opened.packet, verifyKey), true);
  const other = prepareEd25519VerifyKey(generateEd25519KeyPair().publicKey);
  assert.equal(verifyKnockSignature(opened.packet, other), false);
});

Deno.test("buildKnock carries an IPv6 target, and null or no target as the wildcard", () => {
  const v6 = open(buildKnock(keys, { target: ip("2001:db8::42") }))!;
  assert.deepEqual(v6.plaintext.target, { family: 6, text: "2001:db8::42" });
  for (const options of [{ target: null }, {}, undefined]) {
    assert.equal(open(buildKnock(keys, options))!.plaintext.target, null);
  }
});

Deno.test("buildKnock stamps the current time in nanoseconds by default", () => {
  const before = BigInt(Date.now()) * 1_000_000n;
  const ts = open(buildKnock(keys))!.plaintext.timestampNs;
  const after = BigInt(Date.now()) * 1_000_000n;
  assert.ok(ts >= before && ts <= after, `${ts} not in [${before}, ${after}]`);
});

Deno.test("every knock has a fresh ephemeral key, AEAD nonce and replay nonce", () => {
  const a = buildKnock(keys);
  const b = buildKnock(keys);
  assert.notDeepEqual(a.subarray(1, 33), b.subarray(1, 33));
  assert.notDeepEqual(a.subarray(33, 45), b.subarray(33, 45));
  assert.notDeepEqual(
    open(a)!.plaintext.replayNonce,
    open(b)!.plaintext.replayNonce,
  );
});

Deno.test("a bare 32-byte seed and the 64-byte private key give the same signer", () => {
  const seed = client.privateKey.slice(0, 32);
  assert.deepEqual(
    ed25519KeyPairFromPrivateKey(seed).publicKey,
    client.publicKey,
  );
  const verifyKey = prepareEd25519VerifyKey(client.publicKey);
  for (const clientPrivateKey of [seed, client.privateKey]) {
    const packet = buildKnock({ ...keys, clientPrivateKey });
    assert.equal(verifyKnockSignature(open(packet)!.packet, verifyKey), true);
  }
});

Deno.test("sealKnock keeps the given plaintext exactly, negative timestamps included", () => {
  for (const timestampNs of [42n, -2n, 2n ** 63n - 1n, -(2n ** 63n)]) {
    const plaintext = {
      timestampNs,
      replayNonce: randomBytes(16),
      target: ip("2001:db8:1:2::3"),
    };
    assert.deepEqual(open(sealKnock(keys, plaintext))!.plaintext, plaintext);
  }
});

Deno.test("sealKnock refuses a timestamp beyond 64 bits and a replay nonce of the wrong size", () => {
  const base = {
    timestampNs: 0n,
    replayNonce: new Uint8Array(16),
    target: null,
  };
  assert.throws(
    () => sealKnock(keys, { ...base, timestampNs: 2n ** 63n }),
    /does not fit a signed 64-bit integer/,
  );
  assert.throws(
    () => sealKnock(keys, { ...base, replayNonce: new Uint8Array(15) }),
    /replay nonce: expected 16 bytes, got 15/,
  );
});

Deno.test("parseKnockPacket refuses wrong sizes and versions and splits fields", () => {
  const packet = buildKnock(keys);
  assert.equal(parseKnockPacket(packet.subarray(0, 164)), null);
  assert.equal(parseKnockPacket(new Uint8Array(166)), null);
  const v2 = packet.slice();
  v2[0] = 2;
  assert.equal(parseKnockPacket(v2), null);
  const parsed = parseKnockPacket(packet)!;
  assert.deepEqual(parsed.ephemeralPublicKey, packet.subarray(1, 33));
  assert.deepEqual(parsed.aeadNonce, packet.subarray(33, 45));
  assert.deepEqual(parsed.ciphertext, packet.subarray(45, 101));
  assert.deepEqual(parsed.signedBytes, packet.subarray(0, 101));
  assert.deepEqual(parsed.signature, packet.subarray(101, 165));
});

Deno.test("openKnockPacket returns null for another server key, a low-order ephemeral key or a changed ciphertext", () => {
  const packet = buildKnock(keys);
  const otherServer = prepareX25519PrivateKey(
    generateX25519KeyPair().privateKey,
  );
  assert.equal(openKnockPacket(parseKnockPacket(packet)!, otherServer), null);
  const lowOrder = packet.slice();
  lowOrder.fill(0, 1, 33);
  assert.equal(open(lowOrder), null);
  const changed = packet.slice();
  changed[60] ^= 1;
  assert.equal(open(changed), null);
});

/** Assembles a knock straight from SPEC §1 with node:crypto, with fixed randomness. */
function assembleKnockFromSpec(
  serverPublicKey: Uint8Array,
  clientSeed: Uint8Array,
  ephemeralRandom: Uint8Array,
  aeadNonce: Uint8Array,
  plaintext: Uint8Array,
): Uint8Array {
  const ephemeralPrivate = clampX25519Scalar(ephemeralRandom);
  const ephemeralObject = createPrivateKey({
    key: Buffer.concat([
      Buffer.from("302e020100300506032b656e04220420", "hex"),
      ephemeralPrivate,
    ]),
    format: "der",
    type: "pkcs8",
  });
  const ephemeralPublic = createPublicKey(ephemeralObject)
    .export({ format: "der", type: "spki" })
    .subarray(12);
  const serverObject = createPublicKey({
    key: Buffer.concat([
      Buffer.from("302a300506032b656e032100", "hex"),
      serverPublicKey,
    ]),
    format: "der",
    type: "spki",
  });
  const shared = diffieHellman({
    privateKey: ephemeralObject,
    publicKey: serverObject,
  });
  const key = new Uint8Array(
    hkdfSync(
      "sha256",
      shared,
      new Uint8Array(32),
      "openme-v1-chacha20poly1305",
      32,
    ),
  );
  const cipher = createCipheriv("chacha20-poly1305", key, aeadNonce, {
    authTagLength: 16,
  });
  const ciphertext = Buffer.concat([
    cipher.update(plaintext),
    cipher.final(),
    cipher.getAuthTag(),
  ]);
  const head = Buffer.concat([
    Buffer.from([1]),
    ephemeralPublic,
    aeadNonce,
    ciphertext,
  ]);
  const signer = createPrivateKey({
    key: Buffer.concat([
      Buffer.from("302e020100300506032b657004220420", "hex"),
      clientSeed,
    ]),
    format: "der",
    type: "pkcs8",
  });
  const signature = sign(null, head, signer);
  return new Uint8Array(Buffer.concat([head, signature]));
}

Deno.test("a knock assembled independently from SPEC §1 opens and verifies", () => {
  const plaintext = hex(
    "17a1b2c3d4e5f607" + "000102030405060708090a0b0c0d0e0f" +
      "00000000000000000000ffffc0000263",
  );
  const packet = assembleKnockFromSpec(
    server.publicKey,
    client.privateKey.subarray(0, 32),
    randomBytes(32),
    hex("0102030405060708090a0b0c"),
    plaintext,
  );
  assert.equal(packet.length, 165);
  const opened = open(packet)!;
  assert.equal(opened.plaintext.timestampNs, 0x17a1b2c3d4e5f607n);
  assert.equal(
    opened.plaintext.replayNonce.toHex(),
    "000102030405060708090a0b0c0d0e0f",
  );
  assert.deepEqual(opened.plaintext.target, { family: 4, text: "192.0.2.99" });
  assert.equal(
    verifyKnockSignature(
      opened.packet,
      prepareEd25519VerifyKey(client.publicKey),
    ),
    true,
  );
});

Deno.test("a target of all zero bytes or ::ffff:0.0.0.0 means the packet's source address", () => {
  for (const target of ["00".repeat(16), "00".repeat(10) + "ffff00000000"]) {
    const packet = assembleKnockFromSpec(
      server.publicKey,
      client.privateKey.subarray(0, 32),
      randomBytes(32),
      randomBytes(12),
      hex("0000000000000001" + "00".repeat(16) + target),
    );
    assert.equal(open(packet)!.plaintext.target, null, target);
  }
});

/** Decrypts a knock's plaintext straight from SPEC §1 with node:crypto. */
function decryptFromSpec(packet: Uint8Array): Uint8Array {
  const serverObject = createPrivateKey({
    key: Buffer.concat([
      Buffer.from("302e020100300506032b656e04220420", "hex"),
      server.privateKey,
    ]),
    format: "der",
    type: "pkcs8",
  });
  const ephemeralObject = createPublicKey({
    key: Buffer.concat([
      Buffer.from("302a300506032b656e032100", "hex"),
      packet.subarray(1, 33),
    ]),
    format: "der",
    type: "spki",
  });
  const shared = diffieHellman({
    privateKey: serverObject,
    publicKey: ephemeralObject,
  });
  const key = new Uint8Array(
    hkdfSync(
      "sha256",
      shared,
      new Uint8Array(32),
      "openme-v1-chacha20poly1305",
      32,
    ),
  );
  const decipher = createDecipheriv(
    "chacha20-poly1305",
    key,
    packet.subarray(33, 45),
    { authTagLength: 16 },
  );
  decipher.setAuthTag(packet.subarray(85, 101));
  return new Uint8Array(Buffer.concat([
    decipher.update(packet.subarray(45, 85)),
    decipher.final(),
  ]));
}

Deno.test("a knock from sealKnock decrypts with an independent SPEC §1 implementation to the SPEC's plaintext bytes", () => {
  const replayNonce = hex("000102030405060708090a0b0c0d0e0f");
  const v4 = decryptFromSpec(
    sealKnock(keys, {
      timestampNs: 5n,
      replayNonce,
      target: ip("203.0.113.5"),
    }),
  );
  assert.equal(
    v4.toHex(),
    "0000000000000005" + "000102030405060708090a0b0c0d0e0f" +
      "00000000000000000000ffffcb007105",
  );
  const v6 = decryptFromSpec(
    sealKnock(keys, {
      timestampNs: -2n,
      replayNonce,
      target: ip("2001:db8::1"),
    }),
  );
  assert.equal(v6.subarray(0, 8).toHex(), "fffffffffffffffe");
  assert.equal(v6.subarray(24).toHex(), "20010db8000000000000000000000001");
  const wildcard = decryptFromSpec(buildKnock(keys));
  assert.equal(wildcard.subarray(24).toHex(), "00".repeat(16));
});
