/**
 * ChaCha20-Poly1305 AEAD (RFC 8439) in plain TypeScript, for the client's
 * knock path: WebCrypto has no ChaCha20-Poly1305 and `node:crypto` costs
 * tens of milliseconds of start-up. Written for clarity, not speed; a knock
 * seals 40 bytes.
 *
 * - ChaCha20 (RFC 8439 §2.3, §2.4): 32-bit words, 20 rounds, 32-bit block
 *   counter, 96-bit nonce.
 * - Poly1305 (RFC 8439 §2.5): the accumulator and `r` are kept as ten 13-bit
 *   limbs (the layout of poly1305-donna's 16-bit version, as in TweetNaCl),
 *   so every limb product and every sum of ten of them stays an exact
 *   integer in a JavaScript number.
 * - AEAD (RFC 8439 §2.8): one-time Poly1305 key from block 0, encryption
 *   from block 1, tag over `aad | pad16 | ciphertext | pad16 | len(aad) |
 *   len(ciphertext)`.
 *
 * @module
 */

import { checkByteLength } from "./encoding.ts";

/** Size of a ChaCha20 (and ChaCha20-Poly1305) key. */
export const CHACHA20_KEY_BYTES = 32;
/** Size of a ChaCha20 (and ChaCha20-Poly1305) nonce. */
export const CHACHA20_NONCE_BYTES = 12;
/** Size of one ChaCha20 keystream block. */
export const CHACHA20_BLOCK_BYTES = 64;
/** Size of a Poly1305 one-time key (`r` then `s`). */
export const POLY1305_KEY_BYTES = 32;
/** Size of a Poly1305 tag. */
export const POLY1305_TAG_BYTES = 16;

/** Largest block counter: ChaCha20's counter is 32 bits. */
const MAX_BLOCK_COUNTER = 0xffffffff;
/** Number of 32-bit words in the ChaCha20 state. */
const STATE_WORDS = 16;
/** ChaCha20 rounds, run as ten double rounds (column then diagonal). */
const DOUBLE_ROUNDS = 10;
/** The ChaCha20 constant "expand 32-byte k" as four little-endian words. */
const SIGMA = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574];
/** State word index of the block counter. */
const COUNTER_WORD = 12;
/** State word index of the first key word. */
const KEY_WORD = 4;
/** State word index of the first nonce word. */
const NONCE_WORD = 13;

/** Size of a Poly1305 message block. */
const POLY1305_BLOCK_BYTES = 16;
/** Size of `r` and of `s` in the one-time key. */
const POLY1305_HALF_KEY_BYTES = 16;
/** Number of limbs holding a value below 2^130. */
const LIMB_COUNT = 10;
/** Bits per limb. */
const LIMB_BITS = 13;
/** 2^13: one unit of the next limb. */
const LIMB_BASE = 1 << LIMB_BITS;
/** Mask of the low 13 bits. */
const LIMB_MASK = LIMB_BASE - 1;
/** 2^130 = 5 (mod p), where p = 2^130 - 5. */
const FOLD_FACTOR = 5;
/** Size of the 8-byte little-endian lengths closing the AEAD's MAC input. */
const LENGTH_FIELD_BYTES = 8;
/** 2^32, to split a length into two 32-bit words. */
const TWO_POW_32 = 0x1_0000_0000;

/** Options for {@linkcode chacha20Poly1305Seal} and {@linkcode chacha20Poly1305Open}. */
export interface AeadOptions {
  /** Associated data, authenticated but not encrypted; absent means none. */
  aad?: Uint8Array;
}

function readUint32LE(bytes: Uint8Array, offset: number): number {
  return (bytes[offset] | (bytes[offset + 1] << 8) |
    (bytes[offset + 2] << 16) | (bytes[offset + 3] << 24)) >>> 0;
}

function writeUint32LE(out: Uint8Array, offset: number, value: number): void {
  out[offset] = value & 0xff;
  out[offset + 1] = (value >>> 8) & 0xff;
  out[offset + 2] = (value >>> 16) & 0xff;
  out[offset + 3] = (value >>> 24) & 0xff;
}

function rotateLeft(value: number, bits: number): number {
  return ((value << bits) | (value >>> (32 - bits))) >>> 0;
}

