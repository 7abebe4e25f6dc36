/**
 * The knock protocol's keys and primitives (X25519, Ed25519, HKDF-SHA256,
 * ChaCha20-Poly1305, SHA-256 fingerprints), all through `node:crypto`.
 *
 * @module
 */

import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hkdfSync,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";
import { Buffer } from "node:buffer";

/** Size of an X25519 private scalar and of an X25519 public key. */
export const X25519_KEY_BYTES = 32;
const ED25519_SEED_BYTES = 32;
/** The 64-byte form is the seed then the public key. */
const ED25519_PRIVATE_KEY_BYTES = 64;
/** Size of a raw Ed25519 public key. */
export const ED25519_PUBLIC_KEY_BYTES = 32;
const ED25519_SIGNATURE_BYTES = 64;
const POLY1305_TAG_BYTES = 16;
/** Number of SHA-256 bytes a key fingerprint shows. */
export const FINGERPRINT_BYTES = 8;

// Raw keys become KeyObjects in the DER structures of RFC 8410 §7 (PKCS#8) and
// §4 (SPKI), fixed up to the raw key; OID 1.3.101.110 is X25519, .112 Ed25519.
const X25519_PKCS8_PREFIX = Uint8Array.fromHex(
  "302e020100300506032b656e04220420",
);
const X25519_SPKI_PREFIX = Uint8Array.fromHex("302a300506032b656e032100");
const ED25519_PKCS8_PREFIX = Uint8Array.fromHex(
  "302e020100300506032b657004220420",
);
const ED25519_SPKI_PREFIX = Uint8Array.fromHex("302a300506032b6570032100");
/** The SPKI DER a raw Ed25519 key is copied into for one verification. */
const RAW_KEY_SPKI = Buffer.alloc(
  ED25519_SPKI_PREFIX.length + ED25519_PUBLIC_KEY_BYTES,
);
RAW_KEY_SPKI.set(ED25519_SPKI_PREFIX);
/** HKDF's default salt for SHA-256 (RFC 5869 §2.2): 32 zero bytes. */
const HKDF_DEFAULT_SALT = new Uint8Array(32);

/** An X25519 key pair as raw bytes; the private key is clamped. */
export interface X25519KeyPair {
  /** 32-byte clamped private scalar. */
  privateKey: Uint8Array;
  /** 32-byte public key. */
  publicKey: Uint8Array;
}

/** An Ed25519 key pair as raw bytes. */
export interface Ed25519KeyPair {
  /** 64-byte private key: the seed then the public key. */
  privateKey: Uint8Array;
  /** 32-byte public key. */
  publicKey: Uint8Array;
}

/** An Ed25519 public key parsed once for repeated verification. */
export type Ed25519VerifyKey = KeyObject;

/** An X25519 private key parsed once for repeated key agreement. */
export type X25519PrivateKey = KeyObject;

/** Options for {@linkcode hkdfSha256}. */
export interface HkdfOptions {
  /** Context information. */
  info: Uint8Array;
  /** Output length in bytes. */
  length: number;
}

/** Options for {@linkcode chacha20Poly1305Seal} and {@linkcode chacha20Poly1305Open}. */
export interface AeadOptions {
  /** Associated data, authenticated but not encrypted; the knock has none. */
  aad?: Uint8Array;
}

function checkLength(what: string, bytes: Uint8Array, want: number): void {
  if (bytes.length !== want) {
    throw new RangeError(
      `${what}: expected ${want} bytes, got ${bytes.length} bytes`,
    );
  }
}

function privateKeyObject(prefix: Uint8Array, raw: Uint8Array): KeyObject {
  const der = Buffer.concat([prefix, raw]);
  return createPrivateKey({ key: der, format: "der", type: "pkcs8" });
}

function publicKeyObject(prefix: Uint8Array, raw: Uint8Array): KeyObject {
  const der = Buffer.concat([prefix, raw]);
  return createPublicKey({ key: der, format: "der", type: "spki" });
}

