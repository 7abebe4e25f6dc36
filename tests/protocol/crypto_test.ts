import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  chacha20Poly1305Open,
  chacha20Poly1305Seal,
  clampX25519Scalar,
  ed25519KeyPairFromPrivateKey,
  ed25519Sign,
  ed25519Verify,
  generateEd25519KeyPair,
  generateX25519KeyPair,
  hkdfSha256,
  keyFingerprint,
  prepareEd25519VerifyKey,
  prepareX25519PrivateKey,
  randomBytes,
  x25519PublicKey,
  x25519SharedSecret,
} from "../../lib/protocol/crypto.ts";
import { hex } from "../support/literals.ts";

/** X25519 of a raw private scalar and a public key, as hex. */
function x25519(privateKey: Uint8Array, publicKey: Uint8Array): string {
  return x25519SharedSecret(prepareX25519PrivateKey(privateKey), publicKey)
    .toHex();
}

// RFC 7748 §6.1
const ALICE_PRIVATE = hex(
  "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
);
const ALICE_PUBLIC =
  "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
const BOB_PRIVATE = hex(
  "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
);
const BOB_PUBLIC =
  "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
const SHARED =
  "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";

// RFC 8032 §7.1 TEST 1
const ED_SECRET = hex(
  "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
);
const ED_PUBLIC =
  "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const ED_SIGNATURE =
  "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065" +
  "224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

Deno.test("X25519 public keys and shared secret match RFC 7748 §6.1, raw and clamped", () => {
  assert.equal(x25519PublicKey(ALICE_PRIVATE).toHex(), ALICE_PUBLIC);
  assert.equal(x25519PublicKey(BOB_PRIVATE).toHex(), BOB_PUBLIC);
  assert.equal(x25519(ALICE_PRIVATE, hex(BOB_PUBLIC)), SHARED);
  assert.equal(x25519(BOB_PRIVATE, hex(ALICE_PUBLIC)), SHARED);
  const aliceClamped = clampX25519Scalar(ALICE_PRIVATE);
  assert.notDeepEqual(aliceClamped, ALICE_PRIVATE); // the vector is unclamped
  assert.equal(x25519PublicKey(aliceClamped).toHex(), ALICE_PUBLIC);
  assert.equal(x25519(aliceClamped, hex(BOB_PUBLIC)), SHARED);
});

Deno.test("X25519 matches RFC 7748 §5.2 first test vector (unclamped scalar)", () => {
  const scalar = hex(
    "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
  );
  const u = hex(
    "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
  );
  assert.equal(
    x25519(scalar, u),
    "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
  );
});

Deno.test("clampX25519Scalar clears and sets the RFC 7748 bits and copies", () => {
  const input = new Uint8Array(32).fill(0xff);
  const out = clampX25519Scalar(input);
  assert.equal(out[0], 0xf8);
  assert.equal(out[31], 0x7f);
  for (let i = 1; i < 31; i++) assert.equal(out[i], 0xff);
  assert.equal(input[0], 0xff, "input must not be modified");
  assert.equal(clampX25519Scalar(new Uint8Array(32))[31], 0x40);
  assert.throws(() => clampX25519Scalar(new Uint8Array(31)), RangeError);
});

Deno.test("generated X25519 key pairs are clamped, fresh and agree on a secret", () => {
  const a = generateX25519KeyPair();
  const b = generateX25519KeyPair();
  assert.deepEqual(a.privateKey, clampX25519Scalar(a.privateKey));
  assert.deepEqual(a.publicKey, x25519PublicKey(a.privateKey));
  assert.equal(
    x25519(a.privateKey, b.publicKey),
    x25519(b.privateKey, a.publicKey),
  );
  assert.notDeepEqual(a.privateKey, b.privateKey);
});

Deno.test("X25519 refuses low-order public keys that give an all-zero secret", () => {
  const one = new Uint8Array(32);
  one[0] = 1;
  for (const lowOrder of [new Uint8Array(32), one]) {
    assert.throws(() => x25519(ALICE_PRIVATE, lowOrder), RangeError);
  }
});

