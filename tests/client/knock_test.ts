/**
 * Tests of lib/client/knock.ts: resolving the server (literals, injected
 * resolver, family filters, errors) and sending one knock per address family,
 * captured on loopback and verified with the server's key.
 */

import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import {
  formatServerAddress,
  type HostLookup,
  KnockError,
  type KnockProfile,
  knockServer,
  resolveServer,
  sendDatagram,
} from "../../lib/client/knock.ts";
import {
  generateEd25519KeyPair,
  generateX25519KeyPair,
} from "../../lib/protocol/crypto.ts";
import { parseIp } from "../../lib/ip.ts";
import { KNOCK_PACKET_BYTES } from "../../lib/protocol/packet.ts";
import { KnockVerifier } from "../../lib/server/verifier.ts";

const CAPTURE_TIMEOUT_MS = 3000;

function lookupReturning(
  answers: { address: string; family: number }[],
): HostLookup {
  return (_host: string) => Promise.resolve(answers);
}

interface Capture {
  port: number;
  received: { family: 4 | 6; bytes: Uint8Array; from: string }[];
  close(): Promise<void>;
}

function bindSocket(
  type: "udp4" | "udp6",
  address: string,
  port: number,
): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket({ type, ipv6Only: type === "udp6" });
    socket.once("error", reject);
    socket.bind(port, address, () => {
      socket.off("error", reject);
      resolve(socket);
    });
  });
}

/** Binds udp4 127.0.0.1:P and udp6 [::1]:P on one free port P (bounded retries). */
async function captureBothFamilies(): Promise<Capture> {
  let lastError: unknown = null;
  for (let attempt = 0; attempt < 20; attempt++) {
    const v4 = await bindSocket("udp4", "127.0.0.1", 0);
    const port = v4.address().port;
    let v6: Socket;
    try {
      v6 = await bindSocket("udp6", "::1", port);
    } catch (err) {
      lastError = err;
      v4.close();
      continue;
    }
    const capture: Capture = {
      port,
      received: [],
      close: async () => {
        await new Promise<void>((r) => v4.close(() => r()));
        await new Promise<void>((r) => v6.close(() => r()));
      },
    };
    v4.on("message", (msg, rinfo) => {
      capture.received.push({
        family: 4,
        bytes: new Uint8Array(msg),
        from: rinfo.address,
      });
    });
    v6.on("message", (msg, rinfo) => {
      capture.received.push({
        family: 6,
        bytes: new Uint8Array(msg),
        from: rinfo.address,
      });
    });
    return capture;
  }
  throw new Error(`no port free on both 127.0.0.1 and ::1: ${lastError}`);
}

