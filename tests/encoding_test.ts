import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeBase64,
  decodeBase64Key,
  encodeBase64,
} from "../lib/encoding.ts";

const bytes = (values: number[]): Uint8Array => new Uint8Array(values);

Deno.test("encodeBase64 uses the standard alphabet with padding (RFC 4648 vectors)", () => {
  const text = new TextEncoder();
  assert.equal(encodeBase64(text.encode("")), "");
  assert.equal(encodeBase64(text.encode("f")), "Zg==");
  assert.equal(encodeBase64(text.encode("fo")), "Zm8=");
  assert.equal(encodeBase64(text.encode("foo")), "Zm9v");
  assert.equal(encodeBase64(text.encode("foobar")), "Zm9vYmFy");
  assert.equal(encodeBase64(bytes([0xfb, 0xff])), "+/8=");
});

Deno.test("decodeBase64 decodes padded standard base64 and trims whitespace", () => {
  assert.deepEqual(decodeBase64("Zm9vYmE="), new TextEncoder().encode("fooba"));
  assert.deepEqual(decodeBase64("  +/8=\n"), bytes([0xfb, 0xff]));
  assert.deepEqual(decodeBase64(""), bytes([]));
});

Deno.test("decodeBase64 refuses URL-safe, unpadded, inner-space and junk input", () => {
  for (
    const text of [
      "-_8=",
      "Zm8",
      "Zg",
      "Zm 9v",
      "Zm9v=",
      "Zg===",
      "Z===",
      "@@@@",
      "Zm9v\nYmFy",
    ]
  ) {
    assert.equal(decodeBase64(text), null, JSON.stringify(text));
  }
});

Deno.test("base64 round-trips arbitrary bytes", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 100 }), (data) => {
      assert.deepEqual(decodeBase64(encodeBase64(data)), data);
    }),
    { numRuns: 200 },
  );
});

Deno.test("decodeBase64Key accepts only the listed sizes", () => {
  const key32 = encodeBase64(new Uint8Array(32).fill(7));
  const key64 = encodeBase64(new Uint8Array(64).fill(9));
  const ok32 = decodeBase64Key(key32, [32]);
  assert.ok(ok32.ok);
  assert.deepEqual(ok32.bytes, new Uint8Array(32).fill(7));
  const ok64 = decodeBase64Key(key64, [64, 32]);
  assert.ok(ok64.ok);
  assert.equal(ok64.bytes.length, 64);
  const bad = decodeBase64Key(key64, [32]);
  assert.deepEqual(bad, {
    ok: false,
    reason: "key is 64 bytes, expected 32 bytes",
  });
});

Deno.test("decodeBase64Key explains missing and malformed keys", () => {
  for (const value of [undefined, null, 42, "", "   "]) {
    const result = decodeBase64Key(value, [32, 64]);
    assert.equal(result.ok, false);
    assert.match(
      !result.ok ? result.reason : "",
      /missing key: expected base64 of 32 or 64 bytes/,
    );
  }
  const junk = decodeBase64Key("not base64!", [32]);
  assert.equal(junk.ok, false);
  assert.match(!junk.ok ? junk.reason : "", /not valid base64/);
});
