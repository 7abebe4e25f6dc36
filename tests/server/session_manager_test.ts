/**
 * SessionManager against a recording firewall backend: outcomes of knocks,
 * the bound on opens in flight, expiry, closing on reload and on shutdown.
 */
import assert from "node:assert/strict";
import type { FirewallRulePort } from "../../lib/firewall/backend.ts";
import type { IpAddress } from "../../lib/ip.ts";
import {
  CLOSE_RETRY_DELAYS_MS,
  describePorts,
  MAX_SESSIONS_PER_CLIENT,
  SessionManager,
} from "../../lib/server/session_manager.ts";
import { formatRfc3339 } from "../../lib/time.ts";
import { waitFor } from "../../scripts/testbed.ts";
import { captureLog, RecordingBackend, sleep } from "./recording_backend.ts";

const PORTS: FirewallRulePort[] = [
  { port: 22, proto: "tcp" },
  { port: 8080, endPort: 8090, proto: "tcp" },
];

function v4(last: number): IpAddress {
  return { family: 4, text: `192.0.2.${last}` };
}

Deno.test("describePorts formats single ports and ranges", () => {
  assert.equal(describePorts(PORTS), "22/tcp,8080-8090/tcp");
  assert.equal(describePorts([]), "");
});

Deno.test("a first knock opens, a repeat refreshes without touching the firewall", async () => {
  const log = captureLog();
  const backend = new RecordingBackend();
  let changes = 0;
  const manager = new SessionManager(backend, {
    knockTimeoutMs: 30_000,
    onChange: () => changes++,
  });
  try {
    assert.equal(await manager.knock("alice", v4(2), PORTS), "opened");
    const first = manager.list()[0].expiresAtMs;
    await sleep(20);
    assert.equal(await manager.knock("alice", v4(2), PORTS), "refreshed");
    assert.equal(backend.callsOf("open").length, 1);
    assert.ok(manager.list()[0].expiresAtMs > first);
    assert.equal(changes, 2);
    assert.equal(await manager.knock("alice", v4(3), PORTS), "opened");
    assert.equal(await manager.knock("bob", v4(2), PORTS), "opened");
    assert.equal(manager.list().length, 3);
    assert.equal(backend.callsOf("open").length, 3);
    assert.deepEqual([...manager.lastSeen().keys()].sort(), ["alice", "bob"]);
  } finally {
    await manager.shutdown();
    log.restore();
  }
});

Deno.test("knocks while the first open is in flight do not open twice", async () => {
  const log = captureLog();
  const backend = new RecordingBackend();
  backend.hangOpen = true;
  const manager = new SessionManager(backend, { knockTimeoutMs: 30_000 });
  try {
    const first = manager.knock("alice", v4(2), PORTS);
    assert.equal(await manager.knock("alice", v4(2), PORTS), "refreshed");
    backend.releaseHeld();
    assert.equal(await first, "opened");
    assert.equal(backend.callsOf("open").length, 1);
  } finally {
    await manager.shutdown();
    log.restore();
  }
});

Deno.test("first knocks beyond the bound on opens in flight are dropped as busy", async () => {
  const log = captureLog();
  const backend = new RecordingBackend();
  backend.hangOpen = true;
  const manager = new SessionManager(backend, {
    knockTimeoutMs: 30_000,
    maxPendingOpens: 2,
  });
  try {
    const a = manager.knock("alice", v4(2), PORTS);
    const b = manager.knock("alice", v4(3), PORTS);
    assert.equal(await manager.knock("alice", v4(4), PORTS), "busy");
    assert.equal(manager.pendingOpens(), 2);
    assert.equal(backend.callsOf("open").length, 2);
    assert.equal(
      log.matching(/^WARN {2}knock from alice for 192\.0\.2\.4 dropped/).length,
      1,
    );
    backend.hangOpen = false;
    backend.releaseHeld();
    assert.deepEqual(await Promise.all([a, b]), ["opened", "opened"]);
    assert.equal(await manager.knock("alice", v4(4), PORTS), "opened");
  } finally {
    await manager.shutdown();
    log.restore();
  }
});

