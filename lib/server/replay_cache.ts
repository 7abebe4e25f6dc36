/**
 * A bounded set of recently accepted 16-byte replay nonces.
 *
 * Entries live in a `Map` in insertion order, so the oldest entry is always
 * the first one: expiry and capacity eviction both remove from the front,
 * and every operation is O(1) (amortised for expiry). With a clock that goes
 * backwards, entries expire late, never early. Each nonce is keyed by its
 * lowercase hex text, which is also how the state file stores it, so
 * writing the nonces out costs no encoding.
 *
 * @module
 */

/** Size of a replay nonce. */
export const REPLAY_CACHE_NONCE_BYTES = 16;
/** Default number of nonces kept. */
export const DEFAULT_REPLAY_CACHE_SIZE = 65536;

/** Lowercase hex of every byte value: "00" … "ff". */
const HEX_PAIRS: readonly string[] = Array.from(
  { length: 256 },
  (_, byte) => byte.toString(16).padStart(2, "0"),
);

/** A nonce and when it was accepted (ms since the epoch). */
export interface ReplayCacheEntry {
  /** The 16-byte replay nonce. */
  nonce: Uint8Array;
  /** When it was added, in ms since the epoch. */
  addedMs: number;
}

/** Options for {@linkcode ReplayCache}. */
export interface ReplayCacheOptions {
  /** How long each nonce is kept, in milliseconds (> 0). */
  retentionMs: number;
  /** Most nonces kept at once; when full the oldest is evicted. Default 65536. */
  capacity?: number;
}

/** A fixed-capacity set of 16-byte nonces that forgets each one after a retention time. */
export class ReplayCache {
  #retentionMs: number;
  /** Most nonces kept at once. */
  readonly capacity: number;
  #entries = new Map<string, number>();
  #evicted = 0;

  /** Creates an empty cache; throws RangeError on a bad retention or capacity. */
  constructor(options: ReplayCacheOptions) {
    const capacity = options.capacity ?? DEFAULT_REPLAY_CACHE_SIZE;
    checkRetention("ReplayCache", options.retentionMs);
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(
        `ReplayCache: capacity must be a positive integer, got ${capacity}`,
      );
    }
    this.#retentionMs = options.retentionMs;
    this.capacity = capacity;
  }

  /** How long each nonce is kept, in milliseconds. */
  get retentionMs(): number {
    return this.#retentionMs;
  }

  /** Changes how long nonces are kept (config reload); nonces already held are kept and use the new time. */
  setRetention(retentionMs: number): void {
    checkRetention("ReplayCache.setRetention", retentionMs);
    this.#retentionMs = retentionMs;
  }

  /** Number of nonces currently held (expired ones may linger until the next call). */
  get size(): number {
    return this.#entries.size;
  }

  /** Number of unexpired nonces dropped so far because the cache was full. */
  get evictedCount(): number {
    return this.#evicted;
  }

  /** Whether the nonce was added within the retention time before `nowMs`. */
  has(nonce: Uint8Array, nowMs: number): boolean {
    this.#expire(nowMs);
    return this.#entries.has(nonceKey(nonce));
  }

  /** Records a nonce as seen at `nowMs`, evicting the oldest when full; returns false if already present. */
  add(nonce: Uint8Array, nowMs: number): boolean {
    this.#expire(nowMs);
    const key = nonceKey(nonce);
    if (this.#entries.has(key)) return false;
    while (this.#entries.size >= this.capacity) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
      this.#evicted++;
    }
    this.#entries.set(key, nowMs);
    return true;
  }

  /** Forgets every nonce. */
  clear(): void {
    this.#entries.clear();
  }

  /** The nonces held and when each was added, oldest first, without those expired at `nowMs` (to carry them across a restart). */
  entries(nowMs: number): ReplayCacheEntry[] {
    const list: ReplayCacheEntry[] = [];
    for (const [key, addedMs] of this.#entries) {
      if (nowMs - addedMs >= this.#retentionMs) continue;
      const nonce = new Uint8Array(REPLAY_CACHE_NONCE_BYTES);
      for (let i = 0; i < REPLAY_CACHE_NONCE_BYTES; i++) {
        nonce[i] = parseInt(key.slice(2 * i, 2 * i + 2), 16);
      }
      list.push({ nonce, addedMs });
    }
    return list;
  }

  /**
   * The same nonces as {@linkcode entries}, as the state file stores them:
   * lowercase hex → when added (ms since the epoch, rounded), oldest first.
   */
  hexRecord(nowMs: number): Record<string, number> {
    const record: Record<string, number> = {};
    for (const [key, addedMs] of this.#entries) {
      if (nowMs - addedMs >= this.#retentionMs) continue;
      record[key] = Math.round(addedMs);
    }
    return record;
  }

  /**
   * Adds nonces an earlier run accepted (call on an empty cache, before any
   * add): those not expired at `nowMs` are kept, oldest first, within the
   * capacity; a time after `nowMs` counts as `nowMs`. Returns how many were kept.
   */
  restore(entries: readonly ReplayCacheEntry[], nowMs: number): number {
    const usable: ReplayCacheEntry[] = [];
    for (const entry of entries) {
      if (entry.nonce.length !== REPLAY_CACHE_NONCE_BYTES) continue;
      if (!Number.isFinite(entry.addedMs)) continue;
      const addedMs = Math.min(entry.addedMs, nowMs);
      if (nowMs - addedMs >= this.#retentionMs) continue;
      usable.push({ nonce: entry.nonce, addedMs });
    }
    usable.sort((a, b) => a.addedMs - b.addedMs);
    let kept = 0;
    for (const entry of usable.slice(-this.capacity)) {
      if (this.add(entry.nonce, entry.addedMs)) kept++;
    }
    return kept;
  }

  #expire(nowMs: number): void {
    for (const [key, addedMs] of this.#entries) {
      if (nowMs - addedMs < this.#retentionMs) return;
      this.#entries.delete(key);
    }
  }
}

/** Throws RangeError, naming `where`, unless the retention is a positive number of milliseconds. */
function checkRetention(where: string, retentionMs: number): void {
  if (!Number.isFinite(retentionMs) || retentionMs <= 0) {
    throw new RangeError(
      `${where}: retentionMs must be a positive number of milliseconds, got ${retentionMs}`,
    );
  }
}

function nonceKey(nonce: Uint8Array): string {
  if (nonce.length !== REPLAY_CACHE_NONCE_BYTES) {
    throw new RangeError(
      `ReplayCache: nonce must be ${REPLAY_CACHE_NONCE_BYTES} bytes, got ${nonce.length}`,
    );
  }
  return HEX_PAIRS[nonce[0]] + HEX_PAIRS[nonce[1]] + HEX_PAIRS[nonce[2]] +
    HEX_PAIRS[nonce[3]] + HEX_PAIRS[nonce[4]] + HEX_PAIRS[nonce[5]] +
    HEX_PAIRS[nonce[6]] + HEX_PAIRS[nonce[7]] + HEX_PAIRS[nonce[8]] +
    HEX_PAIRS[nonce[9]] + HEX_PAIRS[nonce[10]] + HEX_PAIRS[nonce[11]] +
    HEX_PAIRS[nonce[12]] + HEX_PAIRS[nonce[13]] + HEX_PAIRS[nonce[14]] +
    HEX_PAIRS[nonce[15]];
}
