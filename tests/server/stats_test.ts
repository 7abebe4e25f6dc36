/**
 * KnockStats: counters by reason and the once-a-minute summary line.
 */
import assert from "node:assert/strict";
import { KnockStats } from "../../lib/server/stats.ts";
import { captureLog } from "./recording_backend.ts";

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
