/**
 * The openme v1 knock packet (SPEC §1): exactly 165 bytes, built by the
 * client, parsed, decrypted and checked by the server.
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
 * Plaintext: int64 big-endian Unix time in nanoseconds, 16-byte replay nonce
 * (ours: the 8-byte key hint, then 8 random bytes), 16-byte target address
 * (IPv4-mapped for IPv4; all zero or `::ffff:0.0.0.0` for "the packet's
 * source address").
 *
 * @module
 */

import {
  chacha20Poly1305Open,
  chacha20Poly1305Seal,
  ed25519KeyPairFromPrivateKey,
  ed25519Sign,
  ed25519Verify,
  type Ed25519VerifyKey,
  FINGERPRINT_BYTES,
  generateX25519KeyPair,
  hkdfSha256,
  keyFingerprint,
  prepareX25519PrivateKey,
  randomBytes,
  type X25519PrivateKey,
  x25519SharedSecret,
} from "./crypto.ts";
import { type IpAddress, ipFromBytes, ipToBytes } from "../ip.ts";

/** Total size of a knock packet. */
export const KNOCK_PACKET_BYTES = 165;
/** The only protocol version this implementation speaks. */
export const PROTOCOL_VERSION = 1;
/** Offset of the version byte. */
export const VERSION_OFFSET = 0;
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
/** Size of the ciphertext including its 16-byte tag. */
export const CIPHERTEXT_BYTES = 56;
/** Number of leading bytes the signature covers. */
export const SIGNED_BYTES = 101;
/** Offset of the Ed25519 signature. */
export const SIGNATURE_OFFSET = 101;
/** Size of the Ed25519 signature. */
export const SIGNATURE_BYTES = 64;

// The plaintext: timestamp (signed 64-bit big-endian ns), replay nonce, target.
const PLAINTEXT_BYTES = 40;
const TIMESTAMP_OFFSET = 0;
const REPLAY_NONCE_OFFSET = 8;
const REPLAY_NONCE_BYTES = 16;
const TARGET_OFFSET = 24;

/** HKDF info string that binds the derived key to this protocol version. */
export const KDF_INFO = "openme-v1-chacha20poly1305";
/** Size of the key HKDF derives (a ChaCha20-Poly1305 key). */
export const KDF_OUTPUT_BYTES = 32;

const KDF_INFO_BYTES = new TextEncoder().encode(KDF_INFO);
const NS_PER_MS = 1_000_000n;

/** The keys a client needs to build a knock. */
export interface KnockKeys {
  /** Server's 32-byte X25519 public key. */
  serverPublicKey: Uint8Array;
  /** Client's Ed25519 private key: 32-byte seed or 64-byte form. */
  clientPrivateKey: Uint8Array;
}

/** Options for {@linkcode buildKnock}. */
export interface BuildKnockOptions {
  /** Address to open; null or absent means "the packet's source address". */
  target?: IpAddress | null;
  /** Unix time in nanoseconds; absent means now. */
  timestampNs?: bigint;
}

/** The decrypted plaintext of a knock. */
export interface KnockPlaintext {
  /** Unix time in nanoseconds the client stamped. */
  timestampNs: bigint;
  /** 16 bytes identifying this knock. */
  replayNonce: Uint8Array;
  /** Address to open; null means "the packet's source address". */
  target: IpAddress | null;
}

/** A knock datagram split into its fields (views into the datagram). */
export interface KnockPacket {
  /** Client's ephemeral X25519 public key. */
  ephemeralPublicKey: Uint8Array;
  /** ChaCha20-Poly1305 nonce. */
  aeadNonce: Uint8Array;
  /** Ciphertext then tag. */
  ciphertext: Uint8Array;
  /** The bytes the signature covers. */
  signedBytes: Uint8Array;
  /** Ed25519 signature. */
  signature: Uint8Array;
}

function knockKey(shared: Uint8Array): Uint8Array {
  return hkdfSha256(shared, { info: KDF_INFO_BYTES, length: KDF_OUTPUT_BYTES });
}

function encodePlaintext(plaintext: KnockPlaintext): Uint8Array {
  const { timestampNs, replayNonce, target } = plaintext;
  if (BigInt.asIntN(64, timestampNs) !== timestampNs) {
    throw new RangeError(
      `knock timestamp ${timestampNs} ns does not fit a signed 64-bit integer`,
    );
  }
  if (replayNonce.length !== REPLAY_NONCE_BYTES) {
    throw new RangeError(
      `knock replay nonce: expected ${REPLAY_NONCE_BYTES} bytes, got ${replayNonce.length}`,
    );
  }
  const out = new Uint8Array(PLAINTEXT_BYTES);
  new DataView(out.buffer).setBigInt64(TIMESTAMP_OFFSET, timestampNs);
  out.set(replayNonce, REPLAY_NONCE_OFFSET);
  if (target !== null) out.set(ipToBytes(target), TARGET_OFFSET);
  return out;
}

