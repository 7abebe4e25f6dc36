/**
 * The crypto every valid knock costs at least, shared by the in-process
 * benchmarks (bench/crypto_bench.ts) and the server-level measurements
 * (bench/server_load.ts).
 *
 * @module
 */

import {
  chacha20Poly1305Open,
  ed25519Verify,
  type Ed25519VerifyKey,
  hkdfSha256,
  type X25519PrivateKey,
  x25519SharedSecret,
} from "../lib/protocol/crypto.ts";
import {
  AEAD_NONCE_BYTES,
  AEAD_NONCE_OFFSET,
  CIPHERTEXT_BYTES,
  CIPHERTEXT_OFFSET,
  EPHEMERAL_KEY_BYTES,
  EPHEMERAL_KEY_OFFSET,
  KDF_INFO,
  KDF_OUTPUT_BYTES,
  SIGNATURE_BYTES,
  SIGNATURE_OFFSET,
  SIGNED_BYTES,
} from "../lib/protocol/packet.ts";

/** The HKDF info of knock keys, as bytes. */
export const KDF_INFO_BYTES: Uint8Array = new TextEncoder().encode(KDF_INFO);

/** The size bytes of a packet from offset on (a view, no copy). */
export function field(
  packet: Uint8Array,
  offset: number,
  size: number,
): Uint8Array {
  return packet.subarray(offset, offset + size);
}

/**
 * X25519 with the packet's ephemeral key, HKDF-SHA256, ChaCha20-Poly1305
 * open and one Ed25519 verify of a knock packet; true when it opens and its
 * signature verifies.
 */
export function cryptoFloor(
  serverKey: X25519PrivateKey,
  verifyKey: Ed25519VerifyKey,
  packet: Uint8Array,
): boolean {
  const shared = x25519SharedSecret(
    serverKey,
    field(packet, EPHEMERAL_KEY_OFFSET, EPHEMERAL_KEY_BYTES),
  );
  const key = hkdfSha256(shared, {
    info: KDF_INFO_BYTES,
    length: KDF_OUTPUT_BYTES,
  });
  const plaintext = chacha20Poly1305Open(
    key,
    field(packet, AEAD_NONCE_OFFSET, AEAD_NONCE_BYTES),
    field(packet, CIPHERTEXT_OFFSET, CIPHERTEXT_BYTES),
  );
  if (plaintext === null) return false;
  return ed25519Verify(
    verifyKey,
    packet.subarray(0, SIGNED_BYTES),
    field(packet, SIGNATURE_OFFSET, SIGNATURE_BYTES),
  );
}