Deno.test("X25519 rejects keys of the wrong length with a clear error", () => {
  assert.throws(
    () => x25519PublicKey(new Uint8Array(31)),
    /X25519 private key: expected 32 bytes, got 31 bytes/,
  );
  assert.throws(
    () => x25519(ALICE_PRIVATE, new Uint8Array(33)),
    /X25519 public key: expected 32 bytes, got 33 bytes/,
  );
});

Deno.test("Ed25519 matches RFC 8032 §7.1 TEST 1 (seed and 64-byte forms)", () => {
  const pair = ed25519KeyPairFromPrivateKey(ED_SECRET);
  assert.equal(pair.publicKey.toHex(), ED_PUBLIC);
  assert.equal(pair.privateKey.toHex(), ED_SECRET.toHex() + ED_PUBLIC);
  const empty = new Uint8Array(0);
  assert.equal(ed25519Sign(ED_SECRET, empty).toHex(), ED_SIGNATURE);
  assert.equal(ed25519Sign(pair.privateKey, empty).toHex(), ED_SIGNATURE);
  const key = prepareEd25519VerifyKey(hex(ED_PUBLIC));
  assert.equal(ed25519Verify(key, empty, hex(ED_SIGNATURE)), true);
});

Deno.test("Ed25519 verify rejects a changed message, signature or key", () => {
  const key = prepareEd25519VerifyKey(hex(ED_PUBLIC));
  const signature = hex(ED_SIGNATURE);
  const empty = new Uint8Array(0);
  assert.equal(ed25519Verify(key, new Uint8Array([0]), signature), false);
  for (const index of [0, 31, 32, 63]) {
    const bad = signature.slice();
    bad[index] ^= 1;
    assert.equal(ed25519Verify(key, empty, bad), false);
  }
  assert.equal(ed25519Verify(key, empty, signature.subarray(0, 63)), false);
  const other = prepareEd25519VerifyKey(generateEd25519KeyPair().publicKey);
  assert.equal(ed25519Verify(other, empty, signature), false);
});

Deno.test("Ed25519 refuses a 64-byte key whose public half does not match its seed, and other sizes", () => {
  const corrupt = generateEd25519KeyPair().privateKey.slice();
  corrupt[40] ^= 1;
  assert.throws(() => ed25519KeyPairFromPrivateKey(corrupt), /corrupt/);
  assert.throws(() => ed25519Sign(corrupt, new Uint8Array(1)), /corrupt/);
  assert.throws(
    () => ed25519KeyPairFromPrivateKey(new Uint8Array(48)),
    /expected 32 bytes \(seed\) or 64 bytes/,
  );
});

Deno.test("generated Ed25519 key pairs sign and verify", () => {
  const pair = generateEd25519KeyPair();
  assert.equal(pair.privateKey.length, 64);
  assert.deepEqual(pair.privateKey.subarray(32), pair.publicKey);
  const message = new TextEncoder().encode("knock knock");
  const signature = ed25519Sign(pair.privateKey, message);
  assert.equal(
    ed25519Verify(prepareEd25519VerifyKey(pair.publicKey), message, signature),
    true,
  );
});

Deno.test("prepareEd25519VerifyKey explains a key of the wrong size or not on the curve", () => {
  assert.throws(
    () => prepareEd25519VerifyKey(new Uint8Array(31)),
    /Ed25519 public key: expected 32 bytes, got 31 bytes/,
  );
  const notAPoint = new Uint8Array(32);
  notAPoint[0] = 2; // y = 2 has no x on edwards25519
  assert.throws(
    () => prepareEd25519VerifyKey(notAPoint),
    /Ed25519 public key 02000000.* is not a valid curve point/,
  );
});

Deno.test("HKDF-SHA256 with the default salt matches RFC 5869 test case 3", () => {
  const okm = hkdfSha256(new Uint8Array(22).fill(0x0b), {
    info: new Uint8Array(0),
    length: 42,
  });
  assert.equal(
    okm.toHex(),
    "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d" +
      "9d201395faa4b61a96c8",
  );
});