/** The ChaCha20 quarter round (RFC 8439 §2.1) on four words of the state. */
function quarterRound(
  x: Uint32Array,
  a: number,
  b: number,
  c: number,
  d: number,
): void {
  x[a] = (x[a] + x[b]) >>> 0;
  x[d] = rotateLeft(x[d] ^ x[a], 16);
  x[c] = (x[c] + x[d]) >>> 0;
  x[b] = rotateLeft(x[b] ^ x[c], 12);
  x[a] = (x[a] + x[b]) >>> 0;
  x[d] = rotateLeft(x[d] ^ x[a], 8);
  x[c] = (x[c] + x[d]) >>> 0;
  x[b] = rotateLeft(x[b] ^ x[c], 7);
}

/**
 * Computes one 64-byte ChaCha20 keystream block (RFC 8439 §2.3) for a
 * 32-byte key, a 32-bit block counter and a 12-byte nonce.
 */
export function chacha20Block(
  key: Uint8Array,
  counter: number,
  nonce: Uint8Array,
): Uint8Array {
  checkByteLength("ChaCha20 key", key, CHACHA20_KEY_BYTES);
  checkByteLength("ChaCha20 nonce", nonce, CHACHA20_NONCE_BYTES);
  if (
    !Number.isInteger(counter) || counter < 0 || counter > MAX_BLOCK_COUNTER
  ) {
    throw new RangeError(
      `ChaCha20 block counter must be an integer in 0..${MAX_BLOCK_COUNTER}, got ${counter}`,
    );
  }
  const initial = new Uint32Array(STATE_WORDS);
  for (let i = 0; i < SIGMA.length; i++) initial[i] = SIGMA[i];
  for (let i = 0; i < CHACHA20_KEY_BYTES / 4; i++) {
    initial[KEY_WORD + i] = readUint32LE(key, i * 4);
  }
  initial[COUNTER_WORD] = counter;
  for (let i = 0; i < CHACHA20_NONCE_BYTES / 4; i++) {
    initial[NONCE_WORD + i] = readUint32LE(nonce, i * 4);
  }

  const working = initial.slice();
  for (let round = 0; round < DOUBLE_ROUNDS; round++) {
    quarterRound(working, 0, 4, 8, 12);
    quarterRound(working, 1, 5, 9, 13);
    quarterRound(working, 2, 6, 10, 14);
    quarterRound(working, 3, 7, 11, 15);
    quarterRound(working, 0, 5, 10, 15);
    quarterRound(working, 1, 6, 11, 12);
    quarterRound(working, 2, 7, 8, 13);
    quarterRound(working, 3, 4, 9, 14);
  }

  const out = new Uint8Array(CHACHA20_BLOCK_BYTES);
  for (let i = 0; i < STATE_WORDS; i++) {
    writeUint32LE(out, i * 4, (working[i] + initial[i]) >>> 0);
  }
  return out;
}

/**
 * Encrypts or decrypts (the same operation) with ChaCha20 (RFC 8439 §2.4):
 * XORs the input with the keystream starting at block `initialCounter`.
 * Throws a RangeError when the input would run the 32-bit counter past its
 * end.
 */
export function chacha20Xor(
  key: Uint8Array,
  nonce: Uint8Array,
  initialCounter: number,
  input: Uint8Array,
): Uint8Array {
  const blocks = Math.ceil(input.length / CHACHA20_BLOCK_BYTES);
  if (blocks > 0 && initialCounter + blocks - 1 > MAX_BLOCK_COUNTER) {
    throw new RangeError(
      `ChaCha20: ${input.length} bytes from block ${initialCounter} overflow the 32-bit block counter`,
    );
  }
  const out = new Uint8Array(input.length);
  for (let block = 0; block < blocks; block++) {
    const keystream = chacha20Block(key, initialCounter + block, nonce);
    const start = block * CHACHA20_BLOCK_BYTES;
    const end = Math.min(start + CHACHA20_BLOCK_BYTES, input.length);
    for (let i = start; i < end; i++) {
      out[i] = input[i] ^ keystream[i - start];
    }
  }
  return out;
}

/**
 * Splits up to 17 little-endian bytes (130 bits used) into ten 13-bit limbs.
 * Missing bytes count as zero.
 */
