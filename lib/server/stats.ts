/**
 * Counters of accepted knocks and of drops by reason, and the periodic
 * summary line of drops at info level (each drop itself is logged only at
 * debug).
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

  /** Drops since start by reason. */
  drops(): Record<string, number> {
    return Object.fromEntries(this.#total);
  }

  /** Logs the drops since the last call at info, most frequent reason first, when there were any. */
  logSummary(windowMs: number): void {
    const recent = [...this.#recent].sort((a, b) => b[1] - a[1]);
    this.#recent.clear();
    if (recent.length === 0) return;
    const total = recent.reduce((sum, [, count]) => sum + count, 0);
    const seconds = Math.round(windowMs / 1000);
    const reasons = recent.map(([reason, count]) => `${count} ${reason}`);
    info(
      `dropped ${total} datagrams in the last ${seconds} s: ${
        reasons.join(", ")
      }`,
    );
  }
}