Deno.test("a failed open records no session and logs the firewall's message", async () => {
  const log = captureLog();
  const backend = new RecordingBackend();
  backend.failOpen = true;
  const manager = new SessionManager(backend, { knockTimeoutMs: 30_000 });
  try {
    assert.equal(await manager.knock("alice", v4(2), PORTS), "failed");
    assert.equal(manager.list().length, 0);
    assert.equal(manager.pendingOpens(), 0);
    assert.equal(log.matching(/^ERROR .*No such file or directory/).length, 1);
    backend.failOpen = false;
    assert.equal(await manager.knock("alice", v4(2), PORTS), "opened");
  } finally {
    await manager.shutdown();
    log.restore();
  }
});

Deno.test("sessions close at their deadline; a refresh moves the close", async () => {
  const log = captureLog();
  const backend = new RecordingBackend();
  const manager = new SessionManager(backend, { knockTimeoutMs: 300 });
  try {
    await manager.knock("alice", v4(2), PORTS);
    await manager.knock("bob", v4(3), PORTS);
    await sleep(150);
    await manager.knock("bob", v4(3), PORTS);
    const bobDeadline = manager.list().find((s) => s.clientName === "bob")!
      .expiresAtMs;
    await waitFor(() => backend.callsOf("close").length === 1, {
      timeoutMs: 1500,
      what: "alice closed",
    });
    assert.equal(backend.callsOf("close")[0].address, "192.0.2.2");
    await waitFor(() => backend.callsOf("close").length === 2, {
      timeoutMs: 1500,
      what: "bob closed",
    });
    const bobClosed = backend.callsOf("close")[1];
    assert.equal(bobClosed.address, "192.0.2.3");
    assert.ok(bobClosed.atMs >= bobDeadline);
    assert.ok(bobClosed.atMs - bobDeadline < 1000);
    assert.equal(manager.list().length, 0);
  } finally {
    await manager.shutdown();
    log.restore();
  }
});

Deno.test("closeWhere closes the sessions the predicate names and keeps the others' deadlines", async () => {
  const log = captureLog();
  const backend = new RecordingBackend();
  const manager = new SessionManager(backend, { knockTimeoutMs: 30_000 });
  try {
    await manager.knock("alice", v4(2), PORTS);
    await manager.knock("bob", v4(3), PORTS);
    const bobDeadline = manager.list().find((s) => s.clientName === "bob")!
      .expiresAtMs;
    await manager.closeWhere((s) =>
      s.clientName === "alice" ? "client revoked" : null
    );
    assert.deepEqual(manager.list().map((s) => s.clientName), ["bob"]);
    assert.equal(manager.list()[0].expiresAtMs, bobDeadline);
    assert.equal(
      log.matching(
        "closed 22/tcp,8080-8090/tcp for 192.0.2.2 (client alice): client revoked",
      ).length,
      1,
    );
  } finally {
    await manager.shutdown();
    log.restore();
  }
});

Deno.test("an open that finishes after its client was refused is taken out at once", async () => {
  const log = captureLog();
  const backend = new RecordingBackend();
  backend.hangOpen = true;
  let revoked = false;
  const manager = new SessionManager(backend, {
    knockTimeoutMs: 30_000,
    refuse: (name) => name === "alice" && revoked ? "client revoked" : null,
  });
  try {
    const outcome = manager.knock("alice", v4(2), PORTS);
    revoked = true;
    backend.releaseHeld();
    assert.equal(await outcome, "failed");
    assert.equal(manager.list().length, 0);
    assert.equal(backend.live.size, 0);
    assert.equal(backend.callsOf("close").length, 1);
  } finally {
    await manager.shutdown();
    log.restore();
  }
});

