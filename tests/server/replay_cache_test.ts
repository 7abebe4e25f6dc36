import assert from "node:assert/strict";
import { ReplayCache } from "../../lib/server/replay_cache.ts";

function nonce(n: number): Uint8Array {
  const out = new Uint8Array(16);
  new DataView(out.buffer).setUint32(12, n);
  return out;
}

/** The nonces held at `nowMs`, as the hex of their last 4 bytes' number. */
function held(cache: ReplayCache, nowMs: number): number[] {
  return Object.keys(cache.record(nowMs)).map((hex) => parseInt(hex, 16));
}

Deno.test("a nonce is accepted once, then refused while it is kept", () => {
  const cache = new ReplayCache(1000);
  assert.equal(cache.add(nonce(1), 0), true);
  assert.equal(cache.add(nonce(1), 20), false, "second add of the same nonce");
  assert.equal(cache.add(nonce(2), 20), true);
  assert.deepEqual(held(cache, 20), [1, 2]);
});

Deno.test("nonces are keyed by all 16 bytes", () => {
  const cache = new ReplayCache(1000);
  cache.add(new Uint8Array(16), 0);
  for (let i = 0; i < 16; i++) {
    const b = new Uint8Array(16);
    b[i] = 1;
    assert.equal(cache.add(b, 0), true, `byte ${i} must matter`);
  }
  assert.equal(cache.add(new Uint8Array(16), 0), false);
});

Deno.test("entries younger than the retention time are kept, older ones expire", () => {
  const cache = new ReplayCache(60_000);
  cache.add(nonce(1), 1_000);
  cache.add(nonce(2), 30_000);
  assert.deepEqual(held(cache, 60_999), [1, 2]);
  assert.deepEqual(held(cache, 61_000), [2]);
  assert.equal(cache.add(nonce(1), 61_000), true, "expired: accepted again");
  assert.equal(cache.add(nonce(2), 61_000), false, "still kept");
  assert.deepEqual(held(cache, 61_000), [2, 1]);
});

Deno.test("capacity is respected by evicting the oldest nonce", () => {
  const cache = new ReplayCache(1_000_000, 3);
  for (let i = 1; i <= 4; i++) cache.add(nonce(i), i);
  assert.deepEqual(held(cache, 5), [2, 3, 4], "oldest evicted");
  for (let i = 5; i <= 100; i++) cache.add(nonce(i), i);
  assert.deepEqual(held(cache, 101), [98, 99, 100]);
});

Deno.test("expired entries free room before anything young is evicted", () => {
  const cache = new ReplayCache(100, 2);
  cache.add(nonce(1), 0);
  cache.add(nonce(2), 50);
  cache.add(nonce(3), 120); // nonce 1 expired at 100: no eviction needed
  assert.deepEqual(held(cache, 120), [2, 3]);
});

Deno.test("a clock going backwards never expires entries early", () => {
  const cache = new ReplayCache(100);
  cache.add(nonce(1), 1_000);
  assert.equal(cache.add(nonce(2), 500), true);
  assert.equal(cache.add(nonce(1), 1_050), false);
  assert.equal(cache.add(nonce(2), 550), false);
});

Deno.test("retentionMs changed later applies to the nonces already held", () => {
  const cache = new ReplayCache(1000);
  cache.add(nonce(7), 0);
  cache.retentionMs = 5000;
  assert.equal(cache.add(nonce(7), 4000), false, "kept past the old retention");
  assert.equal(cache.add(nonce(7), 5000), true);
});

Deno.test("record lists the unexpired nonces as lowercase hex with their rounded time, oldest first", () => {
  const cache = new ReplayCache(1000);
  const odd = Uint8Array.from(
    { length: 16 },
    (_, i) => [0x00, 0x0f, 0xa0, 0xff][i % 4],
  );
  cache.add(nonce(1), 0.4);
  cache.add(odd, 500.6);
  cache.add(nonce(3), 900);
  assert.deepEqual(Object.entries(cache.record(1000.5)), [
    ["000fa0ff000fa0ff000fa0ff000fa0ff", 501],
    ["00000000000000000000000000000003", 900],
  ]);
});

Deno.test("restore keeps an earlier run's valid, unexpired nonces, oldest first within the capacity", () => {
  const cache = new ReplayCache(1000, 2);
  const kept = cache.restore({
    ["11".repeat(16)]: 9_000, // expired at 10,000
    ["22".repeat(16)]: 9_500,
    ["AA".repeat(16)]: 9_800, // upper case is hex too
    ["33".repeat(16)]: 20_000, // from the future: counts as now
    ["44".repeat(15)]: 9_900, // 15 bytes
    ["not-hex-".repeat(4)]: 9_900,
    ["55".repeat(16)]: "9900",
  }, 10_000);
  assert.equal(kept, 2);
  assert.deepEqual(cache.record(10_000), {
    ["aa".repeat(16)]: 9_800,
    ["33".repeat(16)]: 10_000,
  });
  assert.equal(cache.add(Uint8Array.fromHex("aa".repeat(16)), 10_000), false);
});
