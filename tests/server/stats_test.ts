/**
 * KnockStats: counters by reason and client, the once-a-minute summary line,
 * and the backend wrapper that counts and times firewall operations.
 */
import assert from "node:assert/strict";
import { FirewallError } from "../../lib/firewall/backend.ts";
import { countedBackend, KnockStats } from "../../lib/server/stats.ts";
import { captureLog, RecordingBackend, sleep } from "./recording_backend.ts";

Deno.test("drops are counted by reason in total", () => {
  const log = captureLog("warn");
  try {
    const stats = new KnockStats();
    stats.drop("size", "192.0.2.2");
    stats.drop("decrypt", "192.0.2.2");
    stats.drop("decrypt", "2001:db8::2");
    stats.accepted++;
    assert.deepEqual(stats.drops(), { size: 1, decrypt: 2 });
    assert.equal(stats.accepted, 1);
  } finally {
    log.restore();
  }
});

Deno.test("the summary line lists reasons by count, then resets the window but not the totals", () => {
  const log = captureLog("info");
  try {
    const stats = new KnockStats();
    for (let i = 0; i < 1500; i++) stats.drop("decrypt", "198.51.100.7");
    for (let i = 0; i < 34; i++) stats.drop("size", "198.51.100.8");
    stats.logSummary(60_000);
    stats.logSummary(60_000);
    stats.drop("replay", "192.0.2.2");
    stats.logSummary(30_000);
    assert.deepEqual(log.lines, [
      "INFO  dropped 1534 datagrams in the last 60 s: 1500 decrypt, 34 size",
      "INFO  dropped 1 datagrams in the last 30 s: 1 replay",
    ]);
    assert.deepEqual(stats.drops(), { decrypt: 1500, size: 34, replay: 1 });
  } finally {
    log.restore();
  }
});

Deno.test("each drop is a debug line; the summary is an info line", () => {
  const log = captureLog("debug");
  try {
    const stats = new KnockStats();
    stats.drop("stale", "192.0.2.2");
    stats.logSummary(60_000);
    stats.logSummary(60_000);
    assert.deepEqual(log.lines, [
      "DEBUG dropped datagram from 192.0.2.2: stale",
      "INFO  dropped 1 datagrams in the last 60 s: 1 stale",
    ]);
  } finally {
    log.restore();
  }
});

Deno.test("accepted knocks are counted in total and by client, with when each client was last seen", () => {
  const stats = new KnockStats();
  const before = Date.now();
  stats.accept("alice");
  stats.accept("bob");
  stats.accept("alice");
  assert.equal(stats.accepted, 3);
  assert.deepEqual(Object.fromEntries(stats.acceptedBy), { alice: 2, bob: 1 });
  assert.deepEqual([...stats.lastSeen.keys()], ["alice", "bob"]);
  const seen = stats.lastSeen.get("alice")!;
  assert.ok(seen >= before && seen <= Date.now(), `${seen}`);
});

Deno.test("the counted backend passes every call through and counts it by operation, result and duration", async () => {
  const stats = new KnockStats();
  const recording = new RecordingBackend();
  const backend = countedBackend(recording, stats);
  assert.equal(backend.name, recording.name);
  const base = {
    knockPort: 54154,
    openKnockPort: true,
    dropPorts: [],
    interface: null,
  };
  await backend.setup(base);
  await backend.updateBaseRules(base);
  const address = { family: 4, text: "192.0.2.2" } as const;
  const ports = [{ port: 22, proto: "tcp" } as const];
  recording.hangOpen = true;
  const opening = backend.open(address, ports);
  const heldMs = 30;
  await sleep(heldMs);
  recording.releaseHeld();
  const rules = await opening;
  recording.hangOpen = false;
  recording.failOpen = true;
  await assert.rejects(backend.open(address, ports), FirewallError);
  await backend.close(rules);
  assert.deepEqual(await backend.ensureBaseRules([rules]), {
    repaired: [],
    lost: [rules],
  });
  await backend.teardown();
  assert.deepEqual(
    recording.calls.map((c) => c.op),
    [
      "setup",
      "updateBaseRules",
      "open",
      "open",
      "close",
      "ensureBaseRules",
      "teardown",
    ],
  );
  const counts = Object.fromEntries(
    [...stats.firewall].map(([op, s]) => [op, [s.ok, s.error]]),
  );
  assert.deepEqual(counts, {
    setup: [1, 0],
    update: [1, 0],
    open: [1, 1],
    close: [1, 0],
    check: [1, 0],
    teardown: [1, 0],
  });
  // The held open took at least as long as it was held (timers never fire early; 1 ms of rounding).
  const open = stats.firewall.get("open")!;
  assert.ok(open.sumSeconds >= (heldMs - 1) / 1000, `${open.sumSeconds}`);
  const last = open.buckets.length - 1;
  assert.equal(open.buckets[last], 2, "both opens are within 10 s");
  assert.ok(open.buckets[0] <= 1, "the held open is over 5 ms");
});