Deno.test("shutdown hands every session to the teardown without closing them one by one, refuses later knocks and bounds its wait for hung opens", async () => {
  const log = captureLog();
  const backend = new RecordingBackend();
  const manager = new SessionManager(backend, {
    knockTimeoutMs: 30_000,
    shutdownWaitMs: 100,
  });
  try {
    await manager.knock("alice", v4(2), PORTS);
    backend.hangOpen = true;
    const hung = manager.knock("bob", v4(3), PORTS);
    const started = Date.now();
    const result = await manager.shutdown();
    assert.ok(Date.now() - started < 1000);
    assert.deepEqual(result.sessions.map((s) => s.clientName), ["alice"]);
    assert.deepEqual(result.pendingCloses, []);
    assert.equal(manager.list().length, 0);
    assert.equal(backend.callsOf("close").length, 0, "no close per session");
    assert.equal(await manager.knock("carol", v4(4), PORTS), "failed");
    backend.releaseHeld();
    assert.equal(await hung, "failed");
    // The open that finished after shutdown removes its own rules.
    assert.equal(backend.callsOf("close").length, 1);
    assert.equal(backend.callsOf("close")[0].address, "192.0.2.3");
  } finally {
    log.restore();
  }
});

Deno.test("regrant moves a session to its client's new ports and keeps its deadline", async () => {
  const log = captureLog();
  const backend = new RecordingBackend();
  const manager = new SessionManager(backend, { knockTimeoutMs: 30_000 });
  try {
    await manager.knock("alice", v4(2), PORTS);
    await manager.knock("bob", v4(3), PORTS);
    const before = manager.list().map((s) => [s.clientName, s.expiresAtMs]);
    const oldHandles = manager.list().find((s) => s.clientName === "alice")!
      .rules.handles;
    const narrower: FirewallRulePort[] = [{ port: 22, proto: "tcp" }];
    await manager.regrant((name) => name === "alice" ? narrower : PORTS);
    const alice = manager.list().find((s) => s.clientName === "alice")!;
    assert.equal(describePorts(alice.ports), "22/tcp");
    assert.deepEqual(
      manager.list().map((s) => [s.clientName, s.expiresAtMs]),
      before,
    );
    assert.equal(backend.callsOf("open").length, 3);
    assert.equal(backend.callsOf("open")[2].ports, "22/tcp");
    assert.deepEqual(backend.callsOf("close").map((c) => c.handles), [
      oldHandles,
    ]);
    assert.equal(backend.live.size, 3, "alice 1 rule, bob 2 rules");
    assert.equal(
      log.matching(
        /changed 22\/tcp,8080-8090\/tcp to 22\/tcp for 192\.0\.2\.2 \(client alice\): config reload/,
      ).length,
      1,
    );
  } finally {
    await manager.shutdown();
    log.restore();
  }
});

Deno.test("a failed regrant keeps the old rules; a later knock with the new ports retries", async () => {
  const log = captureLog();
  const backend = new RecordingBackend();
  const manager = new SessionManager(backend, { knockTimeoutMs: 30_000 });
  try {
    await manager.knock("alice", v4(2), PORTS);
    const narrower: FirewallRulePort[] = [{ port: 22, proto: "tcp" }];
    backend.failOpen = true;
    await manager.regrant(() => narrower);
    assert.equal(describePorts(manager.list()[0].ports), describePorts(PORTS));
    assert.equal(backend.live.size, 2);
    assert.equal(log.matching(/^ERROR changing the ports/).length, 1);
    backend.failOpen = false;
    assert.equal(await manager.knock("alice", v4(2), narrower), "refreshed");
    await waitFor(() => manager.list()[0].ports.length === 1, {
      timeoutMs: 1000,
      what: "the ports swapped on the refresh",
    });
    assert.equal(backend.live.size, 1);
  } finally {
    await manager.shutdown();
    log.restore();
  }
});

