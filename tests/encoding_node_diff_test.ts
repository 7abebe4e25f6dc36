// Differential tests: lib/encoding.ts no longer uses node's Buffer, so its
// base64 and hex helpers are compared here with Buffer on generated input.
// decodeBase64 must refuse exactly what the previous version refused: text
// that, once trimmed, is not padded standard base64 (the pattern below).

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import fc from "fast-check";
import {
  decodeBase64,
  decodeHex,
  encodeBase64,
  encodeHex,
} from "../lib/encoding.ts";

const RUNS = 2000;

/** The previous decodeBase64: a strict pattern, then Buffer's decoder. */
function legacyDecodeBase64(text: string): Uint8Array | null {
  const trimmed = text.trim();
  const pattern =
    /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
  if (!pattern.test(trimmed)) return null;
  return new Uint8Array(Buffer.from(trimmed, "base64"));
}

/** Buffer stops at the first bad hex pair, so all-consumed means valid. */
function bufferDecodeHex(text: string): Uint8Array | null {
  if (text.length % 2 !== 0) return null;
  const decoded = Buffer.from(text, "hex");
  if (decoded.length * 2 !== text.length) return null;
  return new Uint8Array(decoded);
}

/** Bytes, sometimes as a view into a larger buffer. */
const someBytes = fc.tuple(
  fc.uint8Array({ maxLength: 80 }),
  fc.nat({ max: 3 }),
  fc.nat({ max: 3 }),
).map(([data, before, after]) => {
  const whole = new Uint8Array(before + data.length + after).fill(0xaa);
  whole.set(data, before);
  return whole.subarray(before, before + data.length);
});

const base64Chars =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const junkChars = "=-_ \t\n\r.!é\u00a0\ufeff";

/** Valid base64 with one edit: padding, URL-safe alphabet, whitespace, length. */
const base64Text = fc.tuple(
  fc.uint8Array({ maxLength: 70 }),
  fc.constantFrom(
    "none",
    "unpad",
    "extra-pad",
    "url-safe",
    "space-inside",
    "space-around",
    "drop-char",
    "add-char",
    "last-char",
  ),
  fc.nat(),
  fc.constantFrom(...(base64Chars + junkChars).split("")),
).map(([data, edit, at, char]) => {
  const text = Buffer.from(data).toString("base64");
  const i = text.length === 0 ? 0 : at % text.length;
  switch (edit) {
    case "unpad":
      return text.replace(/=+$/, "");
    case "extra-pad":
      return `${text}=`;
    case "url-safe":
      return text.replaceAll("+", "-").replaceAll("/", "_");
    case "space-inside":
      return text.slice(0, i) + char + text.slice(i);
    case "space-around":
      return `${char}${text}${char}`;
    case "drop-char":
      return text.slice(0, i) + text.slice(i + 1);
    case "add-char":
      return text + char;
    case "last-char": {
      // Vary the character before the padding: non-zero spare bits.
      const end = text.replace(/=+$/, "").length - 1;
      if (end < 0) return text;
      const letter = base64Chars[at % 64];
      return text.slice(0, end) + letter + text.slice(end + 1);
    }
    default:
      return text;
  }
});

const anyBase64ish = fc.oneof(
  { weight: 4, arbitrary: base64Text },
  {
    weight: 2,
    arbitrary: fc.string({
      unit: fc.constantFrom(...(base64Chars + junkChars).split("")),
      maxLength: 16,
    }),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 16 }) },
);

const hexText = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.uint8Array({ maxLength: 40 }).map((b) =>
      Buffer.from(b).toString("hex")
    ),
  },
  {
    weight: 2,
    arbitrary: fc.uint8Array({ maxLength: 40 }).map((b) =>
      Buffer.from(b).toString("hex").toUpperCase()
    ),
  },
  {
    weight: 3,
    arbitrary: fc.string({
      unit: fc.constantFrom(..."0123456789abcdefABCDEFgG x-+\n".split("")),
      maxLength: 12,
    }),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
);

Deno.test("encodeBase64 matches Buffer's base64 (views included)", () => {
  fc.assert(
    fc.property(someBytes, (data) => {
      const expected = Buffer.from(data.buffer, data.byteOffset, data.length)
        .toString("base64");
      assert.equal(encodeBase64(data), expected);
    }),
    { numRuns: RUNS },
  );
});

Deno.test("decodeBase64 accepts and decodes exactly as the Buffer-based version did", () => {
  let accepted = 0;
  let refused = 0;
  fc.assert(
    fc.property(anyBase64ish, (text) => {
      const got = decodeBase64(text);
      assert.deepEqual(got, legacyDecodeBase64(text), JSON.stringify(text));
      if (got === null) refused++;
      else accepted++;
    }),
    { numRuns: RUNS },
  );
  assert.ok(
    accepted > RUNS / 10 && refused > RUNS / 10,
    `${accepted}/${refused}`,
  );
});

Deno.test("decodeBase64 ignores non-zero spare bits, as Buffer does", () => {
  assert.deepEqual(decodeBase64("Zh=="), new Uint8Array([0x66]));
  assert.deepEqual(decodeBase64("Zm9="), new Uint8Array([0x66, 0x6f]));
  assert.deepEqual(decodeBase64("\ufeffZg==\u00a0"), new Uint8Array([0x66]));
});

Deno.test("encodeHex and decodeHex match Buffer's hex", () => {
  fc.assert(
    fc.property(someBytes, (data) => {
      const expected = Buffer.from(data.buffer, data.byteOffset, data.length)
        .toString("hex");
      assert.equal(encodeHex(data), expected);
    }),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(hexText, (text) => {
      assert.deepEqual(
        decodeHex(text),
        bufferDecodeHex(text),
        JSON.stringify(text),
      );
    }),
    { numRuns: RUNS },
  );
});
