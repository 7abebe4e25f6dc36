/**
 * The health listener: accepts TCP connections and closes them at once.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { startHealthListener } from "../../lib/server/health.ts";

function connectAndWaitClose(
  host: string,
  port: number,
): Promise<{ connected: boolean; bytes: number }> {
  return new Promise((resolve, reject) => {
    let connected = false;
    let bytes = 0;
    const socket = connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connection to ${host}:${port} not closed within 1 s`));
    }, 1000);
    socket.on("connect", () => connected = true);
    socket.on("data", (chunk) => bytes += chunk.length);
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ connected, bytes });
    });
  });
}

Deno.test("the health listener accepts and closes each connection without sending anything", async () => {
  const health = await startHealthListener(0, { hostname: "127.0.0.1" });
  try {
    assert.ok(health.port > 0);
    for (let i = 0; i < 3; i++) {
      const result = await connectAndWaitClose("127.0.0.1", health.port);
      assert.deepEqual(result, { connected: true, bytes: 0 });
    }
  } finally {
    await health.close();
  }
});

Deno.test("the health listener refuses connections after close", async () => {
  const health = await startHealthListener(0, { hostname: "127.0.0.1" });
  const port = health.port;
  await health.close();
  const result = await connectAndWaitClose("127.0.0.1", port);
  assert.equal(result.connected, false);
});

Deno.test("binding a port in use fails with an error", async () => {
  const first = await startHealthListener(0, { hostname: "127.0.0.1" });
  try {
    await assert.rejects(
      startHealthListener(first.port, { hostname: "127.0.0.1" }),
    );
  } finally {
    await first.close();
  }
});
