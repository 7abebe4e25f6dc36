import assert from "node:assert/strict";
import * as packet from "../../lib/protocol/packet.ts";
import {
  AEAD_NONCE_OFFSET,
  assembleUnsignedKnock,
  CIPHERTEXT_OFFSET,
  currentTimestampNs,
  encodeKnockPlaintext,
  EPHEMERAL_KEY_OFFSET,
  KDF_OUTPUT_BYTES,
  KNOCK_PACKET_BYTES,
  parseKnockPacket,
  parseKnockPlaintext,
  PROTOCOL_VERSION,
  SIGNATURE_OFFSET,
} from "../../lib/protocol/packet_format.ts";
import * as format from "../../lib/protocol/packet_format.ts";
import { ip } from "../support/literals.ts";

function filled(length: number, value: number): Uint8Array {
  return new Uint8Array(length).fill(value);
}

Deno.test("packet.ts re-exports every value of packet_format.ts unchanged", () => {
  for (const [name, value] of Object.entries(format)) {
    assert.ok(name in packet, `packet.ts does not re-export ${name}`);
    assert.equal((packet as Record<string, unknown>)[name], value, name);
  }
  assert.equal(KDF_OUTPUT_BYTES, 32);
});

Deno.test("assembleUnsignedKnock lays out version, key, nonce and ciphertext and leaves the signature zero", () => {
  const unsigned = assembleUnsignedKnock(
    filled(32, 0xaa),
    filled(12, 0xbb),
    filled(56, 0xcc),
  );
  assert.equal(unsigned.length, KNOCK_PACKET_BYTES);
  assert.equal(unsigned[0], PROTOCOL_VERSION);
  assert.deepEqual(
    unsigned.subarray(EPHEMERAL_KEY_OFFSET, AEAD_NONCE_OFFSET),
    filled(32, 0xaa),
  );
  assert.deepEqual(
    unsigned.subarray(AEAD_NONCE_OFFSET, CIPHERTEXT_OFFSET),
    filled(12, 0xbb),
  );
  assert.deepEqual(
    unsigned.subarray(CIPHERTEXT_OFFSET, SIGNATURE_OFFSET),
    filled(56, 0xcc),
  );
  assert.deepEqual(unsigned.subarray(SIGNATURE_OFFSET), new Uint8Array(64));
  const parsed = parseKnockPacket(unsigned)!;
  assert.deepEqual(parsed.ephemeralPublicKey, filled(32, 0xaa));
  assert.deepEqual(parsed.aeadNonce, filled(12, 0xbb));
  assert.deepEqual(parsed.ciphertext, filled(56, 0xcc));
});

Deno.test("assembleUnsignedKnock refuses fields of the wrong size", () => {
  const key = new Uint8Array(32);
  const nonce = new Uint8Array(12);
  const ciphertext = new Uint8Array(56);
  assert.throws(
    () => assembleUnsignedKnock(new Uint8Array(31), nonce, ciphertext),
    RangeError,
  );
  assert.throws(
    () => assembleUnsignedKnock(key, new Uint8Array(13), ciphertext),
    RangeError,
  );
  assert.throws(
    () => assembleUnsignedKnock(key, nonce, new Uint8Array(40)),
    RangeError,
  );
});

Deno.test("the plaintext round-trips through encode and parse", () => {
  const replayNonce = filled(16, 7);
  for (const target of [ip("203.0.113.9"), ip("2001:db8::9"), null]) {
    const plaintext = { timestampNs: 123_456_789n, replayNonce, target };
    assert.deepEqual(
      parseKnockPlaintext(encodeKnockPlaintext(plaintext)),
      plaintext,
    );
  }
});

Deno.test("currentTimestampNs is Date.now() in nanoseconds", () => {
  const before = BigInt(Date.now()) * 1_000_000n;
  const now = currentTimestampNs();
  const after = BigInt(Date.now()) * 1_000_000n;
  assert.ok(now >= before && now <= after);
  assert.equal(now % 1_000_000n, 0n);
});

Deno.test("packet_format.ts loads no node: module", async () => {
  const url = new URL("../../lib/protocol/packet_format.ts", import.meta.url);
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", url.href],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  const graph = JSON.parse(new TextDecoder().decode(output.stdout)) as {
    modules: { specifier: string }[];
  };
  const nodeModules = graph.modules
    .map((module) => module.specifier)
    .filter((specifier) => specifier.startsWith("node:"));
  assert.deepEqual(nodeModules, []);
});
