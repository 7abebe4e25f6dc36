/**
 * Health-port checks: a TCP connect to the server's health port succeeds only
 * while a knock of ours has opened it.
 *
 * @module
 */

import { connect } from "node:net";

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

/**
 * Checks the health port on each address; ok as soon as any one accepts a
 * connection. Polling attempts overlap, so one that hangs on a dropped SYN
 * does not delay the next.
 */
export function checkHealth(
  addresses: ServerAddress[],
  port: number,
  options: CheckHealthOptions = {},
): Promise<HealthResult> {
  const timeoutMs = options.timeoutMs ?? STATUS_TIMEOUT_MS;
  const poll = options.poll === true;
  // Bounded: at most one round per interval within the timeout.
  const maxRounds = poll ? Math.ceil(timeoutMs / CHECK_POLL_INTERVAL_MS) : 1;
  const start = performance.now();
  const stop = new AbortController();

  return new Promise((resolve) => {
    let rounds = 0;
    let pending = 0;
    let lastReason = "timed out";
    /** Resolves once, with the address that answered or null. */
    const finish = (answered: ServerAddress | null): void => {
      if (stop.signal.aborted) return;
      stop.abort();
      clearTimeout(overall);
      clearInterval(interval);
      options.signal?.removeEventListener("abort", onAbort);
      resolve({
        ok: answered !== null,
        address: answered ?? addresses[0],
        elapsedMs: performance.now() - start,
        reason: answered !== null ? null : lastReason,
      });
    };
    const onAbort = (): void => {
      lastReason = "aborted";
      finish(null);
    };
    const launch = (): void => {
      const left = start + timeoutMs - performance.now();
      if (stop.signal.aborted || left <= 0 || rounds >= maxRounds) return;
      rounds++;
      for (const address of addresses) {
        pending++;
        tryConnect(address, port, { timeoutMs: left, signal: stop.signal })
          .then((reason) => {
            pending--;
            if (reason === null) return finish(address);
            if (reason !== "aborted") lastReason = reason;
            if (!poll && pending === 0) finish(null);
          });
      }
    };
    const overall = setTimeout(() => finish(null), timeoutMs);
    const interval = poll
      ? setInterval(launch, CHECK_POLL_INTERVAL_MS)
      : undefined;
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    launch();
  });
}