function parsePlaintext(bytes: Uint8Array): KnockPlaintext {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const target = ipFromBytes(bytes.subarray(TARGET_OFFSET));
  return {
    timestampNs: view.getBigInt64(TIMESTAMP_OFFSET),
    replayNonce: bytes.slice(REPLAY_NONCE_OFFSET, TARGET_OFFSET),
    // The unspecified address, in either family, means the source address.
    target: target.text === "::" || target.text === "0.0.0.0" ? null : target,
  };
}

/** Builds a knock carrying the given plaintext with a fresh ephemeral key and AEAD nonce, encrypted for the server and signed by the client. */
export function sealKnock(
  keys: KnockKeys,
  plaintext: KnockPlaintext,
): Uint8Array {
  const ephemeral = generateX25519KeyPair();
  const shared = x25519SharedSecret(
    prepareX25519PrivateKey(ephemeral.privateKey),
    keys.serverPublicKey,
  );
  const aeadNonce = randomBytes(AEAD_NONCE_BYTES);
  const packet = new Uint8Array(KNOCK_PACKET_BYTES);
  packet[VERSION_OFFSET] = PROTOCOL_VERSION;
  packet.set(ephemeral.publicKey, EPHEMERAL_KEY_OFFSET);
  packet.set(aeadNonce, AEAD_NONCE_OFFSET);
  packet.set(
    chacha20Poly1305Seal(
      knockKey(shared),
      aeadNonce,
      encodePlaintext(plaintext),
    ),
    CIPHERTEXT_OFFSET,
  );
  const signed = packet.subarray(0, SIGNED_BYTES);
  packet.set(ed25519Sign(keys.clientPrivateKey, signed), SIGNATURE_OFFSET);
  return packet;
}

/** Builds a knock for the target (default: the source address), stamped now unless told otherwise, whose replay nonce is the key hint (SPEC §1): the client's key fingerprint, then random bytes. */
export function buildKnock(
  keys: KnockKeys,
  options: BuildKnockOptions = {},
): Uint8Array {
  const { publicKey } = ed25519KeyPairFromPrivateKey(keys.clientPrivateKey);
  const replayNonce = randomBytes(REPLAY_NONCE_BYTES);
  replayNonce.set(Uint8Array.fromHex(keyFingerprint(publicKey)));
  return sealKnock(keys, {
    timestampNs: options.timestampNs ?? BigInt(Date.now()) * NS_PER_MS,
    replayNonce,
    target: options.target ?? null,
  });
}

/** The key hint a knock's replay nonce may start with (SPEC §1), as the lowercase hex a key fingerprint is written in. */
export function keyHint(plaintext: KnockPlaintext): string {
  return plaintext.replayNonce.subarray(0, FINGERPRINT_BYTES).toHex();
}

/** Splits a datagram into knock fields; returns null unless it is 165 bytes with version 1. */
export function parseKnockPacket(datagram: Uint8Array): KnockPacket | null {
  if (datagram.length !== KNOCK_PACKET_BYTES) return null;
  if (datagram[VERSION_OFFSET] !== PROTOCOL_VERSION) return null;
  const field = (offset: number, size: number): Uint8Array =>
    datagram.subarray(offset, offset + size);
  return {
    ephemeralPublicKey: field(EPHEMERAL_KEY_OFFSET, EPHEMERAL_KEY_BYTES),
    aeadNonce: field(AEAD_NONCE_OFFSET, AEAD_NONCE_BYTES),
    ciphertext: field(CIPHERTEXT_OFFSET, CIPHERTEXT_BYTES),
    signedBytes: field(0, SIGNED_BYTES),
    signature: field(SIGNATURE_OFFSET, SIGNATURE_BYTES),
  };
}

/** Decrypts a parsed knock with the server's private key; returns null when key agreement or the AEAD fails, never throws. */
export function openKnockPacket(
  packet: KnockPacket,
  serverPrivateKey: X25519PrivateKey,
): KnockPlaintext | null {
  let shared: Uint8Array;
  try {
    shared = x25519SharedSecret(serverPrivateKey, packet.ephemeralPublicKey);
  } catch {
    return null;
  }
  const plaintext = chacha20Poly1305Open(
    knockKey(shared),
    packet.aeadNonce,
    packet.ciphertext,
  );
  return plaintext === null ? null : parsePlaintext(plaintext);
}

/** The parts of a knock its signature check needs. */
export type SignedKnock = Pick<KnockPacket, "signedBytes" | "signature">;

/** Whether the knock's signature verifies under this client key (prepared or raw); never throws. */
export function verifyKnockSignature(
  packet: SignedKnock,
  key: Ed25519VerifyKey | Uint8Array,
): boolean {
  return ed25519Verify(key, packet.signedBytes, packet.signature);
}
