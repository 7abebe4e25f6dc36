/**
 * The health listener: accepts TCP connections and closes them at once.
 */
import assert from "node:assert/strict";
import { startHealthListener } from "../../lib/server/health.ts";
import { connectAndWaitClose } from "./recording_backend.ts";

Deno.test("the health listener accepts and closes each connection without sending anything", async () => {
  const health = await startHealthListener(0, "127.0.0.1");
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
  const health = await startHealthListener(0, "127.0.0.1");
  const port = health.port;
  await health.close();
  const result = await connectAndWaitClose("127.0.0.1", port);
  assert.equal(result.connected, false);
});

Deno.test("binding a port in use fails with an error", async () => {
  const first = await startHealthListener(0, "127.0.0.1");
  try {
    await assert.rejects(
      startHealthListener(first.port, "127.0.0.1"),
    );
  } finally {
    await first.close();
  }
});
