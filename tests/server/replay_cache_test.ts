/**
 * The replay cache: each nonce kept while the window in force accepts its
 * packet, the horizon that refuses what may have been forgotten (a wider
 * window later, a full cache), records for the nonce file and restore, and
 * the same boundaries through KnockVerifier with injected clocks.
 */
import assert from "node:assert/strict";
import {
  generateEd25519KeyPair,
  generateX25519KeyPair,
} from "../../lib/protocol/crypto.ts";
import { buildKnock } from "../../lib/protocol/packet.ts";
import {
  NONCE_RECORD_BYTES,
  ReplayCache,
} from "../../lib/server/replay_cache.ts";
import { KnockVerifier } from "../../lib/server/verifier.ts";

function nonce(n: number): Uint8Array {
  const out = new Uint8Array(16);
  new DataView(out.buffer).setUint32(12, n);
  return out;
}

/** The nonces a snapshot holds, as their last 4 bytes' number, with their timestamps. */
function held(cache: ReplayCache): [number, number][] {
  const records = cache.snapshot().subarray(24);
  const view = new DataView(records.buffer, records.byteOffset);
  const out: [number, number][] = [];
  for (let at = 0; at < records.length; at += NONCE_RECORD_BYTES) {
    out.push([view.getUint32(at + 12), view.getFloat64(at + 16)]);
  }
  return out;
}

Deno.test("a nonce is accepted once, then refused while it is kept", () => {
  const cache = new ReplayCache(1000);
  assert.equal(cache.add(nonce(1), 0, 0), true);
  assert.equal(cache.add(nonce(1), 0, 20), false, "same nonce again");
  assert.equal(cache.add(nonce(2), 10, 20), true);
  assert.deepEqual(held(cache), [[1, 0], [2, 10]]);
});

Deno.test("nonces are keyed by all 16 bytes", () => {
  const cache = new ReplayCache(1000);
  cache.add(new Uint8Array(16), 0, 0);
  for (let i = 0; i < 16; i++) {
    const b = new Uint8Array(16);
    b[i] = 1;
    assert.equal(cache.add(b, 0, 0), true, `byte ${i} must matter`);
  }
  assert.equal(cache.add(new Uint8Array(16), 0, 0), false);
});

Deno.test("a nonce is kept while its packet's skew is at most one window, and forgotten one ms later", () => {
  // Stamped a whole window ahead: valid until two windows after arrival.
  const cache = new ReplayCache(60_000);
  assert.equal(cache.add(nonce(1), 160_000, 100_000), true);
  assert.equal(cache.add(nonce(1), 160_000, 220_000), false, "skew -1 window");
  cache.add(nonce(2), 220_000, 220_000);
  assert.deepEqual(held(cache), [[1, 160_000], [2, 220_000]], "still kept");
  cache.add(nonce(3), 220_001, 220_001);
  assert.deepEqual(held(cache), [[2, 220_000], [3, 220_001]], "forgotten");
});

Deno.test("raising the window never lets a packet through whose nonce the narrower window forgot", () => {
  const cache = new ReplayCache(60_000);
  cache.add(nonce(1), 0, 0);
  cache.add(nonce(2), 60_001, 60_001); // forgets nonce 1 (61 s > 60 s)
  cache.windowMs = 600_000;
  assert.equal(cache.add(nonce(1), 0, 60_002), false, "the replay");
  assert.equal(cache.add(nonce(9), 0, 60_002), false, "as old, not seen");
  assert.equal(cache.add(nonce(9), 1, 60_002), true, "younger than forgotten");
});

Deno.test("a full cache forgets the eighth stamped earliest and refuses packets stamped as early", () => {
  const cache = new ReplayCache(1_000_000, 16);
  // Inserted out of timestamp order: 15, 14, ..., 0.
  for (let i = 15; i >= 0; i--) cache.add(nonce(i), i * 10, 200);
  assert.equal(cache.add(nonce(100), 500, 200), true);
  assert.deepEqual(held(cache).map(([n]) => n).sort((a, b) => a - b), [
    ...Array.from({ length: 13 }, (_, i) => i + 3),
    100,
  ], "nonces 0, 1 and 2 (stamped up to 20, the 16 / 8-th) forgotten");
  assert.equal(cache.add(nonce(1), 10, 200), false, "forgotten: refused");
  assert.equal(cache.add(nonce(50), 20, 200), false, "as early: refused");
  assert.equal(cache.add(nonce(51), 21, 200), true);
});

Deno.test("a clock going backwards never forgets a nonce early", () => {
  const cache = new ReplayCache(100);
  cache.add(nonce(1), 1_000, 1_000);
  assert.equal(cache.add(nonce(2), 500, 500), true);
  assert.equal(cache.add(nonce(1), 1_000, 1_050), false);
  assert.equal(cache.add(nonce(2), 500, 550), false);
});

