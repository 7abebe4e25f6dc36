/**
 * The byte layout of the openme v1 knock packet (SPEC §1), free of any
 * cryptography and of Deno's Node compatibility layer, so that the client's
 * knock path can load it cheaply. The crypto that fills the fields lives in
 * `packet.ts` (`node:crypto`, used by the server) and `client/web_seal.ts`
 * (WebCrypto, used by the client).
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
 * @module
 */

import { checkByteLength } from "../encoding.ts";
import {
  type IpAddress,
  ipFromBytes,
  ipToBytes,
  isWildcardTarget,
} from "../ip.ts";

export type { IpAddress } from "../ip.ts";

/** Total size of a knock packet. */
export const KNOCK_PACKET_BYTES = 165;
/** The only protocol version this implementation speaks. */
export const PROTOCOL_VERSION = 1;

/** Offset of the version byte. */
export const VERSION_OFFSET = 0;
/** Size of the version field. */
export const VERSION_BYTES = 1;
/** Offset of the client's ephemeral X25519 public key. */
export const EPHEMERAL_KEY_OFFSET = 1;
/** Size of the ephemeral X25519 public key. */
export const EPHEMERAL_KEY_BYTES = 32;
/** Offset of the ChaCha20-Poly1305 nonce. */
export const AEAD_NONCE_OFFSET = 33;
/** Size of the ChaCha20-Poly1305 nonce. */
export const AEAD_NONCE_BYTES = 12;
/** Offset of the ciphertext (encrypted plaintext then tag). */
export const CIPHERTEXT_OFFSET = 45;
/** Size of the plaintext inside the packet. */
export const PLAINTEXT_BYTES = 40;
/** Size of the ciphertext including its 16-byte tag. */
export const CIPHERTEXT_BYTES = 56;
/** Number of leading bytes the signature covers (bytes 0..100). */
export const SIGNED_BYTES = 101;
/** Offset of the Ed25519 signature. */
export const SIGNATURE_OFFSET = 101;
/** Size of the Ed25519 signature. */
export const SIGNATURE_BYTES = 64;

/** Offset of the timestamp inside the plaintext. */
export const TIMESTAMP_OFFSET = 0;
/** Size of the timestamp (signed 64-bit big-endian nanoseconds). */
export const TIMESTAMP_BYTES = 8;
/** Offset of the replay nonce inside the plaintext. */
export const REPLAY_NONCE_OFFSET = 8;
/** Size of the replay nonce. */
export const REPLAY_NONCE_BYTES = 16;
/** Offset of the target address inside the plaintext. */
export const TARGET_OFFSET = 24;
/** Size of the target address. */
export const TARGET_BYTES = 16;

/** HKDF info string that binds the derived key to this protocol version. */
export const KDF_INFO = "openme-v1-chacha20poly1305";
/** {@linkcode KDF_INFO} as the bytes HKDF takes. */
export const KDF_INFO_BYTES: Uint8Array<ArrayBuffer> = new TextEncoder()
  .encode(KDF_INFO);
/** Size of the symmetric key HKDF derives (a ChaCha20-Poly1305 key). */
export const KDF_OUTPUT_BYTES = 32;

const NS_PER_MS = 1_000_000n;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** The keys a client needs to build a knock. */
export interface KnockKeys {
  /** Server's 32-byte X25519 public key. */
  serverPublicKey: Uint8Array;
  /** Client's Ed25519 private key: 32-byte seed or 64-byte form. */
  clientPrivateKey: Uint8Array;
}

/**
 * Randomness a sealer would otherwise draw itself. Only tests set these, to
 * get reproducible packets; a real knock must leave them absent.
 */
export interface SealKnockOptions {
  /** 32-byte ephemeral X25519 private key (clamped before use); absent means fresh random bytes. */
  ephemeralPrivateKey?: Uint8Array;
  /** 12-byte ChaCha20-Poly1305 nonce; absent means fresh random bytes. */
  aeadNonce?: Uint8Array;
}

/** Options for building a knock (`buildKnock`, `buildKnockWeb`). */
export interface BuildKnockOptions extends SealKnockOptions {
  /** Address to open; null or absent means "the packet's source address". */
  target?: IpAddress | null;
  /** Unix time in nanoseconds; absent means now. */
  timestampNs?: bigint;
  /** 16-byte replay nonce; absent means fresh random bytes (tests only). */
  replayNonce?: Uint8Array;
}

/** The decrypted 40-byte plaintext of a knock. */
export interface KnockPlaintext {
  /** Unix time in nanoseconds the client stamped. */
  timestampNs: bigint;
  /** 16 random bytes identifying this knock. */
  replayNonce: Uint8Array;
  /** Address to open; null means "the packet's source address". */
  target: IpAddress | null;
}

