/**
 * SessionManager against a recording firewall backend: outcomes of knocks,
 * the bound on opens in flight, expiry, closing on reload and on shutdown.
 * Deadlines and retries run on injected clocks wherever the test does not
 * need the manager's own timer.
 */
import assert from "node:assert/strict";
import type { FirewallRulePort } from "../../lib/firewall/backend.ts";
import type { IpAddress } from "../../lib/ip.ts";
import {
  describePorts,
  MAX_PENDING_OPENS_PER_CLIENT,
  MAX_SESSIONS_PER_CLIENT,
  type SessionClient,
  SessionManager,
  type SessionManagerOptions,
} from "../../lib/server/session_manager.ts";
import { formatRfc3339 } from "../../lib/time.ts";
import { waitFor } from "../../scripts/testbed.ts";
import { captureLog, RecordingBackend } from "./recording_backend.ts";

const PORTS: FirewallRulePort[] = [
  { port: 22, proto: "tcp" },
  { port: 8080, endPort: 8090, proto: "tcp" },
];

/** Generous bound for events the manager's own timers bring (they are due within a second). */
const WAIT_MS = 10_000;

function client(name: string, ports = PORTS): SessionClient {
  return { name, ports, fingerprint: "00aa" };
}

const alice = client("alice");
const bob = client("bob");

function v4(last: number): IpAddress {
  return { family: 4, text: `192.0.2.${last}` };
}

/** A manager on a recording backend; `clock.mono` drives its deadlines when `manual` is set. */
function setUp(
  { manual, ...options }: Partial<SessionManagerOptions> & {
    manual?: boolean;
  } = {},
) {
  const log = captureLog();
  const backend = new RecordingBackend();
  const clock = { mono: 1_000_000, wall: Date.parse("2030-01-01T00:00:00Z") };
  const manager = new SessionManager(backend, {
    knockTimeoutMs: 30_000,
    ...(manual
      ? { now: () => clock.mono, wallNow: () => clock.wall + clock.mono }
      : {}),
    ...options,
  });
  return {
    log,
    backend,
    clock,
    manager,
    async done(): Promise<void> {
      await manager.shutdown();
      log.restore();
    },
  };
}

function byName(manager: SessionManager, name: string) {
  return manager.list().find((s) => s.clientName === name)!;
}

Deno.test("describePorts formats single ports and ranges", () => {
  assert.equal(describePorts(PORTS), "22/tcp,8080-8090/tcp");
  assert.equal(describePorts([]), "");
});

Deno.test("a first knock opens, a repeat refreshes at once without touching the firewall", async () => {
  let changes = 0;
  const t = setUp({ manual: true, onChange: () => changes++ });
  try {
    assert.equal(await t.manager.knock(alice, v4(2), "192.0.2.9"), "opened");
    t.clock.mono += 5_000;
    // Answered synchronously: no promise for a refresh.
    assert.equal(t.manager.knock(alice, v4(2), "192.0.2.9"), "refreshed");
    assert.equal(t.manager.list()[0].expiresAtMs, t.clock.mono + 30_000);
    assert.equal(t.backend.callsOf("open").length, 1);
    assert.equal(changes, 2);
    assert.deepEqual(t.log.matching(/opened|refreshed/), [
      `INFO  opened 22/tcp,8080-8090/tcp for 192.0.2.2 (client alice key 00aa from 192.0.2.9) until ${
        formatRfc3339(t.clock.wall + 1_030_000)
      }`,
      `INFO  refreshed 22/tcp,8080-8090/tcp for 192.0.2.2 (client alice key 00aa from 192.0.2.9) until ${
        formatRfc3339(t.clock.wall + 1_035_000)
      }`,
    ]);
    assert.equal(await t.manager.knock(alice, v4(3), "192.0.2.3"), "opened");
    assert.equal(await t.manager.knock(bob, v4(2), "192.0.2.2"), "opened");
    assert.equal(t.manager.list().length, 3);
    assert.equal(t.backend.callsOf("open").length, 3);
  } finally {
    await t.done();
  }
});

