/**
 * OpenmeServer end to end in one process: real UDP and TCP sockets on
 * loopback (free ports), real knock packets, the real verifier and session
 * manager, and a recording firewall backend instead of nft/iptables.
 */
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import {
  generateEd25519KeyPair,
  keyFingerprint,
  prepareEd25519VerifyKey,
  randomBytes,
} from "../../lib/protocol/crypto.ts";
import { buildKnock, sealKnock } from "../../lib/protocol/packet.ts";
import { OpenmeServer, type ServerOptions } from "../../lib/server/daemon.ts";
import {
  NONCE_RECORD_BYTES,
  ReplayCache,
} from "../../lib/server/replay_cache.ts";
import {
  nonceFilePath,
  readStateBytes,
  readStateFile,
  writeNonceFile,
} from "../../lib/server/state_file.ts";
import { waitFor } from "../../scripts/testbed.ts";
import {
  captureLog,
  connectAndWaitClose,
  freshKeys,
  type LogCapture,
  RecordingBackend,
  renderTestConfig,
  sendDatagrams,
  sleep,
  type TestClient,
  type TestConfigOptions,
  writeByRename,
} from "./recording_backend.ts";

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

/**
 * Generous bound on waiting for what the server does within a second or two
 * (a knock handled, a config poll, a state write): ten times that or more,
 * so a busy machine never fails a test.
 */
const WAIT_MS = 20_000;

interface Harness {
  server: OpenmeServer;
  backend: RecordingBackend;
  dir: string;
  configPath: string;
  stateFile: string;
  keys: ReturnType<typeof freshKeys>;
  log: LogCapture;
  clients: TestClient[];
  /** A fresh knock from a client (wildcard target unless given). */
  knock(
    name: string,
    options?: { target?: { family: 4 | 6; text: string }; offsetMs?: number },
  ): Uint8Array;
  /** Sends datagrams to the server's UDP port. */
  send(...datagrams: Uint8Array[]): Promise<void>;
  /** Rewrites the config with changed options. */
  rewrite(
    change: Partial<TestConfigOptions>,
    how?: "rename" | "in-place",
  ): Promise<void>;
  close(): Promise<void>;
}

interface HarnessOptions {
  names?: string[];
  config?: Partial<TestConfigOptions>;
  server?: Partial<ServerOptions>;
  logLevel?: "debug" | "info" | "warn";
}

async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const names = options.names ?? ["alice"];
  const keys = freshKeys(names);
  const clients: TestClient[] = names.map((name) => ({
    name,
    keys: keys.clients.get(name)!,
  }));
  const dir = await Deno.makeTempDir({ prefix: "openme-daemon-test-" });
  const configPath = `${dir}/config.yaml`;
  const stateFile = `${dir}/state.json`;
  let configOptions: TestConfigOptions = {
    server: keys.server,
    clients,
    ...options.config,
  };
  await Deno.writeTextFile(configPath, renderTestConfig(configOptions), {
    mode: 0o600,
  });
  const log = captureLog(options.logLevel ?? "info");
  const backend = new RecordingBackend();
  let server: OpenmeServer;
  try {
    server = await OpenmeServer.start(configPath, {
      stateFile,
      backend,
      hostname: "127.0.0.1",
      udpPort: 0,
      healthPort: 0,
      rateLimit: null,
      ...options.server,
    });
  } catch (err) {
    log.restore();
    await Deno.remove(dir, { recursive: true });
    throw err;
  }
  return {
    server,
    backend,
    dir,
    configPath,
    stateFile,
    keys,
    log,
    clients,
    knock(name, knockOptions = {}) {
      return buildKnock({
        serverPublicKey: keys.server.publicKey,
        clientPrivateKey: keys.clients.get(name)!.privateKey,
      }, {
        target: knockOptions.target ?? null,
        timestampNs: BigInt(Date.now() + (knockOptions.offsetMs ?? 0)) *
          1_000_000n,
      });
    },
    send(...datagrams) {
      return sendDatagrams(server.udpPort, datagrams);
    },
    async rewrite(change, how = "rename") {
      configOptions = { ...configOptions, ...change };
      const text = renderTestConfig(configOptions);
      if (how === "rename") await writeByRename(configPath, text);
      else await Deno.writeTextFile(configPath, text);
    },
    async close() {
      try {
        await server.stop();
      } finally {
        log.restore();
        await Deno.remove(dir, { recursive: true });
      }
    },
  };
}

function sessionOf(h: Harness, name: string, ip = "127.0.0.1") {
  return h.server.sessions().find((s) =>
    s.clientName === name && s.rules.address.text === ip
  );
}

/** Opens a session for alice (127.0.0.1) and one for bob (192.0.2.9); returns bob's deadline. */
async function openAliceAndBob(h: Harness): Promise<number> {
  await h.send(
    h.knock("alice"),
    h.knock("bob", { target: { family: 4, text: "192.0.2.9" } }),
  );
  await waitFor(() => h.server.sessions().length === 2, {
    timeoutMs: WAIT_MS,
    what: "two sessions",
  });
  return sessionOf(h, "bob", "192.0.2.9")!.expiresAtMs;
}

Deno.test("first knock opens the client's ports plus the health port; a repeat knock only moves the deadline", async () => {
  const h = await startHarness();
  try {
    await h.send(h.knock("alice"));
    await waitFor(() => sessionOf(h, "alice") !== undefined, {
      timeoutMs: WAIT_MS,
      what: "alice's session",
    });
    const opens = h.backend.callsOf("open");
    assert.equal(opens.length, 1);
    assert.equal(opens[0].address, "127.0.0.1");
    assert.equal(opens[0].ports, `22/tcp,${h.server.healthPort}/tcp`);
    const firstDeadline = sessionOf(h, "alice")!.expiresAtMs;
    await sleep(50);
    await h.send(h.knock("alice"));
    await waitFor(() => h.server.state().accepted === 2, {
      timeoutMs: WAIT_MS,
      what: "second knock accepted",
    });
    assert.ok(sessionOf(h, "alice")!.expiresAtMs > firstDeadline);
    assert.equal(h.backend.callsOf("open").length, 1, "no second open");
    assert.equal(h.backend.live.size, 2);
    const fp = keyFingerprint(h.keys.clients.get("alice")!.publicKey);
    const opened = h.log.matching(/^INFO {2}opened /);
    assert.equal(opened.length, 1);
    assert.match(
      opened[0],
      new RegExp(
        `^INFO {2}opened 22/tcp,${h.server.healthPort}/tcp for 127\\.0\\.0\\.1 \\(client alice key ${fp} from 127\\.0\\.0\\.1\\) until \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ$`,
      ),
    );
    assert.equal(h.log.matching(/^INFO {2}refreshed .*client alice/).length, 1);
  } finally {
    await h.close();
  }
});