Deno.test("a client beyond MAX_SESSIONS_PER_CLIENT addresses loses its least recently knocked session; other clients are not affected", async () => {
  const log = captureLog();
  const backend = new RecordingBackend();
  const manager = new SessionManager(backend, { knockTimeoutMs: 30_000 });
  try {
    assert.equal(MAX_SESSIONS_PER_CLIENT, 8);
    assert.equal(await manager.knock("bob", v4(200), PORTS), "opened");
    for (let i = 1; i <= MAX_SESSIONS_PER_CLIENT; i++) {
      assert.equal(await manager.knock("alice", v4(i), PORTS), "opened");
      await sleep(2);
    }
    // 192.0.2.1 is the oldest but knocks again: 192.0.2.2 is now the least recently knocked.
    assert.equal(await manager.knock("alice", v4(1), PORTS), "refreshed");
    assert.equal(await manager.knock("alice", v4(9), PORTS), "opened");
    await waitFor(() => backend.callsOf("close").length === 1, {
      timeoutMs: 1000,
      what: "the eviction",
    });
    const alice = manager.list().filter((s) => s.clientName === "alice");
    assert.equal(alice.length, MAX_SESSIONS_PER_CLIENT);
    assert.ok(!alice.some((s) => s.address.text === "192.0.2.2"));
    assert.ok(alice.some((s) => s.address.text === "192.0.2.9"));
    assert.equal(backend.callsOf("close")[0].address, "192.0.2.2");
    assert.equal(
      manager.list().filter((s) => s.clientName === "bob").length,
      1,
    );
    assert.equal(
      log.matching(
        /^WARN {2}client alice has 8 sessions, the most one client may hold: closing the one for 192\.0\.2\.2 .* to open 192\.0\.2\.9$/,
      ).length,
      1,
    );
    assert.equal(
      log.matching(
        /closed 22\/tcp,8080-8090\/tcp for 192\.0\.2\.2 \(client alice\): session limit \(8 per client\)/,
      ).length,
      1,
    );
    // Twenty more addresses: never more than the limit at once.
    for (let i = 10; i < 30; i++) {
      await manager.knock("alice", v4(i), PORTS);
    }
    await waitFor(
      () =>
        manager.list().filter((s) => s.clientName === "alice").length ===
          MAX_SESSIONS_PER_CLIENT &&
        backend.live.size === (MAX_SESSIONS_PER_CLIENT + 1) * PORTS.length,
      { timeoutMs: 2000, what: "alice capped at the limit" },
    );
  } finally {
    await manager.shutdown();
    log.restore();
  }
});

Deno.test("a failed close is not logged as closed, is listed as pending and is retried with backoff until it works", async () => {
  const log = captureLog();
  const backend = new RecordingBackend();
  let changes = 0;
  const manager = new SessionManager(backend, {
    knockTimeoutMs: 100,
    closeRetryDelaysMs: [100, 200, 400],
    onChange: () => changes++,
  });
  try {
    await manager.knock("alice", v4(2), PORTS);
    backend.failCloses = 2;
    await waitFor(() => manager.pendingCloses().length === 1, {
      timeoutMs: 1500,
      what: "the failed close listed as pending",
    });
    assert.equal(manager.list().length, 0, "no longer an active session");
    assert.equal(log.matching(/^INFO {2}closed /).length, 0);
    assert.equal(
      log.matching(
        /^ERROR closing 22\/tcp,8080-8090\/tcp for 192\.0\.2\.2 \(client alice\) \(timeout\) failed, will retry in 0\.1 s: .*did not finish/,
      ).length,
      1,
    );
    const pending = manager.pendingCloses()[0];
    assert.equal(pending.clientName, "alice");
    assert.equal(pending.reason, "timeout");
    assert.equal(backend.live.size, 2, "the rules are still in");
    await waitFor(() => manager.pendingCloses().length === 0, {
      timeoutMs: 3000,
      what: "the retries to succeed",
    });
    const closes = backend.callsOf("close");
    assert.equal(closes.length, 3);
    const gaps = [
      closes[1].atMs - closes[0].atMs,
      closes[2].atMs - closes[1].atMs,
    ];
    assert.ok(gaps[0] >= 95 && gaps[1] >= 195, `backoff gaps ${gaps}`);
    assert.equal(backend.live.size, 0);
    assert.equal(
      log.matching(/failed again \(attempt 2\), will retry in 0\.2 s/).length,
      1,
    );
    assert.equal(
      log.matching(
        /^INFO {2}closed 22\/tcp,8080-8090\/tcp for 192\.0\.2\.2 \(client alice\): timeout \(after 2 failed attempts\)$/,
      ).length,
      1,
    );
    assert.ok(changes >= 3, "state written on open, failure and final close");
  } finally {
    await manager.shutdown();
    log.restore();
  }
});