Deno.test("knocks while the first open is in flight do not open twice", async () => {
  const t = setUp();
  t.backend.hangOpen = true;
  try {
    const first = t.manager.knock(alice, v4(2), "192.0.2.2");
    assert.equal(t.manager.knock(alice, v4(2), "192.0.2.2"), "refreshed");
    assert.equal(t.log.matching(/while its ports are being opened$/).length, 1);
    t.backend.releaseHeld();
    assert.equal(await first, "opened");
    assert.equal(t.backend.callsOf("open").length, 1);
  } finally {
    await t.done();
  }
});

Deno.test("first knocks beyond the bound on opens in flight are dropped as busy", async () => {
  const t = setUp({ maxPendingOpens: 2 });
  t.backend.hangOpen = true;
  try {
    const a = t.manager.knock(alice, v4(2), "192.0.2.2");
    const b = t.manager.knock(alice, v4(3), "192.0.2.3");
    assert.equal(t.manager.knock(alice, v4(4), "192.0.2.4"), "busy");
    assert.equal(t.backend.heldCount, 2);
    assert.equal(
      t.log.matching(/^WARN {2}knock from alice for 192\.0\.2\.4 dropped/)
        .length,
      1,
    );
    t.backend.hangOpen = false;
    t.backend.releaseHeld();
    assert.deepEqual(await Promise.all([a, b]), ["opened", "opened"]);
    assert.equal(await t.manager.knock(alice, v4(4), "192.0.2.4"), "opened");
  } finally {
    await t.done();
  }
});

Deno.test("a client flooding explicit targets waits for at most MAX_PENDING_OPENS_PER_CLIENT opens; another client's first knock still opens", async () => {
  // A shared bound no larger than one client's sessions: without the
  // per-client share, alice's flood alone would fill it.
  const t = setUp({ maxPendingOpens: MAX_SESSIONS_PER_CLIENT });
  t.backend.hangOpen = true;
  try {
    const flood = Array.from(
      { length: 100 },
      (_, i) => t.manager.knock(alice, v4(i + 1), "192.0.2.1"),
    );
    const waiting = flood.filter((outcome) => outcome instanceof Promise);
    assert.equal(waiting.length, MAX_PENDING_OPENS_PER_CLIENT);
    assert.equal(
      t.log.matching(
        /^WARN {2}knock from alice for 192\.0\.2\.\d+ dropped: 4 opens of this client already waiting \(at most 4 per client\)$/,
      ).length,
      100 - MAX_PENDING_OPENS_PER_CLIENT,
    );
    const bobs = t.manager.knock(bob, v4(200), "192.0.2.200");
    assert.ok(bobs instanceof Promise, `bob's knock: ${bobs}`);
    assert.equal(t.backend.heldCount, MAX_PENDING_OPENS_PER_CLIENT + 1);
    t.backend.releaseHeld();
    assert.equal(await bobs, "opened");
    for (const outcome of await Promise.all(waiting)) {
      assert.equal(outcome, "opened");
    }
  } finally {
    await t.done();
  }
});

Deno.test("a failed open records no session and logs the firewall's message", async () => {
  const t = setUp();
  t.backend.failOpen = true;
  try {
    assert.equal(await t.manager.knock(alice, v4(2), "192.0.2.2"), "failed");
    assert.equal(t.manager.list().length, 0);
    assert.equal(
      t.log.matching(/^ERROR .*No such file or directory/).length,
      1,
    );
    t.backend.failOpen = false;
    assert.equal(await t.manager.knock(alice, v4(2), "192.0.2.2"), "opened");
  } finally {
    await t.done();
  }
});

