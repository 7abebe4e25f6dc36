/**
 * Tests of lib/client/health_check.ts against TCP listeners on 127.0.0.1:
 * one attempt, polling until a listener appears, giving up, and aborting.
 */

import assert from "node:assert/strict";
import net from "node:net";
import {
  CHECK_POLL_INTERVAL_MS,
  checkHealth,
  tryConnect,
} from "../../lib/client/health_check.ts";

const LOCAL = { address: "127.0.0.1", family: 4 as const };

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

Deno.test("tryConnect resolves null on a listener and the error code on a closed port", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = acceptAndClose(listener);
  try {
    const port = (listener.addr as Deno.NetAddr).port;
    assert.equal(await tryConnect(LOCAL, port, { timeoutMs: 2000 }), null);
  } finally {
    listener.close();
    await accepting;
  }
  assert.equal(
    await tryConnect(LOCAL, freePort(), { timeoutMs: 2000 }),
    "ECONNREFUSED",
  );
});

Deno.test("checkHealth is ok at once when the port is open", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = acceptAndClose(listener);
  try {
    const port = (listener.addr as Deno.NetAddr).port;
    const result = await checkHealth([LOCAL], port, { timeoutMs: 3000 });
    assert.equal(result.ok, true);
    assert.equal(result.reason, null);
    assert.deepEqual(result.address, LOCAL);
    assert.ok(result.elapsedMs < 1000, `took ${result.elapsedMs} ms`);
  } finally {
    listener.close();
    await accepting;
  }
});

Deno.test("checkHealth without polling gives up after one refused attempt", async () => {
  const result = await checkHealth([LOCAL], freePort(), { timeoutMs: 3000 });
  assert.equal(result.ok, false);
  assert.equal(result.reason, "ECONNREFUSED");
  assert.ok(result.elapsedMs < 1000, `took ${result.elapsedMs} ms`);
});

Deno.test("checkHealth polling notices a port that opens later, within about one interval", async () => {
  const port = freePort();
  const openAfterMs = 500;
  let listener: Deno.Listener | null = null;
  let accepting: Promise<void> = Promise.resolve();
  const timer = setTimeout(() => {
    listener = Deno.listen({ hostname: "127.0.0.1", port });
    accepting = acceptAndClose(listener);
  }, openAfterMs);
  try {
    const result = await checkHealth([LOCAL], port, {
      timeoutMs: 3000,
      poll: true,
    });
    assert.equal(result.ok, true);
    assert.ok(
      result.elapsedMs >= openAfterMs - 20 &&
        result.elapsedMs < openAfterMs + 4 * CHECK_POLL_INTERVAL_MS,
      `took ${result.elapsedMs} ms`,
    );
  } finally {
    clearTimeout(timer);
    (listener as Deno.Listener | null)?.close();
    await accepting;
  }
});

Deno.test("checkHealth polling gives up at the timeout with the last reason", async () => {
  const result = await checkHealth([LOCAL], freePort(), {
    timeoutMs: 600,
    poll: true,
  });
  assert.equal(result.ok, false);
  assert.equal(result.reason, "ECONNREFUSED");
  assert.ok(
    result.elapsedMs >= 580 && result.elapsedMs < 1500,
    `took ${result.elapsedMs} ms`,
  );
});

Deno.test("checkHealth stops when its signal aborts", async () => {
  const stop = new AbortController();
  setTimeout(() => stop.abort(), 200);
  const result = await checkHealth([LOCAL], freePort(), {
    timeoutMs: 3000,
    poll: true,
    signal: stop.signal,
  });
  assert.equal(result.ok, false);
  assert.equal(result.reason, "aborted");
  assert.ok(result.elapsedMs < 1000, `took ${result.elapsedMs} ms`);
});

Deno.test("checkHealth polling starts a connect attempt every 100 ms: about 10 against a closed port in 1 s", async () => {
  // Count the attempts: every one goes through net.Socket's connect.
  const proto = net.Socket.prototype as unknown as {
    connect: (...args: unknown[]) => unknown;
  };
  const realConnect = proto.connect;
  const attemptsAtMs: number[] = [];
  proto.connect = function (this: unknown, ...args: unknown[]) {
    attemptsAtMs.push(performance.now());
    return realConnect.apply(this, args);
  };
  let result;
  try {
    result = await checkHealth([LOCAL], freePort(), {
      timeoutMs: 1000,
      poll: true,
    });
  } finally {
    proto.connect = realConnect;
  }
  assert.equal(result.ok, false);
  assert.equal(result.reason, "ECONNREFUSED");
  assert.ok(result.elapsedMs < 1500, `took ${result.elapsedMs} ms`);
  // At 0, 100, ..., 900 ms; a late timer may lose the last one or two.
  assert.ok(
    attemptsAtMs.length >= 8 && attemptsAtMs.length <= 10,
    `${attemptsAtMs.length} attempts`,
  );
  const firstGapMs = attemptsAtMs[1] - attemptsAtMs[0];
  assert.ok(firstGapMs >= 90 && firstGapMs < 250, `first gap ${firstGapMs} ms`);
});