function bytesToLimbs(bytes: Uint8Array): number[] {
  const limbs: number[] = [];
  let accumulator = 0;
  let accumulatorBits = 0;
  let index = 0;
  for (let i = 0; i < LIMB_COUNT; i++) {
    while (accumulatorBits < LIMB_BITS && index < bytes.length) {
      accumulator |= bytes[index] << accumulatorBits;
      accumulatorBits += 8;
      index++;
    }
    limbs.push(accumulator & LIMB_MASK);
    accumulator >>>= LIMB_BITS;
    accumulatorBits -= LIMB_BITS;
    if (accumulatorBits < 0) accumulatorBits = 0;
  }
  return limbs;
}

/** Joins ten 13-bit limbs into the low 16 bytes, little-endian (bits from 128 up are dropped). */
function limbsToBytes(limbs: number[]): Uint8Array {
  const out = new Uint8Array(POLY1305_TAG_BYTES);
  let accumulator = 0;
  let accumulatorBits = 0;
  let index = 0;
  for (let i = 0; i < LIMB_COUNT && index < out.length; i++) {
    accumulator |= limbs[i] << accumulatorBits;
    accumulatorBits += LIMB_BITS;
    while (accumulatorBits >= 8 && index < out.length) {
      out[index] = accumulator & 0xff;
      accumulator >>>= 8;
      accumulatorBits -= 8;
      index++;
    }
  }
  return out;
}

/** h = h * r mod (2^130 - 5), limb by limb, leaving each limb near 13 bits. */
function multiplyModP(h: number[], r: number[]): number[] {
  const product: number[] = [];
  let carry = 0;
  for (let i = 0; i < LIMB_COUNT; i++) {
    let sum = carry;
    for (let j = 0; j < LIMB_COUNT; j++) {
      // Limb j of h times limb k of r lands at limb j + k; from limb 10 on
      // it is 2^130 times limb j + k - 10, and 2^130 = 5 (mod p).
      sum += j <= i
        ? h[j] * r[i - j]
        : h[j] * FOLD_FACTOR * r[i + LIMB_COUNT - j];
    }
    carry = Math.floor(sum / LIMB_BASE);
    product.push(sum - carry * LIMB_BASE);
  }
  // The carry out of the top limb is worth 2^130 = 5 (mod p).
  product[0] += carry * FOLD_FACTOR;
  const low = Math.floor(product[0] / LIMB_BASE);
  product[0] -= low * LIMB_BASE;
  product[1] += low;
  return product;
}

/** Reduces h fully: every limb below 2^13 and the value below p = 2^130 - 5. */
function reduceModP(h: number[]): number[] {
  const out = h.slice();
  let carry: number;
  do {
    carry = 0;
    for (let i = 0; i < LIMB_COUNT; i++) {
      out[i] += carry;
      carry = Math.floor(out[i] / LIMB_BASE);
      out[i] -= carry * LIMB_BASE;
    }
    out[0] += carry * FOLD_FACTOR;
  } while (carry !== 0);
  // Now out < 2^130. If out >= p, then out + 5 >= 2^130 and out - p is
  // out + 5 - 2^130: add 5 and see whether bit 130 comes out.
  const minusP: number[] = [];
  let bit130 = FOLD_FACTOR;
  for (let i = 0; i < LIMB_COUNT; i++) {
    const limb = out[i] + bit130;
    bit130 = limb >>> LIMB_BITS;
    minusP.push(limb & LIMB_MASK);
  }
  const takeMinusP = -bit130; // all ones when out >= p, else zero
  for (let i = 0; i < LIMB_COUNT; i++) {
    out[i] = (out[i] & ~takeMinusP) | (minusP[i] & takeMinusP);
  }
  return out;
}

/**
 * Computes the Poly1305 tag (RFC 8439 §2.5) of a message under a 32-byte
 * one-time key (`r` then `s`).
 */