Deno.test("sessions close at their deadline, not before; a refresh moves the close", async () => {
  const t = setUp({ manual: true, knockTimeoutMs: 300 });
  try {
    await t.manager.knock(alice, v4(2), "192.0.2.2");
    await t.manager.knock(bob, v4(3), "192.0.2.3");
    t.clock.mono += 150;
    t.manager.knock(bob, v4(3), "192.0.2.3");
    t.clock.mono += 149;
    await t.manager.runDue();
    assert.equal(t.backend.callsOf("close").length, 0, "not due yet");
    t.clock.mono += 1;
    await t.manager.runDue();
    assert.deepEqual(t.backend.callsOf("close").map((c) => c.address), [
      "192.0.2.2",
    ]);
    t.clock.mono += 149;
    await t.manager.runDue();
    assert.equal(t.backend.callsOf("close").length, 1, "bob's deadline moved");
    t.clock.mono += 1;
    await t.manager.runDue();
    assert.deepEqual(t.backend.callsOf("close").map((c) => c.address), [
      "192.0.2.2",
      "192.0.2.3",
    ]);
    assert.equal(t.manager.list().length, 0);
    assert.equal(
      t.log.matching(
        /^INFO {2}closed 22\/tcp,8080-8090\/tcp for 192\.0\.2\.\d \(client \w+\): timeout$/,
      )
        .length,
      2,
    );
  } finally {
    await t.done();
  }
});

Deno.test("closeClients closes the named clients' sessions with the reason and keeps the others' deadlines", async () => {
  const t = setUp();
  try {
    await t.manager.knock(alice, v4(2), "192.0.2.2");
    await t.manager.knock(bob, v4(3), "192.0.2.3");
    const bobDeadline = byName(t.manager, "bob").expiresAtMs;
    await t.manager.closeClients(new Map([["alice", "client revoked"]]));
    assert.deepEqual(t.manager.list().map((s) => s.clientName), ["bob"]);
    assert.equal(t.manager.list()[0].expiresAtMs, bobDeadline);
    assert.equal(
      t.log.matching(
        "closed 22/tcp,8080-8090/tcp for 192.0.2.2 (client alice): client revoked",
      ).length,
      1,
    );
  } finally {
    await t.done();
  }
});

Deno.test("an open in flight when closeClients names its client is taken out once its rules are in", async () => {
  const t = setUp();
  t.backend.hangOpen = true;
  try {
    const outcome = t.manager.knock(alice, v4(2), "192.0.2.2");
    const other = t.manager.knock(bob, v4(3), "192.0.2.3");
    await t.manager.closeClients(new Map([["alice", "client expired"]]));
    t.backend.releaseHeld();
    assert.equal(await outcome, "failed");
    assert.equal(await other, "opened");
    assert.deepEqual(t.manager.list().map((s) => s.clientName), ["bob"]);
    assert.deepEqual(t.backend.callsOf("close").map((c) => c.address), [
      "192.0.2.2",
    ]);
    assert.equal(
      t.log.matching(/\(client alice\) right after opening: client expired$/)
        .length,
      1,
    );
  } finally {
    await t.done();
  }
});

Deno.test("shutdown waits a bounded time for hung opens, removes every rule with one teardown and refuses later knocks", async () => {
  const t = setUp({ shutdownWaitMs: 100 });
  try {
    await t.manager.knock(alice, v4(2), "192.0.2.2");
    t.backend.hangOpen = true;
    const hung = t.manager.knock(bob, v4(3), "192.0.2.3");
    // Returns although the open never finishes on its own.
    assert.equal(await t.manager.shutdown(), true);
    assert.equal(
      t.log.matching("1 firewall opens still running at shutdown").length,
      1,
    );
    assert.deepEqual(t.backend.calls.map((c) => c.op), [
      "open",
      "open",
      "teardown",
    ]);
    assert.deepEqual(t.log.matching(/: shutdown$/), [
      "INFO  closed 22/tcp,8080-8090/tcp for 192.0.2.2 (client alice): shutdown",
    ]);
    assert.equal(t.manager.list().length, 0);
    assert.equal(
      t.manager.knock(client("carol"), v4(4), "192.0.2.4"),
      "failed",
    );
    t.backend.releaseHeld();
    assert.equal(await hung, "failed");
    // The open that finished after shutdown removes its own rules.
    assert.deepEqual(t.backend.callsOf("close").map((c) => c.address), [
      "192.0.2.3",
    ]);
  } finally {
    await t.done();
  }
});

