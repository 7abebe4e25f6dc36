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
  CHACHA_NONCE_BYTES,
  clampX25519Scalar,
  ED25519_SIGNATURE_BYTES,
  ed25519KeyPairFromPrivateKey,
  generateEd25519KeyPair,
  generateX25519KeyPair,
  POLY1305_TAG_BYTES,
  prepareEd25519VerifyKey,
  prepareX25519PrivateKey,
  randomBytes,
  X25519_KEY_BYTES,
} from "../../lib/protocol/crypto.ts";
import { encodeHex } from "../../lib/encoding.ts";
import { IP_BYTES } from "../../lib/ip.ts";
import {
  AEAD_NONCE_BYTES,
  AEAD_NONCE_OFFSET,
  buildKnock,
  CIPHERTEXT_BYTES,
  CIPHERTEXT_OFFSET,
  encodeKnockPlaintext,
  EPHEMERAL_KEY_BYTES,
  EPHEMERAL_KEY_OFFSET,
  KDF_INFO,
  KNOCK_PACKET_BYTES,
  openKnock,
  openKnockPacket,
  parseKnockPacket,
  parseKnockPlaintext,
  PLAINTEXT_BYTES,
  PROTOCOL_VERSION,
  REPLAY_NONCE_BYTES,
  REPLAY_NONCE_OFFSET,
  sealKnock,
  SIGNATURE_BYTES,
  SIGNATURE_OFFSET,
  SIGNED_BYTES,
  TARGET_BYTES,
  TARGET_OFFSET,
  TIMESTAMP_BYTES,
  TIMESTAMP_OFFSET,
  verifyKnockSignature,
  VERSION_BYTES,
  VERSION_OFFSET,
} from "../../lib/protocol/packet.ts";
import { hex, ip } from "../support/literals.ts";

const server = generateX25519KeyPair();
const client = generateEd25519KeyPair();
const keys = {
  serverPublicKey: server.publicKey,
  clientPrivateKey: client.privateKey,
};

Deno.test("packet layout constants add up to 165 bytes and 40-byte plaintext", () => {
  assert.equal(KNOCK_PACKET_BYTES, 165);
  assert.equal(PROTOCOL_VERSION, 1);
  assert.equal(VERSION_OFFSET, 0);
  assert.equal(EPHEMERAL_KEY_OFFSET, VERSION_OFFSET + VERSION_BYTES);
  assert.equal(AEAD_NONCE_OFFSET, EPHEMERAL_KEY_OFFSET + EPHEMERAL_KEY_BYTES);
  assert.equal(CIPHERTEXT_OFFSET, AEAD_NONCE_OFFSET + AEAD_NONCE_BYTES);
  assert.equal(SIGNATURE_OFFSET, CIPHERTEXT_OFFSET + CIPHERTEXT_BYTES);
  assert.equal(SIGNED_BYTES, SIGNATURE_OFFSET);
  assert.equal(SIGNATURE_OFFSET + SIGNATURE_BYTES, KNOCK_PACKET_BYTES);
  assert.deepEqual(
    [
      EPHEMERAL_KEY_OFFSET,
      AEAD_NONCE_OFFSET,
      CIPHERTEXT_OFFSET,
      SIGNATURE_OFFSET,
    ],
    [1, 33, 45, 101],
  );
  assert.equal(PLAINTEXT_BYTES, 40);
  assert.equal(CIPHERTEXT_BYTES, 56);
  assert.equal(REPLAY_NONCE_OFFSET, TIMESTAMP_OFFSET + TIMESTAMP_BYTES);
  assert.equal(TARGET_OFFSET, REPLAY_NONCE_OFFSET + REPLAY_NONCE_BYTES);
  assert.equal(TARGET_OFFSET + TARGET_BYTES, PLAINTEXT_BYTES);
  assert.equal(KDF_INFO, "openme-v1-chacha20poly1305");
  assert.equal(EPHEMERAL_KEY_BYTES, X25519_KEY_BYTES);
  assert.equal(AEAD_NONCE_BYTES, CHACHA_NONCE_BYTES);
  assert.equal(CIPHERTEXT_BYTES, PLAINTEXT_BYTES + POLY1305_TAG_BYTES);
  assert.equal(SIGNATURE_BYTES, ED25519_SIGNATURE_BYTES);
  assert.equal(TARGET_BYTES, IP_BYTES);
});

