import assert from "node:assert/strict";
import { createCipheriv, createDecipheriv } from "node:crypto";
import { Buffer } from "node:buffer";
import fc from "fast-check";
import {
  CHACHA20_BLOCK_BYTES,
  CHACHA20_KEY_BYTES,
  CHACHA20_NONCE_BYTES,
  chacha20Block,
  chacha20Poly1305Open,
  chacha20Poly1305Seal,
  chacha20Xor,
  poly1305,
  POLY1305_KEY_BYTES,
  POLY1305_TAG_BYTES,
} from "../lib/chacha20_poly1305.ts";
import { encodeHex } from "../lib/encoding.ts";
import { hex } from "./support/literals.ts";

/** Hex from RFC text: spaces, colons and newlines are ignored. */
const SUNSCREEN = new TextEncoder().encode(
  "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
);

/** ChaCha20-Poly1305 with node:crypto (OpenSSL), the reference. */
function nodeSeal(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
): Uint8Array {
  const cipher = createCipheriv("chacha20-poly1305", key, nonce, {
    authTagLength: POLY1305_TAG_BYTES,
  });
  cipher.setAAD(aad, { plaintextLength: plaintext.length });
  return new Uint8Array(Buffer.concat([
    cipher.update(plaintext),
    cipher.final(),
    cipher.getAuthTag(),
  ]));
}

/** Opens with node:crypto; null when OpenSSL rejects the tag. */
function nodeOpen(
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
): Uint8Array | null {
  const split = sealed.length - POLY1305_TAG_BYTES;
  const decipher = createDecipheriv("chacha20-poly1305", key, nonce, {
    authTagLength: POLY1305_TAG_BYTES,
  });
  decipher.setAuthTag(sealed.subarray(split));
  try {
    return new Uint8Array(Buffer.concat([
      decipher.update(sealed.subarray(0, split)),
      decipher.final(),
    ]));
  } catch {
    return null;
  }
}

/** Poly1305 straight from the RFC 8439 §2.5 pseudo-code, with BigInt. */
function bigIntPoly1305(key: Uint8Array, message: Uint8Array): Uint8Array {
  const fromLE = (bytes: Uint8Array): bigint => {
    let value = 0n;
    for (let i = bytes.length - 1; i >= 0; i--) {
      value = (value << 8n) | BigInt(bytes[i]);
    }
    return value;
  };
  const p = (1n << 130n) - 5n;
  const r = fromLE(key.subarray(0, 16)) & 0x0ffffffc0ffffffc0ffffffc0fffffffn;
  const s = fromLE(key.subarray(16, 32));
  let accumulator = 0n;
  for (let i = 0; i < message.length; i += 16) {
    const chunk = message.subarray(i, i + 16);
    const n = fromLE(chunk) + (1n << BigInt(8 * chunk.length));
    accumulator = ((accumulator + n) * r) % p;
  }
  let tag = (accumulator + s) & ((1n << 128n) - 1n);
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    out[i] = Number(tag & 0xffn);
    tag >>= 8n;
  }
  return out;
}

Deno.test("size constants match RFC 8439", () => {
  assert.equal(CHACHA20_KEY_BYTES, 32);
  assert.equal(CHACHA20_NONCE_BYTES, 12);
  assert.equal(CHACHA20_BLOCK_BYTES, 64);
  assert.equal(POLY1305_KEY_BYTES, 32);
  assert.equal(POLY1305_TAG_BYTES, 16);
});

Deno.test("RFC 8439 §2.3.2: ChaCha20 block function", () => {
  const key = hex(
    "00:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:10:11:12:13:14:15:16:17:18:19:1a:1b:1c:1d:1e:1f",
  );
  const nonce = hex("00:00:00:09:00:00:00:4a:00:00:00:00");
  assert.equal(
    encodeHex(chacha20Block(key, 1, nonce)),
    "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e" +
      "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e",
  );
});

