import assert from "node:assert/strict";
import {
  generateEd25519KeyPair,
  generateX25519KeyPair,
  prepareEd25519VerifyKey,
  randomBytes,
} from "../../lib/protocol/crypto.ts";
import { type IpAddress, parseIp } from "../../lib/ip.ts";
import { buildKnock, sealKnock } from "../../lib/protocol/packet.ts";
import {
  KnockVerifier,
  type KnockVerifierOptions,
  type VerifierClient,
} from "../../lib/server/verifier.ts";

function ip(text: string): IpAddress {
  const parsed = parseIp(text);
  if (parsed === null) throw new Error(`bad address in test: ${text}`);
  return parsed;
}

const NOW_MS = 1_750_000_000_000;
const NOW_NS = BigInt(NOW_MS) * 1_000_000n;
const WINDOW_MS = 60_000;
const SOURCE = ip("192.0.2.1");

const server = generateX25519KeyPair();
const alice = generateEd25519KeyPair();
const bob = generateEd25519KeyPair();
const mallory = generateEd25519KeyPair();

function clientsFor(): VerifierClient[] {
  return [
    { name: "alice", verifyKey: prepareEd25519VerifyKey(alice.publicKey) },
    {
      name: "bob",
      verifyKey: prepareEd25519VerifyKey(bob.publicKey),
      expires: null,
    },
  ];
}

function makeVerifier(
  overrides: Partial<KnockVerifierOptions> = {},
): KnockVerifier {
  return new KnockVerifier({
    serverPrivateKey: server.privateKey,
    replayWindowMs: WINDOW_MS,
    clients: clientsFor(),
    ...overrides,
  });
}

function knockFrom(
  privateKey: Uint8Array,
  options: { target?: IpAddress | null; timestampNs?: bigint } = {},
): Uint8Array {
  return buildKnock(
    { serverPublicKey: server.publicKey, clientPrivateKey: privateKey },
    { timestampNs: NOW_NS, ...options },
  );
}

Deno.test("a valid knock is accepted with its client and target", () => {
  const clients = clientsFor();
  const verifier = makeVerifier({ clients });
  const result = verifier.verify(
    knockFrom(alice.privateKey, { target: ip("198.51.100.20") }),
    SOURCE,
    { nowMs: NOW_MS },
  );
  assert.deepEqual(result, {
    ok: true,
    client: clients[0],
    target: { family: 4, text: "198.51.100.20" },
  });
});

Deno.test("the second client's key is found too", () => {
  const verifier = makeVerifier();
  const result = verifier.verify(knockFrom(bob.privateKey), SOURCE, {
    nowMs: NOW_MS,
  });
  assert.equal(result.ok && result.client.name, "bob");
});

Deno.test("an IPv6 target is returned as sent", () => {
  const verifier = makeVerifier();
  const result = verifier.verify(
    knockFrom(alice.privateKey, { target: ip("2001:db8::5") }),
    SOURCE,
    { nowMs: NOW_MS },
  );
  assert.ok(result.ok);
  assert.deepEqual(result.target, { family: 6, text: "2001:db8::5" });
});

Deno.test("a wildcard target becomes the source address (IPv4 and IPv6)", () => {
  const verifier = makeVerifier();
  const v4 = verifier.verify(knockFrom(alice.privateKey), ip("192.0.2.44"), {
    nowMs: NOW_MS,
  });
  assert.ok(v4.ok);
  assert.deepEqual(v4.target, { family: 4, text: "192.0.2.44" });
  const v6 = verifier.verify(
    knockFrom(alice.privateKey, { target: null }),
    ip("2001:db8::77"),
    { nowMs: NOW_MS },
  );
  assert.ok(v6.ok);
  assert.deepEqual(v6.target, { family: 6, text: "2001:db8::77" });
});