Deno.test("buildKnock round trip: 165 bytes, version 1, decrypts and verifies", () => {
  const timestampNs = 1_700_000_000_123_456_789n;
  const packet = buildKnock(keys, { target: ip("192.0.2.7"), timestampNs });
  assert.equal(packet.length, 165);
  assert.equal(packet[0], 1);
  const opened = openKnock(packet, server.privateKey);
  assert.notEqual(opened, null);
  assert.equal(opened!.plaintext.timestampNs, timestampNs);
  assert.deepEqual(opened!.plaintext.target, { family: 4, text: "192.0.2.7" });
  assert.equal(opened!.plaintext.replayNonce.length, 16);
  assert.equal(
    verifyKnockSignature(
      opened!.packet,
      prepareEd25519VerifyKey(client.publicKey),
    ),
    true,
  );
  const other = generateEd25519KeyPair();
  assert.equal(
    verifyKnockSignature(
      opened!.packet,
      prepareEd25519VerifyKey(other.publicKey),
    ),
    false,
  );
});

Deno.test("buildKnock carries an IPv6 target as its 16 bytes", () => {
  const packet = buildKnock(keys, { target: ip("2001:db8::42") });
  const opened = openKnock(packet, server.privateKey);
  assert.deepEqual(opened!.plaintext.target, {
    family: 6,
    text: "2001:db8::42",
  });
});

Deno.test("buildKnock with null or absent target sends the wildcard", () => {
  for (const options of [{ target: null }, {}, undefined]) {
    const opened = openKnock(buildKnock(keys, options), server.privateKey);
    assert.notEqual(opened, null);
    assert.equal(opened!.plaintext.target, null);
  }
});

Deno.test("buildKnock stamps the current time in nanoseconds by default", () => {
  const before = BigInt(Date.now()) * 1_000_000n;
  const opened = openKnock(buildKnock(keys), server.privateKey);
  const after = BigInt(Date.now()) * 1_000_000n;
  const ts = opened!.plaintext.timestampNs;
  assert.ok(
    ts >= before && ts <= after,
    `timestamp ${ts} not in [${before}, ${after}]`,
  );
});

Deno.test("every knock has a fresh ephemeral key, AEAD nonce and replay nonce", () => {
  const a = buildKnock(keys);
  const b = buildKnock(keys);
  assert.notDeepEqual(a.subarray(1, 33), b.subarray(1, 33));
  assert.notDeepEqual(a.subarray(33, 45), b.subarray(33, 45));
  const pa = openKnock(a, server.privateKey)!.plaintext;
  const pb = openKnock(b, server.privateKey)!.plaintext;
  assert.notDeepEqual(pa.replayNonce, pb.replayNonce);
});

Deno.test("a bare 32-byte seed and the 64-byte private key give the same signer", () => {
  const seed = client.privateKey.slice(0, 32);
  assert.deepEqual(
    ed25519KeyPairFromPrivateKey(seed).publicKey,
    client.publicKey,
  );
  const verifyKey = prepareEd25519VerifyKey(client.publicKey);
  for (const clientPrivateKey of [seed, client.privateKey]) {
    const packet = buildKnock({
      serverPublicKey: server.publicKey,
      clientPrivateKey,
    });
    const opened = openKnock(packet, server.privateKey);
    assert.notEqual(opened, null);
    assert.equal(verifyKnockSignature(opened!.packet, verifyKey), true);
  }
});

Deno.test("the plaintext encodes a big-endian signed nanosecond timestamp", () => {
  const nonce = randomBytes(16);
  const positive = encodeKnockPlaintext({
    timestampNs: 0x0102030405060708n,
    replayNonce: nonce,
    target: null,
  });
  assert.equal(encodeHex(positive.subarray(0, 8)), "0102030405060708");
  assert.deepEqual(positive.subarray(8, 24), nonce);
  assert.deepEqual(positive.subarray(24, 40), new Uint8Array(16));
  const negative = encodeKnockPlaintext({
    timestampNs: -2n,
    replayNonce: nonce,
    target: null,
  });
  assert.equal(encodeHex(negative.subarray(0, 8)), "fffffffffffffffe");
  assert.equal(parseKnockPlaintext(negative)!.timestampNs, -2n);
  assert.throws(
    () =>
      encodeKnockPlaintext({
        timestampNs: 2n ** 63n,
        replayNonce: nonce,
        target: null,
      }),
    RangeError,
  );
  assert.throws(
    () =>
      encodeKnockPlaintext({
        timestampNs: 0n,
        replayNonce: new Uint8Array(15),
        target: null,
      }),
    RangeError,
  );
});