Deno.test("require_explicit_target: a knock for the source address is dropped, one for a named address opens it, and a copy sent from elsewhere opens nothing there; a reload turns it off", async () => {
  const h = await startHarness({ config: { requireExplicitTarget: true } });
  try {
    const named = { family: 4 as const, text: "192.0.2.3" };
    const knock = h.knock("alice", { target: named });
    h.server.handleDatagram(h.knock("alice"), "192.0.2.50");
    // An on-path attacker resends the captured knock first, from its own address.
    h.server.handleDatagram(knock.slice(), "203.0.113.66");
    h.server.handleDatagram(knock, "192.0.2.3");
    await waitFor(() => sessionOf(h, "alice", "192.0.2.3") !== undefined, {
      timeoutMs: WAIT_MS,
      what: "session for the named address",
    });
    assert.equal(sessionOf(h, "alice", "192.0.2.50"), undefined);
    assert.equal(sessionOf(h, "alice", "203.0.113.66"), undefined);
    assert.deepEqual(h.server.state().drops, {
      target_required: 1,
      replay: 1,
    });
    await h.rewrite({ requireExplicitTarget: false });
    await waitFor(() => h.log.matching("config reloaded").length > 0, {
      timeoutMs: WAIT_MS,
      what: "the reload",
    });
    h.server.handleDatagram(h.knock("alice"), "192.0.2.50");
    await waitFor(() => sessionOf(h, "alice", "192.0.2.50") !== undefined, {
      timeoutMs: WAIT_MS,
      what: "session for the source address",
    });
  } finally {
    await h.close();
  }
});

Deno.test("an explicit target opens for that address, not for the source", async () => {
  const h = await startHarness();
  try {
    await h.send(
      h.knock("alice", { target: { family: 4, text: "192.0.2.3" } }),
    );
    await waitFor(() => sessionOf(h, "alice", "192.0.2.3") !== undefined, {
      timeoutMs: WAIT_MS,
      what: "session for 192.0.2.3",
    });
    assert.equal(sessionOf(h, "alice", "127.0.0.1"), undefined);
    assert.equal(h.backend.callsOf("open")[0].address, "192.0.2.3");
  } finally {
    await h.close();
  }
});

Deno.test("a session closes at its deadline, not before", async () => {
  const h = await startHarness({ config: { knockTimeout: "300ms" } });
  try {
    await h.send(h.knock("alice"));
    await waitFor(() => sessionOf(h, "alice") !== undefined, {
      timeoutMs: WAIT_MS,
      what: "alice's session",
    });
    const deadline = sessionOf(h, "alice")!.expiresAtMs;
    await waitFor(() => h.backend.callsOf("close").length === 1, {
      timeoutMs: WAIT_MS,
      what: "the close at the deadline",
    });
    // Timers never fire early (1 ms of rounding allowed).
    assert.ok(h.backend.callsOf("close")[0].atMs >= deadline - 1);
    assert.equal(h.backend.live.size, 0);
    assert.equal(h.server.sessions().length, 0);
    assert.equal(
      h.log.matching(
        /^INFO {2}closed 22\/tcp,\d+\/tcp for 127\.0\.0\.1 \(client alice\): timeout$/,
      )
        .length,
      1,
    );
  } finally {
    await h.close();
  }
});

Deno.test("a failed open records no session; a later knock opens once the firewall works again", async () => {
  const h = await startHarness();
  try {
    h.backend.failOpen = true;
    await h.send(h.knock("alice"));
    await waitFor(() => (h.server.state().drops!.firewall ?? 0) === 1, {
      timeoutMs: WAIT_MS,
      what: "the firewall failure counted",
    });
    assert.equal(h.server.sessions().length, 0);
    const errors = h.log.matching(/^ERROR /);
    assert.equal(errors.length, 1);
    assert.match(
      errors[0],
      /knock from alice for 127\.0\.0\.1 failed: could not open ports: .*No such file or directory/,
    );
    h.backend.failOpen = false;
    await h.send(h.knock("alice"));
    await waitFor(() => sessionOf(h, "alice") !== undefined, {
      timeoutMs: WAIT_MS,
      what: "alice's session after recovery",
    });
    assert.equal(h.backend.callsOf("open").length, 2);
    assert.equal(h.backend.live.size, 2);
  } finally {
    await h.close();
  }
});

Deno.test("stop removes every session with one teardown (no close per session) and writes an empty state", async () => {
  const h = await startHarness({ names: ["alice", "bob"] });
  try {
    await h.send(
      h.knock("alice"),
      h.knock("bob", { target: { family: 6, text: "2001:db8::7" } }),
    );
    await waitFor(() => h.server.sessions().length === 2, {
      timeoutMs: WAIT_MS,
      what: "two sessions",
    });
    await h.server.stop();
    const ops = h.backend.calls.map((c) => c.op);
    assert.equal(ops.filter((op) => op === "close").length, 0);
    assert.equal(ops.filter((op) => op === "teardown").length, 1);
    assert.equal(ops.at(-1), "teardown");
    assert.equal(h.log.matching(/: shutdown$/).length, 2);
    assert.equal(h.backend.live.size, 0);
    assert.equal(h.server.sessions().length, 0);
    const state = await readStateFile(h.stateFile);
    assert.deepEqual(state.active_sessions, []);
    assert.ok(h.log.matching("closed ").every((l) => l.endsWith(": shutdown")));
  } finally {
    await h.close();
  }
});

