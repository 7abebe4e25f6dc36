import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createPrivateKey, createPublicKey } from "node:crypto";
import {
  checkX25519SharedSecret,
  clampX25519Scalar,
  ED25519_PKCS8_PREFIX,
  ED25519_SPKI_PREFIX,
  SPKI_PREFIX_BYTES,
  X25519_KEY_BYTES,
  X25519_PKCS8_PREFIX,
  X25519_SPKI_PREFIX,
} from "../../lib/protocol/keys.ts";

function withPrefix(prefix: Uint8Array, fill: number): Uint8Array {
  const out = new Uint8Array(prefix.length + 32);
  out.set(prefix);
  out.fill(fill, prefix.length);
  return out;
}

Deno.test("clampX25519Scalar clears the low 3 bits and the top bit, sets bit 254, and copies", () => {
  const scalar = new Uint8Array(X25519_KEY_BYTES).fill(0xff);
  const clamped = clampX25519Scalar(scalar);
  assert.equal(clamped[0], 0xf8);
  assert.equal(clamped[31], 0x7f);
  assert.equal(clampX25519Scalar(new Uint8Array(32))[31], 0x40);
  assert.equal(scalar[0], 0xff, "the input is left alone");
  assert.throws(() => clampX25519Scalar(new Uint8Array(31)), RangeError);
});

Deno.test("the DER prefixes wrap raw keys into keys node:crypto reads as X25519 and Ed25519", () => {
  assert.equal(X25519_SPKI_PREFIX.length, SPKI_PREFIX_BYTES);
  assert.equal(ED25519_SPKI_PREFIX.length, SPKI_PREFIX_BYTES);
  const x = createPrivateKey({
    key: Buffer.from(withPrefix(X25519_PKCS8_PREFIX, 7)),
    format: "der",
    type: "pkcs8",
  });
  assert.equal(x.asymmetricKeyType, "x25519");
  const e = createPrivateKey({
    key: Buffer.from(withPrefix(ED25519_PKCS8_PREFIX, 7)),
    format: "der",
    type: "pkcs8",
  });
  assert.equal(e.asymmetricKeyType, "ed25519");
  const ePublic = createPublicKey(e).export({ format: "der", type: "spki" });
  assert.deepEqual(
    new Uint8Array(ePublic.subarray(0, SPKI_PREFIX_BYTES)),
    ED25519_SPKI_PREFIX,
  );
  const xPublic = createPublicKey(x).export({ format: "der", type: "spki" });
  assert.deepEqual(
    new Uint8Array(xPublic.subarray(0, SPKI_PREFIX_BYTES)),
    X25519_SPKI_PREFIX,
  );
});

Deno.test("checkX25519SharedSecret refuses an all-zero secret and accepts any other", () => {
  assert.throws(
    () => checkX25519SharedSecret(new Uint8Array(32)),
    /all-zero secret: the public key has low order/,
  );
  const one = new Uint8Array(32);
  one[31] = 1;
  checkX25519SharedSecret(one);
});