Deno.test("a failed teardown at shutdown is reported with what may be left", async () => {
  const t = setUp();
  try {
    await t.manager.knock(alice, v4(2), "192.0.2.2");
    t.backend.teardown = () => Promise.reject(new Error("nft: killed"));
    assert.equal(await t.manager.shutdown(), false);
    assert.equal(
      t.log.matching(
        /^ERROR removing openme's firewall rules failed: nft: killed \(1 session\(s\) may still be open/,
      ).length,
      1,
    );
    assert.equal(t.log.matching(/: shutdown$/).length, 0);
  } finally {
    await t.done();
  }
});

Deno.test("regrant moves a session to its client's new ports and keeps its deadline", async () => {
  const t = setUp();
  try {
    await t.manager.knock(alice, v4(2), "192.0.2.2");
    await t.manager.knock(bob, v4(3), "192.0.2.3");
    const before = t.manager.list().map((s) => [s.clientName, s.expiresAtMs]);
    const oldHandles = byName(t.manager, "alice").rules.handles;
    const narrower: FirewallRulePort[] = [{ port: 22, proto: "tcp" }];
    // bob's ports are a new list with the same ports: nothing to move.
    await t.manager.regrant([
      client("alice", narrower),
      client("bob", [...PORTS]),
    ]);
    assert.equal(
      describePorts(byName(t.manager, "alice").rules.ports),
      "22/tcp",
    );
    assert.deepEqual(
      t.manager.list().map((s) => [s.clientName, s.expiresAtMs]),
      before,
    );
    assert.equal(t.backend.callsOf("open").length, 3);
    assert.equal(t.backend.callsOf("open")[2].ports, "22/tcp");
    assert.deepEqual(t.backend.callsOf("close").map((c) => c.handles), [
      oldHandles,
    ]);
    assert.equal(t.backend.live.size, 3, "alice 1 rule, bob 2 rules");
    assert.equal(
      t.log.matching(
        /changed 22\/tcp,8080-8090\/tcp to 22\/tcp for 192\.0\.2\.2 \(client alice\): config reload/,
      ).length,
      1,
    );
  } finally {
    await t.done();
  }
});

Deno.test("a failed regrant keeps the old rules; the next regrant moves them", async () => {
  const t = setUp();
  try {
    await t.manager.knock(alice, v4(2), "192.0.2.2");
    const narrower = [client("alice", [{ port: 22, proto: "tcp" }])];
    t.backend.failOpen = true;
    await t.manager.regrant(narrower);
    assert.equal(
      describePorts(t.manager.list()[0].rules.ports),
      describePorts(PORTS),
    );
    assert.equal(t.backend.live.size, 2);
    assert.equal(t.log.matching(/^ERROR changing the ports/).length, 1);
    t.backend.failOpen = false;
    await t.manager.regrant(narrower);
    assert.equal(t.manager.list()[0].rules.ports.length, 1);
    assert.equal(t.backend.live.size, 1);
  } finally {
    await t.done();
  }
});