Deno.test("the plaintext target is IPv4-mapped for IPv4 and raw for IPv6", () => {
  const nonce = new Uint8Array(16);
  const v4 = encodeKnockPlaintext({
    timestampNs: 0n,
    replayNonce: nonce,
    target: ip("198.51.100.9"),
  });
  assert.equal(encodeHex(v4.subarray(24)), "00000000000000000000ffffc6336409");
  const v6 = encodeKnockPlaintext({
    timestampNs: 0n,
    replayNonce: nonce,
    target: ip("2001:db8::1"),
  });
  assert.equal(encodeHex(v6.subarray(24)), "20010db8000000000000000000000001");
  assert.deepEqual(parseKnockPlaintext(v4)!.target, {
    family: 4,
    text: "198.51.100.9",
  });
  assert.deepEqual(parseKnockPlaintext(v6)!.target, {
    family: 6,
    text: "2001:db8::1",
  });
});

Deno.test("parseKnockPlaintext reads ::ffff:0.0.0.0 and all zero as the wildcard", () => {
  const mappedZero = new Uint8Array(40);
  mappedZero[34] = 0xff;
  mappedZero[35] = 0xff;
  assert.equal(parseKnockPlaintext(mappedZero)!.target, null);
  assert.equal(parseKnockPlaintext(new Uint8Array(40))!.target, null);
  assert.equal(parseKnockPlaintext(new Uint8Array(39)), null);
  assert.equal(parseKnockPlaintext(new Uint8Array(41)), null);
});

Deno.test("parseKnockPacket refuses wrong sizes and versions and splits fields", () => {
  const packet = buildKnock(keys);
  assert.equal(parseKnockPacket(packet.subarray(0, 164)), null);
  assert.equal(parseKnockPacket(new Uint8Array(166)), null);
  const v2 = packet.slice();
  v2[0] = 2;
  assert.equal(parseKnockPacket(v2), null);
  const parsed = parseKnockPacket(packet)!;
  assert.equal(parsed.version, 1);
  assert.deepEqual(parsed.ephemeralPublicKey, packet.subarray(1, 33));
  assert.deepEqual(parsed.aeadNonce, packet.subarray(33, 45));
  assert.deepEqual(parsed.ciphertext, packet.subarray(45, 101));
  assert.deepEqual(parsed.signedBytes, packet.subarray(0, 101));
  assert.deepEqual(parsed.signature, packet.subarray(101, 165));
});

Deno.test("openKnock fails with another server key or a low-order ephemeral key", () => {
  const packet = buildKnock(keys);
  assert.equal(openKnock(packet, generateX25519KeyPair().privateKey), null);
  const lowOrder = packet.slice();
  lowOrder.fill(0, 1, 33);
  assert.equal(openKnock(lowOrder, server.privateKey), null);
  const parsed = parseKnockPacket(lowOrder)!;
  assert.equal(
    openKnockPacket(parsed, prepareX25519PrivateKey(server.privateKey)),
    null,
  );
});

Deno.test("sealKnock keeps the given plaintext exactly", () => {
  const replayNonce = randomBytes(16);
  const packet = sealKnock(keys, {
    timestampNs: 42n,
    replayNonce,
    target: ip("2001:db8:1:2::3"),
  });
  const plaintext = openKnock(packet, server.privateKey)!.plaintext;
  assert.equal(plaintext.timestampNs, 42n);
  assert.deepEqual(plaintext.replayNonce, replayNonce);
  assert.deepEqual(plaintext.target, { family: 6, text: "2001:db8:1:2::3" });
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
  const opened = openKnock(packet, server.privateKey);
  assert.notEqual(opened, null);
  assert.equal(opened!.plaintext.timestampNs, 0x17a1b2c3d4e5f607n);
  assert.equal(
    encodeHex(opened!.plaintext.replayNonce),
    "000102030405060708090a0b0c0d0e0f",
  );
  assert.deepEqual(opened!.plaintext.target, { family: 4, text: "192.0.2.99" });
  assert.equal(
    verifyKnockSignature(
      opened!.packet,
      prepareEd25519VerifyKey(client.publicKey),
    ),
    true,
  );
});

Deno.test("a knock from buildKnock decrypts with an independent SPEC §1 implementation", () => {
  const target = ip("203.0.113.5");
  const packet = buildKnock(keys, { target, timestampNs: 5n });
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
    {
      authTagLength: 16,
    },
  );
  decipher.setAuthTag(packet.subarray(85, 101));
  const plain = Buffer.concat([
    decipher.update(packet.subarray(45, 85)),
    decipher.final(),
  ]);
  assert.equal(plain.length, 40);
  assert.equal(encodeHex(plain.subarray(0, 8)), "0000000000000005");
  assert.equal(
    encodeHex(plain.subarray(24, 40)),
    "00000000000000000000ffffcb007105",
  );
});