/** A knock datagram split into its fields (views into the datagram, not copies). */
export interface KnockPacket {
  /** The version byte (always {@linkcode PROTOCOL_VERSION} once parsed). */
  version: number;
  /** Client's ephemeral X25519 public key (32 bytes). */
  ephemeralPublicKey: Uint8Array;
  /** ChaCha20-Poly1305 nonce (12 bytes). */
  aeadNonce: Uint8Array;
  /** Ciphertext then tag (56 bytes). */
  ciphertext: Uint8Array;
  /** The bytes the signature covers: bytes 0..100. */
  signedBytes: Uint8Array;
  /** Ed25519 signature (64 bytes). */
  signature: Uint8Array;
}

function checkTimestamp(timestampNs: bigint): void {
  if (
    typeof timestampNs !== "bigint" || timestampNs < INT64_MIN ||
    timestampNs > INT64_MAX
  ) {
    throw new RangeError(
      `knock timestamp ${timestampNs} ns does not fit a signed 64-bit integer`,
    );
  }
}

/** The current Unix time in nanoseconds, as a knock stamps it (millisecond resolution). */
export function currentTimestampNs(): bigint {
  return BigInt(Date.now()) * NS_PER_MS;
}

/** Encodes a plaintext into its 40 bytes. */
export function encodeKnockPlaintext(plaintext: KnockPlaintext): Uint8Array {
  checkTimestamp(plaintext.timestampNs);
  if (plaintext.replayNonce.length !== REPLAY_NONCE_BYTES) {
    throw new RangeError(
      `knock replay nonce: expected ${REPLAY_NONCE_BYTES} bytes, got ${plaintext.replayNonce.length}`,
    );
  }
  const out = new Uint8Array(PLAINTEXT_BYTES);
  new DataView(out.buffer).setBigInt64(
    TIMESTAMP_OFFSET,
    plaintext.timestampNs,
    false,
  );
  out.set(plaintext.replayNonce, REPLAY_NONCE_OFFSET);
  if (plaintext.target !== null) {
    out.set(ipToBytes(plaintext.target), TARGET_OFFSET);
  }
  return out;
}

/** Parses a decrypted 40-byte plaintext; returns null when the length is wrong. */
export function parseKnockPlaintext(bytes: Uint8Array): KnockPlaintext | null {
  if (bytes.length !== PLAINTEXT_BYTES) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const timestampNs = view.getBigInt64(TIMESTAMP_OFFSET, false);
  const replayNonce = bytes.slice(
    REPLAY_NONCE_OFFSET,
    REPLAY_NONCE_OFFSET + REPLAY_NONCE_BYTES,
  );
  const targetBytes = bytes.subarray(
    TARGET_OFFSET,
    TARGET_OFFSET + TARGET_BYTES,
  );
  const target = isWildcardTarget(targetBytes)
    ? null
    : ipFromBytes(targetBytes);
  return { timestampNs, replayNonce, target };
}

/**
 * Lays out a 165-byte knock with the version byte, the ephemeral public key,
 * the AEAD nonce and the ciphertext in place and the signature still zero;
 * the caller signs bytes 0..100 and writes the signature at
 * {@linkcode SIGNATURE_OFFSET}. Throws a RangeError when a field has the
 * wrong size.
 */
export function assembleUnsignedKnock(
  ephemeralPublicKey: Uint8Array,
  aeadNonce: Uint8Array,
  ciphertext: Uint8Array,
): Uint8Array<ArrayBuffer> {
  checkByteLength(
    "knock ephemeral public key",
    ephemeralPublicKey,
    EPHEMERAL_KEY_BYTES,
  );
  checkByteLength("knock AEAD nonce", aeadNonce, AEAD_NONCE_BYTES);
  checkByteLength("knock ciphertext", ciphertext, CIPHERTEXT_BYTES);
  const packet = new Uint8Array(KNOCK_PACKET_BYTES);
  packet[VERSION_OFFSET] = PROTOCOL_VERSION;
  packet.set(ephemeralPublicKey, EPHEMERAL_KEY_OFFSET);
  packet.set(aeadNonce, AEAD_NONCE_OFFSET);
  packet.set(ciphertext, CIPHERTEXT_OFFSET);
  return packet;
}

/** Splits a datagram into knock fields; returns null unless it is 165 bytes with version 1. */
export function parseKnockPacket(datagram: Uint8Array): KnockPacket | null {
  if (datagram.length !== KNOCK_PACKET_BYTES) return null;
  if (datagram[VERSION_OFFSET] !== PROTOCOL_VERSION) return null;
  return {
    version: datagram[VERSION_OFFSET],
    ephemeralPublicKey: datagram.subarray(
      EPHEMERAL_KEY_OFFSET,
      EPHEMERAL_KEY_OFFSET + EPHEMERAL_KEY_BYTES,
    ),
    aeadNonce: datagram.subarray(
      AEAD_NONCE_OFFSET,
      AEAD_NONCE_OFFSET + AEAD_NONCE_BYTES,
    ),
    ciphertext: datagram.subarray(
      CIPHERTEXT_OFFSET,
      CIPHERTEXT_OFFSET + CIPHERTEXT_BYTES,
    ),
    signedBytes: datagram.subarray(0, SIGNED_BYTES),
    signature: datagram.subarray(
      SIGNATURE_OFFSET,
      SIGNATURE_OFFSET + SIGNATURE_BYTES,
    ),
  };
}
