/**
 * Health-port checks: a TCP connect to the server's health port succeeds only
 * while a knock of ours has opened it.
 *
 * @module
 */

import { connect } from "node:net";
import type { ServerAddress } from "./knock.ts";

/** How long `status` waits for the health port. */
export const STATUS_TIMEOUT_MS = 3000;

/** How often `knock --check` retries while waiting. */
export const CHECK_POLL_INTERVAL_MS = 100;

/** How long one connect attempt may take while polling (a dropped SYN is not retried sooner by the kernel). */
export const POLL_ATTEMPT_TIMEOUT_MS = 200;

/** The result of a health check. */
export interface HealthResult {
  /** Whether a TCP connection was made. */
  ok: boolean;
  /** The address that answered (or the first one tried). */
  address: ServerAddress;
  /** Milliseconds from the start of the check to the answer. */
  elapsedMs: number;
  /** Why it failed (refused, timed out, unreachable). */
  reason: string | null;
}

/** Tries one TCP connect to address:port within the timeout. */
export function tryConnect(
  to: ServerAddress,
  port: number,
  options: { timeoutMs: number },
): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = connect({ host: to.address, port, family: to.family });
    const done = (reason: string | null): void => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on("error", () => {});
      socket.destroy();
      resolve(reason);
    };
    const timer = setTimeout(() => done("timed out"), options.timeoutMs);
    socket.once("connect", () => done(null));
    socket.once(
      "error",
      (err: Error & { code?: string }) => done(err.code ?? err.message),
    );
  });
}

/** Options for {@linkcode checkHealth}. */
export interface CheckHealthOptions {
  /** Total time to wait (default 3 s). */
  timeoutMs?: number;
  /** Keep retrying every 100 ms until the timeout (for `knock --check`); default one attempt. */
  poll?: boolean;
}

/** Checks the health port on each address; ok as soon as any one accepts a connection. */
export async function checkHealth(
  addresses: ServerAddress[],
  port: number,
  options: CheckHealthOptions = {},
): Promise<HealthResult> {
  const timeoutMs = options.timeoutMs ?? STATUS_TIMEOUT_MS;
  const start = performance.now();
  const deadline = start + timeoutMs;
  let lastReason = "timed out";
  // Bounded: at most timeoutMs / CHECK_POLL_INTERVAL_MS + 1 rounds.
  const maxRounds = options.poll
    ? Math.ceil(timeoutMs / CHECK_POLL_INTERVAL_MS) + 1
    : 1;
  for (let round = 0; round < maxRounds; round++) {
    const left = deadline - performance.now();
    if (left <= 0) break;
    const attemptMs = options.poll
      ? Math.min(left, POLL_ATTEMPT_TIMEOUT_MS)
      : left;
    const results = await Promise.all(
      addresses.map((a) => tryConnect(a, port, { timeoutMs: attemptMs })),
    );
    const index = results.findIndex((r) => r === null);
    if (index >= 0) {
      return {
        ok: true,
        address: addresses[index],
        elapsedMs: performance.now() - start,
        reason: null,
      };
    }
    lastReason = results[0] ?? lastReason;
    if (!options.poll) break;
    const wait = Math.min(CHECK_POLL_INTERVAL_MS, deadline - performance.now());
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  return {
    ok: false,
    address: addresses[0],
    elapsedMs: performance.now() - start,
    reason: lastReason,
  };
}