/** The raw 32-byte public key of a private or public `KeyObject`. */
function rawPublicKey(key: KeyObject): Uint8Array {
  const der = createPublicKey(key).export({ format: "der", type: "spki" });
  // Both SPKI prefixes have the same length.
  return new Uint8Array(der.subarray(X25519_SPKI_PREFIX.length));
}

/** The seed of an Ed25519 private key (32-byte seed or 64-byte form) as a `KeyObject`, after checking that a 64-byte key's public half belongs to its seed. */
function ed25519SigningKey(privateKey: Uint8Array): KeyObject {
  if (
    privateKey.length !== ED25519_SEED_BYTES &&
    privateKey.length !== ED25519_PRIVATE_KEY_BYTES
  ) {
    throw new RangeError(
      `Ed25519 private key: expected ${ED25519_SEED_BYTES} bytes (seed) or ${ED25519_PRIVATE_KEY_BYTES} bytes (seed then public key), got ${privateKey.length} bytes`,
    );
  }
  const seed = privateKey.subarray(0, ED25519_SEED_BYTES);
  const key = privateKeyObject(ED25519_PKCS8_PREFIX, seed);
  if (
    privateKey.length === ED25519_PRIVATE_KEY_BYTES &&
    rawPublicKey(key).toHex() !==
      privateKey.subarray(ED25519_SEED_BYTES).toHex()
  ) {
    throw new RangeError(
      "Ed25519 private key: the last 32 bytes are not the public key of the first 32 (seed); the key is corrupt, generate a new one",
    );
  }
  return key;
}

/** Returns cryptographically secure random bytes. */
export function randomBytes(length: number): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(length));
}

/** Returns a copy of a 32-byte scalar clamped per RFC 7748 §5. */
export function clampX25519Scalar(scalar: Uint8Array): Uint8Array {
  checkLength("X25519 scalar", scalar, X25519_KEY_BYTES);
  const out = scalar.slice();
  out[0] &= 248;
  out[31] &= 127;
  out[31] |= 64;
  return out;
}

/** Generates an X25519 key pair with a clamped private key. */
export function generateX25519KeyPair(): X25519KeyPair {
  const privateKey = clampX25519Scalar(randomBytes(X25519_KEY_BYTES));
  return { privateKey, publicKey: x25519PublicKey(privateKey) };
}

/** Computes the X25519 public key of a 32-byte private scalar. */
export function x25519PublicKey(privateKey: Uint8Array): Uint8Array {
  return rawPublicKey(prepareX25519PrivateKey(privateKey));
}

/** Parses a 32-byte X25519 private scalar for repeated key agreement. */
export function prepareX25519PrivateKey(
  privateKey: Uint8Array,
): X25519PrivateKey {
  checkLength("X25519 private key", privateKey, X25519_KEY_BYTES);
  return privateKeyObject(X25519_PKCS8_PREFIX, privateKey);
}

/** Computes X25519 with a peer's public key; throws a RangeError for a low-order key (all-zero result, RFC 7748 §6.1). */
export function x25519SharedSecret(
  privateKey: X25519PrivateKey,
  publicKey: Uint8Array,
): Uint8Array {
  checkLength("X25519 public key", publicKey, X25519_KEY_BYTES);
  try {
    return new Uint8Array(diffieHellman({
      privateKey,
      publicKey: publicKeyObject(X25519_SPKI_PREFIX, publicKey),
    }));
  } catch (error) {
    // OpenSSL refuses an all-zero result.
    throw new RangeError(
      `X25519 key agreement failed (low-order public key?): ${
        (error as Error).message
      }`,
    );
  }
}

/** Generates an Ed25519 key pair (private key in its 64-byte form). */
export function generateEd25519KeyPair(): Ed25519KeyPair {
  return ed25519KeyPairFromPrivateKey(randomBytes(ED25519_SEED_BYTES));
}