Deno.test("stop does not wait forever for an open that hangs, and removes its rules when it finishes", async () => {
  const h = await startHarness();
  try {
    h.backend.hangOpen = true;
    await h.send(h.knock("alice"));
    await waitFor(() => h.backend.heldCount === 1, {
      timeoutMs: WAIT_MS,
      what: "a hanging open",
    });
    // Returns although the open never finishes on its own.
    await h.server.stop();
    assert.equal(h.backend.calls.at(-1)?.op, "teardown");
    h.backend.releaseHeld();
    await waitFor(() => h.backend.callsOf("close").length === 1, {
      timeoutMs: WAIT_MS,
      what: "the late rules removed",
    });
    assert.equal(h.backend.live.size, 0);
  } finally {
    await h.close();
  }
});

Deno.test("revoking a client (file renamed over) closes its session and refuses it; other sessions keep their deadlines", async () => {
  const h = await startHarness({ names: ["alice", "bob"] });
  try {
    const bobDeadline = await openAliceAndBob(h);
    await h.rewrite({ clients: h.clients.filter((c) => c.name !== "alice") });
    await waitFor(() => sessionOf(h, "alice") === undefined, {
      timeoutMs: WAIT_MS,
      what: "alice's session closed after the revoke",
    });
    assert.equal(h.backend.callsOf("close").length, 1);
    assert.equal(h.backend.callsOf("close")[0].address, "127.0.0.1");
    assert.equal(h.log.matching(/client alice\): client revoked$/).length, 1);
    assert.equal(sessionOf(h, "bob", "192.0.2.9")!.expiresAtMs, bobDeadline);
    const refusedBefore = h.server.state().drops!.unknown_client ?? 0;
    await h.send(h.knock("alice"));
    await waitFor(
      () => (h.server.state().drops!.unknown_client ?? 0) === refusedBefore + 1,
      { timeoutMs: WAIT_MS, what: "alice's knock refused" },
    );
    assert.equal(h.backend.callsOf("open").length, 2);
    assert.equal(sessionOf(h, "alice"), undefined);
  } finally {
    await h.close();
  }
});

Deno.test("an expires edit in the past (written in place) closes the session and refuses new knocks", async () => {
  const h = await startHarness({ names: ["alice", "bob"] });
  try {
    const bobDeadline = await openAliceAndBob(h);
    await h.rewrite({
      clients: h.clients.map((c) =>
        c.name === "alice" ? { ...c, expires: "2001-01-01T00:00:00Z" } : c
      ),
    }, "in-place");
    await waitFor(() => sessionOf(h, "alice") === undefined, {
      timeoutMs: WAIT_MS,
      what: "alice's session closed after the expiry edit",
    });
    assert.equal(h.log.matching(/client alice\): client expired$/).length, 1);
    assert.equal(sessionOf(h, "bob", "192.0.2.9")!.expiresAtMs, bobDeadline);
    await h.send(h.knock("alice"));
    await waitFor(() => (h.server.state().drops!.expired ?? 0) === 1, {
      timeoutMs: WAIT_MS,
      what: "alice's knock refused as expired",
    });
    assert.equal(sessionOf(h, "alice"), undefined);
  } finally {
    await h.close();
  }
});

Deno.test("an invalid new config is logged in one error line and the old config stays in force", async () => {
  const h = await startHarness();
  try {
    await writeByRename(
      h.configPath,
      "server:\n  udp_port: seventy\n  private_key: x\n",
    );
    await waitFor(() => h.log.matching(/^ERROR /).length > 0, {
      timeoutMs: WAIT_MS,
      what: "the reload error",
    });
    const errors = h.log.matching(/^ERROR /);
    assert.equal(errors.length, 1, errors.join("\n"));
    assert.ok(!errors[0].includes("\n"));
    assert.match(
      errors[0],
      /reload \(config file changed\) failed, the previous config stays in force: config .*config\.yaml/,
    );
    await h.send(h.knock("alice"));
    await waitFor(() => sessionOf(h, "alice") !== undefined, {
      timeoutMs: WAIT_MS,
      what: "alice's knock under the old config",
    });
  } finally {
    await h.close();
  }
});

Deno.test("a deleted config file keeps the config in force", async () => {
  const h = await startHarness();
  try {
    await Deno.remove(h.configPath);
    await waitFor(() => h.log.matching(/^WARN .*is gone/).length === 1, {
      timeoutMs: WAIT_MS,
      what: "the warning about the missing file",
    });
    await h.send(h.knock("alice"));
    await waitFor(() => sessionOf(h, "alice") !== undefined, {
      timeoutMs: WAIT_MS,
      what: "alice's knock with the file gone",
    });
    assert.equal(h.log.matching(/^ERROR /).length, 0);
  } finally {
    await h.close();
  }
});

Deno.test("reload applies replay_window (nonces kept) and knock_timeout to later knocks", async () => {
  // Windows of minutes: a knock is never stale for the time it takes to
  // arrive, however busy the machine.
  const h = await startHarness({ config: { replayWindow: "600s" } });
  try {
    await h.send(h.knock("alice", { offsetMs: -120_000 }));
    await waitFor(() => sessionOf(h, "alice") !== undefined, {
      timeoutMs: WAIT_MS,
      what: "a knock 2 minutes old accepted with a 10 minute window",
    });
    const replayed = h.knock("alice");
    await h.send(replayed);
    await waitFor(() => h.server.state().accepted === 2, {
      timeoutMs: WAIT_MS,
      what: "second knock",
    });
    await h.rewrite({ replayWindow: "60s", knockTimeout: "1s" });
    assert.equal(await h.server.reload("test"), true);
    await h.send(h.knock("alice", { offsetMs: -120_000 }), replayed);
    await waitFor(
      () =>
        (h.server.state().drops!.stale ?? 0) === 1 &&
        (h.server.state().drops!.replay ?? 0) === 1,
      { timeoutMs: WAIT_MS, what: "old knock stale and replay refused" },
    );
    await h.send(h.knock("alice"));
    await waitFor(() => h.server.state().accepted === 3, {
      timeoutMs: WAIT_MS,
      what: "a fresh knock",
    });
    // The refresh moved the deadline by the new knock_timeout (1 s), not 30 s.
    const until = / until (\S+)$/.exec(h.log.matching("refreshed").at(-1)!)!;
    assert.ok(Date.parse(until[1]) <= Date.now() + 1000, until[1]);
  } finally {
    await h.close();
  }
});

