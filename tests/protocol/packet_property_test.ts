import assert from "node:assert/strict";
import fc from "fast-check";
import {
  generateEd25519KeyPair,
  generateX25519KeyPair,
} from "../../lib/protocol/crypto.ts";
import { buildKnock, KNOCK_PACKET_BYTES } from "../../lib/protocol/packet.ts";
import {
  KnockVerifier,
  REJECT_REASONS,
  type VerifyResult,
} from "../../lib/server/verifier.ts";
import { ip } from "../support/literals.ts";

const NOW_MS = 1_750_000_000_000;
const NOW_NS = BigInt(NOW_MS) * 1_000_000n;
const SOURCE = ip("192.0.2.1");

const server = generateX25519KeyPair();
const client = generateEd25519KeyPair();

function makeVerifier(): KnockVerifier {
  return new KnockVerifier({
    serverPrivateKey: server.privateKey,
    replayWindowMs: 60_000,
    clients: [{
      name: "alice",
      publicKey: client.publicKey,
    }],
  });
}

function validKnock(): Uint8Array {
  return buildKnock(
    { serverPublicKey: server.publicKey, clientPrivateKey: client.privateKey },
    { timestampNs: NOW_NS, target: ip("198.51.100.3") },
  );
}

/** A decision of a verifier without a signature budget, which never waits. */
function decided(result: VerifyResult | Promise<VerifyResult>): VerifyResult {
  if (result instanceof Promise) throw new Error("the decision was deferred");
  return result;
}

function isRejection(result: VerifyResult): boolean {
  return !result.ok && REJECT_REASONS.includes(result.reason);
}

Deno.test("every single-bit flip of a valid knock is rejected without throwing; the original is accepted once", () => {
  const verifier = makeVerifier();
  const packet = validKnock();
  const original = packet.slice();
  for (let bit = 0; bit < KNOCK_PACKET_BYTES * 8; bit++) {
    const flipped = packet.slice();
    flipped[bit >> 3] ^= 1 << (bit & 7);
    const result = decided(verifier.verify(flipped, SOURCE, { nowMs: NOW_MS }));
    assert.ok(
      isRejection(result),
      `bit ${bit} accepted: ${
        JSON.stringify(result, (_k, v) => typeof v === "bigint" ? `${v}` : v)
      }`,
    );
    if (bit < 8) {
      assert.equal(!result.ok && result.reason, "version", `bit ${bit}`);
    }
  }
  assert.deepEqual(packet, original, "verify must not modify the datagram");
  assert.equal(
    decided(verifier.verify(packet, SOURCE, { nowMs: NOW_MS })).ok,
    true,
  );
  assert.deepEqual(
    decided(verifier.verify(packet, SOURCE, { nowMs: NOW_MS })),
    {
      ok: false,
      reason: "replay",
    },
  );
});

Deno.test("random truncations and extensions of a valid knock are rejected as 'size'", () => {
  const verifier = makeVerifier();
  const packet = validKnock();
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: KNOCK_PACKET_BYTES - 1 }),
      (length) => {
        const result = decided(
          verifier.verify(packet.slice(0, length), SOURCE, {
            nowMs: NOW_MS,
          }),
        );
        return !result.ok && result.reason === "size";
      },
    ),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 1400 }),
      (extra) => {
        const longer = new Uint8Array(KNOCK_PACKET_BYTES + extra.length);
        longer.set(packet);
        longer.set(extra, KNOCK_PACKET_BYTES);
        const result = decided(
          verifier.verify(longer, SOURCE, { nowMs: NOW_MS }),
        );
        return !result.ok && result.reason === "size";
      },
    ),
    { numRuns: 300 },
  );
  // Neither touched the replay cache: the knock itself is still fresh.
  assert.equal(
    decided(verifier.verify(packet, SOURCE, { nowMs: NOW_MS })).ok,
    true,
  );
});

Deno.test("random 165-byte datagrams with version byte 1 are rejected without throwing", () => {
  const verifier = makeVerifier();
  fc.assert(
    fc.property(
      fc.uint8Array({
        minLength: KNOCK_PACKET_BYTES,
        maxLength: KNOCK_PACKET_BYTES,
      }),
      (bytes) => {
        bytes[0] = 1;
        const result = decided(
          verifier.verify(bytes, SOURCE, { nowMs: NOW_MS }),
        );
        return isRejection(result);
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("random byte changes anywhere in a valid knock are rejected", () => {
  const verifier = makeVerifier();
  const packet = validKnock();
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.integer({ min: 0, max: KNOCK_PACKET_BYTES - 1 }), {
        minLength: 1,
        maxLength: 8,
      }),
      fc.integer({ min: 1, max: 255 }),
      (positions, xor) => {
        const changed = packet.slice();
        for (const position of positions) changed[position] ^= xor;
        return isRejection(
          decided(verifier.verify(changed, SOURCE, { nowMs: NOW_MS })),
        );
      },
    ),
    { numRuns: 300 },
  );
  assert.equal(
    decided(verifier.verify(packet, SOURCE, { nowMs: NOW_MS })).ok,
    true,
  );
});
