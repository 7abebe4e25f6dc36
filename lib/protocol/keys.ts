/**
 * Raw key sizes, the DER prefixes that turn raw X25519 and Ed25519 keys into
 * PKCS#8 (private) and SPKI (public) keys, X25519 scalar clamping and the
 * checks of key sizes and shared secrets: shared by the server's
 * `node:crypto` code (crypto.ts) and the client's WebCrypto code
 * (lib/client/web_seal.ts). No crypto and no `node:` import here.
 *
 * @module
 */

import { checkByteLength, equalBytes } from "../encoding.ts";

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

// The prefixes are the DER encodings of the structures RFC 8410 §7 and §4
// give, up to the raw 32 key bytes:
//   PKCS#8: SEQUENCE (46 bytes) { INTEGER 0, AlgorithmIdentifier,
//           OCTET STRING (34 bytes) { OCTET STRING (32 bytes) <key> } }
//   SPKI:   SEQUENCE (42 bytes) { AlgorithmIdentifier,
//           BIT STRING (33 bytes, 0 unused bits) <key> }

/** DER AlgorithmIdentifier of X25519: SEQUENCE { OID 1.3.101.110 }. */
const X25519_ALGORITHM = [0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e];
/** DER AlgorithmIdentifier of Ed25519: SEQUENCE { OID 1.3.101.112 }. */
const ED25519_ALGORITHM = [0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
/** PKCS#8 bytes before the AlgorithmIdentifier: SEQUENCE header, version 0. */
const PKCS8_HEAD = [0x30, 0x2e, 0x02, 0x01, 0x00];
/** PKCS#8 bytes between the AlgorithmIdentifier and the key: two OCTET STRING headers. */
const PKCS8_KEY_HEAD = [0x04, 0x22, 0x04, 0x20];
/** SPKI bytes before the AlgorithmIdentifier: SEQUENCE header. */
const SPKI_HEAD = [0x30, 0x2a];
/** SPKI bytes between the AlgorithmIdentifier and the key: BIT STRING header. */
const SPKI_KEY_HEAD = [0x03, 0x21, 0x00];

/** PKCS#8 DER prefix for a raw X25519 private key (OID 1.3.101.110). */
export const X25519_PKCS8_PREFIX: Uint8Array = new Uint8Array([
  ...PKCS8_HEAD,
  ...X25519_ALGORITHM,
  ...PKCS8_KEY_HEAD,
]);
/** SPKI DER prefix for a raw X25519 public key (OID 1.3.101.110). */
export const X25519_SPKI_PREFIX: Uint8Array = new Uint8Array([
  ...SPKI_HEAD,
  ...X25519_ALGORITHM,
  ...SPKI_KEY_HEAD,
]);
/** PKCS#8 DER prefix for a raw Ed25519 seed (OID 1.3.101.112). */
export const ED25519_PKCS8_PREFIX: Uint8Array = new Uint8Array([
  ...PKCS8_HEAD,
  ...ED25519_ALGORITHM,
  ...PKCS8_KEY_HEAD,
]);
/** SPKI DER prefix for a raw Ed25519 public key (OID 1.3.101.112). */
export const ED25519_SPKI_PREFIX: Uint8Array = new Uint8Array([
  ...SPKI_HEAD,
  ...ED25519_ALGORITHM,
  ...SPKI_KEY_HEAD,
]);
/** Length of every SPKI prefix above; the raw public key follows it. */
export const SPKI_PREFIX_BYTES = 12;

/** Returns a copy of a 32-byte scalar clamped per RFC 7748 §5 (X25519); throws a RangeError for another size. */
export function clampX25519Scalar(scalar: Uint8Array): Uint8Array {
  checkByteLength("X25519 scalar", scalar, X25519_KEY_BYTES);
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

/** Throws a RangeError unless an Ed25519 private key is a 32-byte seed or in its 64-byte form (seed then public key). */
export function checkEd25519PrivateKey(privateKey: Uint8Array): void {
  if (
    !(privateKey instanceof Uint8Array) ||
    (privateKey.length !== ED25519_SEED_BYTES &&
      privateKey.length !== ED25519_PRIVATE_KEY_BYTES)
  ) {
    const got = privateKey instanceof Uint8Array
      ? `${privateKey.length} bytes`
      : typeof privateKey;
    throw new RangeError(
      `Ed25519 private key: expected ${ED25519_SEED_BYTES} bytes (seed) or ${ED25519_PRIVATE_KEY_BYTES} bytes (seed then public key), got ${got}`,
    );
  }
}

/**
 * Throws a RangeError when an Ed25519 private key in its 64-byte form
 * carries a public half other than `publicKey`, the public key computed from
 * its seed; a 32-byte seed passes.
 */
export function checkEd25519PublicHalf(
  privateKey: Uint8Array,
  publicKey: Uint8Array,
): void {
  if (
    privateKey.length === ED25519_PRIVATE_KEY_BYTES &&
    !equalBytes(privateKey.subarray(ED25519_SEED_BYTES), publicKey)
  ) {
    throw new RangeError(
      "Ed25519 private key: the last 32 bytes are not the public key of the first 32 (seed); the key is corrupt, generate a new one",
    );
  }
}