Deno.test("the state file has the SPEC §7 shape with RFC 3339 times, end_port for ranges, last_seen and drop counters", async () => {
  const h2 = await startHarness({
    names: ["alice", "bob"],
    config: { portGroups: ["web: [443/tcp, 8080-8090/tcp]"] },
  });
  try {
    h2.clients[0].allowedPorts = ["default", "web"];
    await h2.rewrite({ clients: h2.clients });
    assert.equal(await h2.server.reload("test"), true);
    await h2.send(h2.knock("alice"));
    await waitFor(() => sessionOf(h2, "alice") !== undefined, {
      timeoutMs: WAIT_MS,
      what: "alice's session",
    });
    await h2.send(new Uint8Array(10), new Uint8Array(165), new Uint8Array(3));
    await waitFor(async () => {
      try {
        const s = await readStateFile(h2.stateFile);
        return s.drops?.size === 2 && s.drops?.version === 1;
      } catch {
        return false;
      }
    }, { timeoutMs: WAIT_MS, what: "drop counters in the state file" });
    const raw = JSON.parse(await Deno.readTextFile(h2.stateFile));
    assert.deepEqual(
      Object.keys(raw).slice(0, 3),
      ["updated_at", "active_sessions", "last_seen"],
    );
    assert.match(raw.updated_at, RFC3339);
    assert.equal(raw.active_sessions.length, 1);
    const session = raw.active_sessions[0];
    assert.deepEqual(
      Object.keys(session),
      ["client_name", "ip", "ports", "opened_at", "expires_at"],
    );
    assert.equal(session.client_name, "alice");
    assert.equal(session.ip, "127.0.0.1");
    assert.match(session.opened_at, RFC3339);
    assert.match(session.expires_at, RFC3339);
    const spread = Date.parse(session.expires_at) -
      Date.parse(session.opened_at);
    assert.ok(spread >= 29_000 && spread <= 31_000, `spread ${spread}`);
    assert.deepEqual(session.ports, [
      { port: 22, proto: "tcp" },
      { port: 443, proto: "tcp" },
      { port: 8080, proto: "tcp", end_port: 8090 },
      { port: h2.server.healthPort, proto: "tcp" },
    ]);
    assert.deepEqual(Object.keys(raw.last_seen), ["alice"]);
    assert.match(raw.last_seen.alice, RFC3339);
    assert.equal(raw.accepted, 1);
    assert.deepEqual(raw.drops, { size: 2, version: 1 });
    assert.equal(raw.pid, Deno.pid);
  } finally {
    await h2.close();
  }
});

