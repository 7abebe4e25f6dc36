/**
 * Raw key sizes, the DER prefixes that turn raw X25519 and Ed25519 keys into
 * PKCS#8 (private) and SPKI (public) keys, and X25519 scalar clamping:
 * shared by the server's `node:crypto` code (lib/crypto.ts) and the
 * client's WebCrypto code (lib/client/web_seal.ts). No crypto and no
 * `node:` import here.
 *
 * @module
 */

/** Size of an X25519 private scalar and of an X25519 public key. */
export const X25519_KEY_BYTES = 32;
/** Size of an Ed25519 seed (the bare private key form). */
export const ED25519_SEED_BYTES = 32;
/** Size of an Ed25519 private key in its 64-byte form (seed then public key). */
export const ED25519_PRIVATE_KEY_BYTES = 64;
/** Size of an Ed25519 public key. */
export const ED25519_PUBLIC_KEY_BYTES = 32;
/** Size of an Ed25519 signature. */
export const ED25519_SIGNATURE_BYTES = 64;

/** PKCS#8 DER prefix for a raw X25519 private key (OID 1.3.101.110). */
export const X25519_PKCS8_PREFIX: Uint8Array = new Uint8Array([
  0x30,
  0x2e,
  0x02,
  0x01,
  0x00,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x6e,
  0x04,
  0x22,
  0x04,
  0x20,
]);
/** SPKI DER prefix for a raw X25519 public key (OID 1.3.101.110). */
export const X25519_SPKI_PREFIX: Uint8Array = new Uint8Array([
  0x30,
  0x2a,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x6e,
  0x03,
  0x21,
  0x00,
]);
/** PKCS#8 DER prefix for a raw Ed25519 seed (OID 1.3.101.112). */
export const ED25519_PKCS8_PREFIX: Uint8Array = new Uint8Array([
  0x30,
  0x2e,
  0x02,
  0x01,
  0x00,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x70,
  0x04,
  0x22,
  0x04,
  0x20,
]);
/** SPKI DER prefix for a raw Ed25519 public key (OID 1.3.101.112). */
export const ED25519_SPKI_PREFIX: Uint8Array = new Uint8Array([
  0x30,
  0x2a,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x70,
  0x03,
  0x21,
  0x00,
]);
/** Length of every SPKI prefix above; the raw public key follows it. */
export const SPKI_PREFIX_BYTES = 12;

/** Returns a copy of a 32-byte scalar clamped per RFC 7748 §5 (X25519); throws a RangeError for another size. */
export function clampX25519Scalar(scalar: Uint8Array): Uint8Array {
  if (!(scalar instanceof Uint8Array) || scalar.length !== X25519_KEY_BYTES) {
    const got = scalar instanceof Uint8Array
      ? `${scalar.length} bytes`
      : typeof scalar;
    throw new RangeError(
      `X25519 scalar: expected ${X25519_KEY_BYTES} bytes, got ${got}`,
    );
  }
  const out = scalar.slice();
  out[0] &= 248;
  out[31] &= 127;
  out[31] |= 64;
  return out;
}

/** Throws a RangeError when an X25519 shared secret is all zero: the peer's public key has low order (RFC 7748 §6.1). */
export function checkX25519SharedSecret(shared: Uint8Array): void {
  let accumulator = 0;
  for (const byte of shared) accumulator |= byte;
  if (accumulator === 0) {
    throw new RangeError(
      "X25519 key agreement produced an all-zero secret: the public key has low order",
    );
  }
}