Deno.test("a client beyond MAX_SESSIONS_PER_CLIENT addresses loses its least recently knocked session; other clients are not affected", async () => {
  const t = setUp({ manual: true });
  try {
    assert.equal(await t.manager.knock(bob, v4(200), "192.0.2.200"), "opened");
    for (let i = 1; i <= MAX_SESSIONS_PER_CLIENT; i++) {
      assert.equal(await t.manager.knock(alice, v4(i), "192.0.2.1"), "opened");
      t.clock.mono += 2;
    }
    // 192.0.2.1 is the oldest but knocks again: 192.0.2.2 is now the least recently knocked.
    assert.equal(t.manager.knock(alice, v4(1), "192.0.2.1"), "refreshed");
    assert.equal(await t.manager.knock(alice, v4(9), "192.0.2.1"), "opened");
    await waitFor(() => t.backend.callsOf("close").length === 1, {
      timeoutMs: WAIT_MS,
      what: "the eviction",
    });
    const own = t.manager.list().filter((s) => s.clientName === "alice");
    assert.equal(own.length, MAX_SESSIONS_PER_CLIENT);
    assert.ok(!own.some((s) => s.rules.address.text === "192.0.2.2"));
    assert.ok(own.some((s) => s.rules.address.text === "192.0.2.9"));
    assert.equal(t.backend.callsOf("close")[0].address, "192.0.2.2");
    assert.equal(
      t.manager.list().filter((s) => s.clientName === "bob").length,
      1,
    );
    assert.equal(
      t.log.matching(
        /^WARN {2}client alice has 8 sessions, the most one client may hold: closing the one for 192\.0\.2\.2 .* to open 192\.0\.2\.9$/,
      ).length,
      1,
    );
    assert.equal(
      t.log.matching(
        /closed 22\/tcp,8080-8090\/tcp for 192\.0\.2\.2 \(client alice\): session limit \(8 per client\)/,
      ).length,
      1,
    );
    // Twenty more addresses: never more than the limit at once.
    for (let i = 10; i < 30; i++) {
      await t.manager.knock(alice, v4(i), "192.0.2.1");
    }
    await waitFor(
      () =>
        t.manager.list().filter((s) => s.clientName === "alice").length ===
          MAX_SESSIONS_PER_CLIENT &&
        t.backend.live.size === (MAX_SESSIONS_PER_CLIENT + 1) * PORTS.length,
      { timeoutMs: WAIT_MS, what: "alice capped at the limit" },
    );
  } finally {
    await t.done();
  }
});

Deno.test("the manager's timer closes at the deadline and retries a failed close with backoff until it works", async () => {
  let changes = 0;
  const t = setUp({
    knockTimeoutMs: 100,
    closeRetryDelaysMs: [100, 200],
    onChange: () => changes++,
  });
  try {
    await t.manager.knock(alice, v4(2), "192.0.2.2");
    // Closes fail until the test has seen two failures.
    t.backend.failCloses = 1_000_000;
    await waitFor(() => (t.manager.pendingCloses()[0]?.attempts ?? 0) >= 2, {
      timeoutMs: WAIT_MS,
      what: "the failed close retried once",
    });
    assert.equal(t.manager.list().length, 0, "no longer an active session");
    assert.equal(t.log.matching(/^INFO {2}closed /).length, 0);
    assert.equal(
      t.log.matching(
        /^ERROR closing 22\/tcp,8080-8090\/tcp for 192\.0\.2\.2 \(client alice\) \(timeout\) failed, will retry in 0\.1 s: .*did not finish/,
      ).length,
      1,
    );
    assert.equal(
      t.log.matching(/failed again \(attempt 2\), will retry in 0\.2 s/).length,
      1,
    );
    assert.equal(t.manager.pendingCloses()[0].reason, "timeout");
    assert.equal(t.backend.live.size, 2, "the rules are still in");
    t.backend.failCloses = 0;
    await waitFor(() => t.manager.pendingCloses().length === 0, {
      timeoutMs: WAIT_MS,
      what: "the retry to succeed",
    });
    const closes = t.backend.callsOf("close");
    const gaps = closes.slice(1).map((c, i) => c.atMs - closes[i].atMs);
    // Timers never fire early (1 ms of rounding allowed): 100 ms, then 200 ms.
    assert.ok(gaps[0] >= 99 && gaps.slice(1).every((g) => g >= 199), `${gaps}`);
    assert.equal(t.backend.live.size, 0);
    assert.equal(
      t.log.matching(
        `closed 22/tcp,8080-8090/tcp for 192.0.2.2 (client alice): timeout (after ${
          closes.length - 1
        } failed attempts)`,
      ).length,
      1,
    );
    assert.ok(changes >= 3, "state written on open, failure and final close");
  } finally {
    await t.done();
  }
});