// RFC 8439 §2.8.2
const AEAD_KEY = hex(
  "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
);
const AEAD_NONCE = hex("070000004041424344454647");
const AEAD_AAD = hex("50515253c0c1c2c3c4c5c6c7");
const AEAD_PLAINTEXT = new TextEncoder().encode(
  "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
);
const AEAD_SEALED = "d31a8d34648e60db7b86afbc53ef7ec2" +
  "a4aded51296e08fea9e2b5a736ee62d6" +
  "3dbea45e8ca9671282fafb69da92728b" +
  "1a71de0a9e060b2905d6a5b67ecd3b36" +
  "92ddbd7f2d778b8c9803aee328091b58" +
  "fab324e4fad675945585808b4831d7bc" +
  "3ff4def08e4b7a9de576d26586cec64b" +
  "6116" + "1ae10b594f09e26a7e902ecbd0600691"; // ciphertext, tag

Deno.test("ChaCha20-Poly1305 seal and open match RFC 8439 §2.8.2", () => {
  const options = { aad: AEAD_AAD };
  assert.equal(
    chacha20Poly1305Seal(AEAD_KEY, AEAD_NONCE, AEAD_PLAINTEXT, options).toHex(),
    AEAD_SEALED,
  );
  assert.deepEqual(
    chacha20Poly1305Open(AEAD_KEY, AEAD_NONCE, hex(AEAD_SEALED), options),
    AEAD_PLAINTEXT,
  );
  // Without the associated data the tag does not verify.
  assert.equal(
    chacha20Poly1305Open(AEAD_KEY, AEAD_NONCE, hex(AEAD_SEALED)),
    null,
  );
});

Deno.test("ChaCha20-Poly1305 open returns null for any tampering, never throws", () => {
  const key = randomBytes(32);
  const nonce = randomBytes(12);
  const plaintext = randomBytes(40);
  const sealed = chacha20Poly1305Seal(key, nonce, plaintext);
  assert.equal(sealed.length, 56);
  assert.deepEqual(chacha20Poly1305Open(key, nonce, sealed), plaintext);
  for (const index of [0, 20, 39, 40, 55]) {
    const bad = sealed.slice();
    bad[index] ^= 0x80;
    assert.equal(chacha20Poly1305Open(key, nonce, bad), null, `byte ${index}`);
  }
  const otherNonce = nonce.slice();
  otherNonce[0] ^= 1;
  assert.equal(chacha20Poly1305Open(key, otherNonce, sealed), null);
  assert.equal(chacha20Poly1305Open(key, nonce, sealed.subarray(0, 15)), null);
  assert.equal(chacha20Poly1305Open(key, nonce, sealed.subarray(0, 16)), null);
  assert.equal(chacha20Poly1305Open(randomBytes(32), nonce, sealed), null);
});

Deno.test("keyFingerprint is lowercase hex of the first 8 SHA-256 bytes", () => {
  const publicKey = hex(ED_PUBLIC);
  const digest = createHash("sha256").update(publicKey).digest("hex");
  assert.equal(keyFingerprint(publicKey), digest.slice(0, 16));
  assert.match(keyFingerprint(publicKey), /^[0-9a-f]{16}$/);
});

Deno.test("randomBytes returns the requested length and differs between calls", () => {
  assert.equal(randomBytes(0).length, 0);
  assert.equal(randomBytes(64).length, 64);
  assert.notDeepEqual(randomBytes(32), randomBytes(32));
});

Deno.test("Ed25519 verify with a raw 32-byte key agrees with the prepared key, and refuses a key of another size or off the curve", () => {
  const empty = new Uint8Array(0);
  const signature = hex(ED_SIGNATURE);
  assert.equal(ed25519Verify(hex(ED_PUBLIC), empty, signature), true);
  assert.equal(
    ed25519Verify(hex(ED_PUBLIC), new Uint8Array(1), signature),
    false,
  );
  const other = generateEd25519KeyPair().publicKey;
  assert.equal(ed25519Verify(other, empty, signature), false);
  // The raw key is not kept: the next check with another key is its own.
  assert.equal(ed25519Verify(hex(ED_PUBLIC), empty, signature), true);
  assert.equal(
    ed25519Verify(hex(ED_PUBLIC).subarray(0, 31), empty, signature),
    false,
  );
  const notAPoint = new Uint8Array(32);
  notAPoint[0] = 2; // y = 2 has no x on edwards25519
  assert.equal(ed25519Verify(notAPoint, empty, signature), false);
});
