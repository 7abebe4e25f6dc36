/**
 * The cryptographic primitives of the knock protocol (X25519, Ed25519,
 * HKDF-SHA256, ChaCha20-Poly1305, SHA-256), built on `node:crypto`.
 *
 * Raw 32-byte keys are wrapped in fixed DER prefixes (PKCS#8 for private
 * keys, SPKI for public keys) to become `KeyObject`s. Keys used on the
 * server's hot path are prepared once ({@linkcode prepareEd25519VerifyKey},
 * {@linkcode prepareX25519PrivateKey}) so a knock costs no key parsing
 * beyond the ephemeral public key it carries.
 *
 * @module
 */

import {
  createCipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hkdfSync,
  type KeyObject,
  sign as nodeSign,
  verify as nodeVerify,
} from "node:crypto";
import { Buffer } from "node:buffer";
import {
  checkByteLength,
  concatBytes,
  encodeHex,
  randomBytes,
} from "../encoding.ts";
import {
  checkEd25519PrivateKey,
  checkEd25519PublicHalf,
  checkX25519SharedSecret,
  clampX25519Scalar,
  ED25519_PKCS8_PREFIX,
  ED25519_PUBLIC_KEY_BYTES,
  ED25519_SEED_BYTES,
  ED25519_SIGNATURE_BYTES,
  ED25519_SPKI_PREFIX,
  SPKI_PREFIX_BYTES,
  X25519_KEY_BYTES,
  X25519_PKCS8_PREFIX,
  X25519_SPKI_PREFIX,
} from "./keys.ts";

export { randomBytes } from "../encoding.ts";
export {
  clampX25519Scalar,
  ED25519_PRIVATE_KEY_BYTES,
  ED25519_PUBLIC_KEY_BYTES,
  ED25519_SEED_BYTES,
  ED25519_SIGNATURE_BYTES,
  X25519_KEY_BYTES,
} from "./keys.ts";
/** Size of a ChaCha20-Poly1305 key. */
export const CHACHA_KEY_BYTES = 32;
/** Size of a ChaCha20-Poly1305 nonce. */
export const CHACHA_NONCE_BYTES = 12;
/** Size of the Poly1305 authentication tag appended to the ciphertext. */
export const POLY1305_TAG_BYTES = 16;
/** Size of a SHA-256 digest. */
export const SHA256_BYTES = 32;
/** Number of SHA-256 bytes a key fingerprint shows (as 16 hex digits). */
export const FINGERPRINT_BYTES = 8;

/** HKDF's default salt for SHA-256 (RFC 5869 §2.2): HashLen zero bytes. */
const HKDF_DEFAULT_SALT = new Uint8Array(SHA256_BYTES);

/** An X25519 key pair as raw bytes; the private key is clamped. */
export interface X25519KeyPair {
  /** 32-byte clamped private scalar. */
  privateKey: Uint8Array;
  /** 32-byte public key (u-coordinate). */
  publicKey: Uint8Array;
}

/** An Ed25519 key pair as raw bytes. */
export interface Ed25519KeyPair {
  /** 64-byte private key: the 32-byte seed then the 32-byte public key. */
  privateKey: Uint8Array;
  /** 32-byte public key. */
  publicKey: Uint8Array;
}

/** An Ed25519 public key ready for repeated verification. */
export interface Ed25519VerifyKey {
  /** The 32-byte public key. */
  readonly raw: Uint8Array;
}

/** An X25519 private key ready for repeated key agreement. */
export interface X25519PrivateKey {
  /** The 32-byte private scalar as given. */
  readonly raw: Uint8Array;
}

/** Options for {@linkcode hkdfSha256}. */
export interface HkdfOptions {
  /** Context and application specific information. */
  info: Uint8Array;
  /** Output length in bytes (at most 255 * 32). */
  length: number;
  /** Salt; absent means RFC 5869's default of 32 zero bytes. */
  salt?: Uint8Array;
}

/** Options for {@linkcode chacha20Poly1305Seal} and {@linkcode chacha20Poly1305Open}. */
export interface AeadOptions {
  /** Associated data authenticated but not encrypted; absent means none. */
  aad?: Uint8Array;
}

class PreparedEd25519VerifyKey implements Ed25519VerifyKey {
  readonly raw: Uint8Array;
  readonly keyObject: KeyObject;

