/**
 * Builds knock packets (SPEC §1) with WebCrypto and the plain TypeScript
 * ChaCha20-Poly1305, so that `openme knock` never loads Deno's Node
 * compatibility layer (`node:crypto` alone costs about 25 ms of start-up).
 *
 * The packets are byte for byte those of `buildKnock` in `../packet.ts` for
 * the same keys and randomness: X25519 (the ephemeral scalar clamped per
 * RFC 7748), HKDF-SHA256 with the default 32-zero-byte salt and the SPEC
 * info string, ChaCha20-Poly1305 without associated data, and a
 * deterministic Ed25519 signature over bytes 0..100.
 *
 * Nothing here, nor anything it imports, may import a `node:` module.
 *
 * @module
 */

import { chacha20Poly1305Seal } from "../chacha20_poly1305.ts";
import { checkByteLength, concatBytes, randomBytes } from "../encoding.ts";
import {
  checkEd25519PrivateKey,
  checkEd25519PublicHalf,
  checkX25519SharedSecret,
  clampX25519Scalar,
  ED25519_PKCS8_PREFIX,
  ED25519_PRIVATE_KEY_BYTES,
  ED25519_SEED_BYTES,
  X25519_KEY_BYTES,
  X25519_PKCS8_PREFIX,
} from "../protocol/keys.ts";
import {
  AEAD_NONCE_BYTES,
  assembleUnsignedKnock,
  type BuildKnockOptions,
  currentTimestampNs,
  encodeKnockPlaintext,
  EPHEMERAL_KEY_BYTES,
  KDF_INFO_BYTES,
  KDF_OUTPUT_BYTES,
  type KnockKeys,
  type KnockPlaintext,
  REPLAY_NONCE_BYTES,
  type SealKnockOptions,
  SIGNATURE_BYTES,
  SIGNATURE_OFFSET,
  SIGNED_BYTES,
} from "../protocol/packet_format.ts";

export type {
  BuildKnockOptions,
  KnockKeys,
  KnockPlaintext,
  SealKnockOptions,
} from "../protocol/packet_format.ts";

/** Bits HKDF and X25519 `deriveBits` produce: 32 bytes. */
const DERIVED_BITS = KDF_OUTPUT_BYTES * 8;
/** Bits of an X25519 shared secret. */
const X25519_SHARED_BITS = X25519_KEY_BYTES * 8;
/** HKDF's default salt for SHA-256 (RFC 5869 §2.2): HashLen zero bytes. */
const HKDF_DEFAULT_SALT = new Uint8Array(32);

/** The public key of an extractable WebCrypto OKP private key (JWK `x`). */
async function publicKeyOf(privateKey: CryptoKey): Promise<Uint8Array> {
  const jwk = await crypto.subtle.exportKey("jwk", privateKey);
  if (typeof jwk.x !== "string") {
    throw new Error(
      `WebCrypto exported a ${jwk.crv} key without its public part`,
    );
  }
  // JWK's `x` is unpadded base64url (RFC 7517 §2).
  return Uint8Array.fromBase64(jwk.x, { alphabet: "base64url" });
}

/**
 * Imports the client's Ed25519 private key (32-byte seed or 64-byte form)
 * for signing; for the 64-byte form, throws when its public half does not
 * belong to its seed, as `../crypto.ts` does.
 */
async function importSigningKey(privateKey: Uint8Array): Promise<CryptoKey> {
  checkEd25519PrivateKey(privateKey);
  const hasPublicHalf = privateKey.length === ED25519_PRIVATE_KEY_BYTES;
  const key = await crypto.subtle.importKey(
    "pkcs8",
    concatBytes(
      ED25519_PKCS8_PREFIX,
      privateKey.subarray(0, ED25519_SEED_BYTES),
    ),
    { name: "Ed25519" },
    hasPublicHalf,
    ["sign"],
  );
  if (hasPublicHalf) {
    checkEd25519PublicHalf(privateKey, await publicKeyOf(key));
  }
  return key;
}

/** The ephemeral X25519 key pair of one knock. */
interface EphemeralKeyPair {
  /** The clamped scalar, imported for `deriveBits`. */
  privateKey: CryptoKey;
  /** Its 32-byte public key, as the packet carries it. */
  publicKey: Uint8Array;
}

/** Clamps and imports an ephemeral X25519 scalar and computes its public key. */
async function ephemeralKeyPair(scalar: Uint8Array): Promise<EphemeralKeyPair> {
  const privateKey = await crypto.subtle.importKey(
    "pkcs8",
    concatBytes(X25519_PKCS8_PREFIX, clampX25519Scalar(scalar)),
    { name: "X25519" },
    true,
    ["deriveBits"],
  );
  return { privateKey, publicKey: await publicKeyOf(privateKey) };
}