/** Returns the key pair of an Ed25519 private key given as a 32-byte seed or in its 64-byte form. */
export function ed25519KeyPairFromPrivateKey(
  privateKey: Uint8Array,
): Ed25519KeyPair {
  const publicKey = rawPublicKey(ed25519SigningKey(privateKey));
  const seed = privateKey.subarray(0, ED25519_SEED_BYTES);
  return { privateKey: new Uint8Array([...seed, ...publicKey]), publicKey };
}

/** Signs a message with an Ed25519 private key (32-byte seed or 64-byte form). */
export function ed25519Sign(
  privateKey: Uint8Array,
  message: Uint8Array,
): Uint8Array {
  return new Uint8Array(sign(null, message, ed25519SigningKey(privateKey)));
}

/** Parses a 32-byte Ed25519 public key for repeated verification; throws a RangeError when it is not a curve point. */
export function prepareEd25519VerifyKey(
  publicKey: Uint8Array,
): Ed25519VerifyKey {
  checkLength("Ed25519 public key", publicKey, ED25519_PUBLIC_KEY_BYTES);
  try {
    return publicKeyObject(ED25519_SPKI_PREFIX, publicKey);
  } catch (error) {
    throw new RangeError(
      `Ed25519 public key ${publicKey.toHex()} is not a valid curve point (${
        (error as Error).message
      }): check that the key was copied completely`,
    );
  }
}

/** Whether a signature is a valid Ed25519 signature of the message under a prepared or a raw 32-byte key; never throws. */
export function ed25519Verify(
  key: Ed25519VerifyKey | Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (signature.length !== ED25519_SIGNATURE_BYTES) return false;
  try {
    if (!(key instanceof Uint8Array)) {
      return verify(null, message, key, signature);
    }
    // A raw key is wrapped for this one check: no object per key is kept.
    if (key.length !== ED25519_PUBLIC_KEY_BYTES) return false;
    RAW_KEY_SPKI.set(key, ED25519_SPKI_PREFIX.length);
    const spki = { key: RAW_KEY_SPKI, format: "der", type: "spki" } as const;
    return verify(null, message, spki, signature);
  } catch {
    return false;
  }
}

/** Derives key material with HKDF-SHA256 (RFC 5869) and the default salt. */
export function hkdfSha256(ikm: Uint8Array, options: HkdfOptions): Uint8Array {
  return new Uint8Array(
    hkdfSync("sha256", ikm, HKDF_DEFAULT_SALT, options.info, options.length),
  );
}

/** Encrypts with ChaCha20-Poly1305 (RFC 8439); returns the ciphertext then the tag. */
export function chacha20Poly1305Seal(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  options: AeadOptions = {},
): Uint8Array {
  const cipher = createCipheriv("chacha20-poly1305", key, nonce, {
    authTagLength: POLY1305_TAG_BYTES,
  });
  if (options.aad !== undefined) {
    cipher.setAAD(options.aad, { plaintextLength: plaintext.length });
  }
  const head = cipher.update(plaintext);
  const tail = cipher.final();
  return new Uint8Array([...head, ...tail, ...cipher.getAuthTag()]);
}

/** Decrypts ChaCha20-Poly1305 ciphertext then tag; returns null when it does not authenticate. */
export function chacha20Poly1305Open(
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
  options: AeadOptions = {},
): Uint8Array | null {
  if (sealed.length < POLY1305_TAG_BYTES) return null;
  const split = sealed.length - POLY1305_TAG_BYTES;
  const decipher = createDecipheriv("chacha20-poly1305", key, nonce, {
    authTagLength: POLY1305_TAG_BYTES,
  });
  decipher.setAuthTag(sealed.subarray(split));
  if (options.aad !== undefined) {
    decipher.setAAD(options.aad, { plaintextLength: split });
  }
  try {
    const head = decipher.update(sealed.subarray(0, split));
    return new Uint8Array([...head, ...decipher.final()]);
  } catch {
    return null;
  }
}

/** Returns a key's fingerprint: lowercase hex of the first 8 bytes of its SHA-256. */
export function keyFingerprint(publicKey: Uint8Array): string {
  const digest = createHash("sha256").update(publicKey).digest();
  return digest.subarray(0, FINGERPRINT_BYTES).toHex();
}