Deno.test("shutdown hands pending failed closes to the teardown and stops retrying them", async () => {
  const log = captureLog();
  const backend = new RecordingBackend();
  const manager = new SessionManager(backend, {
    knockTimeoutMs: 50,
    closeRetryDelaysMs: [150],
  });
  try {
    await manager.knock("alice", v4(2), PORTS);
    backend.failCloses = 100;
    await waitFor(() => manager.pendingCloses().length === 1, {
      timeoutMs: 1500,
      what: "a pending close",
    });
    const result = await manager.shutdown();
    assert.equal(result.pendingCloses.length, 1);
    assert.equal(result.pendingCloses[0].address.text, "192.0.2.2");
    assert.deepEqual(manager.pendingCloses(), []);
    const closesAtShutdown = backend.callsOf("close").length;
    await sleep(400);
    assert.equal(backend.callsOf("close").length, closesAtShutdown);
  } finally {
    log.restore();
  }
});

Deno.test("deadlines use a monotonic clock: a wall clock stepped back does not keep ports open", async () => {
  const log = captureLog();
  const backend = new RecordingBackend();
  const realNow = Date.now;
  let offset = 0;
  Date.now = () => realNow() - offset;
  const manager = new SessionManager(backend, { knockTimeoutMs: 200 });
  try {
    await manager.knock("alice", v4(2), PORTS);
    // The wall clock jumps one hour back (NTP, date -s) right after the knock.
    offset = 3_600_000;
    await waitFor(() => backend.callsOf("close").length === 1, {
      timeoutMs: 1500,
      what: "the close at the (monotonic) deadline",
    });
    assert.equal(manager.list().length, 0);
  } finally {
    Date.now = realNow;
    await manager.shutdown();
    log.restore();
  }
});

Deno.test("toWallMs shows a deadline in wall time from the monotonic clock", async () => {
  const log = captureLog();
  const backend = new RecordingBackend();
  let mono = 1_000;
  const wall = Date.parse("2030-01-01T00:00:00Z");
  const manager = new SessionManager(backend, {
    knockTimeoutMs: 30_000,
    now: () => mono,
    wallNow: () => wall,
  });
  try {
    await manager.knock("alice", v4(2), PORTS);
    const session = manager.list()[0];
    assert.equal(session.expiresAtMs, 31_000);
    assert.equal(manager.toWallMs(session.expiresAtMs), wall + 30_000);
    mono += 10_000;
    assert.equal(manager.toWallMs(session.expiresAtMs), wall + 20_000);
    assert.equal(manager.lastSeen().get("alice"), wall);
    await manager.expireDue();
    assert.equal(manager.list().length, 1, "not due on the monotonic clock");
    mono += 20_000;
    await manager.expireDue();
    assert.equal(manager.list().length, 0);
  } finally {
    await manager.shutdown();
    log.restore();
  }
});

