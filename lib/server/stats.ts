/**
 * Counters of what happened to each datagram, and the once-a-minute summary
 * line of drops at info level (each drop itself is logged only at debug).
 *
 * @module
 */

import { debug, info, isLogEnabled } from "../log.ts";

/** Default interval of the drop summary line. */
export const DROP_SUMMARY_INTERVAL_MS = 60_000;

/** Counts accepted knocks and drops by reason, in total and since the last summary. */
export class KnockStats {
  /** Accepted knocks since start. */
  accepted = 0;
  #total = new Map<string, number>();
  #recent = new Map<string, number>();

  /** Counts one dropped datagram. */
  drop(reason: string, source: string): void {
    this.#total.set(reason, (this.#total.get(reason) ?? 0) + 1);
    this.#recent.set(reason, (this.#recent.get(reason) ?? 0) + 1);
    if (isLogEnabled("debug")) {
      debug(`dropped datagram from ${source}: ${reason}`);
    }
  }

  /** Counts one accepted knock. */
  accept(): void {
    this.accepted++;
  }

  /** Drops since start by reason. */
  drops(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [reason, count] of this.#total) out[reason] = count;
    return out;
  }

  /** The summary line for drops since the last call (null when none), and resets that window. */
  takeSummary(windowMs: number): string | null {
    let dropped = 0;
    for (const n of this.#recent.values()) dropped += n;
    if (dropped === 0) return null;
    const parts = [...this.#recent.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([reason, count]) => `${count} ${reason}`);
    const line = `dropped ${dropped} datagrams in the last ${
      Math.round(windowMs / 1000)
    } s: ${parts.join(", ")}`;
    this.#recent.clear();
    return line;
  }

  /** Logs the summary line at info when there were drops. */
  logSummary(windowMs: number): void {
    const line = this.takeSummary(windowMs);
    if (line !== null) info(line);
  }
}
