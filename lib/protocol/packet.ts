/**
 * The openme v1 knock packet (SPEC §1): exactly 165 bytes, built by the
 * client and parsed, decrypted and checked by the server.
 *
 * ```text
 * offset size field
 *      0    1 version 0x01
 *      1   32 client's ephemeral X25519 public key
 *     33   12 ChaCha20-Poly1305 nonce
 *     45   56 ciphertext of the 40-byte plaintext, then the 16-byte tag
 *    101   64 Ed25519 signature over bytes 0..100
 * ```
 *
 * Plaintext: int64 big-endian Unix time in nanoseconds, 16 random bytes
 * (replay nonce), 16-byte target address (IPv4-mapped for IPv4, all zero for
 * "the packet's source address").
 *
 * The layout itself (sizes, offsets, plaintext encoding, field splitting)
 * lives in the crypto-free `packet_format.ts` and is re-exported here; this
 * module adds the `node:crypto` sealing and opening. The client's fast path
 * seals with WebCrypto instead (`client/web_seal.ts`).
 *
 * @module
 */

import {
  chacha20Poly1305Open,
  chacha20Poly1305Seal,
  CHACHA_KEY_BYTES,
  clampX25519Scalar,
  ed25519KeyPairFromPrivateKey,
  ed25519Sign,
  ed25519Verify,
  type Ed25519VerifyKey,
  hkdfSha256,
  prepareX25519PrivateKey,
  randomBytes,
  X25519_KEY_BYTES,
  type X25519PrivateKey,
  x25519PublicKey,
  x25519SharedSecret,
  x25519SharedSecretPrepared,
} from "./crypto.ts";
import {
  AEAD_NONCE_BYTES,
  assembleUnsignedKnock,
  type BuildKnockOptions,
  currentTimestampNs,
  encodeKnockPlaintext,
  KDF_INFO_BYTES,
  type KnockKeys,
  type KnockPacket,
  type KnockPlaintext,
  parseKnockPacket,
  parseKnockPlaintext,
  REPLAY_NONCE_BYTES,
  type SealKnockOptions,
  SIGNATURE_OFFSET,
  SIGNED_BYTES,
} from "./packet_format.ts";

export type { IpAddress } from "../ip.ts";
export {
  AEAD_NONCE_BYTES,
  AEAD_NONCE_OFFSET,
  assembleUnsignedKnock,
  CIPHERTEXT_BYTES,
  CIPHERTEXT_OFFSET,
  currentTimestampNs,
  encodeKnockPlaintext,
  EPHEMERAL_KEY_BYTES,
  EPHEMERAL_KEY_OFFSET,
  KDF_INFO,
  KDF_INFO_BYTES,
  KDF_OUTPUT_BYTES,
  KNOCK_PACKET_BYTES,
  parseKnockPacket,
  parseKnockPlaintext,
  PLAINTEXT_BYTES,
  PROTOCOL_VERSION,
  REPLAY_NONCE_BYTES,
  REPLAY_NONCE_OFFSET,
  SIGNATURE_BYTES,
  SIGNATURE_OFFSET,
  SIGNED_BYTES,
  TARGET_BYTES,
  TARGET_OFFSET,
  TIMESTAMP_BYTES,
  TIMESTAMP_OFFSET,
  VERSION_BYTES,
  VERSION_OFFSET,
} from "./packet_format.ts";
export type {
  BuildKnockOptions,
  KnockKeys,
  KnockPacket,
  KnockPlaintext,
  SealKnockOptions,
} from "./packet_format.ts";

function deriveKnockKey(shared: Uint8Array): Uint8Array {
  return hkdfSha256(shared, { info: KDF_INFO_BYTES, length: CHACHA_KEY_BYTES });
}

/**
 * Builds a knock carrying the given plaintext: fresh ephemeral key and AEAD
 * nonce (unless a test fixes them through `options`), encrypted for the
 * server, signed by the client.
 */
export function sealKnock(
  keys: KnockKeys,
  plaintext: KnockPlaintext,
  options?: SealKnockOptions,
): Uint8Array {
  const clientKeys = ed25519KeyPairFromPrivateKey(keys.clientPrivateKey);
  const plainBytes = encodeKnockPlaintext(plaintext);
  const ephemeralPrivate = clampX25519Scalar(
    options?.ephemeralPrivateKey ?? randomBytes(X25519_KEY_BYTES),
  );
  const ephemeralPublic = x25519PublicKey(ephemeralPrivate);
  const shared = x25519SharedSecret(ephemeralPrivate, keys.serverPublicKey);
  const key = deriveKnockKey(shared);
  const aeadNonce = options?.aeadNonce ?? randomBytes(AEAD_NONCE_BYTES);
  const ciphertext = chacha20Poly1305Seal(key, aeadNonce, plainBytes);

  const packet = assembleUnsignedKnock(ephemeralPublic, aeadNonce, ciphertext);
  const signature = ed25519Sign(
    clientKeys.privateKey,
    packet.subarray(0, SIGNED_BYTES),
  );
  packet.set(signature, SIGNATURE_OFFSET);
  return packet;
}

/** Builds a 165-byte knock for the target (default: source address) stamped now unless told otherwise. */
export function buildKnock(
  keys: KnockKeys,
  options?: BuildKnockOptions,
): Uint8Array {
  const timestampNs = options?.timestampNs ?? currentTimestampNs();
  return sealKnock(keys, {
    timestampNs,
    replayNonce: options?.replayNonce ?? randomBytes(REPLAY_NONCE_BYTES),
    target: options?.target ?? null,
  }, {
    ephemeralPrivateKey: options?.ephemeralPrivateKey,
    aeadNonce: options?.aeadNonce,
  });
}

/**
 * Decrypts a parsed knock with the server's prepared X25519 private key;
 * returns null when key agreement or the AEAD fails. Never throws.
 */
export function openKnockPacket(
  packet: KnockPacket,
  serverPrivateKey: X25519PrivateKey,
): KnockPlaintext | null {
  let shared: Uint8Array;
  try {
    shared = x25519SharedSecretPrepared(
      serverPrivateKey,
      packet.ephemeralPublicKey,
    );
  } catch {
    return null;
  }
  const key = deriveKnockKey(shared);
  const plainBytes = chacha20Poly1305Open(
    key,
    packet.aeadNonce,
    packet.ciphertext,
  );
  if (plainBytes === null) return null;
  return parseKnockPlaintext(plainBytes);
}

/** Whether the knock's signature verifies under this client key; never throws. */
export function verifyKnockSignature(
  packet: KnockPacket,
  key: Ed25519VerifyKey,
): boolean {
  return ed25519Verify(key, packet.signedBytes, packet.signature);
}

/** The result of {@linkcode openKnock}: the parsed packet and its plaintext. */
export interface OpenedKnock {
  /** The packet's fields. */
  packet: KnockPacket;
  /** The decrypted plaintext. */
  plaintext: KnockPlaintext;
}

/**
 * Parses and decrypts a datagram with the server's raw 32-byte X25519 private
 * key; returns null for anything that is not a decryptable v1 knock. The
 * signature is not checked here (see {@linkcode verifyKnockSignature}).
 */
export function openKnock(
  datagram: Uint8Array,
  serverPrivateKey: Uint8Array,
): OpenedKnock | null {
  const packet = parseKnockPacket(datagram);
  if (packet === null) return null;
  const plaintext = openKnockPacket(
    packet,
    prepareX25519PrivateKey(serverPrivateKey),
  );
  if (plaintext === null) return null;
  return { packet, plaintext };
}