Deno.test("checkFirewall re-opens sessions whose rules vanished, keeping their deadline, and drops those it cannot re-open", async () => {
  const log = captureLog();
  const backend = new RecordingBackend();
  let changes = 0;
  const manager = new SessionManager(backend, {
    knockTimeoutMs: 30_000,
    onChange: () => changes++,
  });
  try {
    await manager.knock("alice", v4(2), PORTS);
    await manager.knock("bob", v4(3), PORTS);
    await manager.knock("carol", v4(4), PORTS);
    const byName = (name: string) =>
      manager.list().find((s) => s.clientName === name)!;
    const aliceBefore = { ...byName("alice") };
    const bobRules = byName("bob").rules;
    backend.vanish(aliceBefore.rules.handles);
    backend.vanish([byName("carol").rules.handles[0]]);
    backend.nextRepairs = ["knock rule (udp/54154)"];
    const changesBefore = changes;
    let result = await manager.checkFirewall();
    assert.deepEqual(result, {
      repaired: ["knock rule (udp/54154)"],
      reopened: 2,
      dropped: 0,
    });
    const alice = byName("alice");
    assert.notDeepEqual(alice.rules.handles, aliceBefore.rules.handles);
    assert.equal(alice.expiresAtMs, aliceBefore.expiresAtMs);
    assert.ok(alice.rules.handles.every((h) => backend.live.has(h)));
    assert.equal(byName("bob").rules, bobRules, "bob untouched");
    assert.ok(byName("carol").rules.handles.every((h) => backend.live.has(h)));
    assert.equal(backend.live.size, 6, "no rule left over or doubled");
    assert.equal(log.matching(/^WARN {2}re-opened .*client alice/).length, 1);
    assert.ok(changes > changesBefore);
    // Nothing missing: nothing to do.
    const opens = backend.callsOf("open").length;
    result = await manager.checkFirewall();
    assert.deepEqual(result, { repaired: [], reopened: 0, dropped: 0 });
    assert.equal(backend.callsOf("open").length, opens);
    // The firewall refuses the re-open: the session is dropped, not kept as a lie.
    backend.vanish(byName("bob").rules.handles);
    backend.failOpen = true;
    result = await manager.checkFirewall();
    assert.deepEqual(result, { repaired: [], reopened: 0, dropped: 1 });
    assert.equal(manager.list().some((s) => s.clientName === "bob"), false);
    assert.equal(
      log.matching(
        /^ERROR 22\/tcp.* \(client bob\) was removed .*session dropped/,
      )
        .length,
      1,
    );
  } finally {
    await manager.shutdown();
    log.restore();
  }
});

Deno.test("refresh moves an open session's deadline at once and logs what knock logs; without a session or after shutdown it does nothing", async () => {
  const log = captureLog();
  const backend = new RecordingBackend();
  let mono = 1_000;
  const wall = Date.parse("2030-01-01T00:00:00Z");
  let changes = 0;
  const manager = new SessionManager(backend, {
    knockTimeoutMs: 30_000,
    now: () => mono,
    wallNow: () => wall + mono,
    onChange: () => changes++,
  });
  try {
    assert.equal(
      manager.refresh("alice", v4(2), PORTS, "192.0.2.9", "00aa"),
      false,
    );
    assert.equal(manager.list().length, 0);
    assert.equal(manager.lastSeen().size, 0);
    assert.equal(await manager.knock("alice", v4(2), PORTS), "opened");
    mono += 5_000;
    assert.equal(
      manager.refresh("alice", v4(2), PORTS, "192.0.2.9", "00aa"),
      true,
    );
    assert.equal(manager.list()[0].expiresAtMs, 36_000);
    assert.equal(manager.lastSeen().get("alice"), wall + 6_000);
    assert.equal(changes, 2);
    mono += 1_000;
    assert.equal(
      await manager.knock("alice", v4(2), PORTS, {
        source: "192.0.2.9",
        fingerprint: "00aa",
      }),
      "refreshed",
    );
    const refreshed = log.matching("refreshed");
    assert.deepEqual(refreshed, [
      `INFO  refreshed 22/tcp,8080-8090/tcp for 192.0.2.2 (client alice key 00aa from 192.0.2.9) until ${
        formatRfc3339(wall + 36_000)
      }`,
      `INFO  refreshed 22/tcp,8080-8090/tcp for 192.0.2.2 (client alice key 00aa from 192.0.2.9) until ${
        formatRfc3339(wall + 37_000)
      }`,
    ]);
    assert.equal(backend.callsOf("open").length, 1);
    await manager.shutdown();
    assert.equal(manager.refresh("alice", v4(2), PORTS), false);
  } finally {
    await manager.shutdown();
    log.restore();
  }
});

