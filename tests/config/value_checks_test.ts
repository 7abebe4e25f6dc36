import assert from "node:assert/strict";
import { report, reported } from "../support/report.ts";
import {
  ASCII_NAME_PATTERN,
  checkKey,
  checkOptionalPort,
  isRecord,
  NAME_PATTERN,
} from "../../lib/config/value_checks.ts";
import { encodeBase64 } from "../../lib/encoding.ts";

Deno.test("checkKey decodes a key of an accepted size and reports others at their key path", () => {
  const bytes = new Uint8Array(32).fill(7);
  const field = {
    keyPath: ["profiles", "a", "server_pubkey"],
    sizes: [32],
    hint: "a key",
  };
  assert.deepEqual(
    checkKey({ ...field, value: encodeBase64(bytes) }, report),
    bytes,
  );
  const short = reported(() =>
    checkKey({ ...field, value: encodeBase64(bytes.subarray(0, 16)) }, report)
  );
  assert.deepEqual(short.keyPath, field.keyPath);
  assert.match(short.problem, /16 bytes/);
  assert.equal(short.expected, "a key");
  assert.match(
    reported(() => checkKey({ ...field, value: 12 }, report)).problem,
    /expected base64 text, got 12/,
  );
  assert.match(
    reported(() => checkKey({ ...field, value: undefined }, report)).problem,
    /missing|empty/,
  );
});

Deno.test("checkOptionalPort returns the fallback when absent and reports non-integers and out-of-range ports", () => {
  const field = { keyPath: ["p"], fallback: 54154 };
  assert.equal(
    checkOptionalPort({ ...field, value: undefined }, report),
    54154,
  );
  assert.equal(checkOptionalPort({ ...field, value: null }, report), 54154);
  assert.equal(checkOptionalPort({ ...field, value: 1 }, report), 1);
  assert.equal(checkOptionalPort({ ...field, value: 65535 }, report), 65535);
  assert.match(
    reported(() => checkOptionalPort({ ...field, value: "22" }, report))
      .problem,
    /expected a port number/,
  );
  assert.match(
    reported(() => checkOptionalPort({ ...field, value: 1.5 }, report)).problem,
    /expected a port number/,
  );
  assert.match(
    reported(() => checkOptionalPort({ ...field, value: 0 }, report)).problem,
    /out of range 1-65535/,
  );
  assert.match(
    reported(() => checkOptionalPort({ ...field, value: 65536 }, report))
      .problem,
    /out of range 1-65535/,
  );
});

Deno.test("isRecord is true for maps only", () => {
  assert.equal(isRecord({}), true);
  assert.equal(isRecord([]), false);
  assert.equal(isRecord(null), false);
  assert.equal(isRecord(new Uint8Array(1)), false);
  assert.equal(isRecord("x"), false);
});

Deno.test("ASCII_NAME_PATTERN accepts only names NAME_PATTERN accepts", () => {
  const samples = [
    "a",
    "A1",
    "a.b_c@d-e",
    "0",
    "-a",
    ".a",
    "a b",
    "é",
    "a/b",
    "",
  ];
  for (const name of samples) {
    if (ASCII_NAME_PATTERN.test(name)) {
      assert.ok(NAME_PATTERN.test(name), name);
    }
  }
  assert.ok(ASCII_NAME_PATTERN.test("a.b_c@d-e"));
  assert.ok(!ASCII_NAME_PATTERN.test("é") && NAME_PATTERN.test("é"));
});