Deno.test("RFC 8439 §2.4.2: ChaCha20 encryption", () => {
  const key = hex(
    "00:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:10:11:12:13:14:15:16:17:18:19:1a:1b:1c:1d:1e:1f",
  );
  const nonce = hex("00:00:00:00:00:00:00:4a:00:00:00:00");
  const expected = hex(`
    6e 2e 35 9a 25 68 f9 80 41 ba 07 28 dd 0d 69 81
    e9 7e 7a ec 1d 43 60 c2 0a 27 af cc fd 9f ae 0b
    f9 1b 65 c5 52 47 33 ab 8f 59 3d ab cd 62 b3 57
    16 39 d6 24 e6 51 52 ab 8f 53 0c 35 9f 08 61 d8
    07 ca 0d bf 50 0d 6a 61 56 a3 8e 08 8a 22 b6 5e
    52 bc 51 4d 16 cc f8 06 81 8c e9 1a b7 79 37 36
    5a f9 0b bf 74 a3 5b e6 b4 0b 8e ed f2 78 5e 42
    87 4d`);
  const ciphertext = chacha20Xor(key, nonce, 1, SUNSCREEN);
  assert.equal(encodeHex(ciphertext), encodeHex(expected));
  assert.deepEqual(chacha20Xor(key, nonce, 1, ciphertext), SUNSCREEN);
});

Deno.test("RFC 8439 §2.5.2: Poly1305 tag", () => {
  const key = hex(
    "85:d6:be:78:57:55:6d:33:7f:44:52:fe:42:d5:06:a8:01:03:80:8a:fb:0d:b2:fd:4a:bf:f6:af:41:49:f5:1b",
  );
  const message = new TextEncoder().encode(
    "Cryptographic Forum Research Group",
  );
  assert.equal(
    encodeHex(poly1305(key, message)),
    "a8061dc1305136c6c22b8baf0c0127a9",
  );
});

Deno.test("RFC 8439 §2.8.2: ChaCha20-Poly1305 AEAD seal and open", () => {
  const key = hex(`
    80 81 82 83 84 85 86 87 88 89 8a 8b 8c 8d 8e 8f
    90 91 92 93 94 95 96 97 98 99 9a 9b 9c 9d 9e 9f`);
  const nonce = hex("07 00 00 00 40 41 42 43 44 45 46 47");
  const aad = hex("50 51 52 53 c0 c1 c2 c3 c4 c5 c6 c7");
  const expectedCiphertext = hex(`
    d3 1a 8d 34 64 8e 60 db 7b 86 af bc 53 ef 7e c2
    a4 ad ed 51 29 6e 08 fe a9 e2 b5 a7 36 ee 62 d6
    3d be a4 5e 8c a9 67 12 82 fa fb 69 da 92 72 8b
    1a 71 de 0a 9e 06 0b 29 05 d6 a5 b6 7e cd 3b 36
    92 dd bd 7f 2d 77 8b 8c 98 03 ae e3 28 09 1b 58
    fa b3 24 e4 fa d6 75 94 55 85 80 8b 48 31 d7 bc
    3f f4 de f0 8e 4b 7a 9d e5 76 d2 65 86 ce c6 4b
    61 16`);
  const expectedTag = hex("1a:e1:0b:59:4f:09:e2:6a:7e:90:2e:cb:d0:60:06:91");
  const sealed = chacha20Poly1305Seal(key, nonce, SUNSCREEN, { aad });
  assert.equal(
    encodeHex(sealed),
    encodeHex(expectedCiphertext) + encodeHex(expectedTag),
  );
  assert.deepEqual(
    chacha20Poly1305Open(key, nonce, sealed, { aad }),
    SUNSCREEN,
  );
  assert.equal(chacha20Poly1305Open(key, nonce, sealed), null);
});