Deno.test("an unwritable state file gives one warning and serving continues", async () => {
  const dir = await Deno.makeTempDir({ prefix: "openme-daemon-state-" });
  const blocker = `${dir}/not-a-dir`;
  await Deno.writeTextFile(blocker, "");
  const h = await startHarness({
    server: { stateFile: `${blocker}/sessions.json` },
  });
  try {
    await h.send(h.knock("alice"));
    await waitFor(() => sessionOf(h, "alice") !== undefined, {
      timeoutMs: WAIT_MS,
      what: "alice's session",
    });
    await h.send(h.knock("alice"), new Uint8Array(1));
    await waitFor(() => h.server.state().accepted === 2, {
      timeoutMs: WAIT_MS,
      what: "refresh",
    });
    // Stop waits for the writes in flight and makes the final one.
    await h.server.stop();
    const warnings = h.log.matching(/^WARN {2}cannot write state file/);
    assert.equal(warnings.length, 1, h.log.lines.join("\n"));
    assert.match(warnings[0], /not-a-dir\/sessions\.json/);
    assert.match(warnings[0], /serving continues/);
  } finally {
    await h.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("at info level single drops are not logged", async () => {
  const h = await startHarness({ logLevel: "info" });
  try {
    await h.send(new Uint8Array(1));
    await waitFor(() => (h.server.state().drops!.size ?? 0) === 1, {
      timeoutMs: WAIT_MS,
      what: "drop counted",
    });
    assert.equal(h.log.matching("dropped datagram").length, 0);
  } finally {
    await h.close();
  }
});

Deno.test({
  name:
    "the knock socket keeps the kernel's default receive buffer (the small receive size only sizes Deno's own copy)",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const h = await startHarness();
    try {
      const rmemDefault = Number(
        (await Deno.readTextFile("/proc/sys/net/core/rmem_default")).trim(),
      );
      const out = await new Deno.Command("ss", {
        args: ["-ulmnH", `sport = :${h.server.udpPort}`],
      }).output();
      const listing = new TextDecoder().decode(out.stdout);
      const rb = listing.match(/skmem:\(r\d+,rb(\d+),/);
      assert.ok(rb !== null, listing);
      assert.equal(Number(rb[1]), rmemDefault, listing);
    } finally {
      await h.close();
    }
  },
});

Deno.test("the server never replies, to junk or to a valid knock", async () => {
  const h = await startHarness();
  const socket = createSocket("udp4");
  try {
    let replies = 0;
    socket.on("message", () => replies++);
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
    for (const datagram of [new Uint8Array(7), h.knock("alice")]) {
      await new Promise<void>((resolve, reject) =>
        socket.send(
          datagram,
          h.server.udpPort,
          "127.0.0.1",
          (err) => err ? reject(err) : resolve(),
        )
      );
    }
    await waitFor(() => sessionOf(h, "alice") !== undefined, {
      timeoutMs: WAIT_MS,
      what: "alice's session",
    });
    await sleep(200);
    assert.equal(replies, 0);
  } finally {
    await new Promise<void>((resolve) => socket.close(() => resolve()));
    await h.close();
  }
});

Deno.test("the health port accepts a TCP connection and closes it without a byte", async () => {
  const h = await startHarness();
  try {
    assert.deepEqual(
      await connectAndWaitClose("127.0.0.1", h.server.healthPort),
      { connected: true, bytes: 0 },
    );
  } finally {
    await h.close();
  }
});

Deno.test("a file renamed over the config is noticed even with the same size and mtime", async () => {
  const h = await startHarness();
  try {
    await h.rewrite({
      clients: [{ ...h.clients[0], expires: "2099-01-01T00:00:00Z" }],
    });
    assert.equal(await h.server.reload("test"), true);
    await h.send(h.knock("alice"));
    await waitFor(() => sessionOf(h, "alice") !== undefined, {
      timeoutMs: WAIT_MS,
      what: "alice's session",
    });
    await sleep(300);
    const before = await Deno.stat(h.configPath);
    const text = (await Deno.readTextFile(h.configPath)).replace(
      "2099-01-01T00:00:00Z",
      "2001-01-01T00:00:00Z",
    );
    const temp = `${h.configPath}.new`;
    await Deno.writeTextFile(temp, text, { mode: 0o600 });
    await Deno.utime(temp, before.atime!, before.mtime!);
    await Deno.rename(temp, h.configPath);
    const after = await Deno.stat(h.configPath);
    assert.equal(after.size, before.size);
    assert.equal(after.mtime!.getTime(), before.mtime!.getTime());
    await waitFor(() => sessionOf(h, "alice") === undefined, {
      timeoutMs: WAIT_MS,
      what: "alice's session closed after the rename",
    });
  } finally {
    await h.close();
  }
});

Deno.test("a reload that changes a client's ports moves its open session to them, keeping the deadline", async () => {
  const h = await startHarness({
    config: { portGroups: ["web: [443/tcp]"] },
  });
  try {
    await h.send(h.knock("alice"));
    await waitFor(() => sessionOf(h, "alice") !== undefined, {
      timeoutMs: WAIT_MS,
      what: "alice's session",
    });
    const deadline = sessionOf(h, "alice")!.expiresAtMs;
    await h.rewrite({
      clients: [{ ...h.clients[0], allowedPorts: ["web"] }],
    });
    assert.equal(await h.server.reload("test"), true);
    const session = sessionOf(h, "alice")!;
    assert.deepEqual(session.rules.ports, [
      { port: 443, proto: "tcp" },
      { port: h.server.healthPort, proto: "tcp" },
    ]);
    assert.equal(session.expiresAtMs, deadline);
    assert.equal(h.backend.live.size, 2);
    assert.equal(h.backend.callsOf("close").length, 1);
  } finally {
    await h.close();
  }
});

Deno.test("drop_ports: the health port is in the drop set, so status needs a knock on an accept-policy host", async () => {
  const h = await startHarness({ config: { dropPorts: true } });
  try {
    const setup = h.backend.callsOf("setup")[0];
    assert.deepEqual(setup.base?.dropPorts, [
      { port: 22, proto: "tcp" },
      { port: h.server.healthPort, proto: "tcp" },
    ]);
    await h.rewrite({ dropPorts: false });
    assert.equal(await h.server.reload("test"), true);
    assert.deepEqual(
      h.backend.callsOf("updateBaseRules")[0].base?.dropPorts,
      [],
    );
  } finally {
    await h.close();
  }
});

Deno.test("a changed server private_key is warned about on reload and the key in force stays", async () => {
  const h = await startHarness();
  try {
    await h.rewrite({ server: freshKeys([]).server });
    assert.equal(await h.server.reload("test"), true);
    assert.equal(
      h.log.matching(
        /^WARN {2}server key changes take effect after a restart/,
      ).length,
      1,
    );
    // Knocks built for the key the server started with still open.
    await h.send(h.knock("alice"));
    await waitFor(() => sessionOf(h, "alice") !== undefined, {
      timeoutMs: WAIT_MS,
      what: "a knock for the old key accepted",
    });
    // A reload that does not change the key does not warn again.
    await h.rewrite({ knockTimeout: "20s" });
    assert.equal(await h.server.reload("test"), true);
    assert.equal(h.log.matching(/server key changes/).length, 2);
  } finally {
    await h.close();
  }
});

/** The records of the nonce file beside the harness's state file (after its 24-byte header), or null while there is none. */
async function nonceRecords(h: Harness): Promise<Uint8Array | null> {
  const bytes = await readStateBytes(nonceFilePath(h.stateFile));
  return bytes?.subarray(24) ?? null;
}

function startAgain(
  h: Harness,
  backend = new RecordingBackend(),
): Promise<OpenmeServer> {
  return OpenmeServer.start(h.configPath, {
    stateFile: h.stateFile,
    backend,
    hostname: "127.0.0.1",
    udpPort: 0,
    healthPort: 0,
    rateLimit: null,
  });
}

Deno.test("a knock accepted before a crash is refused as a replay after it: its nonce is in the nonce file within a second", async () => {
  const h = await startHarness({ config: { replayWindow: "60s" } });
  let second: OpenmeServer | null = null;
  try {
    const builtAfter = Date.now();
    const packet = h.knock("alice");
    const builtBy = Date.now();
    await h.send(packet);
    await waitFor(() => sessionOf(h, "alice") !== undefined, {
      timeoutMs: WAIT_MS,
      what: "the knock accepted by the first server",
    });
    await waitFor(
      async () => (await nonceRecords(h))?.length === NONCE_RECORD_BYTES,
      {
        timeoutMs: WAIT_MS,
        what: "the nonce appended to the nonce file",
      },
    );
    const record = (await nonceRecords(h))!;
    const stampedMs = new DataView(record.buffer, record.byteOffset)
      .getFloat64(16);
    assert.ok(stampedMs >= builtAfter && stampedMs <= builtBy, `${stampedMs}`);
    // The first server is never stopped before the second starts, as after
    // a kill -9: what is on disk is all the second one gets.
    const backend = new RecordingBackend();
    second = await startAgain(h, backend);
    assert.equal(
      h.log.matching(/remembered 1 replay nonces of the previous run/).length,
      1,
    );
    await sendDatagrams(second.udpPort, [packet]);
    await waitFor(() => (second!.state().drops!.replay ?? 0) === 1, {
      timeoutMs: WAIT_MS,
      what: "the replay refused by the restarted server",
    });
    assert.equal(backend.callsOf("open").length, 0);
    // A fresh knock still works, and stop writes its nonce too.
    await sendDatagrams(second.udpPort, [h.knock("alice")]);
    await waitFor(() => second!.sessions().length === 1, {
      timeoutMs: WAIT_MS,
      what: "a fresh knock accepted",
    });
    await second.stop();
    const final = (await nonceRecords(h))!;
    assert.equal(final.length, 2 * NONCE_RECORD_BYTES);
    assert.equal(final.subarray(0, 24).toHex(), record.toHex());
  } finally {
    await second?.stop();
    await h.close();
  }
});

Deno.test("nonces the replay window refuses anyway are not loaded from the nonce file", async () => {
  const h = await startHarness({ config: { replayWindow: "60s" } });
  let second: OpenmeServer | null = null;
  try {
    await h.server.stop();
    const cache = new ReplayCache(600_000);
    cache.add(new Uint8Array(16).fill(0x11), Date.now() - 300_000, Date.now());
    cache.add(new Uint8Array(16).fill(0x22), Date.now() - 1000, Date.now());
    const records = cache.snapshot().subarray(24);
    await writeNonceFile(nonceFilePath(h.stateFile), cache.snapshot());
    second = await startAgain(h);
    assert.equal(h.log.matching(/remembered 1 replay nonces/).length, 1);
    await second.stop();
    assert.deepEqual(await nonceRecords(h), records.subarray(24));
  } finally {
    await second?.stop();
    await h.close();
  }
});

Deno.test("with an unreadable nonce file, knocks stamped before the start are refused and later ones accepted", async () => {
  const h = await startHarness({ config: { replayWindow: "60s" } });
  let second: OpenmeServer | null = null;
  try {
    await h.server.stop();
    const early = h.knock("alice", { offsetMs: -5000 });
    await Deno.writeTextFile(nonceFilePath(h.stateFile), "not nonces");
    second = await startAgain(h);
    assert.equal(
      h.log.matching(
        /^WARN {2}could not read the replay nonces of the previous run from .*state\.nonces: not a replay nonce file of openme serve .*\(knocks stamped before now are refused\)$/,
      ).length,
      1,
    );
    await sendDatagrams(second.udpPort, [early, h.knock("alice")]);
    await waitFor(() => second!.state().accepted === 1, {
      timeoutMs: WAIT_MS,
      what: "the knock built after the start accepted",
    });
    assert.deepEqual(second.state().drops, { replay: 1 });
    assert.ok((await nonceRecords(h)) !== null, "the file is written anew");
  } finally {
    await second?.stop();
    await h.close();
  }
});

/** 32 bytes that are not an Ed25519 curve point (found, not assumed). */
function notACurvePoint(): Uint8Array {
  for (let i = 0; i < 256; i++) {
    const bytes = new Uint8Array(32);
    bytes[0] = i;
    bytes[31] = 0x7f;
    try {
      prepareEd25519VerifyKey(bytes);
    } catch {
      return bytes;
    }
  }
  throw new Error("no invalid point found");
}

Deno.test("a client key that is 32 bytes but not a curve point is skipped with a warning; serve starts and reloads still close revoked sessions", async () => {
  const bad: TestClient = {
    name: "mallory",
    keys: {
      ...freshKeys(["x"]).clients.get("x")!,
      publicKey: notACurvePoint(),
    },
  };
  const h = await startHarness({
    names: ["alice", "bob"],
    config: {},
  });
  try {
    // A config with the bad client from the start is served.
    await h.rewrite({ clients: [...h.clients, bad] });
    assert.equal(await h.server.reload("test"), true);
    const skipped = h.log.matching(/client "mallory" skipped/);
    assert.ok(skipped.length >= 1, h.log.lines.join("\n"));
    assert.match(
      skipped[0],
      /clients\.mallory\.ed25519_pubkey: not a valid Ed25519 public key/,
    );
    await h.server.stop();
    const restarted = await OpenmeServer.start(h.configPath, {
      stateFile: h.stateFile,
      backend: h.backend,
      hostname: "127.0.0.1",
      udpPort: 0,
      healthPort: 0,
      rateLimit: null,
    });
    try {
      assert.match(
        h.log.matching(/^INFO {2}openme serving: /).at(-1)!,
        / 2 client\(s\)/,
      );
      await sendDatagrams(restarted.udpPort, [h.knock("alice")]);
      await waitFor(() => restarted.sessions().length === 1, {
        timeoutMs: WAIT_MS,
        what: "alice's session",
      });
      // Revoke alice while mallory's bad key is still there.
      await h.rewrite({ clients: [h.clients[1], bad] });
      assert.equal(await restarted.reload("test"), true);
      assert.equal(restarted.sessions().length, 0, "alice's session closed");
      assert.equal(h.log.matching(/client alice\): client revoked$/).length, 1);
    } finally {
      await restarted.stop();
    }
  } finally {
    await h.close();
  }
});

Deno.test("a close the firewall refuses is retried and listed under pending_closes in the state file", async () => {
  const h = await startHarness({
    config: { knockTimeout: "200ms" },
    server: { closeRetryDelaysMs: [300] },
  });
  try {
    // Closes keep failing until the test has seen the pending one.
    h.backend.failCloses = 1_000_000;
    await h.send(h.knock("alice"));
    await waitFor(async () => {
      const state = await readStateFile(h.stateFile).catch(() => null);
      return state?.pending_closes?.length === 1 &&
        state.active_sessions.length === 0;
    }, { timeoutMs: WAIT_MS, what: "the pending close in the state file" });
    const pending = (await readStateFile(h.stateFile)).pending_closes![0];
    assert.equal(pending.client_name, "alice");
    assert.equal(pending.ip, "127.0.0.1");
    assert.equal(pending.reason, "timeout");
    assert.ok(pending.attempts >= 1);
    assert.match(pending.last_error, /did not finish within/);
    assert.equal(h.log.matching(/^INFO {2}closed /).length, 0);
    assert.equal(
      h.log.matching(/\(timeout\) failed, will retry in 0\.3 s/).length,
      1,
    );
    h.backend.failCloses = 0;
    await waitFor(async () => {
      const state = await readStateFile(h.stateFile).catch(() => null);
      return state?.pending_closes?.length === 0;
    }, { timeoutMs: WAIT_MS, what: "the retried close" });
    assert.equal(h.backend.live.size, 0);
    assert.equal(h.log.matching(/\(after \d+ failed attempts\)$/).length, 1);
  } finally {
    await h.close();
  }
});

Deno.test("stop with a pending failed close removes it with the teardown, not with another close", async () => {
  const h = await startHarness({
    config: { knockTimeout: "100ms" },
    server: { closeRetryDelaysMs: [60_000] },
  });
  try {
    h.backend.failCloses = 1;
    await h.send(h.knock("alice"));
    await waitFor(() => h.backend.callsOf("close").length === 1, {
      timeoutMs: WAIT_MS,
      what: "the failed close",
    });
    await h.server.stop();
    assert.equal(h.backend.callsOf("close").length, 1);
    assert.equal(h.backend.calls.at(-1)?.op, "teardown");
    assert.equal(h.backend.live.size, 0);
    assert.deepEqual((await readStateFile(h.stateFile)).pending_closes, []);
    assert.equal(
      h.log.matching(/removed the rules of 1 earlier failed close\(s\)/).length,
      1,
    );
  } finally {
    await h.close();
  }
});

Deno.test("the periodic firewall check puts back what a ruleset reload removed and re-opens sessions", async () => {
  const h = await startHarness({ server: { firewallCheckMs: 100 } });
  try {
    await h.send(h.knock("alice"));
    await waitFor(() => sessionOf(h, "alice") !== undefined, {
      timeoutMs: WAIT_MS,
      what: "alice's session",
    });
    await waitFor(() => h.backend.callsOf("ensureBaseRules").length >= 2, {
      timeoutMs: WAIT_MS,
      what: "periodic checks",
    });
    assert.equal(h.log.matching(/^WARN /).length, 0, "nothing to repair");
    const deadline = sessionOf(h, "alice")!.expiresAtMs;
    h.backend.nextRepairs = ["table inet filter"];
    h.backend.vanish([...h.backend.live]);
    await waitFor(() => h.backend.callsOf("open").length === 2, {
      timeoutMs: WAIT_MS,
      what: "the session re-opened",
    });
    await waitFor(() => h.backend.live.size === 2, {
      timeoutMs: WAIT_MS,
      what: "the new rules live",
    });
    assert.equal(sessionOf(h, "alice")!.expiresAtMs, deadline);
    assert.equal(
      h.log.matching(
        /^WARN {2}firewall: openme's rules were removed outside openme .*put back: table inet filter \(periodic check\)$/,
      ).length,
      1,
    );
    assert.equal(h.log.matching(/^WARN {2}re-opened .*client alice/).length, 1);
    assert.equal(
      h.log.matching(/1 session\(s\) re-opened, 0 dropped/).length,
      1,
    );
  } finally {
    await h.close();
  }
});

Deno.test("a firewall check asked for while one runs (SIGHUP after a ruleset reload) runs again afterwards and repairs what the running one missed", async () => {
  const h = await startHarness({ server: { firewallCheckMs: 3_600_000 } });
  try {
    await h.send(h.knock("alice"));
    await waitFor(() => sessionOf(h, "alice") !== undefined, {
      timeoutMs: WAIT_MS,
      what: "alice's session",
    });
    let release = () => {};
    h.backend.holdChecks = new Promise((resolve) => release = resolve);
    const first = h.server.checkFirewall("periodic check");
    await waitFor(() => h.backend.callsOf("ensureBaseRules").length === 1, {
      timeoutMs: WAIT_MS,
      what: "the first check listing the rules",
    });
    // The operator reloads the firewall after the running check listed it.
    h.backend.vanish([...h.backend.live]);
    const second = h.server.checkFirewall("SIGHUP");
    h.backend.holdChecks = null;
    release();
    await Promise.all([first, second]);
    assert.equal(h.backend.callsOf("ensureBaseRules").length, 2);
    assert.equal(
      h.backend.callsOf("open").length,
      2,
      "re-opened by the second check",
    );
    assert.equal(h.backend.live.size, 2);
  } finally {
    await h.close();
  }
});

Deno.test("peer addresses are normalised the same on every datagram (IPv4-mapped, repeated, unparsable)", async () => {
  const h = await startHarness();
  try {
    h.server.handleDatagram(h.knock("alice"), "::ffff:192.0.2.7");
    await waitFor(() => sessionOf(h, "alice", "192.0.2.7") !== undefined, {
      timeoutMs: WAIT_MS,
      what: "session for 192.0.2.7",
    });
    h.server.handleDatagram(h.knock("alice"), "::ffff:192.0.2.7");
    h.server.handleDatagram(h.knock("alice"), "192.0.2.7");
    assert.equal(h.server.state().accepted, 3);
    assert.equal(
      h.log.matching(
        /^INFO {2}refreshed .* for 192\.0\.2\.7 \(client alice key [0-9a-f]{16} from 192\.0\.2\.7\) until /,
      ).length,
      2,
    );
    h.server.handleDatagram(h.knock("alice"), "not-an-address");
    h.server.handleDatagram(h.knock("alice"), "not-an-address");
    assert.equal(h.server.state().drops!.source, 2);
    assert.equal(h.backend.callsOf("open").length, 1);
  } finally {
    await h.close();
  }
});

Deno.test("a storm of refreshes is written to the state file together, at least 200 ms after the write before it", async () => {
  const h = await startHarness();
  const realRename = Deno.rename;
  const writes: number[] = [];
  Deno.rename = (from, to) => {
    if (to === h.stateFile) writes.push(performance.now());
    return realRename(from, to);
  };
  try {
    await h.send(h.knock("alice"));
    await waitFor(() => sessionOf(h, "alice") !== undefined, {
      timeoutMs: WAIT_MS,
      what: "alice's session",
    });
    const knocks = Array.from({ length: 50 }, () => h.knock("alice"));
    for (const knock of knocks) h.server.handleDatagram(knock, "127.0.0.1");
    await waitFor(async () => {
      const state = await readStateFile(h.stateFile).catch(() => null);
      return state?.accepted === 51;
    }, { timeoutMs: WAIT_MS, what: "the storm in the state file" });
    await h.server.stop();
    // The open's write, perhaps the first refresh's write (when the open's
    // was done), one write for the rest, and the final one at stop.
    assert.ok(writes.length === 3 || writes.length === 4, `${writes.length}`);
    const [before, storm] = writes.slice(-3, -1);
    assert.ok(storm - before >= 199, `${storm - before} ms apart`);
  } finally {
    Deno.rename = realRename;
    await h.close();
  }
});

Deno.test("drops are logged one per datagram at debug only, and summarised once a minute at info", async () => {
  // Record the intervals the server arms while it starts (timers still run).
  const realSetInterval = globalThis.setInterval;
  const armed: { ms: number | undefined; fn: () => void }[] = [];
  globalThis.setInterval = ((fn: () => void, ms?: number) => {
    armed.push({ ms, fn });
    return realSetInterval(fn, ms);
  }) as typeof setInterval;
  let h: Harness;
  try {
    h = await startHarness({ logLevel: "debug" });
  } finally {
    globalThis.setInterval = realSetInterval;
  }
  try {
    const perMinute = armed.filter((timer) => timer.ms === 60_000);
    assert.equal(
      perMinute.length,
      1,
      `intervals armed: ${armed.map((timer) => timer.ms)}`,
    );
    const wrongVersion = new Uint8Array(165);
    wrongVersion[0] = 2;
    for (const datagram of [new Uint8Array(1), new Uint8Array(300)]) {
      h.server.handleDatagram(datagram, "::ffff:127.0.0.1");
    }
    h.server.handleDatagram(wrongVersion, "127.0.0.1");
    h.server.handleDatagram(wrongVersion, "not-an-address");
    // What the timer does when the minute is up.
    perMinute[0].fn();
    assert.deepEqual(h.log.matching("dropped"), [
      "DEBUG dropped datagram from 127.0.0.1: size",
      "DEBUG dropped datagram from 127.0.0.1: size",
      "DEBUG dropped datagram from 127.0.0.1: version",
      "DEBUG dropped datagram from not-an-address: source",
      "INFO  dropped 4 datagrams in the last 60 s: 2 size, 1 version, 1 source",
    ]);
  } finally {
    await h.close();
  }
});

Deno.test("with the default rate limit and its measured signature budget, 300 forged knocks from 300 sources against 50 clients do not lock out a real client, from her usual address or a new one", async () => {
  const names = ["alice", ...Array.from({ length: 49 }, (_, i) => `c${i}`)];
  const h = await startHarness({
    names,
    // undefined, not the harness's null: the server's default rate limit,
    // which comes with the measured signature budget.
    server: { rateLimit: undefined },
  });
  try {
    const mallory = generateEd25519KeyPair();
    /** A knock as other v1 clients build it: a random nonce, no key hint. */
    const unhinted = (privateKey: Uint8Array): Uint8Array =>
      sealKnock({
        serverPublicKey: h.keys.server.publicKey,
        clientPrivateKey: privateKey,
      }, {
        timestampNs: BigInt(Date.now()) * 1_000_000n,
        replayNonce: randomBytes(16),
        target: null,
      });
    const alice = h.keys.clients.get("alice")!.privateKey;
    h.server.handleDatagram(unhinted(alice), "192.0.2.10");
    for (let i = 0; i < 300; i++) {
      h.server.handleDatagram(
        unhinted(mallory.privateKey),
        `10.0.${i >> 8}.${i & 255}`,
      );
    }
    h.server.handleDatagram(unhinted(alice), "192.0.2.10");
    h.server.handleDatagram(unhinted(alice), "192.0.2.11");
    await waitFor(() => sessionOf(h, "alice", "192.0.2.11") !== undefined, {
      timeoutMs: WAIT_MS,
      what: "alice's session from her new address",
    });
    assert.ok(sessionOf(h, "alice", "192.0.2.10"));
    // Every forged knock is dropped: it matched no key, or waited in vain.
    await waitFor(() => {
      const drops = h.server.state().drops!;
      return (drops.unknown_client ?? 0) + (drops.rate_limit ?? 0) === 300;
    }, { timeoutMs: WAIT_MS, what: "300 forged knocks dropped" });
    assert.equal(h.server.state().accepted, 3);
  } finally {
    await h.close();
  }
});

Deno.test("knock_rate_limit and knock_burst reach the backend's base rules and openme's own limiter; a firewall check puts the kernel gate's drops in the state file", async () => {
  const keys = freshKeys([]);
  const dir = await Deno.makeTempDir({ prefix: "openme-daemon-test-" });
  const configPath = `${dir}/config.yaml`;
  const stateFile = `${dir}/state.json`;
  const text = renderTestConfig({ server: keys.server, clients: [] }).replace(
    "  open_knock_port: true\n",
    "  open_knock_port: true\n  knock_rate_limit: 1/h\n  knock_burst: 2\n",
  );
  await Deno.writeTextFile(configPath, text, { mode: 0o600 });
  const log = captureLog("info");
  const backend = new RecordingBackend();
  try {
    const server = await OpenmeServer.start(configPath, {
      stateFile,
      backend,
      hostname: "127.0.0.1",
      udpPort: 0,
      healthPort: 0,
      firewallCheckMs: 3_600_000,
    });
    try {
      assert.deepEqual(backend.callsOf("setup")[0].base?.knockRateLimit, {
        count: 1,
        unit: "hour",
        burst: 2,
      });
      // Of four datagrams from one address, the limiter lets two through.
      const junk = new Uint8Array(165);
      junk[0] = 1;
      await sendDatagrams(server.udpPort, [junk, junk, junk, junk]);
      await waitFor(
        () =>
          Object.values(server.state().drops!).reduce((a, b) => a + b, 0) === 4,
        { timeoutMs: WAIT_MS, what: "four drops" },
      );
      assert.deepEqual(server.state().drops, { decrypt: 2, rate_limit: 2 });
      assert.equal(server.state().kernel_drops, undefined);
      backend.gate = { size: 5, version: 1, rate: 2 };
      await server.checkFirewall("periodic check");
      assert.deepEqual(server.state().kernel_drops, backend.gate);
      await waitFor(
        async () => (await readStateFile(stateFile)).kernel_drops?.size === 5,
        { timeoutMs: WAIT_MS, what: "kernel_drops in the state file" },
      );
    } finally {
      await server.stop();
    }
  } finally {
    log.restore();
    await Deno.remove(dir, { recursive: true });
  }
});
