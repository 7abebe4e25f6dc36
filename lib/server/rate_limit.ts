/**
 * Per-source token buckets for knock datagrams, checked before any crypto.
 *
 * Each source address has its own bucket of `burst` tokens refilled at
 * `perSecond`; a datagram costs one token. A noisy source only drains its
 * own bucket, so it cannot lock out anyone else.
 *
 * The number of tracked sources is bounded (`maxSources`). When a new source
 * arrives and the table is full, the source touched least recently is
 * forgotten (a `Map` in access order; every call moves its source to the
 * end). Forgetting a bucket only ever gives that source a full bucket again,
 * never fewer tokens, so a flood of (possibly spoofed) addresses can make the
 * limiter more lenient for the sources it pushes out but can never make it
 * refuse a well-behaved source. New sources are never refused because the
 * table is full: that would let a flood of fresh addresses lock out everyone.
 *
 * @module
 */

/** Default number of source addresses tracked at once. */
export const DEFAULT_RATE_LIMIT_MAX_SOURCES = 4096;

/** Options for {@linkcode RateLimiter}. */
export interface RateLimiterOptions {
  /** Tokens added to each bucket per second (>= 0). */
  perSecond: number;
  /** Bucket size: the most datagrams a quiet source may send at once (>= 1). */
  burst: number;
  /** Most sources tracked at once (>= 1); default 4096. */
  maxSources?: number;
}

interface Bucket {
  tokens: number;
  refilledMs: number;
}

/** Token buckets keyed by source address text, with a bounded number of sources. */
export class RateLimiter {
  /** Tokens added to each bucket per second. */
  readonly perSecond: number;
  /** Bucket size. */
  readonly burst: number;
  /** Most sources tracked at once. */
  readonly maxSources: number;
  #buckets = new Map<string, Bucket>();

  /** Creates a limiter with no sources tracked; throws RangeError on bad options. */
  constructor(options: RateLimiterOptions) {
    const maxSources = options.maxSources ?? DEFAULT_RATE_LIMIT_MAX_SOURCES;
    if (!Number.isFinite(options.perSecond) || options.perSecond < 0) {
      throw new RangeError(
        `RateLimiter: perSecond must be a finite number >= 0, got ${options.perSecond}`,
      );
    }
    if (!Number.isFinite(options.burst) || options.burst < 1) {
      throw new RangeError(
        `RateLimiter: burst must be a finite number >= 1, got ${options.burst}`,
      );
    }
    if (!Number.isInteger(maxSources) || maxSources < 1) {
      throw new RangeError(
        `RateLimiter: maxSources must be a positive integer, got ${maxSources}`,
      );
    }
    this.perSecond = options.perSecond;
    this.burst = options.burst;
    this.maxSources = maxSources;
  }

  /** Number of sources currently tracked. */
  get size(): number {
    return this.#buckets.size;
  }

  /** Takes one token from the source's bucket; returns false when it is empty. */
  allow(source: string, nowMs: number): boolean {
    let bucket = this.#buckets.get(source);
    if (bucket === undefined) {
      while (this.#buckets.size >= this.maxSources) {
        const oldest = this.#buckets.keys().next().value as string;
        this.#buckets.delete(oldest);
      }
      bucket = { tokens: this.burst, refilledMs: nowMs };
    } else {
      // Move to the end: the Map's first entry is the least recently used.
      this.#buckets.delete(source);
      const elapsedMs = Math.max(0, nowMs - bucket.refilledMs);
      bucket.tokens = Math.min(
        this.burst,
        bucket.tokens + (elapsedMs * this.perSecond) / 1000,
      );
      // A clock that goes backwards does not move refilledMs back.
      bucket.refilledMs = Math.max(bucket.refilledMs, nowMs);
    }
    this.#buckets.set(source, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Forgets every source. */
  clear(): void {
    this.#buckets.clear();
  }
}
