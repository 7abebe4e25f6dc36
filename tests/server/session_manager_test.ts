/**
 * SessionManager against a recording firewall backend: outcomes of knocks,
 * the bound on opens in flight, expiry, closing on reload and on shutdown.
 */
import assert from "node:assert/strict";
import type { FirewallRulePort } from "../../lib/firewall/backend.ts";
import type { IpAddress } from "../../lib/ip.ts";
import {
  describePorts,
  SessionManager,
} from "../../lib/server/session_manager.ts";
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
    await manager.closeAll();
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
    await manager.closeAll();
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
    await manager.closeAll();
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
    await manager.closeAll();
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
    await manager.closeAll();
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
    await manager.closeAll();
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
    await manager.closeAll();
    log.restore();
  }
});

Deno.test("closeAll closes every session, refuses later knocks and bounds its wait for hung opens", async () => {
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
    await manager.closeAll();
    assert.ok(Date.now() - started < 1000);
    assert.equal(manager.list().length, 0);
    assert.equal(backend.callsOf("close").length, 1);
    assert.equal(await manager.knock("carol", v4(4), PORTS), "failed");
    backend.releaseHeld();
    assert.equal(await hung, "failed");
    assert.equal(backend.callsOf("close").length, 2);
    assert.equal(backend.live.size, 0);
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
    await manager.closeAll();
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
    await manager.closeAll();
    log.restore();
  }
});