async function waitForCount(capture: Capture, count: number): Promise<void> {
  const deadline = Date.now() + CAPTURE_TIMEOUT_MS;
  while (capture.received.length < count && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
}

function testKeys(): {
  profile: Omit<KnockProfile, "serverHost" | "serverUdpPort">;
  verifier: KnockVerifier;
} {
  const server = generateX25519KeyPair();
  const client = generateEd25519KeyPair();
  const verifier = new KnockVerifier({
    serverPrivateKey: server.privateKey,
    replayWindowMs: 60_000,
    clients: [{
      name: "alice",
      publicKey: client.publicKey,
    }],
  });
  return {
    profile: {
      serverPublicKey: server.publicKey,
      privateKey: client.privateKey,
    },
    verifier,
  };
}

Deno.test("resolveServer returns an IP literal as is, brackets removed", async () => {
  assert.deepEqual(await resolveServer("192.0.2.1"), [
    { address: "192.0.2.1", family: 4 },
  ]);
  assert.deepEqual(await resolveServer("[2001:db8::1]"), [
    { address: "2001:db8::1", family: 6 },
  ]);
});

Deno.test("resolveServer keeps one address per family, IPv4 first", async () => {
  const lookup = lookupReturning([
    { address: "2001:db8::1", family: 6 },
    { address: "192.0.2.1", family: 4 },
    { address: "192.0.2.9", family: 4 },
    { address: "2001:db8::9", family: 6 },
  ]);
  assert.deepEqual(await resolveServer("dual.example", { lookup }), [
    { address: "192.0.2.1", family: 4 },
    { address: "2001:db8::1", family: 6 },
  ]);
  assert.deepEqual(
    await resolveServer("dual.example", { lookup, family: 6 }),
    [{ address: "2001:db8::1", family: 6 }],
  );
});

Deno.test("resolveServer says which family is missing and how to get the other", async () => {
  const lookup = lookupReturning([{ address: "192.0.2.1", family: 4 }]);
  await assert.rejects(
    () => resolveServer("v4only.example", { lookup, family: 6 }),
    (err: unknown) =>
      err instanceof KnockError &&
      err.message.includes('"v4only.example" has no IPv6 address') &&
      err.message.includes("drop -6"),
  );
  await assert.rejects(
    () => resolveServer("192.0.2.1", { family: 6 }),
    /has no IPv6 address/,
  );
});

Deno.test("resolveServer reports an unresolvable host with the resolver's code and what to check", async () => {
  const lookup: HostLookup = () =>
    Promise.reject(
      Object.assign(new Error("getaddrinfo ENOTFOUND"), { code: "ENOTFOUND" }),
    );
  await assert.rejects(
    () => resolveServer("nowhere.invalid", { lookup }),
    (err: unknown) =>
      err instanceof KnockError &&
      err.message.includes('cannot resolve server host "nowhere.invalid"') &&
      err.message.includes("ENOTFOUND") &&
      err.message.includes("server_host"),
  );
});

Deno.test("resolveServer resolves the name at every call (dynamic DNS)", async () => {
  let calls = 0;
  const lookup: HostLookup = () => {
    calls++;
    return Promise.resolve([
      { address: calls === 1 ? "192.0.2.1" : "192.0.2.2", family: 4 },
    ]);
  };
  assert.equal(
    (await resolveServer("ddns.example", { lookup }))[0].address,
    "192.0.2.1",
  );
  assert.equal(
    (await resolveServer("ddns.example", { lookup }))[0].address,
    "192.0.2.2",
  );
  assert.equal(calls, 2);
});

Deno.test("knockServer sends one valid knock per family when the name has IPv4 and IPv6", async () => {
  const capture = await captureBothFamilies();
  try {
    const { profile, verifier } = testKeys();
    const lookup = lookupReturning([
      { address: "::1", family: 6 },
      { address: "127.0.0.1", family: 4 },
    ]);
    const report = await knockServer(
      { ...profile, serverHost: "dual.test", serverUdpPort: capture.port },
      { lookup },
    );
    assert.deepEqual(
      report.sent.map((k) => k.to),
      [{ address: "127.0.0.1", family: 4 }, { address: "::1", family: 6 }],
    );
    assert.deepEqual(report.failures, []);
    await waitForCount(capture, 2);
    await new Promise((r) => setTimeout(r, 100)); // nothing more arrives
    assert.deepEqual(capture.received.map((r) => r.family).sort(), [4, 6]);
    for (const datagram of capture.received) {
      assert.equal(datagram.bytes.length, KNOCK_PACKET_BYTES);
      const source = parseIp(datagram.from);
      assert.ok(source !== null);
      const result = await verifier.verify(datagram.bytes, source);
      assert.equal(result.ok, true, result.ok ? "" : result.reason);
    }
    // Fresh packets: the two knocks differ.
    assert.notDeepEqual(capture.received[0].bytes, capture.received[1].bytes);
  } finally {
    await capture.close();
  }
});

Deno.test("knockServer -4 and -6 send to one family only", async () => {
  const capture = await captureBothFamilies();
  try {
    const { profile } = testKeys();
    const lookup = lookupReturning([
      { address: "127.0.0.1", family: 4 },
      { address: "::1", family: 6 },
    ]);
    const host = {
      ...profile,
      serverHost: "dual.test",
      serverUdpPort: capture.port,
    };
    const v6 = await knockServer(host, { lookup, family: 6 });
    assert.deepEqual(v6.sent.map((k) => k.to.family), [6]);
    await waitForCount(capture, 1);
    const v4 = await knockServer(host, { lookup, family: 4 });
    assert.deepEqual(v4.sent.map((k) => k.to.family), [4]);
    await waitForCount(capture, 2);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(capture.received.map((r) => r.family), [6, 4]);
  } finally {
    await capture.close();
  }
});

Deno.test("knockServer with --ip sends one knock, to the target's family, carrying the target", async () => {
  const capture = await captureBothFamilies();
  try {
    const { profile, verifier } = testKeys();
    const lookup = lookupReturning([
      { address: "127.0.0.1", family: 4 },
      { address: "::1", family: 6 },
    ]);
    const target = parseIp("2001:db8::20");
    const report = await knockServer(
      { ...profile, serverHost: "dual.test", serverUdpPort: capture.port },
      { lookup, target },
    );
    assert.equal(report.sent.length, 1);
    assert.equal(report.sent[0].to.family, 6);
    await waitForCount(capture, 1);
    const datagram = capture.received[0];
    const result = await verifier.verify(
      datagram.bytes,
      parseIp(datagram.from)!,
    );
    assert.ok(result.ok);
    if (result.ok) assert.equal(result.target.text, "2001:db8::20");
  } finally {
    await capture.close();
  }
});

Deno.test("sendDatagram failure says where it went, the system's code and what to check", async () => {
  // The kernel refuses a broadcast from a socket without SO_BROADCAST.
  await assert.rejects(
    () =>
      sendDatagram(
        { address: "255.255.255.255", family: 4 },
        9,
        new Uint8Array(KNOCK_PACKET_BYTES),
      ),
    (err: unknown) =>
      err instanceof KnockError &&
      err.message.includes("255.255.255.255 port 9 failed (") &&
      err.message.includes("is the network up"),
  );
});

Deno.test("sendDatagram delivers the datagram on both families", async () => {
  const capture = await captureBothFamilies();
  try {
    const payload = new Uint8Array(KNOCK_PACKET_BYTES).fill(0x5a);
    await sendDatagram(
      { address: "127.0.0.1", family: 4 },
      capture.port,
      payload,
    );
    await sendDatagram({ address: "::1", family: 6 }, capture.port, payload);
    await waitForCount(capture, 2);
    assert.deepEqual(capture.received.map((r) => r.family).sort(), [4, 6]);
    for (const r of capture.received) assert.deepEqual(r.bytes, payload);
  } finally {
    await capture.close();
  }
});

Deno.test("formatServerAddress brackets IPv6 addresses and leaves IPv4 bare", () => {
  assert.equal(
    formatServerAddress({ address: "192.0.2.1", family: 4 }, 54154),
    "192.0.2.1:54154",
  );
  assert.equal(
    formatServerAddress({ address: "2001:db8::1", family: 6 }, 54154),
    "[2001:db8::1]:54154",
  );
});
