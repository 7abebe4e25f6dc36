/**
 * Token buckets keyed by source address, checked before any crypto. A noisy
 * source drains only its own bucket. At most `maxSources` are tracked; the
 * least recently used one is forgotten first, which only ever gives that
 * source a full bucket again, so a flood of fresh addresses can never make
 * the limiter refuse a well-behaved source.
 *
 * @module
 */

/** Options for {@linkcode RateLimiter}. */
export interface RateLimiterOptions {
  /** Tokens added to each bucket per second. */
  perSecond: number;
  /** Bucket size: the most datagrams a quiet source may send at once. */
  burst: number;
  /** Most sources tracked at once; default 4096. */
  maxSources?: number;
}

interface Bucket {
  tokens: number;
  refilledMs: number;
}

/** Token buckets keyed by source address text, with a bounded number of sources. */
export class RateLimiter {
  #options: RateLimiterOptions;
  /** In access order: the first entry is the least recently used. */
  #buckets = new Map<string, Bucket>();

  /** Creates a limiter with no sources tracked. */
  constructor(options: RateLimiterOptions) {
    this.#options = options;
  }

  /** Takes one token from the source's bucket; false when it is empty. */
  allow(source: string, nowMs: number): boolean {
    const { perSecond, burst } = this.#options;
    let bucket = this.#buckets.get(source);
    if (bucket === undefined) {
      const max = this.#options.maxSources ?? 4096;
      while (this.#buckets.size >= max) {
        this.#buckets.delete(this.#buckets.keys().next().value as string);
      }
      bucket = { tokens: burst, refilledMs: nowMs };
    } else {
      this.#buckets.delete(source);
      const elapsedMs = Math.max(0, nowMs - bucket.refilledMs);
      bucket.tokens = Math.min(
        burst,
        bucket.tokens + elapsedMs * perSecond / 1000,
      );
      // A clock that goes backwards does not move refilledMs back.
      bucket.refilledMs = Math.max(bucket.refilledMs, nowMs);
    }
    this.#buckets.set(source, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }
}