Deno.test("a bare 32-byte seed and the 64-byte private key both sign accepted knocks", () => {
  const verifier = makeVerifier();
  for (const key of [alice.privateKey.slice(0, 32), alice.privateKey]) {
    const result = verifier.verify(knockFrom(key), SOURCE, { nowMs: NOW_MS });
    assert.equal(result.ok && result.client.name, "alice");
  }
});

Deno.test("reject: size", () => {
  const verifier = makeVerifier();
  const packet = knockFrom(alice.privateKey);
  assert.deepEqual(
    verifier.verify(packet.subarray(0, 164), SOURCE, { nowMs: NOW_MS }),
    { ok: false, reason: "size" },
  );
});

Deno.test("reject: every length 0..1500 except 165 is 'size' without throwing", () => {
  const verifier = makeVerifier();
  const big = new Uint8Array(1500);
  big.set(knockFrom(alice.privateKey));
  for (let length = 0; length <= 1500; length++) {
    if (length === 165) continue;
    const result = verifier.verify(big.subarray(0, length), SOURCE, {
      nowMs: NOW_MS,
    });
    assert.deepEqual(result, { ok: false, reason: "size" }, `length ${length}`);
  }
});

Deno.test("reject: version", () => {
  const verifier = makeVerifier();
  for (const version of [0, 2, 0x81, 0xff]) {
    const packet = knockFrom(alice.privateKey);
    packet[0] = version;
    assert.deepEqual(verifier.verify(packet, SOURCE, { nowMs: NOW_MS }), {
      ok: false,
      reason: "version",
    });
  }
});

Deno.test("reject: rate_limit before any crypto, per source", () => {
  const verifier = makeVerifier({ rateLimit: { perSecond: 1, burst: 2 } });
  const garbage = new Uint8Array(165);
  garbage[0] = 1;
  const noisy = ip("198.51.100.66");
  assert.equal(verifier.verify(garbage, noisy, { nowMs: NOW_MS }).ok, false);
  assert.equal(verifier.verify(garbage, noisy, { nowMs: NOW_MS }).ok, false);
  // The third datagram is over the limit even though it is a valid knock.
  assert.deepEqual(
    verifier.verify(knockFrom(alice.privateKey), noisy, { nowMs: NOW_MS }),
    { ok: false, reason: "rate_limit" },
  );
  // Another source is unaffected.
  const other = verifier.verify(knockFrom(alice.privateKey), SOURCE, {
    nowMs: NOW_MS,
  });
  assert.equal(other.ok, true);
  // After a second the noisy source has a token again.
  const later = verifier.verify(
    knockFrom(alice.privateKey, { timestampNs: NOW_NS + 1_000_000_000n }),
    noisy,
    { nowMs: NOW_MS + 1000 },
  );
  assert.equal(later.ok, true);
});

Deno.test("size and version rejects do not spend rate-limit tokens", () => {
  const verifier = makeVerifier({ rateLimit: { perSecond: 0, burst: 1 } });
  const v2 = knockFrom(alice.privateKey);
  v2[0] = 2;
  for (let i = 0; i < 5; i++) {
    verifier.verify(new Uint8Array(10), SOURCE, { nowMs: NOW_MS });
    verifier.verify(v2, SOURCE, { nowMs: NOW_MS });
  }
  const result = verifier.verify(knockFrom(alice.privateKey), SOURCE, {
    nowMs: NOW_MS,
  });
  assert.equal(result.ok, true);
});

Deno.test("reject: decrypt (tampered ciphertext and foreign server key)", () => {
  const verifier = makeVerifier();
  const packet = knockFrom(alice.privateKey);
  packet[60] ^= 0x01;
  assert.deepEqual(verifier.verify(packet, SOURCE, { nowMs: NOW_MS }), {
    ok: false,
    reason: "decrypt",
  });
  const foreign = buildKnock({
    serverPublicKey: generateX25519KeyPair().publicKey,
    clientPrivateKey: alice.privateKey,
  }, { timestampNs: NOW_NS });
  assert.deepEqual(verifier.verify(foreign, SOURCE, { nowMs: NOW_MS }), {
    ok: false,
    reason: "decrypt",
  });
});

