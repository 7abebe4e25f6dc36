/**
 * A bounded set of accepted 16-byte replay nonces, each kept with its
 * packet's timestamp for as long as the replay window in force would accept
 * that packet. A packet stamped before the horizon is refused: a nonce of
 * its age may have been forgotten, when its window passed (a window raised
 * later) or to make room. The nonces travel to and from the replay nonce
 * file as {@linkcode NONCE_RECORD_BYTES}-byte records.
 *
 * @module
 */

/** One nonce in the nonce file: its 16 bytes, then its packet's timestamp as a big-endian float64 of ms since the epoch. */
export const NONCE_RECORD_BYTES = 24;
const NONCE_BYTES = 16;

/** What a cache holds, as the nonce file stores it. */
export interface NonceSnapshot {
  /** Packets stamped before this (ms since the epoch) are refused. */
  horizonMs: number;
  /** The nonces, {@linkcode NONCE_RECORD_BYTES} bytes each. */
  records: Uint8Array;
}

/** A fixed-capacity set of nonces, each kept until the replay window would refuse its packet. */
export class ReplayCache {
  /** The replay window in force, in ms (a reload may change it). */
  windowMs: number;
  #capacity: number;
  /** Nonce hex -> its packet's timestamp (ms), in insertion order. */
  #entries = new Map<string, number>();
  #horizonMs = -Infinity;
  /** Nonces added since the last {@linkcode takeNew}. */
  #fresh: string[] = [];

  /** Creates an empty cache for a replay window holding at most `capacity` nonces. */
  constructor(windowMs: number, capacity = 65536) {
    this.windowMs = windowMs;
    this.#capacity = capacity;
  }

  /** Records the nonce of a packet stamped `timestampMs`, at `nowMs`; false when it was there already or the packet is older than the horizon. */
  add(nonce: Uint8Array, timestampMs: number, nowMs: number): boolean {
    return this.#add(nonce.toHex(), timestampMs, nowMs, true);
  }

  #add(
    key: string,
    timestampMs: number,
    nowMs: number,
    fresh: boolean,
  ): boolean {
    // Insertion order is about timestamp order: forget from the front what
    // the window no longer accepts, up to the first nonce it still does.
    for (const [oldest, stampedMs] of this.#entries) {
      if (nowMs - stampedMs <= this.windowMs) break;
      this.#entries.delete(oldest);
      this.#horizonMs = Math.max(this.#horizonMs, nowMs - this.windowMs);
    }
    if (timestampMs < this.#horizonMs || this.#entries.has(key)) return false;
    if (this.#entries.size >= this.#capacity) this.#shed();
    this.#entries.set(key, timestampMs);
    if (fresh) this.#fresh.push(key);
    return true;
  }

  /** Makes room: forgets the eighth of the nonces stamped earliest, and from then on refuses every packet stamped as early. */
  #shed(): void {
    const stamps = Float64Array.from(this.#entries.values()).sort();
    const cutoffMs = stamps[stamps.length >> 3];
    for (const [key, stampedMs] of this.#entries) {
      if (stampedMs <= cutoffMs) this.#entries.delete(key);
    }
    this.#horizonMs = Math.max(this.#horizonMs, cutoffMs + 1);
  }

  /** The records of the nonces added since the last call, for appending to the nonce file. */
  takeNew(): Uint8Array {
    const keys = this.#fresh.filter((key) => this.#entries.has(key));
    this.#fresh = [];
    return this.#encode(keys);
  }

  /** Every nonce held, and the horizon, for writing the nonce file anew. */
  snapshot(): NonceSnapshot {
    this.#fresh = [];
    return {
      horizonMs: this.#horizonMs,
      records: this.#encode([...this.#entries.keys()]),
    };
  }

  #encode(keys: string[]): Uint8Array {
    const out = new Uint8Array(keys.length * NONCE_RECORD_BYTES);
    const view = new DataView(out.buffer);
    keys.forEach((key, i) => {
      const at = i * NONCE_RECORD_BYTES;
      out.subarray(at, at + NONCE_BYTES).setFromHex(key);
      view.setFloat64(at + NONCE_BYTES, this.#entries.get(key)!);
    });
    return out;
  }

  /** Takes over an earlier run's {@linkcode snapshot} plus the records appended since (call before any add); returns how many nonces are kept. */
  restore(saved: NonceSnapshot, nowMs: number): number {
    // What this window refuses anyway is dropped: refused from here on.
    this.#horizonMs = Math.max(saved.horizonMs, nowMs - this.windowMs);
    const { records } = saved;
    const view = new DataView(records.buffer, records.byteOffset);
    for (let at = 0; at + NONCE_RECORD_BYTES <= records.length;) {
      const key = records.subarray(at, at + NONCE_BYTES).toHex();
      const stampedMs = view.getFloat64(at + NONCE_BYTES);
      if (nowMs - stampedMs <= this.windowMs) {
        this.#add(key, stampedMs, nowMs, false);
      }
      at += NONCE_RECORD_BYTES;
    }
    return this.#entries.size;
  }
}