  constructor(raw: Uint8Array, keyObject: KeyObject) {
    this.raw = raw;
    this.keyObject = keyObject;
  }
}

class PreparedX25519PrivateKey implements X25519PrivateKey {
  readonly raw: Uint8Array;
  readonly keyObject: KeyObject;

  constructor(raw: Uint8Array, keyObject: KeyObject) {
    this.raw = raw;
    this.keyObject = keyObject;
  }
}

function toUint8Array(buffer: ArrayBuffer | Uint8Array): Uint8Array {
  if (buffer instanceof Uint8Array) {
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)
      .slice();
  }
  return new Uint8Array(buffer.slice(0));
}

function rawPublicKeyFromKeyObject(keyObject: KeyObject): Uint8Array {
  const der = keyObject.export({ format: "der", type: "spki" });
  return toUint8Array(der).slice(SPKI_PREFIX_BYTES);
}

function x25519PrivateKeyObject(privateKey: Uint8Array): KeyObject {
  checkByteLength("X25519 private key", privateKey, X25519_KEY_BYTES);
  return createPrivateKey({
    key: Buffer.from(concatBytes(X25519_PKCS8_PREFIX, privateKey)),
    format: "der",
    type: "pkcs8",
  });
}

/**
 * SPKI DER of the public key being wrapped: the prefix is written once and
 * each call overwrites only the 32 key bytes (createPublicKey parses it
 * synchronously and keeps no reference), so the hot path allocates nothing.
 */
const X25519_SPKI_SCRATCH = Buffer.alloc(SPKI_PREFIX_BYTES + X25519_KEY_BYTES);
X25519_SPKI_SCRATCH.set(X25519_SPKI_PREFIX, 0);

function x25519PublicKeyObject(publicKey: Uint8Array): KeyObject {
  checkByteLength("X25519 public key", publicKey, X25519_KEY_BYTES);
  X25519_SPKI_SCRATCH.set(publicKey, SPKI_PREFIX_BYTES);
  return createPublicKey({
    key: X25519_SPKI_SCRATCH,
    format: "der",
    type: "spki",
  });
}

function ed25519PrivateKeyObject(seed: Uint8Array): KeyObject {
  checkByteLength("Ed25519 seed", seed, ED25519_SEED_BYTES);
  return createPrivateKey({
    key: Buffer.from(concatBytes(ED25519_PKCS8_PREFIX, seed)),
    format: "der",
    type: "pkcs8",
  });
}

function ed25519PublicKeyObject(publicKey: Uint8Array): KeyObject {
  checkByteLength("Ed25519 public key", publicKey, ED25519_PUBLIC_KEY_BYTES);
  return createPublicKey({
    key: Buffer.from(concatBytes(ED25519_SPKI_PREFIX, publicKey)),
    format: "der",
    type: "spki",
  });
}

/** An Ed25519 private key as a `KeyObject`, with its public key. */
interface Ed25519PrivateKeyObject {
  /** The private key, built from the seed. */
  keyObject: KeyObject;
  /** The 32-byte public key computed from the seed. */
  publicKey: Uint8Array;
}

/**
 * Checks an Ed25519 private key (32-byte seed or 64-byte form, whose public
 * half must belong to its seed) and wraps its seed.
 */
function checkedEd25519PrivateKey(
  privateKey: Uint8Array,
): Ed25519PrivateKeyObject {
  checkEd25519PrivateKey(privateKey);
  const keyObject = ed25519PrivateKeyObject(
    privateKey.subarray(0, ED25519_SEED_BYTES),
  );
  const publicKey = rawPublicKeyFromKeyObject(createPublicKey(keyObject));
  checkEd25519PublicHalf(privateKey, publicKey);
  return { keyObject, publicKey };
}

/** Whether two byte arrays are equal, in time independent of where they differ. */
function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** Generates a fresh X25519 key pair with a clamped private key. */
export function generateX25519KeyPair(): X25519KeyPair {
  const privateKey = clampX25519Scalar(randomBytes(X25519_KEY_BYTES));
  return { privateKey, publicKey: x25519PublicKey(privateKey) };
}

/** Computes the X25519 public key of a 32-byte private scalar. */
export function x25519PublicKey(privateKey: Uint8Array): Uint8Array {
  const keyObject = x25519PrivateKeyObject(privateKey);
  return rawPublicKeyFromKeyObject(createPublicKey(keyObject));
}

