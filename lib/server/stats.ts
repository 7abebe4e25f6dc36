/**
 * The server's counters (knocks, drops, firewall operations, reloads, the
 * kernel gate's drops) and the periodic summary line of drops.
 *
 * @module
 */

import type { FirewallBackend, GateCounters } from "../firewall/backend.ts";
import { debug, info, isLogEnabled } from "../log.ts";

/** Default interval of the drop summary line. */
export const DROP_SUMMARY_INTERVAL_MS = 60_000;

/** Upper bounds in seconds of the firewall operation duration buckets. */
// deno-fmt-ignore
export const FIREWALL_BUCKETS_SECONDS: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** The firewall backend calls counted, by the name the metrics give them. */
// deno-fmt-ignore
export const FIREWALL_OPERATIONS = [
  "setup", "update", "open", "close", "check", "teardown",
] as const;

/** A counted firewall backend call. */
export type FirewallOperation = typeof FIREWALL_OPERATIONS[number];

/** Counts and durations of one kind of firewall operation. */
export interface FirewallOperationStats {
  /** Calls that worked. */
  ok: number;
  /** Calls that failed. */
  error: number;
  /** Calls that took at most each bound of {@linkcode FIREWALL_BUCKETS_SECONDS} (cumulative). */
  buckets: number[];
  /** Seconds all calls took. */
  sumSeconds: number;
}

/** Counts accepted knocks, drops, firewall operations and config reloads since start, and drops since the last summary. */
export class KnockStats {
  /** Accepted knocks since start. */
  accepted = 0;
  /** Accepted knocks since start by client. */
  readonly acceptedBy = new Map<string, number>();
  /** Wall-clock ms since the epoch of each client's latest accepted knock. */
  readonly lastSeen = new Map<string, number>();
  /** The kernel gate's drops as of the latest firewall check; null without a gate. */
  kernelDrops: GateCounters | null = null;
  /** Config reloads since start by result. */
  readonly reloads = { ok: 0, error: 0 };
  /** Firewall backend calls since start by operation, each from zero. */
  readonly firewall = new Map<FirewallOperation, FirewallOperationStats>(
    FIREWALL_OPERATIONS.map((op) => [op, {
      ok: 0,
      error: 0,
      buckets: FIREWALL_BUCKETS_SECONDS.map(() => 0),
      sumSeconds: 0,
    }]),
  );
  #total = new Map<string, number>();
  #recent = new Map<string, number>();

  /** Counts one accepted knock of a client. */
  accept(client: string): void {
    this.accepted++;
    this.acceptedBy.set(client, (this.acceptedBy.get(client) ?? 0) + 1);
    this.lastSeen.set(client, Date.now());
  }

  /** Counts one firewall backend call and how long it took. */
  firewallCall(op: FirewallOperation, ok: boolean, seconds: number): void {
    const stats = this.firewall.get(op)!;
    stats[ok ? "ok" : "error"]++;
    stats.sumSeconds += seconds;
    for (const [i, bound] of FIREWALL_BUCKETS_SECONDS.entries()) {
      if (seconds <= bound) stats.buckets[i]++;
    }
  }

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

/** A backend that counts and times every call of `backend` in `stats`. */
export function countedBackend(
  backend: FirewallBackend,
  stats: KnockStats,
): FirewallBackend {
  async function time<T>(
    op: FirewallOperation,
    call: () => Promise<T>,
  ): Promise<T> {
    const started = performance.now();
    const seconds = (): number => (performance.now() - started) / 1000;
    try {
      const result = await call();
      stats.firewallCall(op, true, seconds());
      return result;
    } catch (err) {
      stats.firewallCall(op, false, seconds());
      throw err;
    }
  }
  return {
    name: backend.name,
    setup: (options) => time("setup", () => backend.setup(options)),
    updateBaseRules: (options) =>
      time("update", () => backend.updateBaseRules(options)),
    open: (address, ports) => time("open", () => backend.open(address, ports)),
    close: (rules) => time("close", () => backend.close(rules)),
    ensureBaseRules: (open) =>
      time("check", () => backend.ensureBaseRules(open)),
    teardown: () => time("teardown", () => backend.teardown()),
    gateCounters: () => backend.gateCounters(),
  };
}