Deno.test("reject: stale (180 s old)", () => {
  const verifier = makeVerifier();
  const packet = knockFrom(alice.privateKey, {
    timestampNs: NOW_NS - 180_000_000_000n,
  });
  assert.deepEqual(verifier.verify(packet, SOURCE, { nowMs: NOW_MS }), {
    ok: false,
    reason: "stale",
  });
});

Deno.test("reject: stale also for a timestamp 180 s in the future", () => {
  const verifier = makeVerifier();
  const packet = knockFrom(alice.privateKey, {
    timestampNs: NOW_NS + 180_000_000_000n,
  });
  assert.deepEqual(verifier.verify(packet, SOURCE, { nowMs: NOW_MS }), {
    ok: false,
    reason: "stale",
  });
});

Deno.test("the timestamp window is inclusive: |now - ts| == window is accepted", () => {
  const verifier = makeVerifier();
  const windowNs = BigInt(WINDOW_MS) * 1_000_000n;
  for (const ts of [NOW_NS - windowNs, NOW_NS + windowNs]) {
    const result = verifier.verify(
      knockFrom(alice.privateKey, { timestampNs: ts }),
      SOURCE,
      { nowMs: NOW_MS },
    );
    assert.equal(result.ok, true, `timestamp ${ts}`);
  }
  for (const ts of [NOW_NS - windowNs - 1n, NOW_NS + windowNs + 1n]) {
    const result = verifier.verify(
      knockFrom(alice.privateKey, { timestampNs: ts }),
      SOURCE,
      { nowMs: NOW_MS },
    );
    assert.deepEqual(result, { ok: false, reason: "stale" }, `timestamp ${ts}`);
  }
});

Deno.test("reject: unknown_client", () => {
  const verifier = makeVerifier();
  assert.deepEqual(
    verifier.verify(knockFrom(mallory.privateKey), SOURCE, { nowMs: NOW_MS }),
    { ok: false, reason: "unknown_client" },
  );
});

Deno.test("reject: replay (the same packet twice)", () => {
  const verifier = makeVerifier();
  const packet = knockFrom(alice.privateKey);
  assert.equal(verifier.verify(packet, SOURCE, { nowMs: NOW_MS }).ok, true);
  assert.deepEqual(verifier.verify(packet, SOURCE, { nowMs: NOW_MS + 10 }), {
    ok: false,
    reason: "replay",
  });
  // From another source too.
  assert.deepEqual(
    verifier.verify(packet, ip("198.51.100.1"), { nowMs: NOW_MS + 20 }),
    { ok: false, reason: "replay" },
  );
});

Deno.test("a future-stamped knock stays a replay until its timestamp leaves the window", () => {
  const verifier = makeVerifier();
  const windowNs = BigInt(WINDOW_MS) * 1_000_000n;
  const packet = knockFrom(alice.privateKey, {
    timestampNs: NOW_NS + windowNs,
  });
  assert.equal(verifier.verify(packet, SOURCE, { nowMs: NOW_MS }).ok, true);
  // Just before the timestamp check would reject it, the nonce must still be remembered.
  const late = NOW_MS + 2 * WINDOW_MS - 1;
  assert.deepEqual(verifier.verify(packet, SOURCE, { nowMs: late }), {
    ok: false,
    reason: "replay",
  });
  assert.deepEqual(
    verifier.verify(packet, SOURCE, { nowMs: NOW_MS + 2 * WINDOW_MS + 1 }),
    { ok: false, reason: "stale" },
  );
});

Deno.test("reject: expired client (expires <= now), after the replay check", () => {
  const verifier = makeVerifier({
    clients: [{
      name: "alice",
      verifyKey: prepareEd25519VerifyKey(alice.publicKey),
      expires: new Date(NOW_MS),
    }],
  });
  const packet = knockFrom(alice.privateKey);
  assert.deepEqual(verifier.verify(packet, SOURCE, { nowMs: NOW_MS }), {
    ok: false,
    reason: "expired",
  });
  // The nonce was recorded: the same packet is now a replay.
  assert.deepEqual(verifier.verify(packet, SOURCE, { nowMs: NOW_MS }), {
    ok: false,
    reason: "replay",
  });
});

