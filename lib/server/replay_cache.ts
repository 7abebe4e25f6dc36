/**
 * Accepted replay nonces, each kept with its packet's timestamp while the
 * replay window accepts that packet; packets stamped before the horizon (a
 * nonce of their age may be forgotten) are refused.
 *
 * @module
 */

/** The nonce file: these 16 bytes, the horizon, then one record per nonce (its 16 bytes, its packet's timestamp); times are big-endian float64 ms since the epoch. */
const NONCE_FILE_MAGIC = new TextEncoder().encode("openme nonces v1");
const HEADER_BYTES = NONCE_FILE_MAGIC.length + 8;
/** Size of one nonce's record in the nonce file. */
export const NONCE_RECORD_BYTES = 24;
const NONCE_BYTES = 16;

/** A fixed-capacity set of nonces, each kept until the replay window would refuse its packet. */
export class ReplayCache {
  /** The replay window in force, in ms (a reload may change it). */
  windowMs: number;
  /** Packets stamped before this (ms since the epoch) are refused. */
  horizonMs: number = -Infinity;
  /** How many nonces were added so far (the server saves a snapshot when it grows). */
  added: number = 0;
  #capacity: number;
  /** Nonce hex -> its packet's timestamp (ms), in insertion order. */
  #entries = new Map<string, number>();

  /** Creates an empty cache for a replay window holding at most `capacity` nonces. */
  constructor(windowMs: number, capacity = 65536) {
    this.windowMs = windowMs;
    this.#capacity = capacity;
  }

  /** Records the nonce of a packet stamped `timestampMs`, at `nowMs`; false when it was there already or the packet is older than the horizon. */
  add(nonce: Uint8Array, timestampMs: number, nowMs: number): boolean {
    const key = nonce.toHex();
    // Insertion order is about timestamp order: forget from the front what
    // the window no longer accepts, up to the first nonce it still does.
    for (const [oldest, stampedMs] of this.#entries) {
      if (nowMs - stampedMs <= this.windowMs) break;
      this.#entries.delete(oldest);
      this.horizonMs = Math.max(this.horizonMs, nowMs - this.windowMs);
    }
    if (timestampMs < this.horizonMs || this.#entries.has(key)) return false;
    if (this.#entries.size >= this.#capacity) this.#shed();
    this.#entries.set(key, timestampMs);
    this.added++;
    return true;
  }

  /** Makes room: forgets the eighth of the nonces stamped earliest, and from then on refuses every packet stamped as early. */
  #shed(): void {
    const stamps = Float64Array.from(this.#entries.values()).sort();
    const cutoffMs = stamps[stamps.length >> 3];
    for (const [key, stampedMs] of this.#entries) {
      if (stampedMs <= cutoffMs) this.#entries.delete(key);
    }
    this.horizonMs = Math.max(this.horizonMs, cutoffMs + 1);
  }

  /** The nonce file's bytes: the horizon and every nonce held. */
  snapshot(): Uint8Array {
    const bytes = new Uint8Array(
      HEADER_BYTES + this.#entries.size * NONCE_RECORD_BYTES,
    );
    const view = new DataView(bytes.buffer);
    bytes.set(NONCE_FILE_MAGIC);
    view.setFloat64(NONCE_FILE_MAGIC.length, this.horizonMs);
    let at = HEADER_BYTES;
    for (const [key, stampedMs] of this.#entries) {
      bytes.subarray(at, at + NONCE_BYTES).setFromHex(key);
      view.setFloat64(at + NONCE_BYTES, stampedMs);
      at += NONCE_RECORD_BYTES;
    }
    return bytes;
  }

  /** Takes over an earlier run's {@linkcode snapshot} (call before any add); returns how many nonces are kept, throws when the bytes are not a snapshot. */
  restore(bytes: Uint8Array, nowMs: number): number {
    const magic = bytes.subarray(0, NONCE_FILE_MAGIC.length).toHex();
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    if (
      magic !== NONCE_FILE_MAGIC.toHex() ||
      (bytes.length - HEADER_BYTES) % NONCE_RECORD_BYTES !== 0 ||
      Number.isNaN(view.getFloat64(NONCE_FILE_MAGIC.length))
    ) {
      throw new Error(
        `not a replay nonce file of openme serve (it starts with "openme nonces v1" and holds ${NONCE_RECORD_BYTES}-byte records)`,
      );
    }
    // What this window refuses anyway is dropped: refused from here on.
    const savedHorizonMs = view.getFloat64(NONCE_FILE_MAGIC.length);
    this.horizonMs = Math.max(savedHorizonMs, nowMs - this.windowMs);
    for (let at = HEADER_BYTES; at < bytes.length; at += NONCE_RECORD_BYTES) {
      const stampedMs = view.getFloat64(at + NONCE_BYTES);
      if (!(nowMs - stampedMs <= this.windowMs)) continue; // NaN too
      this.add(bytes.subarray(at, at + NONCE_BYTES), stampedMs, nowMs);
    }
    return this.#entries.size;
  }
}
