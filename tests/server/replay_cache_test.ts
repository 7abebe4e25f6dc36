import assert from "node:assert/strict";
import { ReplayCache } from "../../lib/server/replay_cache.ts";

function nonce(n: number): Uint8Array {
  const out = new Uint8Array(16);
  new DataView(out.buffer).setUint32(12, n);
  return out;
}

Deno.test("a nonce added is reported as seen, others are not", () => {
  const cache = new ReplayCache({ retentionMs: 1000 });
  assert.equal(cache.has(nonce(1), 0), false);
  assert.equal(cache.add(nonce(1), 0), true);
  assert.equal(cache.has(nonce(1), 10), true);
  assert.equal(cache.has(nonce(2), 10), false);
  assert.equal(cache.add(nonce(1), 20), false, "second add of the same nonce");
  assert.equal(cache.size, 1);
});

Deno.test("nonces are keyed by all 16 bytes", () => {
  const cache = new ReplayCache({ retentionMs: 1000 });
  const a = new Uint8Array(16);
  cache.add(a, 0);
  for (let i = 0; i < 16; i++) {
    const b = new Uint8Array(16);
    b[i] = 1;
    assert.equal(cache.has(b, 0), false, `byte ${i} must matter`);
  }
  assert.equal(cache.has(new Uint8Array(16), 0), true);
});

Deno.test("entries younger than the retention time are kept, older ones expire", () => {
  const cache = new ReplayCache({ retentionMs: 60_000 });
  cache.add(nonce(1), 1_000);
  cache.add(nonce(2), 30_000);
  assert.equal(cache.has(nonce(1), 60_999), true);
  assert.equal(cache.has(nonce(2), 60_999), true);
  assert.equal(cache.has(nonce(1), 61_000), false);
  assert.equal(cache.has(nonce(2), 61_000), true);
  assert.equal(cache.size, 1);
  assert.equal(cache.has(nonce(2), 90_000), false);
  assert.equal(cache.size, 0);
});

Deno.test("capacity is respected by evicting the oldest nonce", () => {
  const cache = new ReplayCache({ retentionMs: 1_000_000, capacity: 3 });
  for (let i = 1; i <= 3; i++) cache.add(nonce(i), i);
  assert.equal(cache.size, 3);
  cache.add(nonce(4), 4);
  assert.equal(cache.size, 3);
  assert.equal(cache.evictedCount, 1);
  assert.equal(cache.has(nonce(1), 5), false, "oldest evicted");
  for (let i = 2; i <= 4; i++) assert.equal(cache.has(nonce(i), 5), true);
  for (let i = 5; i <= 100; i++) cache.add(nonce(i), i);
  assert.equal(cache.size, 3);
  assert.equal(cache.has(nonce(98), 101), true);
  assert.equal(cache.has(nonce(97), 101), false);
});

Deno.test("expired entries free room before anything young is evicted", () => {
  const cache = new ReplayCache({ retentionMs: 100, capacity: 2 });
  cache.add(nonce(1), 0);
  cache.add(nonce(2), 50);
  cache.add(nonce(3), 120); // nonce 1 expired at 100: no eviction needed
  assert.equal(cache.evictedCount, 0);
  assert.equal(cache.has(nonce(2), 120), true);
  assert.equal(cache.has(nonce(3), 120), true);
});

Deno.test("a clock going backwards never expires entries early", () => {
  const cache = new ReplayCache({ retentionMs: 100 });
  cache.add(nonce(1), 1_000);
  cache.add(nonce(2), 500);
  assert.equal(cache.has(nonce(1), 1_050), true);
  assert.equal(cache.has(nonce(2), 550), true);
  cache.clear();
  assert.equal(cache.size, 0);
});

Deno.test("bad options and nonce sizes are refused with a clear error", () => {
  assert.throws(() => new ReplayCache({ retentionMs: 0 }), /retentionMs/);
  assert.throws(
    () => new ReplayCache({ retentionMs: 10, capacity: 0 }),
    /capacity/,
  );
  const cache = new ReplayCache({ retentionMs: 10 });
  assert.throws(() => cache.add(new Uint8Array(15), 0), /16 bytes, got 15/);
});

Deno.test("setRetention changes how long held nonces are kept", () => {
  const nonce = new Uint8Array(16).fill(7);
  const cache = new ReplayCache({ retentionMs: 1000 });
  cache.add(nonce, 0);
  cache.setRetention(5000);
  assert.equal(cache.retentionMs, 5000);
  assert.equal(cache.has(nonce, 4000), true, "kept past the old retention");
  assert.equal(cache.has(nonce, 5000), false);
  assert.throws(() => cache.setRetention(0), /retentionMs/);
});

Deno.test("hexRecord lists the unexpired nonces as lowercase hex with their rounded time, oldest first, like entries", () => {
  const cache = new ReplayCache({ retentionMs: 1000 });
  const odd = Uint8Array.from(
    { length: 16 },
    (_, i) => [0x00, 0x0f, 0xa0, 0xff][i % 4],
  );
  cache.add(nonce(1), 0.4);
  cache.add(odd, 500.6);
  cache.add(nonce(3), 900);
  assert.deepEqual(Object.entries(cache.hexRecord(1000.5)), [
    ["000fa0ff000fa0ff000fa0ff000fa0ff", 501],
    ["00000000000000000000000000000003", 900],
  ]);
  assert.deepEqual(
    cache.entries(1000.5).map((e) => [...e.nonce]),
    [[...odd], [...nonce(3)]],
  );
  assert.equal(cache.has(odd, 1000.5), true);
});
