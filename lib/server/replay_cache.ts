/**
 * A bounded set of recently accepted 16-byte replay nonces, keyed by their
 * lowercase hex (as the state file stores them). Entries sit in a `Map` in
 * insertion order, so expiry and eviction both take from the front. With a
 * clock that goes backwards, entries expire late, never early.
 *
 * @module
 */

/** What a nonce looks like in the state file: 16 bytes as hex. */
const NONCE_HEX = /^[0-9a-f]{32}$/i;

/** A fixed-capacity set of nonces that forgets each one after a retention time. */
export class ReplayCache {
  /** How long each nonce is kept, in milliseconds (a reload may change it). */
  retentionMs: number;
  #capacity: number;
  /** Nonce hex -> when it was added (ms since the epoch), oldest first. */
  #entries = new Map<string, number>();

  /** Creates an empty cache keeping each nonce `retentionMs` and at most `capacity` nonces (the oldest is evicted). */
  constructor(retentionMs: number, capacity = 65536) {
    this.retentionMs = retentionMs;
    this.#capacity = capacity;
  }

  /** Records a nonce as seen at `nowMs`; false when it was already there. */
  add(nonce: Uint8Array, nowMs: number): boolean {
    return this.#add(nonce.toHex(), nowMs);
  }

  /** The unexpired nonces as the state file stores them: hex -> when added (ms, rounded), oldest first. */
  record(nowMs: number): Record<string, number> {
    const record: Record<string, number> = {};
    for (const [key, addedMs] of this.#entries) {
      if (nowMs - addedMs < this.retentionMs) record[key] = Math.round(addedMs);
    }
    return record;
  }

  /** Adds the nonces of an earlier run's {@linkcode record} that are valid and unexpired at `nowMs` (call before any add); returns how many were kept. */
  restore(record: Readonly<Record<string, unknown>>, nowMs: number): number {
    const usable: [string, number][] = [];
    for (const [key, addedMs] of Object.entries(record)) {
      if (!NONCE_HEX.test(key) || typeof addedMs !== "number") continue;
      // A time after nowMs (a clock stepped back) counts as nowMs.
      const ms = Math.min(addedMs, nowMs);
      if (nowMs - ms < this.retentionMs) usable.push([key.toLowerCase(), ms]);
    }
    usable.sort((a, b) => a[1] - b[1]);
    let kept = 0;
    for (const [key, ms] of usable.slice(-this.#capacity)) {
      if (this.#add(key, ms)) kept++;
    }
    return kept;
  }

  #add(key: string, nowMs: number): boolean {
    for (const [oldest, addedMs] of this.#entries) {
      if (nowMs - addedMs < this.retentionMs) break;
      this.#entries.delete(oldest);
    }
    if (this.#entries.has(key)) return false;
    while (this.#entries.size >= this.#capacity) {
      this.#entries.delete(this.#entries.keys().next().value as string);
    }
    this.#entries.set(key, nowMs);
    return true;
  }
}