Deno.test("shutdown hands pending failed closes to the teardown and stops retrying them", async () => {
  const t = setUp({
    manual: true,
    knockTimeoutMs: 50,
    closeRetryDelaysMs: [150],
  });
  try {
    await t.manager.knock(alice, v4(2), "192.0.2.2");
    t.backend.failCloses = 100;
    t.clock.mono += 50;
    await t.manager.runDue();
    assert.equal(t.manager.pendingCloses().length, 1);
    assert.equal(await t.manager.shutdown(), true);
    assert.equal(
      t.log.matching("removed the rules of 1 earlier failed close(s): shutdown")
        .length,
      1,
    );
    assert.deepEqual(t.manager.pendingCloses(), []);
    t.clock.mono += 1_000;
    await t.manager.runDue();
    assert.equal(
      t.backend.callsOf("close").length,
      1,
      "not retried after shutdown",
    );
  } finally {
    await t.done();
  }
});

Deno.test("deadlines use a monotonic clock: a wall clock stepped back does not keep ports open", async () => {
  const realNow = Date.now;
  let offset = 0;
  Date.now = () => realNow() - offset;
  const t = setUp({ knockTimeoutMs: 200 });
  try {
    await t.manager.knock(alice, v4(2), "192.0.2.2");
    // The wall clock jumps one hour back (NTP, date -s) right after the knock.
    offset = 3_600_000;
    await waitFor(() => t.backend.callsOf("close").length === 1, {
      timeoutMs: WAIT_MS,
      what: "the close at the (monotonic) deadline",
    });
    assert.equal(t.manager.list().length, 0);
  } finally {
    Date.now = realNow;
    await t.done();
  }
});

Deno.test("toWallMs shows a deadline in wall time from the monotonic clock", async () => {
  const t = setUp({ manual: true });
  try {
    await t.manager.knock(alice, v4(2), "192.0.2.2");
    const session = t.manager.list()[0];
    assert.equal(session.expiresAtMs, t.clock.mono + 30_000);
    const wallNow = t.clock.wall + t.clock.mono;
    assert.equal(t.manager.toWallMs(session.expiresAtMs), wallNow + 30_000);
    t.clock.wall -= 3_600_000; // the wall clock steps back
    assert.equal(
      t.manager.toWallMs(session.expiresAtMs),
      wallNow - 3_600_000 + 30_000,
    );
  } finally {
    await t.done();
  }
});