Deno.test("the deadline shown follows the wall clock to the second across refreshes", async () => {
  const log = captureLog();
  const backend = new RecordingBackend();
  let mono = 0;
  const wall = Date.parse("2030-01-01T00:00:00Z");
  const manager = new SessionManager(backend, {
    knockTimeoutMs: 10_000,
    now: () => mono,
    wallNow: () => wall + mono,
  });
  try {
    await manager.knock("alice", v4(2), PORTS);
    for (const step of [1, 998, 1, 1, 2_500, 0, 999]) {
      mono += step;
      assert.equal(manager.refresh("alice", v4(2), PORTS), true);
      const line = log.lines[log.lines.length - 1];
      const shown = formatRfc3339(
        manager.toWallMs(manager.list()[0].expiresAtMs),
      );
      assert.ok(line.endsWith(`until ${shown}`), `${line} vs ${shown}`);
    }
  } finally {
    await manager.shutdown();
    log.restore();
  }
});

Deno.test("a refresh after a reload shortened knock_timeout closes at the new, earlier deadline", async () => {
  const log = captureLog();
  const backend = new RecordingBackend();
  const manager = new SessionManager(backend, { knockTimeoutMs: 30_000 });
  try {
    await manager.knock("alice", v4(2), PORTS);
    manager.setKnockTimeout(200);
    assert.equal(manager.refresh("alice", v4(2), PORTS), true);
    await waitFor(() => backend.callsOf("close").length === 1, {
      timeoutMs: 1500,
      what: "the close at the shortened deadline",
    });
    assert.equal(manager.list().length, 0);
  } finally {
    await manager.shutdown();
    log.restore();
  }
});

Deno.test("without closeRetryDelaysMs a failed close is retried after 1 s, 2 s, 5 s, then every 10 s", async () => {
  assert.deepEqual(CLOSE_RETRY_DELAYS_MS, [1000, 2000, 5000, 10_000]);
  const log = captureLog();
  const backend = new RecordingBackend();
  let mono = 1_000_000;
  // No closeRetryDelaysMs: the manager's own default schedule. The clock is
  // injected and retries are driven by hand, so nothing waits for real.
  const manager = new SessionManager(backend, {
    knockTimeoutMs: 30_000,
    now: () => mono,
  });
  try {
    await manager.knock("alice", v4(2), PORTS);
    backend.failCloses = 100;
    mono += 30_000;
    await manager.expireDue();
    assert.equal(backend.callsOf("close").length, 1);
    assert.equal(
      log.matching(/\(timeout\) failed, will retry in 1 s: /).length,
      1,
      log.lines.join("\n"),
    );
    const waits: number[] = [];
    for (const [attempt, delay] of [[2, 2], [3, 5], [4, 10], [5, 10]]) {
      const pending = manager.pendingCloses()[0];
      const wait = pending.nextAttemptMs - mono;
      waits.push(wait);
      // Not due a millisecond early.
      mono += wait - 1;
      await manager.retryCloses();
      assert.equal(backend.callsOf("close").length, attempt - 1);
      mono += 1;
      await manager.retryCloses();
      assert.equal(backend.callsOf("close").length, attempt);
      assert.equal(
        log.matching(
          `failed again (attempt ${attempt}), will retry in ${delay} s: `,
        ).length,
        1,
        log.lines.join("\n"),
      );
    }
    waits.push(manager.pendingCloses()[0].nextAttemptMs - mono);
    assert.deepEqual(waits, [1000, 2000, 5000, 10_000, 10_000]);
  } finally {
    await manager.shutdown();
    log.restore();
  }
});