Deno.test("a client whose expiry is still in the future is accepted", () => {
  const verifier = makeVerifier({
    clients: [{
      name: "alice",
      verifyKey: prepareEd25519VerifyKey(alice.publicKey),
      expires: new Date(NOW_MS + 1),
    }],
  });
  const result = verifier.verify(knockFrom(alice.privateKey), SOURCE, {
    nowMs: NOW_MS,
  });
  assert.equal(result.ok, true);
});

Deno.test("the nonce is not recorded when the signature fails", () => {
  const verifier = makeVerifier();
  const replayNonce = randomBytes(16);
  const plaintext = { timestampNs: NOW_NS, replayNonce, target: null };
  const forged = sealKnock(
    { serverPublicKey: server.publicKey, clientPrivateKey: mallory.privateKey },
    plaintext,
  );
  const genuine = sealKnock(
    { serverPublicKey: server.publicKey, clientPrivateKey: alice.privateKey },
    plaintext,
  );
  assert.deepEqual(verifier.verify(forged, SOURCE, { nowMs: NOW_MS }), {
    ok: false,
    reason: "unknown_client",
  });
  const result = verifier.verify(genuine, SOURCE, { nowMs: NOW_MS + 1 });
  assert.equal(result.ok && result.client.name, "alice");
  // And a second genuine knock with that nonce is a replay.
  const again = sealKnock(
    { serverPublicKey: server.publicKey, clientPrivateKey: alice.privateKey },
    plaintext,
  );
  assert.deepEqual(verifier.verify(again, SOURCE, { nowMs: NOW_MS + 2 }), {
    ok: false,
    reason: "replay",
  });
});

Deno.test("setClients replaces clients and keeps the replay cache", () => {
  const verifier = makeVerifier();
  const packet = knockFrom(alice.privateKey);
  assert.equal(verifier.verify(packet, SOURCE, { nowMs: NOW_MS }).ok, true);
  verifier.setClients([
    { name: "alice2", verifyKey: prepareEd25519VerifyKey(alice.publicKey) },
  ]);
  assert.deepEqual(verifier.verify(packet, SOURCE, { nowMs: NOW_MS }), {
    ok: false,
    reason: "replay",
  });
  const fresh = verifier.verify(knockFrom(alice.privateKey), SOURCE, {
    nowMs: NOW_MS,
  });
  assert.equal(fresh.ok && fresh.client.name, "alice2");
  // Revoked: bob's knocks are now unknown, even from a source that used to send them.
  assert.deepEqual(
    verifier.verify(knockFrom(bob.privateKey), SOURCE, { nowMs: NOW_MS }),
    { ok: false, reason: "unknown_client" },
  );
});

Deno.test("a revoked client is refused even when it was the remembered signer for its source", () => {
  const verifier = makeVerifier();
  const source = ip("203.0.113.9");
  assert.equal(
    verifier.verify(knockFrom(bob.privateKey), source, { nowMs: NOW_MS }).ok,
    true,
  );
  verifier.setClients(clientsFor().filter((c) => c.name !== "bob"));
  assert.deepEqual(
    verifier.verify(knockFrom(bob.privateKey), source, { nowMs: NOW_MS }),
    { ok: false, reason: "unknown_client" },
  );
  assert.equal(
    verifier.verify(knockFrom(alice.privateKey), source, { nowMs: NOW_MS }).ok,
    true,
  );
});

Deno.test("different clients from one source are each recognised", () => {
  const verifier = makeVerifier();
  for (
    const [key, name] of [
      [alice.privateKey, "alice"],
      [bob.privateKey, "bob"],
      [alice.privateKey, "alice"],
    ] as const
  ) {
    const result = verifier.verify(knockFrom(key), SOURCE, { nowMs: NOW_MS });
    assert.equal(result.ok && result.client.name, name);
  }
});