Deno.test("ChaCha20-Poly1305 equals node:crypto for random keys, nonces, plaintexts (0-200 bytes) and AAD", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 12, maxLength: 12 }),
      fc.uint8Array({ minLength: 0, maxLength: 200 }),
      fc.uint8Array({ minLength: 0, maxLength: 40 }),
      (key, nonce, plaintext, aad) => {
        const sealed = chacha20Poly1305Seal(key, nonce, plaintext, { aad });
        assert.equal(
          encodeHex(sealed),
          encodeHex(nodeSeal(key, nonce, plaintext, aad)),
        );
        const opened = chacha20Poly1305Open(key, nonce, sealed, { aad });
        assert.notEqual(opened, null);
        assert.equal(encodeHex(opened!), encodeHex(plaintext));
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("ChaCha20-Poly1305 without AAD equals node:crypto (the knock's use)", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 12, maxLength: 12 }),
      fc.uint8Array({ minLength: 0, maxLength: 200 }),
      (key, nonce, plaintext) => {
        assert.equal(
          encodeHex(chacha20Poly1305Seal(key, nonce, plaintext)),
          encodeHex(nodeSeal(key, nonce, plaintext, new Uint8Array(0))),
        );
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("Poly1305 equals a BigInt implementation, including all-ones keys and messages", () => {
  const byteOrExtreme = fc.oneof(
    fc.constant(0xff),
    fc.constant(0x00),
    fc.integer({ min: 0, max: 255 }),
  );
  const bytes = (minLength: number, maxLength: number) =>
    fc.array(byteOrExtreme, { minLength, maxLength }).map((values) =>
      new Uint8Array(values)
    );
  fc.assert(
    fc.property(bytes(32, 32), bytes(0, 100), (key, message) => {
      assert.equal(
        encodeHex(poly1305(key, message)),
        encodeHex(bigIntPoly1305(key, message)),
      );
    }),
    { numRuns: 1000 },
  );
  const ones = new Uint8Array(32).fill(0xff);
  for (const length of [0, 1, 15, 16, 17, 64, 200]) {
    const message = new Uint8Array(length).fill(0xff);
    assert.equal(
      encodeHex(poly1305(ones, message)),
      encodeHex(bigIntPoly1305(ones, message)),
    );
  }
});

Deno.test("open rejects a tampered tag, ciphertext, nonce, key or AAD and a short input", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 12, maxLength: 12 }),
      fc.uint8Array({ minLength: 0, maxLength: 200 }),
      fc.nat(),
      fc.integer({ min: 0, max: 7 }),
      (key, nonce, plaintext, where, bit) => {
        const sealed = chacha20Poly1305Seal(key, nonce, plaintext);
        const tampered = sealed.slice();
        tampered[where % tampered.length] ^= 1 << bit;
        assert.equal(chacha20Poly1305Open(key, nonce, tampered), null);
        const tagOnly = sealed.slice();
        tagOnly[tagOnly.length - 1 - (where % POLY1305_TAG_BYTES)] ^= 1 <<
          bit;
        assert.equal(chacha20Poly1305Open(key, nonce, tagOnly), null);
        // node:crypto agrees on all three.
        assert.equal(nodeOpen(key, nonce, tampered), null);
        assert.equal(nodeOpen(key, nonce, tagOnly), null);
        assert.equal(
          encodeHex(nodeOpen(key, nonce, sealed)!),
          encodeHex(plaintext),
        );
      },
    ),
    { numRuns: 300 },
  );
  const key = new Uint8Array(32);
  const nonce = new Uint8Array(12);
  const sealed = chacha20Poly1305Seal(key, nonce, SUNSCREEN);
  const otherNonce = nonce.slice();
  otherNonce[0] = 1;
  assert.equal(chacha20Poly1305Open(key, otherNonce, sealed), null);
  const otherKey = key.slice();
  otherKey[31] = 1;
  assert.equal(chacha20Poly1305Open(otherKey, nonce, sealed), null);
  assert.equal(
    chacha20Poly1305Open(key, nonce, sealed, { aad: new Uint8Array([1]) }),
    null,
  );
  assert.equal(chacha20Poly1305Open(key, nonce, new Uint8Array(15)), null);
  assert.deepEqual(
    chacha20Poly1305Open(
      key,
      nonce,
      chacha20Poly1305Seal(key, nonce, new Uint8Array(0)),
    ),
    new Uint8Array(0),
  );
});

Deno.test("wrong key, nonce or counter sizes are RangeErrors", () => {
  const key = new Uint8Array(32);
  const nonce = new Uint8Array(12);
  assert.throws(
    () => chacha20Poly1305Seal(new Uint8Array(31), nonce, SUNSCREEN),
    RangeError,
  );
  assert.throws(
    () => chacha20Poly1305Seal(key, new Uint8Array(8), SUNSCREEN),
    RangeError,
  );
  assert.throws(
    () => chacha20Poly1305Open(key, new Uint8Array(13), SUNSCREEN),
    RangeError,
  );
  assert.throws(() => poly1305(new Uint8Array(16), SUNSCREEN), RangeError);
  assert.throws(() => chacha20Block(key, -1, nonce), RangeError);
  assert.throws(() => chacha20Block(key, 2 ** 32, nonce), RangeError);
  assert.throws(
    () => chacha20Xor(key, nonce, 2 ** 32 - 1, new Uint8Array(65)),
    RangeError,
  );
  assert.equal(
    chacha20Xor(key, nonce, 2 ** 32 - 1, new Uint8Array(64)).length,
    64,
  );
});