/**
 * X25519(ephemeral, server public key); throws a RangeError when the server
 * key has the wrong size or the result is all zero (a low-order point), as
 * the `node:crypto` path does.
 */
async function sharedSecret(
  ephemeralPrivateKey: CryptoKey,
  serverPublicKey: Uint8Array,
): Promise<Uint8Array<ArrayBuffer>> {
  checkByteLength("X25519 public key", serverPublicKey, X25519_KEY_BYTES);
  let shared: Uint8Array<ArrayBuffer>;
  try {
    const serverKey = await crypto.subtle.importKey(
      "raw",
      serverPublicKey.slice(),
      { name: "X25519" },
      false,
      [],
    );
    shared = new Uint8Array(
      await crypto.subtle.deriveBits(
        { name: "X25519", public: serverKey },
        ephemeralPrivateKey,
        X25519_SHARED_BITS,
      ),
    );
  } catch (error) {
    // Deno refuses an all-zero result itself.
    throw new RangeError(
      `X25519 key agreement failed (low-order public key?): ${
        (error as Error).message
      }`,
    );
  }
  checkX25519SharedSecret(shared);
  return shared;
}

/** HKDF-SHA256(shared, default salt, SPEC info) to the 32-byte AEAD key. */
async function deriveKnockKey(
  shared: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array> {
  const ikm = await crypto.subtle.importKey(
    "raw",
    shared,
    "HKDF",
    false,
    ["deriveBits"],
  );
  return new Uint8Array(
    await crypto.subtle.deriveBits(
      {
        name: "HKDF",
        hash: "SHA-256",
        salt: HKDF_DEFAULT_SALT,
        info: KDF_INFO_BYTES,
      },
      ikm,
      DERIVED_BITS,
    ),
  );
}

/**
 * Builds a knock carrying the given plaintext with WebCrypto: fresh
 * ephemeral key and AEAD nonce (unless a test fixes them through
 * `options`), encrypted for the server, signed by the client. The
 * counterpart of `sealKnock` in `../packet.ts`, with the same result for
 * the same inputs.
 */
export async function sealKnockWeb(
  keys: KnockKeys,
  plaintext: KnockPlaintext,
  options?: SealKnockOptions,
): Promise<Uint8Array> {
  const plainBytes = encodeKnockPlaintext(plaintext);
  const aeadNonce = options?.aeadNonce ?? randomBytes(AEAD_NONCE_BYTES);
  checkByteLength("knock AEAD nonce", aeadNonce, AEAD_NONCE_BYTES);
  const [signingKey, ephemeral] = await Promise.all([
    importSigningKey(keys.clientPrivateKey),
    ephemeralKeyPair(
      options?.ephemeralPrivateKey ?? randomBytes(EPHEMERAL_KEY_BYTES),
    ),
  ]);
  const shared = await sharedSecret(
    ephemeral.privateKey,
    keys.serverPublicKey,
  );
  const key = await deriveKnockKey(shared);
  const ciphertext = chacha20Poly1305Seal(key, aeadNonce, plainBytes);

  const packet = assembleUnsignedKnock(
    ephemeral.publicKey,
    aeadNonce,
    ciphertext,
  );
  const signature = new Uint8Array(
    await crypto.subtle.sign(
      { name: "Ed25519" },
      signingKey,
      packet.subarray(0, SIGNED_BYTES),
    ),
  );
  checkByteLength("Ed25519 signature", signature, SIGNATURE_BYTES);
  packet.set(signature, SIGNATURE_OFFSET);
  return packet;
}

/**
 * Builds a 165-byte knock for the target (default: the packet's source
 * address), stamped now unless told otherwise, without loading any `node:`
 * module. Same inputs and, for the same randomness, the same bytes as
 * `buildKnock` in `../packet.ts`. Rejects with a RangeError for a malformed
 * key, a server key of low order, or an out-of-range timestamp.
 */
export async function buildKnockWeb(
  keys: KnockKeys,
  options?: BuildKnockOptions,
): Promise<Uint8Array> {
  return await sealKnockWeb(keys, {
    timestampNs: options?.timestampNs ?? currentTimestampNs(),
    replayNonce: options?.replayNonce ?? randomBytes(REPLAY_NONCE_BYTES),
    target: options?.target ?? null,
  }, {
    ephemeralPrivateKey: options?.ephemeralPrivateKey,
    aeadNonce: options?.aeadNonce,
  });
}