Deno.test("a snapshot holds the horizon and every nonce kept, and added counts the nonces added", () => {
  const cache = new ReplayCache(1000);
  cache.add(nonce(1), 5, 5);
  cache.add(nonce(2), 6.5, 6);
  cache.add(nonce(2), 6.5, 7);
  assert.equal(cache.added, 2);
  cache.horizonMs = 3.25;
  const bytes = cache.snapshot();
  assert.equal(
    new TextDecoder().decode(bytes.subarray(0, 16)),
    "openme nonces v1",
  );
  const view = new DataView(bytes.buffer);
  assert.equal(view.getFloat64(16), 3.25);
  assert.equal(bytes.length, 24 + 2 * NONCE_RECORD_BYTES);
  assert.equal(bytes.subarray(24, 40).toHex(), nonce(1).toHex());
  assert.equal(view.getFloat64(24 + 40), 6.5);
});

Deno.test("restore refuses bytes that are not a snapshot", () => {
  const bytes = new ReplayCache(1000).snapshot();
  const cache = new ReplayCache(1000);
  const nanHorizon = bytes.slice();
  new DataView(nanHorizon.buffer).setFloat64(16, NaN);
  for (
    const bad of [
      nanHorizon,
      new Uint8Array(0),
      bytes.subarray(1),
      new Uint8Array([...bytes, 1]),
    ]
  ) {
    assert.throws(
      () => cache.restore(bad, 0),
      /not a replay nonce file of openme serve/,
    );
  }
  assert.equal(cache.restore(bytes, 0), 0);
});

Deno.test("restore takes the nonces and horizon of a snapshot and refuses their replays under a wider window", () => {
  const first = new ReplayCache(60_000);
  first.add(nonce(1), 0, 0);
  first.add(nonce(2), 50_000, 50_000);
  first.add(nonce(3), 70_000, 70_000); // forgets nonce 1
  const saved = first.snapshot();
  const second = new ReplayCache(600_000);
  assert.equal(second.restore(saved, 80_000), 2);
  for (const [n, stamped] of [[1, 0], [2, 50_000], [3, 70_000]]) {
    assert.equal(second.add(nonce(n), stamped, 80_001), false, `nonce ${n}`);
  }
  assert.equal(second.add(nonce(6), 10_001, 80_001), true, "after horizon");
});

Deno.test("restore drops what the window in force refuses anyway, and refuses it from then on", () => {
  const first = new ReplayCache(600_000);
  first.add(nonce(1), 0, 0);
  first.add(nonce(2), 100_000, 100_000);
  const second = new ReplayCache(60_000);
  assert.equal(second.restore(first.snapshot(), 120_000), 1);
  assert.deepEqual(held(second), [[2, 100_000]]);
  second.windowMs = 600_000;
  assert.equal(second.add(nonce(1), 0, 120_001), false, "the replay");
});

const server = generateX25519KeyPair();
const alice = generateEd25519KeyPair();
const NS_PER_MS = 1_000_000n;
const SOURCE = { family: 4 as const, text: "192.0.2.2" };

function verifierWith(replayWindowMs: number): KnockVerifier {
  return new KnockVerifier({
    serverPrivateKey: server.privateKey,
    replayWindowMs,
    clients: [{
      name: "alice",
      publicKey: alice.publicKey,
    }],
  });
}

function knockStamped(ms: number, extraNs = 0n): Uint8Array {
  return buildKnock({
    serverPublicKey: server.publicKey,
    clientPrivateKey: alice.privateKey,
  }, { timestampNs: BigInt(ms) * NS_PER_MS + extraNs });
}

function reasonOf(
  verifier: KnockVerifier,
  packet: Uint8Array,
  nowMs: number,
): string {
  const result = verifier.verify(packet, SOURCE, { nowMs });
  // One client from a source of its own: the signer is found at once.
  if (result instanceof Promise) throw new Error("the signer search waited");
  return result.ok ? "accepted" : result.reason;
}

Deno.test("verifier: a knock a whole window ahead is refused as a replay while its skew is at most one window, then as stale", () => {
  const t0 = 1_800_000_000_000;
  const verifier = verifierWith(60_000);
  const ahead = knockStamped(t0 + 60_000);
  assert.equal(reasonOf(verifier, ahead, t0), "accepted");
  assert.equal(reasonOf(verifier, ahead, t0 + 120_000), "replay");
  assert.equal(reasonOf(verifier, ahead, t0 + 120_001), "stale");
  // Stamped 0.999999 ms later: the nonce is kept to the same last ms.
  const late = knockStamped(t0 + 60_000, 999_999n);
  assert.equal(reasonOf(verifier, late, t0 + 1), "accepted");
  assert.equal(reasonOf(verifier, late, t0 + 120_000), "replay");
  assert.equal(reasonOf(verifier, late, t0 + 120_001), "stale");
});

Deno.test("verifier: a captured knock stays refused after replay_window is raised from 1 minute to 10", () => {
  const t0 = 1_800_000_000_000;
  const verifier = verifierWith(60_000);
  const captured = knockStamped(t0);
  assert.equal(reasonOf(verifier, captured, t0), "accepted");
  // A later knock makes the verifier forget the captured one's nonce.
  assert.equal(
    reasonOf(verifier, knockStamped(t0 + 180_000), t0 + 180_000),
    "accepted",
  );
  verifier.setReplayWindow(600_000);
  assert.equal(reasonOf(verifier, captured, t0 + 180_001), "replay");
  assert.equal(
    reasonOf(verifier, knockStamped(t0 + 120_001), t0 + 180_001),
    "accepted",
    "a knock stamped after what was forgotten, within the new window",
  );
});