Deno.test("checkFirewall re-opens sessions whose rules vanished, keeping their deadline, drops those it cannot re-open, and says so", async () => {
  let changes = 0;
  const t = setUp({ onChange: () => changes++ });
  try {
    await t.manager.knock(alice, v4(2), "192.0.2.2");
    await t.manager.knock(bob, v4(3), "192.0.2.3");
    await t.manager.knock(client("carol"), v4(4), "192.0.2.4");
    const aliceBefore = { ...byName(t.manager, "alice") };
    const bobRules = byName(t.manager, "bob").rules;
    t.backend.vanish(aliceBefore.rules.handles);
    t.backend.vanish([byName(t.manager, "carol").rules.handles[0]]);
    t.backend.nextRepairs = ["knock rule (udp/54154)"];
    const changesBefore = changes;
    await t.manager.checkFirewall("test");
    assert.deepEqual(t.log.matching(/^WARN {2}firewall: /), [
      "WARN  firewall: openme's rules were removed outside openme (firewall reloaded?); put back: knock rule (udp/54154) (test)",
      "WARN  firewall: 2 session(s) re-opened, 0 dropped after their rules were removed outside openme (test)",
    ]);
    const aliceAfter = byName(t.manager, "alice");
    assert.notDeepEqual(aliceAfter.rules.handles, aliceBefore.rules.handles);
    assert.equal(aliceAfter.expiresAtMs, aliceBefore.expiresAtMs);
    assert.ok(aliceAfter.rules.handles.every((h) => t.backend.live.has(h)));
    assert.equal(byName(t.manager, "bob").rules, bobRules, "bob untouched");
    assert.ok(
      byName(t.manager, "carol").rules.handles.every((h) =>
        t.backend.live.has(h)
      ),
    );
    assert.equal(t.backend.live.size, 6, "no rule left over or doubled");
    assert.equal(t.log.matching(/^WARN {2}re-opened .*client alice/).length, 1);
    assert.ok(changes > changesBefore);
    // Nothing missing: nothing to do.
    const opens = t.backend.callsOf("open").length;
    const lines = t.log.lines.length;
    await t.manager.checkFirewall("test");
    assert.equal(t.backend.callsOf("open").length, opens);
    assert.equal(t.log.lines.length, lines, "nothing logged");
    // The firewall refuses the re-open: the session is dropped, not kept as a lie.
    t.backend.vanish(byName(t.manager, "bob").rules.handles);
    t.backend.failOpen = true;
    await t.manager.checkFirewall("test");
    assert.equal(
      t.log.matching(/^WARN {2}firewall: 0 session\(s\) re-opened, 1 dropped/)
        .length,
      1,
    );
    assert.equal(t.manager.list().some((s) => s.clientName === "bob"), false);
    assert.equal(
      t.log.matching(
        /^ERROR 22\/tcp.* \(client bob\) was removed .*session dropped/,
      ).length,
      1,
    );
  } finally {
    await t.done();
  }
});

Deno.test("a refresh after a reload shortened knock_timeout closes at the new, earlier deadline", async () => {
  const t = setUp();
  try {
    await t.manager.knock(alice, v4(2), "192.0.2.2");
    t.manager.setKnockTimeout(200);
    assert.equal(t.manager.knock(alice, v4(2), "192.0.2.2"), "refreshed");
    await waitFor(() => t.backend.callsOf("close").length === 1, {
      timeoutMs: WAIT_MS,
      what: "the close at the shortened deadline",
    });
    assert.equal(t.manager.list().length, 0);
  } finally {
    await t.done();
  }
});

Deno.test("without closeRetryDelaysMs a failed close is retried after 1 s, 2 s, 5 s, then every 10 s", async () => {
  // The clock is injected and retries are driven by hand: nothing waits for real.
  const t = setUp({ manual: true });
  try {
    await t.manager.knock(alice, v4(2), "192.0.2.2");
    t.backend.failCloses = 100;
    t.clock.mono += 30_000;
    await t.manager.runDue();
    assert.equal(t.backend.callsOf("close").length, 1);
    assert.equal(
      t.log.matching(/\(timeout\) failed, will retry in 1 s: /).length,
      1,
    );
    const waits: number[] = [];
    for (const [attempt, delay] of [[2, 2], [3, 5], [4, 10], [5, 10]]) {
      const wait = t.manager.pendingCloses()[0].nextAttemptMs - t.clock.mono;
      waits.push(wait);
      // Not due a millisecond early.
      t.clock.mono += wait - 1;
      await t.manager.runDue();
      assert.equal(t.backend.callsOf("close").length, attempt - 1);
      t.clock.mono += 1;
      await t.manager.runDue();
      assert.equal(t.backend.callsOf("close").length, attempt);
      assert.equal(
        t.log.matching(
          `failed again (attempt ${attempt}), will retry in ${delay} s: `,
        ).length,
        1,
      );
    }
    waits.push(t.manager.pendingCloses()[0].nextAttemptMs - t.clock.mono);
    assert.deepEqual(waits, [1000, 2000, 5000, 10_000, 10_000]);
  } finally {
    await t.done();
  }
});
