/**
 * Health-port checks: TCP connects to the port a knock of ours opens.
 *
 * @module
 */

import { connect } from "node:net";
import { setTimeout as delay } from "node:timers/promises";

/** One resolved server address. */
export interface ServerAddress {
  /** Address text. */
  address: string;
  /** 4 or 6. */
  family: 4 | 6;
}

/** How long `status` and `knock --check` wait for the health port. */
export const STATUS_TIMEOUT_MS = 3000;

/** How often `knock --check` starts a new connect attempt while waiting. */
export const CHECK_POLL_INTERVAL_MS = 100;

/** The result of a health check. */
export interface HealthResult {
  /** Whether a TCP connection was made. */
  ok: boolean;
  /** The address that answered (or the first one tried). */
  address: ServerAddress;
  /** Milliseconds from the start of the check to the answer (or to giving up). */
  elapsedMs: number;
  /** Why it failed (ECONNREFUSED, timed out, aborted, ...), or null when it worked. */
  reason: string | null;
}

/** Options for {@linkcode tryConnect}. */
export interface TryConnectOptions {
  /** Give up after this many milliseconds. */
  timeoutMs: number;
  /** Give up when this signal aborts. */
  signal?: AbortSignal;
}

/** Tries one TCP connect to address:port; resolves null when it connected, else the reason. */
export function tryConnect(
  to: ServerAddress,
  port: number,
  options: TryConnectOptions,
): Promise<string | null> {
  return new Promise((resolve) => {
    if (options.signal?.aborted) {
      resolve("aborted");
      return;
    }
    const socket = connect({ host: to.address, port, family: to.family });
    const onAbort = (): void => done("aborted");
    const done = (reason: string | null): void => {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      socket.removeAllListeners();
      socket.on("error", () => {});
      socket.destroy();
      resolve(reason);
    };
    const timer = setTimeout(() => done("timed out"), options.timeoutMs);
    options.signal?.addEventListener("abort", onAbort, { once: true });
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
  /** Start a new attempt every 100 ms until one connects or the time is up (`knock --check`); default one attempt per address. */
  poll?: boolean;
  /** Stop waiting (not ok, reason "aborted") when this signal aborts, e.g. on Ctrl-C. */
  signal?: AbortSignal;
}

/** Checks the health port on each address; ok as soon as any one accepts a connection. */
export async function checkHealth(
  addresses: ServerAddress[],
  port: number,
  options: CheckHealthOptions = {},
): Promise<HealthResult> {
  const timeoutMs = options.timeoutMs ?? STATUS_TIMEOUT_MS;
  const start = performance.now();
  const done = new AbortController();
  const timer = setTimeout(() => done.abort(), timeoutMs);
  const stop = options.signal === undefined
    ? done.signal
    : AbortSignal.any([done.signal, options.signal]);
  let answered: ServerAddress | null = null;
  let reason = "timed out";
  const attempt = async (to: ServerAddress, left: number): Promise<void> => {
    const failure = await tryConnect(to, port, {
      timeoutMs: left,
      signal: stop,
    });
    if (failure === null) {
      answered ??= to;
      done.abort();
    } else if (failure !== "aborted") {
      reason = failure;
    }
  };
  const attempts: Promise<void>[] = [];
  // Bounded by the timeout. Polling attempts overlap, so one hanging on a
  // dropped SYN delays no other.
  while (!stop.aborted) {
    const left = start + timeoutMs - performance.now();
    if (left <= 0) break;
    attempts.push(...addresses.map((to) => attempt(to, left)));
    if (options.poll !== true) break;
    await delay(CHECK_POLL_INTERVAL_MS, null, { signal: stop }).catch(() => {});
  }
  await Promise.all(attempts);
  clearTimeout(timer);
  return {
    ok: answered !== null,
    address: answered ?? addresses[0],
    elapsedMs: performance.now() - start,
    reason: answered !== null
      ? null
      : options.signal?.aborted
      ? "aborted"
      : reason,
  };
}