export function poly1305(key: Uint8Array, message: Uint8Array): Uint8Array {
  checkByteLength("Poly1305 key", key, POLY1305_KEY_BYTES);
  // r with the bits RFC 8439 §2.5 requires cleared.
  const rBytes = key.slice(0, POLY1305_HALF_KEY_BYTES);
  rBytes[3] &= 0x0f;
  rBytes[7] &= 0x0f;
  rBytes[11] &= 0x0f;
  rBytes[15] &= 0x0f;
  rBytes[4] &= 0xfc;
  rBytes[8] &= 0xfc;
  rBytes[12] &= 0xfc;
  const r = bytesToLimbs(rBytes);
  const s = key.subarray(POLY1305_HALF_KEY_BYTES, POLY1305_KEY_BYTES);

  let h: number[] = new Array(LIMB_COUNT).fill(0);
  for (
    let offset = 0;
    offset < message.length;
    offset += POLY1305_BLOCK_BYTES
  ) {
    const chunk = message.subarray(offset, offset + POLY1305_BLOCK_BYTES);
    // The block with a 0x01 byte appended (bit 128 for a full block).
    const block = new Uint8Array(POLY1305_BLOCK_BYTES + 1);
    block.set(chunk, 0);
    block[chunk.length] = 1;
    const n = bytesToLimbs(block);
    for (let i = 0; i < LIMB_COUNT; i++) h[i] += n[i];
    h = multiplyModP(h, r);
  }

  const hBytes = limbsToBytes(reduceModP(h));
  // tag = (h + s) mod 2^128
  const tag = new Uint8Array(POLY1305_TAG_BYTES);
  let carry = 0;
  for (let i = 0; i < POLY1305_TAG_BYTES; i++) {
    const sum = hBytes[i] + s[i] + carry;
    tag[i] = sum & 0xff;
    carry = sum >>> 8;
  }
  return tag;
}

function paddedLength(length: number): number {
  return Math.ceil(length / POLY1305_BLOCK_BYTES) * POLY1305_BLOCK_BYTES;
}

function writeLength64LE(
  out: Uint8Array,
  offset: number,
  length: number,
): void {
  writeUint32LE(out, offset, length >>> 0);
  writeUint32LE(out, offset + 4, Math.floor(length / TWO_POW_32));
}

/** The AEAD tag (RFC 8439 §2.8) of a ciphertext and its associated data. */
function aeadTag(
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  ciphertext: Uint8Array,
): Uint8Array {
  const oneTimeKey = chacha20Block(key, 0, nonce).subarray(
    0,
    POLY1305_KEY_BYTES,
  );
  const aadEnd = paddedLength(aad.length);
  const ciphertextEnd = aadEnd + paddedLength(ciphertext.length);
  const macData = new Uint8Array(ciphertextEnd + 2 * LENGTH_FIELD_BYTES);
  macData.set(aad, 0);
  macData.set(ciphertext, aadEnd);
  writeLength64LE(macData, ciphertextEnd, aad.length);
  writeLength64LE(
    macData,
    ciphertextEnd + LENGTH_FIELD_BYTES,
    ciphertext.length,
  );
  return poly1305(oneTimeKey, macData);
}

/**
 * Encrypts with ChaCha20-Poly1305 (RFC 8439 §2.8) and returns the
 * ciphertext followed by the 16-byte tag.
 */
export function chacha20Poly1305Seal(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  options?: AeadOptions,
): Uint8Array {
  checkByteLength("ChaCha20-Poly1305 key", key, CHACHA20_KEY_BYTES);
  checkByteLength("ChaCha20-Poly1305 nonce", nonce, CHACHA20_NONCE_BYTES);
  const ciphertext = chacha20Xor(key, nonce, 1, plaintext);
  const tag = aeadTag(
    key,
    nonce,
    options?.aad ?? new Uint8Array(0),
    ciphertext,
  );
  const out = new Uint8Array(ciphertext.length + POLY1305_TAG_BYTES);
  out.set(ciphertext, 0);
  out.set(tag, ciphertext.length);
  return out;
}

/**
 * Decrypts ciphertext-then-tag with ChaCha20-Poly1305 (RFC 8439 §2.8);
 * returns null when it does not authenticate (the tag is compared in
 * constant time before anything is decrypted).
 */
export function chacha20Poly1305Open(
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
  options?: AeadOptions,
): Uint8Array | null {
  checkByteLength("ChaCha20-Poly1305 key", key, CHACHA20_KEY_BYTES);
  checkByteLength("ChaCha20-Poly1305 nonce", nonce, CHACHA20_NONCE_BYTES);
  if (!(sealed instanceof Uint8Array) || sealed.length < POLY1305_TAG_BYTES) {
    return null;
  }
  const split = sealed.length - POLY1305_TAG_BYTES;
  const ciphertext = sealed.subarray(0, split);
  const expected = aeadTag(
    key,
    nonce,
    options?.aad ?? new Uint8Array(0),
    ciphertext,
  );
  let difference = 0;
  for (let i = 0; i < POLY1305_TAG_BYTES; i++) {
    difference |= expected[i] ^ sealed[split + i];
  }
  if (difference !== 0) return null;
  return chacha20Xor(key, nonce, 1, ciphertext);
}
