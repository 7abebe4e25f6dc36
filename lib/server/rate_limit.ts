/**
 * Token buckets: one per source address (forgetting the least recently used
 * only ever refills a bucket, so fresh addresses cannot lock anyone out), and
 * the signer search's budget.
 *
 * @module
 */

/** Options for {@linkcode TokenBucket} and {@linkcode RateLimiter}. */
export interface RateLimiterOptions {
  /** Tokens added to each bucket per second. */
  perSecond: number;
  /** Bucket size: the most datagrams a quiet source may send at once. */
  burst: number;
  /** Most sources tracked at once; default 4096. */
  maxSources?: number;
}

/** A bucket of up to `burst` tokens that refills at `perSecond`; a cost above `burst` waits for a full bucket and then overdraws it. */
export class TokenBucket {
  #options: RateLimiterOptions;
  #tokens: number;
  #refilledMs: number;

  /** Creates a full bucket at `nowMs`. */
  constructor(options: RateLimiterOptions, nowMs: number) {
    this.#options = options;
    this.#tokens = options.burst;
    this.#refilledMs = nowMs;
  }

  /** Takes `cost` tokens when the bucket holds at least `cost` (or is full); false otherwise. */
  take(cost: number, nowMs: number): boolean {
    if (this.#refill(nowMs) < Math.min(cost, this.#options.burst)) return false;
    this.#tokens -= cost;
    return true;
  }

  /** Gives back `count` tokens taken but not used; a negative count takes more. */
  refund(count: number): void {
    this.#tokens = Math.min(this.#options.burst, this.#tokens + count);
  }

  /** Milliseconds from `nowMs` until {@linkcode take} of `cost` can succeed. */
  waitMs(cost: number, nowMs: number): number {
    const missing = Math.min(cost, this.#options.burst) - this.#refill(nowMs);
    return Math.max(0, missing * 1000 / this.#options.perSecond);
  }

  #refill(nowMs: number): number {
    const elapsedMs = Math.max(0, nowMs - this.#refilledMs);
    this.#tokens = Math.min(
      this.#options.burst,
      this.#tokens + elapsedMs * this.#options.perSecond / 1000,
    );
    // A clock that goes backwards does not move refilledMs back.
    this.#refilledMs = Math.max(this.#refilledMs, nowMs);
    return this.#tokens;
  }
}

/** Token buckets keyed by source address text, with a bounded number of sources. */
export class RateLimiter {
  #options: RateLimiterOptions;
  /** In access order: the first entry is the least recently used. */
  #buckets = new Map<string, TokenBucket>();

  /** Creates a limiter with no sources tracked. */
  constructor(options: RateLimiterOptions) {
    this.#options = options;
  }

  /** Takes one token from the source's bucket; false when it is empty. */
  allow(source: string, nowMs: number): boolean {
    let bucket = this.#buckets.get(source);
    if (bucket === undefined) {
      const max = this.#options.maxSources ?? 4096;
      while (this.#buckets.size >= max) {
        this.#buckets.delete(this.#buckets.keys().next().value as string);
      }
      bucket = new TokenBucket(this.#options, nowMs);
    } else {
      this.#buckets.delete(source);
    }
    this.#buckets.set(source, bucket);
    return bucket.take(1, nowMs);
  }
}