Deno.test("the constructor refuses a server key of the wrong size", () => {
  assert.throws(
    () => makeVerifier({ serverPrivateKey: new Uint8Array(31) }),
    /X25519 private key.*32 bytes/,
  );
});

Deno.test("verify uses the real clock when nowMs is absent", () => {
  const verifier = makeVerifier();
  const packet = buildKnock({
    serverPublicKey: server.publicKey,
    clientPrivateKey: alice.privateKey,
  });
  assert.equal(verifier.verify(packet, SOURCE).ok, true);
});

Deno.test("setReplayWindow narrows the timestamp window and keeps remembered nonces", () => {
  const verifier = makeVerifier();
  const packet = knockFrom(alice.privateKey);
  assert.equal(verifier.verify(packet, SOURCE, { nowMs: NOW_MS }).ok, true);
  const old = knockFrom(alice.privateKey, {
    timestampNs: NOW_NS - 5_000_000_000n,
  });
  verifier.setReplayWindow(2000);
  assert.deepEqual(verifier.verify(old, SOURCE, { nowMs: NOW_MS }), {
    ok: false,
    reason: "stale",
  });
  assert.deepEqual(verifier.verify(packet, SOURCE, { nowMs: NOW_MS + 1000 }), {
    ok: false,
    reason: "replay",
  });
});

Deno.test("setReplayWindow widens the window and nonces are kept for twice the new window", () => {
  const verifier = makeVerifier({ replayWindowMs: 1000 });
  const future = knockFrom(alice.privateKey, {
    timestampNs: NOW_NS + 30_000_000_000n,
  });
  assert.deepEqual(verifier.verify(future, SOURCE, { nowMs: NOW_MS }), {
    ok: false,
    reason: "stale",
  });
  verifier.setReplayWindow(60_000);
  assert.equal(verifier.verify(future, SOURCE, { nowMs: NOW_MS }).ok, true);
  // 50 s later the packet is still inside the window: the nonce must still be known.
  assert.deepEqual(
    verifier.verify(future, SOURCE, { nowMs: NOW_MS + 50_000 }),
    { ok: false, reason: "replay" },
  );
});

Deno.test("the signature budget bounds checks for forged packets; a known source's client is tried for free", () => {
  // Budget of 3 checks: bob is second in the list, mallory matches nobody.
  const verifier = makeVerifier({
    signatureBudget: { perSecond: 3, burst: 3 },
  });
  const other = ip("198.51.100.7");
  // Forged (mallory) from one address: 2 checks (alice, bob) → unknown_client.
  assert.deepEqual(
    verifier.verify(knockFrom(mallory.privateKey), other, { nowMs: NOW_MS }),
    { ok: false, reason: "unknown_client" },
  );
  // One token left: bob's knock from a new source needs 2 checks → refused.
  assert.deepEqual(
    verifier.verify(knockFrom(bob.privateKey), SOURCE, { nowMs: NOW_MS }),
    { ok: false, reason: "rate_limit" },
  );
  // A second later the budget has refilled and bob gets in.
  const later = NOW_MS + 1000;
  const accepted = verifier.verify(
    knockFrom(bob.privateKey, { timestampNs: BigInt(later) * 1_000_000n }),
    SOURCE,
    { nowMs: later },
  );
  assert.equal(accepted.ok, true);
  // Spend the whole budget with forged packets, then bob's next knock from
  // the same source still passes: his key is tried first, without a token.
  verifier.verify(knockFrom(mallory.privateKey), other, { nowMs: later });
  verifier.verify(knockFrom(mallory.privateKey), other, { nowMs: later });
  const again = verifier.verify(
    knockFrom(bob.privateKey, { timestampNs: BigInt(later) * 1_000_000n }),
    SOURCE,
    { nowMs: later },
  );
  assert.equal(again.ok, true);
});