/** Wraps a 32-byte X25519 private scalar for repeated key agreement. */
export function prepareX25519PrivateKey(
  privateKey: Uint8Array,
): X25519PrivateKey {
  const keyObject = x25519PrivateKeyObject(privateKey);
  return new PreparedX25519PrivateKey(privateKey.slice(), keyObject);
}

/**
 * Computes X25519(privateKey, publicKey); throws when the result is all zero
 * (a low-order public key), as RFC 7748 §6.1 allows and Go's X25519 does.
 */
export function x25519SharedSecret(
  privateKey: Uint8Array,
  publicKey: Uint8Array,
): Uint8Array {
  return x25519SharedSecretPrepared(
    prepareX25519PrivateKey(privateKey),
    publicKey,
  );
}

/** Computes X25519 with a prepared private key; throws on an all-zero result like {@linkcode x25519SharedSecret}. */
export function x25519SharedSecretPrepared(
  privateKey: X25519PrivateKey,
  publicKey: Uint8Array,
): Uint8Array {
  const privateObject = privateKey instanceof PreparedX25519PrivateKey
    ? privateKey.keyObject
    : x25519PrivateKeyObject(privateKey.raw);
  const publicObject = x25519PublicKeyObject(publicKey);
  let shared: Uint8Array;
  try {
    // diffieHellman returns a fresh Buffer: view it instead of copying.
    const secret = diffieHellman({
      privateKey: privateObject,
      publicKey: publicObject,
    });
    shared = new Uint8Array(
      secret.buffer,
      secret.byteOffset,
      secret.byteLength,
    );
  } catch (error) {
    // OpenSSL refuses an all-zero result itself.
    throw new RangeError(
      `X25519 key agreement failed (low-order public key?): ${
        (error as Error).message
      }`,
    );
  }
  checkX25519SharedSecret(shared);
  return shared;
}

/** Generates a fresh Ed25519 key pair (private key in its 64-byte form). */
export function generateEd25519KeyPair(): Ed25519KeyPair {
  return ed25519KeyPairFromPrivateKey(randomBytes(ED25519_SEED_BYTES));
}

/**
 * Builds the key pair of an Ed25519 private key given as a 32-byte seed or
 * in its 64-byte form; throws when the 64-byte form's public half does not
 * belong to its seed.
 */
export function ed25519KeyPairFromPrivateKey(
  privateKey: Uint8Array,
): Ed25519KeyPair {
  const { publicKey } = checkedEd25519PrivateKey(privateKey);
  return {
    privateKey: concatBytes(
      privateKey.subarray(0, ED25519_SEED_BYTES),
      publicKey,
    ),
    publicKey,
  };
}

/** Signs a message with an Ed25519 private key (32-byte seed or 64-byte form). */
export function ed25519Sign(
  privateKey: Uint8Array,
  message: Uint8Array,
): Uint8Array {
  const { keyObject } = checkedEd25519PrivateKey(privateKey);
  return toUint8Array(nodeSign(null, message, keyObject));
}

/** Wraps a 32-byte Ed25519 public key for repeated verification; throws when it is not a curve point. */
export function prepareEd25519VerifyKey(
  publicKey: Uint8Array,
): Ed25519VerifyKey {
  checkByteLength("Ed25519 public key", publicKey, ED25519_PUBLIC_KEY_BYTES);
  let keyObject: KeyObject;
  try {
    keyObject = ed25519PublicKeyObject(publicKey);
  } catch (error) {
    throw new RangeError(
      `Ed25519 public key ${encodeHex(publicKey)} is not a valid curve point (${
        (error as Error).message
      }): check that the key was copied completely`,
    );
  }
  return new PreparedEd25519VerifyKey(publicKey.slice(), keyObject);
}

/** Whether a signature is a valid Ed25519 signature of the message; never throws. */
export function ed25519Verify(
  key: Ed25519VerifyKey,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (
    !(signature instanceof Uint8Array) ||
    signature.length !== ED25519_SIGNATURE_BYTES
  ) {
    return false;
  }
  try {
    const keyObject = key instanceof PreparedEd25519VerifyKey
      ? key.keyObject
      : ed25519PublicKeyObject(key.raw);
    return nodeVerify(null, message, keyObject, signature);
  } catch {
    return false;
  }
}

