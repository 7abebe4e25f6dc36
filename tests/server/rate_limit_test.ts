import assert from "node:assert/strict";
import { RateLimiter } from "../../lib/server/rate_limit.ts";

Deno.test("a source may send a burst, then is limited", () => {
  const limiter = new RateLimiter({ perSecond: 1, burst: 3 });
  assert.equal(limiter.allow("192.0.2.1", 0), true);
  assert.equal(limiter.allow("192.0.2.1", 0), true);
  assert.equal(limiter.allow("192.0.2.1", 0), true);
  assert.equal(limiter.allow("192.0.2.1", 0), false);
});

Deno.test("tokens refill at perSecond up to the burst", () => {
  const limiter = new RateLimiter({ perSecond: 2, burst: 2 });
  assert.equal(limiter.allow("a", 0), true);
  assert.equal(limiter.allow("a", 0), true);
  assert.equal(limiter.allow("a", 0), false);
  assert.equal(limiter.allow("a", 499), false, "0.998 tokens is not enough");
  assert.equal(limiter.allow("a", 500), true, "one token after 500 ms");
  assert.equal(limiter.allow("a", 500), false);
  // A long pause refills only up to the burst.
  assert.equal(limiter.allow("a", 100_000), true);
  assert.equal(limiter.allow("a", 100_000), true);
  assert.equal(limiter.allow("a", 100_000), false);
});

Deno.test("one noisy source does not lock out another", () => {
  const limiter = new RateLimiter({ perSecond: 1, burst: 2, maxSources: 4 });
  let noisyAllowed = 0;
  for (let i = 0; i < 10_000; i++) {
    if (limiter.allow("198.51.100.66", i / 10)) noisyAllowed++;
  }
  assert.ok(noisyAllowed <= 2 + 2, `noisy source got ${noisyAllowed}`);
  assert.equal(limiter.allow("192.0.2.10", 1000), true);
  assert.equal(limiter.allow("192.0.2.10", 1000), true);
});

Deno.test("a flood of new sources cannot lock out a well-behaved source", () => {
  const limiter = new RateLimiter({ perSecond: 1, burst: 2, maxSources: 16 });
  assert.equal(limiter.allow("192.0.2.10", 0), true);
  for (let i = 0; i < 1000; i++) {
    limiter.allow(`2001:db8::${i.toString(16)}`, 1);
  }
  // Evicted or not, the quiet source still has at least one token.
  assert.equal(limiter.allow("192.0.2.10", 2), true);
});

Deno.test("the least recently used source is forgotten when the table is full", () => {
  const limiter = new RateLimiter({ perSecond: 0, burst: 1, maxSources: 2 });
  assert.equal(limiter.allow("a", 0), true);
  assert.equal(limiter.allow("b", 0), true);
  assert.equal(limiter.allow("a", 1), false, "a is empty and now most recent");
  assert.equal(limiter.allow("c", 2), true); // evicts b
  assert.equal(limiter.allow("a", 3), false, "a kept its empty bucket");
  assert.equal(limiter.allow("b", 4), true, "b was forgotten: fresh bucket");
});

Deno.test("a clock going backwards does not add tokens", () => {
  const limiter = new RateLimiter({ perSecond: 1, burst: 1 });
  assert.equal(limiter.allow("a", 10_000), true);
  assert.equal(limiter.allow("a", 0), false);
  assert.equal(limiter.allow("a", 10_500), false);
  assert.equal(limiter.allow("a", 11_000), true);
});
