/**
 * Tests of lib/client/health_check.ts against TCP listeners on 127.0.0.1:
 * one attempt, polling until a listener appears, giving up, and aborting.
 * Timeouts are generous; what is asserted does not depend on machine load.
 */

import assert from "node:assert/strict";
import net from "node:net";
import {
  CHECK_POLL_INTERVAL_MS,
  checkHealth,
  tryConnect,
} from "../../lib/client/health_check.ts";

const LOCAL = { address: "127.0.0.1", family: 4 as const };

/** Far longer than any local connect takes, however busy the machine. */
const GENEROUS_TIMEOUT_MS = 30_000;

/** Timers never fire early, but clocks may differ by a millisecond or two. */
const CLOCK_SLACK_MS = 5;

/** A TCP port with nothing listening on it (bound once, then closed). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

function acceptAndClose(listener: Deno.Listener): Promise<void> {
  return (async () => {
    try {
      for await (const conn of listener) conn.close();
    } catch {
      // listener closed
    }
  })();
}

/**
 * Runs `fn` while counting connect attempts (every one goes through
 * net.Socket's connect); `onAttempt` runs just before each attempt starts,
 * with its number (1, 2, ...).
 */
async function countingAttempts<T>(
  fn: () => Promise<T>,
  onAttempt: (attempt: number) => void = () => {},
): Promise<{ result: T; attemptsAtMs: number[] }> {
  const proto = net.Socket.prototype as unknown as {
    connect: (...args: unknown[]) => unknown;
  };
  const realConnect = proto.connect;
  const attemptsAtMs: number[] = [];
  proto.connect = function (this: unknown, ...args: unknown[]) {
    attemptsAtMs.push(performance.now());
    onAttempt(attemptsAtMs.length);
    return realConnect.apply(this, args);
  };
  try {
    return { result: await fn(), attemptsAtMs };
  } finally {
    proto.connect = realConnect;
  }
}

Deno.test("tryConnect resolves null on a listener and the error code on a closed port", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = acceptAndClose(listener);
  try {
    const port = (listener.addr as Deno.NetAddr).port;
    const reason = await tryConnect(LOCAL, port, {
      timeoutMs: GENEROUS_TIMEOUT_MS,
    });
    assert.equal(reason, null);
  } finally {
    listener.close();
    await accepting;
  }
  assert.equal(
    await tryConnect(LOCAL, freePort(), { timeoutMs: GENEROUS_TIMEOUT_MS }),
    "ECONNREFUSED",
  );
});

Deno.test("checkHealth is ok when the port is open", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = acceptAndClose(listener);
  try {
    const port = (listener.addr as Deno.NetAddr).port;
    const result = await checkHealth([LOCAL], port, {
      timeoutMs: GENEROUS_TIMEOUT_MS,
    });
    assert.equal(result.ok, true);
    assert.equal(result.reason, null);
    assert.deepEqual(result.address, LOCAL);
  } finally {
    listener.close();
    await accepting;
  }
});

Deno.test("checkHealth without polling gives up after one refused attempt, without waiting for the timeout", async () => {
  const { result, attemptsAtMs } = await countingAttempts(() =>
    checkHealth([LOCAL], freePort(), { timeoutMs: GENEROUS_TIMEOUT_MS })
  );
  assert.equal(result.ok, false);
  assert.equal(result.reason, "ECONNREFUSED");
  assert.equal(attemptsAtMs.length, 1);
  assert.ok(result.elapsedMs < GENEROUS_TIMEOUT_MS, `${result.elapsedMs} ms`);
});

Deno.test("checkHealth polling notices a port that opens after the first attempts were refused", async () => {
  const port = freePort();
  let listener: Deno.Listener | null = null;
  let accepting: Promise<void> = Promise.resolve();
  try {
    const { result, attemptsAtMs } = await countingAttempts(
      () =>
        checkHealth([LOCAL], port, {
          timeoutMs: GENEROUS_TIMEOUT_MS,
          poll: true,
        }),
      (attempt) => {
        if (attempt !== 3) return;
        listener = Deno.listen({ hostname: "127.0.0.1", port });
        accepting = acceptAndClose(listener);
      },
    );
    assert.equal(result.ok, true);
    assert.equal(result.reason, null);
    assert.ok(attemptsAtMs.length >= 3, `${attemptsAtMs.length} attempts`);
  } finally {
    (listener as Deno.Listener | null)?.close();
    await accepting;
  }
});

Deno.test("checkHealth polling starts one attempt per interval and gives up at the timeout with the last reason", async () => {
  const timeoutMs = 600;
  const { result, attemptsAtMs } = await countingAttempts(() =>
    checkHealth([LOCAL], freePort(), { timeoutMs, poll: true })
  );
  assert.equal(result.ok, false);
  assert.equal(result.reason, "ECONNREFUSED");
  assert.ok(
    result.elapsedMs >= timeoutMs - CLOCK_SLACK_MS,
    `${result.elapsedMs} ms`,
  );
  // At most one attempt per interval within the timeout; the second one
  // (when the machine was quick enough to make one) an interval after the first.
  assert.ok(
    attemptsAtMs.length >= 1 &&
      attemptsAtMs.length <= timeoutMs / CHECK_POLL_INTERVAL_MS,
    `${attemptsAtMs.length} attempts`,
  );
  if (attemptsAtMs.length >= 2) {
    const gap = attemptsAtMs[1] - attemptsAtMs[0];
    assert.ok(gap >= CHECK_POLL_INTERVAL_MS - CLOCK_SLACK_MS, `gap ${gap} ms`);
  }
});

Deno.test("checkHealth stops when its signal aborts, also when it was aborted before the start", async () => {
  const stop = new AbortController();
  const { result, attemptsAtMs } = await countingAttempts(
    () =>
      checkHealth([LOCAL], freePort(), {
        timeoutMs: GENEROUS_TIMEOUT_MS,
        poll: true,
        signal: stop.signal,
      }),
    (attempt) => {
      // Right after the second attempt has started.
      if (attempt === 2) queueMicrotask(() => stop.abort());
    },
  );
  assert.equal(result.ok, false);
  assert.equal(result.reason, "aborted");
  assert.equal(attemptsAtMs.length, 2);

  const already = await checkHealth([LOCAL], freePort(), {
    timeoutMs: GENEROUS_TIMEOUT_MS,
    signal: AbortSignal.abort(),
  });
  assert.equal(already.ok, false);
  assert.equal(already.reason, "aborted");
});