/** Derives key material with HKDF-SHA256 (RFC 5869). */
export function hkdfSha256(
  ikm: Uint8Array,
  options: HkdfOptions,
): Uint8Array {
  const salt = options.salt ?? HKDF_DEFAULT_SALT;
  // hkdfSync returns a fresh ArrayBuffer: view it instead of copying.
  return new Uint8Array(
    hkdfSync("sha256", ikm, salt, options.info, options.length),
  );
}

/** Encrypts with ChaCha20-Poly1305 (RFC 8439) and returns ciphertext then the 16-byte tag. */
export function chacha20Poly1305Seal(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  options?: AeadOptions,
): Uint8Array {
  checkByteLength("ChaCha20-Poly1305 key", key, CHACHA_KEY_BYTES);
  checkByteLength("ChaCha20-Poly1305 nonce", nonce, CHACHA_NONCE_BYTES);
  const cipher = createCipheriv("chacha20-poly1305", key, nonce, {
    authTagLength: POLY1305_TAG_BYTES,
  });
  if (options?.aad !== undefined) {
    cipher.setAAD(options.aad, { plaintextLength: plaintext.length });
  }
  const head = cipher.update(plaintext);
  const tail = cipher.final();
  const tag = cipher.getAuthTag();
  const out = new Uint8Array(head.length + tail.length + tag.length);
  out.set(head, 0);
  out.set(tail, head.length);
  out.set(tag, head.length + tail.length);
  return out;
}

/**
 * Decrypts ciphertext-then-tag with ChaCha20-Poly1305; returns null when it
 * does not authenticate. Never throws for any input of the right key and
 * nonce sizes.
 *
 * `node:crypto` reports a bad tag only by throwing from `final()`, and in
 * Deno building that exception costs about twice the whole decryption; a
 * server under a flood of junk would spend most of its time there. So the
 * tag is checked without it: ChaCha20 is a stream cipher, so running the
 * ciphertext through the cipher's keystream (counter 1, as RFC 8439 §2.8
 * does for both directions) yields the plaintext, and sealing that
 * plaintext again yields the very same ciphertext together with the tag the
 * sender must have sent. The two tags are compared in constant time and the
 * plaintext is returned only when they match.
 */
export function chacha20Poly1305Open(
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
  options?: AeadOptions,
): Uint8Array | null {
  checkByteLength("ChaCha20-Poly1305 key", key, CHACHA_KEY_BYTES);
  checkByteLength("ChaCha20-Poly1305 nonce", nonce, CHACHA_NONCE_BYTES);
  if (!(sealed instanceof Uint8Array) || sealed.length < POLY1305_TAG_BYTES) {
    return null;
  }
  const split = sealed.length - POLY1305_TAG_BYTES;
  try {
    const keystream = createCipheriv("chacha20-poly1305", key, nonce, {
      authTagLength: POLY1305_TAG_BYTES,
    });
    const plaintext = keystream.update(sealed.subarray(0, split));
    // Finishing releases the cipher's native state at once (an unfinished
    // one holds about a kilobyte until the garbage collector finds it).
    keystream.final();
    const resealer = createCipheriv("chacha20-poly1305", key, nonce, {
      authTagLength: POLY1305_TAG_BYTES,
    });
    if (options?.aad !== undefined) {
      resealer.setAAD(options.aad, { plaintextLength: split });
    }
    resealer.update(plaintext);
    resealer.final();
    const expectedTag = resealer.getAuthTag();
    if (
      plaintext.length !== split ||
      !bytesEqual(expectedTag, sealed.subarray(split))
    ) {
      return null;
    }
    // A copy: the Buffer may be a view into a larger pooled allocation.
    return new Uint8Array(plaintext);
  } catch {
    return null;
  }
}

/** Computes the SHA-256 digest of the data. */
export function sha256(data: Uint8Array): Uint8Array {
  return toUint8Array(createHash("sha256").update(data).digest());
}

/** Returns a key's fingerprint: lowercase hex of the first 8 bytes of its SHA-256. */
export function keyFingerprint(publicKey: Uint8Array): string {
  return encodeHex(sha256(publicKey).subarray(0, FINGERPRINT_BYTES));
}
