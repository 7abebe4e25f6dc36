import assert from "node:assert/strict";
import {
  generateEd25519KeyPair,
  generateX25519KeyPair,
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
    { name: "alice", publicKey: alice.publicKey },
    { name: "bob", publicKey: bob.publicKey, expires: null },
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

Deno.test("a valid knock is accepted with its client and target", async () => {
  const clients = clientsFor();
  const verifier = makeVerifier({ clients });
  const result = await verifier.verify(
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

Deno.test("the second client's key is found too", async () => {
  const verifier = makeVerifier();
  const result = await verifier.verify(knockFrom(bob.privateKey), SOURCE, {
    nowMs: NOW_MS,
  });
  assert.equal(result.ok && result.client.name, "bob");
});

Deno.test("an IPv6 target is returned as sent", async () => {
  const verifier = makeVerifier();
  const result = await verifier.verify(
    knockFrom(alice.privateKey, { target: ip("2001:db8::5") }),
    SOURCE,
    { nowMs: NOW_MS },
  );
  assert.ok(result.ok);
  assert.deepEqual(result.target, { family: 6, text: "2001:db8::5" });
});

Deno.test("a wildcard target becomes the source address (IPv4 and IPv6)", async () => {
  const verifier = makeVerifier();
  const v4 = await verifier.verify(
    knockFrom(alice.privateKey),
    ip("192.0.2.44"),
    {
      nowMs: NOW_MS,
    },
  );
  assert.ok(v4.ok);
  assert.deepEqual(v4.target, { family: 4, text: "192.0.2.44" });
  const v6 = await verifier.verify(
    knockFrom(alice.privateKey, { target: null }),
    ip("2001:db8::77"),
    { nowMs: NOW_MS },
  );
  assert.ok(v6.ok);
  assert.deepEqual(v6.target, { family: 6, text: "2001:db8::77" });
});

Deno.test("a bare 32-byte seed and the 64-byte private key both sign accepted knocks", async () => {
  const verifier = makeVerifier();
  for (const key of [alice.privateKey.slice(0, 32), alice.privateKey]) {
    const result = await verifier.verify(knockFrom(key), SOURCE, {
      nowMs: NOW_MS,
    });
    assert.equal(result.ok && result.client.name, "alice");
  }
});

Deno.test("reject: size", async () => {
  const verifier = makeVerifier();
  const packet = knockFrom(alice.privateKey);
  assert.deepEqual(
    await verifier.verify(packet.subarray(0, 164), SOURCE, { nowMs: NOW_MS }),
    { ok: false, reason: "size" },
  );
});

Deno.test("reject: every length 0..1500 except 165 is 'size' without throwing", async () => {
  const verifier = makeVerifier();
  const big = new Uint8Array(1500);
  big.set(knockFrom(alice.privateKey));
  for (let length = 0; length <= 1500; length++) {
    if (length === 165) continue;
    const result = await verifier.verify(big.subarray(0, length), SOURCE, {
      nowMs: NOW_MS,
    });
    assert.deepEqual(result, { ok: false, reason: "size" }, `length ${length}`);
  }
});

Deno.test("reject: version", async () => {
  const verifier = makeVerifier();
  for (const version of [0, 2, 0x81, 0xff]) {
    const packet = knockFrom(alice.privateKey);
    packet[0] = version;
    assert.deepEqual(await verifier.verify(packet, SOURCE, { nowMs: NOW_MS }), {
      ok: false,
      reason: "version",
    });
  }
});

Deno.test("reject: rate_limit before any crypto, per source", async () => {
  const verifier = makeVerifier({ rateLimit: { perSecond: 1, burst: 2 } });
  const garbage = new Uint8Array(165);
  garbage[0] = 1;
  const noisy = ip("198.51.100.66");
  assert.equal(
    (await verifier.verify(garbage, noisy, { nowMs: NOW_MS })).ok,
    false,
  );
  assert.equal(
    (await verifier.verify(garbage, noisy, { nowMs: NOW_MS })).ok,
    false,
  );
  // The third datagram is over the limit even though it is a valid knock.
  assert.deepEqual(
    await verifier.verify(knockFrom(alice.privateKey), noisy, {
      nowMs: NOW_MS,
    }),
    { ok: false, reason: "rate_limit" },
  );
  // Another source is unaffected.
  const other = await verifier.verify(knockFrom(alice.privateKey), SOURCE, {
    nowMs: NOW_MS,
  });
  assert.equal(other.ok, true);
  // After a second the noisy source has a token again.
  const later = await verifier.verify(
    knockFrom(alice.privateKey, { timestampNs: NOW_NS + 1_000_000_000n }),
    noisy,
    { nowMs: NOW_MS + 1000 },
  );
  assert.equal(later.ok, true);
});

Deno.test("size and version rejects do not spend rate-limit tokens", async () => {
  const verifier = makeVerifier({ rateLimit: { perSecond: 0, burst: 1 } });
  const v2 = knockFrom(alice.privateKey);
  v2[0] = 2;
  for (let i = 0; i < 5; i++) {
    await verifier.verify(new Uint8Array(10), SOURCE, { nowMs: NOW_MS });
    await verifier.verify(v2, SOURCE, { nowMs: NOW_MS });
  }
  const result = await verifier.verify(knockFrom(alice.privateKey), SOURCE, {
    nowMs: NOW_MS,
  });
  assert.equal(result.ok, true);
});

Deno.test("reject: decrypt (tampered ciphertext and foreign server key)", async () => {
  const verifier = makeVerifier();
  const packet = knockFrom(alice.privateKey);
  packet[60] ^= 0x01;
  assert.deepEqual(await verifier.verify(packet, SOURCE, { nowMs: NOW_MS }), {
    ok: false,
    reason: "decrypt",
  });
  const foreign = buildKnock({
    serverPublicKey: generateX25519KeyPair().publicKey,
    clientPrivateKey: alice.privateKey,
  }, { timestampNs: NOW_NS });
  assert.deepEqual(await verifier.verify(foreign, SOURCE, { nowMs: NOW_MS }), {
    ok: false,
    reason: "decrypt",
  });
});

Deno.test("reject: stale (180 s old)", async () => {
  const verifier = makeVerifier();
  const packet = knockFrom(alice.privateKey, {
    timestampNs: NOW_NS - 180_000_000_000n,
  });
  assert.deepEqual(await verifier.verify(packet, SOURCE, { nowMs: NOW_MS }), {
    ok: false,
    reason: "stale",
  });
});

Deno.test("reject: stale also for a timestamp 180 s in the future", async () => {
  const verifier = makeVerifier();
  const packet = knockFrom(alice.privateKey, {
    timestampNs: NOW_NS + 180_000_000_000n,
  });
  assert.deepEqual(await verifier.verify(packet, SOURCE, { nowMs: NOW_MS }), {
    ok: false,
    reason: "stale",
  });
});

Deno.test("the timestamp window is inclusive: |now - ts| == window is accepted", async () => {
  const verifier = makeVerifier();
  const windowNs = BigInt(WINDOW_MS) * 1_000_000n;
  for (const ts of [NOW_NS - windowNs, NOW_NS + windowNs]) {
    const result = await verifier.verify(
      knockFrom(alice.privateKey, { timestampNs: ts }),
      SOURCE,
      { nowMs: NOW_MS },
    );
    assert.equal(result.ok, true, `timestamp ${ts}`);
  }
  for (const ts of [NOW_NS - windowNs - 1n, NOW_NS + windowNs + 1n]) {
    const result = await verifier.verify(
      knockFrom(alice.privateKey, { timestampNs: ts }),
      SOURCE,
      { nowMs: NOW_MS },
    );
    assert.deepEqual(result, { ok: false, reason: "stale" }, `timestamp ${ts}`);
  }
});

Deno.test("reject: unknown_client", async () => {
  const verifier = makeVerifier();
  assert.deepEqual(
    await verifier.verify(knockFrom(mallory.privateKey), SOURCE, {
      nowMs: NOW_MS,
    }),
    { ok: false, reason: "unknown_client" },
  );
});

Deno.test("reject: replay (the same packet twice)", async () => {
  const verifier = makeVerifier();
  const packet = knockFrom(alice.privateKey);
  assert.equal(
    (await verifier.verify(packet, SOURCE, { nowMs: NOW_MS })).ok,
    true,
  );
  assert.deepEqual(
    await verifier.verify(packet, SOURCE, { nowMs: NOW_MS + 10 }),
    {
      ok: false,
      reason: "replay",
    },
  );
  // From another source too.
  assert.deepEqual(
    await verifier.verify(packet, ip("198.51.100.1"), { nowMs: NOW_MS + 20 }),
    { ok: false, reason: "replay" },
  );
});

Deno.test("a future-stamped knock stays a replay until its timestamp leaves the window", async () => {
  const verifier = makeVerifier();
  const windowNs = BigInt(WINDOW_MS) * 1_000_000n;
  const packet = knockFrom(alice.privateKey, {
    timestampNs: NOW_NS + windowNs,
  });
  assert.equal(
    (await verifier.verify(packet, SOURCE, { nowMs: NOW_MS })).ok,
    true,
  );
  // Just before the timestamp check would reject it, the nonce must still be remembered.
  const late = NOW_MS + 2 * WINDOW_MS - 1;
  assert.deepEqual(await verifier.verify(packet, SOURCE, { nowMs: late }), {
    ok: false,
    reason: "replay",
  });
  assert.deepEqual(
    await verifier.verify(packet, SOURCE, {
      nowMs: NOW_MS + 2 * WINDOW_MS + 1,
    }),
    { ok: false, reason: "stale" },
  );
});

Deno.test("reject: expired client (expires <= now), after the replay check", async () => {
  const verifier = makeVerifier({
    clients: [{
      name: "alice",
      publicKey: alice.publicKey,
      expires: new Date(NOW_MS),
    }],
  });
  const packet = knockFrom(alice.privateKey);
  assert.deepEqual(await verifier.verify(packet, SOURCE, { nowMs: NOW_MS }), {
    ok: false,
    reason: "expired",
  });
  // The nonce was recorded: the same packet is now a replay.
  assert.deepEqual(await verifier.verify(packet, SOURCE, { nowMs: NOW_MS }), {
    ok: false,
    reason: "replay",
  });
});

Deno.test("a client whose expiry is still in the future is accepted", async () => {
  const verifier = makeVerifier({
    clients: [{
      name: "alice",
      publicKey: alice.publicKey,
      expires: new Date(NOW_MS + 1),
    }],
  });
  const result = await verifier.verify(knockFrom(alice.privateKey), SOURCE, {
    nowMs: NOW_MS,
  });
  assert.equal(result.ok, true);
});

Deno.test("the nonce is not recorded when the signature fails", async () => {
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
  assert.deepEqual(await verifier.verify(forged, SOURCE, { nowMs: NOW_MS }), {
    ok: false,
    reason: "unknown_client",
  });
  const result = await verifier.verify(genuine, SOURCE, { nowMs: NOW_MS + 1 });
  assert.equal(result.ok && result.client.name, "alice");
  // And a second genuine knock with that nonce is a replay.
  const again = sealKnock(
    { serverPublicKey: server.publicKey, clientPrivateKey: alice.privateKey },
    plaintext,
  );
  assert.deepEqual(
    await verifier.verify(again, SOURCE, { nowMs: NOW_MS + 2 }),
    {
      ok: false,
      reason: "replay",
    },
  );
});

Deno.test("setClients replaces clients and keeps the replay cache", async () => {
  const verifier = makeVerifier();
  const packet = knockFrom(alice.privateKey);
  assert.equal(
    (await verifier.verify(packet, SOURCE, { nowMs: NOW_MS })).ok,
    true,
  );
  verifier.setClients([
    { name: "alice2", publicKey: alice.publicKey },
  ]);
  assert.deepEqual(await verifier.verify(packet, SOURCE, { nowMs: NOW_MS }), {
    ok: false,
    reason: "replay",
  });
  const fresh = await verifier.verify(knockFrom(alice.privateKey), SOURCE, {
    nowMs: NOW_MS,
  });
  assert.equal(fresh.ok && fresh.client.name, "alice2");
  // Revoked: bob's knocks are now unknown, even from a source that used to send them.
  assert.deepEqual(
    await verifier.verify(knockFrom(bob.privateKey), SOURCE, { nowMs: NOW_MS }),
    { ok: false, reason: "unknown_client" },
  );
});

Deno.test("a revoked client is refused even when it was the remembered signer for its source", async () => {
  const verifier = makeVerifier();
  const source = ip("203.0.113.9");
  assert.equal(
    (await verifier.verify(knockFrom(bob.privateKey), source, {
      nowMs: NOW_MS,
    })).ok,
    true,
  );
  verifier.setClients(clientsFor().filter((c) => c.name !== "bob"));
  assert.deepEqual(
    await verifier.verify(knockFrom(bob.privateKey), source, { nowMs: NOW_MS }),
    { ok: false, reason: "unknown_client" },
  );
  assert.equal(
    (await verifier.verify(knockFrom(alice.privateKey), source, {
      nowMs: NOW_MS,
    })).ok,
    true,
  );
});

Deno.test("different clients from one source are each recognised", async () => {
  const verifier = makeVerifier();
  for (
    const [key, name] of [
      [alice.privateKey, "alice"],
      [bob.privateKey, "bob"],
      [alice.privateKey, "alice"],
    ] as const
  ) {
    const result = await verifier.verify(knockFrom(key), SOURCE, {
      nowMs: NOW_MS,
    });
    assert.equal(result.ok && result.client.name, name);
  }
});

Deno.test("the constructor refuses a server key of the wrong size", () => {
  assert.throws(
    () => makeVerifier({ serverPrivateKey: new Uint8Array(31) }),
    /X25519 private key.*32 bytes/,
  );
});

Deno.test("verify uses the real clock when nowMs is absent", async () => {
  const verifier = makeVerifier();
  const packet = buildKnock({
    serverPublicKey: server.publicKey,
    clientPrivateKey: alice.privateKey,
  });
  assert.equal((await verifier.verify(packet, SOURCE)).ok, true);
});

Deno.test("setReplayWindow narrows the timestamp window and keeps remembered nonces", async () => {
  const verifier = makeVerifier();
  const packet = knockFrom(alice.privateKey);
  assert.equal(
    (await verifier.verify(packet, SOURCE, { nowMs: NOW_MS })).ok,
    true,
  );
  const old = knockFrom(alice.privateKey, {
    timestampNs: NOW_NS - 5_000_000_000n,
  });
  verifier.setReplayWindow(2000);
  assert.deepEqual(await verifier.verify(old, SOURCE, { nowMs: NOW_MS }), {
    ok: false,
    reason: "stale",
  });
  assert.deepEqual(
    await verifier.verify(packet, SOURCE, { nowMs: NOW_MS + 1000 }),
    {
      ok: false,
      reason: "replay",
    },
  );
});

Deno.test("setReplayWindow widens the window and nonces are kept for twice the new window", async () => {
  const verifier = makeVerifier({ replayWindowMs: 1000 });
  const future = knockFrom(alice.privateKey, {
    timestampNs: NOW_NS + 30_000_000_000n,
  });
  assert.deepEqual(await verifier.verify(future, SOURCE, { nowMs: NOW_MS }), {
    ok: false,
    reason: "stale",
  });
  verifier.setReplayWindow(60_000);
  assert.equal(
    (await verifier.verify(future, SOURCE, { nowMs: NOW_MS })).ok,
    true,
  );
  // 50 s later the packet is still inside the window: the nonce must still be known.
  assert.deepEqual(
    await verifier.verify(future, SOURCE, { nowMs: NOW_MS + 50_000 }),
    { ok: false, reason: "replay" },
  );
});

Deno.test("require_explicit_target: a knock for the source address is dropped, one naming an address opens for that address", async () => {
  const verifier = makeVerifier({ requireExplicitTarget: true });
  assert.deepEqual(
    await verifier.verify(knockFrom(alice.privateKey), SOURCE, {
      nowMs: NOW_MS,
    }),
    { ok: false, reason: "target_required" },
  );
  const named = ip("198.51.100.20");
  const result = await verifier.verify(
    knockFrom(alice.privateKey, { target: named }),
    SOURCE,
    { nowMs: NOW_MS },
  );
  assert.ok(result.ok);
  assert.deepEqual(result.target, named);
  // Off again (a reload): the source address is opened.
  verifier.requireExplicitTarget = false;
  const wildcard = await verifier.verify(knockFrom(alice.privateKey), SOURCE, {
    nowMs: NOW_MS,
  });
  assert.ok(wildcard.ok);
  assert.deepEqual(wildcard.target, SOURCE);
});

Deno.test("a copy of an explicit-target knock sent first from another address opens only the named address, and the original is then a replay", async () => {
  const verifier = makeVerifier({ requireExplicitTarget: true });
  const named = ip("198.51.100.20");
  const knock = knockFrom(alice.privateKey, { target: named });
  const attacker = ip("203.0.113.66");
  const copy = await verifier.verify(knock.slice(), attacker, {
    nowMs: NOW_MS,
  });
  assert.ok(copy.ok);
  assert.deepEqual(copy.target, named, "never the sender's address");
  assert.deepEqual(await verifier.verify(knock, named, { nowMs: NOW_MS }), {
    ok: false,
    reason: "replay",
  });
});

/** The reproduction of a budget exhausted by forged knocks: 50 clients, alice last, a budget of 10,000 checks that does not refill unless the test moves the clock. */
function budgetScene(): {
  verifier: KnockVerifier;
  clients: VerifierClient[];
  clock: { ms: number };
} {
  const others = Array.from({ length: 49 }, (_, i) => ({
    name: `c${i}`,
    publicKey: generateEd25519KeyPair().publicKey,
  }));
  const clients = [...others, { name: "alice", publicKey: alice.publicKey }];
  const clock = { ms: NOW_MS };
  const verifier = makeVerifier({
    clients,
    clock: () => clock.ms,
    search: { budget: { perSecond: 10_000, burst: 10_000 } },
  });
  return { verifier, clients, clock };
}

/** The promise's value, or a failure after a generous 10 s (the real wait is a few ms). */
async function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), 10_000);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** A knock with a random replay nonce, as other v1 clients build it (no key hint). */
function unhintedKnock(privateKey: Uint8Array): Uint8Array {
  return sealKnock(
    { serverPublicKey: server.publicKey, clientPrivateKey: privateKey },
    { timestampNs: NOW_NS, replayNonce: randomBytes(16), target: null },
  );
}

/** 300 forged knocks (a key no client has, with the server's public key) from 300 sources in two /24s, alternating. */
function forgeries(): { knock: Uint8Array; source: IpAddress }[] {
  return Array.from({ length: 300 }, (_, i) => ({
    knock: knockFrom(mallory.privateKey),
    source: ip(`${i % 2 ? "198.51.100" : "203.0.113"}.${(i >> 1) + 1}`),
  }));
}

Deno.test("forged knocks that spend the signature budget leave a known client from its last address in at once, and the rest is sent fairly per source prefix", async () => {
  const { verifier, clock } = budgetScene();
  try {
    const home = ip("192.0.2.10");
    const first = await verifier.verify(knockFrom(alice.privateKey), home);
    assert.equal(first.ok && first.client.name, "alice");
    const forged = forgeries().map(({ knock, source }) =>
      verifier.verify(knock, source)
    );
    // 200 scans of 50 checks spend the budget; the 100 others wait.
    assert.equal(forged.filter((r) => r instanceof Promise).length, 100);
    for (const result of forged) {
      if (!(result instanceof Promise)) {
        assert.deepEqual(result, { ok: false, reason: "unknown_client" });
      }
    }
    // From the address she knocked from, her key is tried first, for free.
    const again = verifier.verify(unhintedKnock(alice.privateKey), home);
    assert.ok(!(again instanceof Promise) && again.ok);
    // From a new address she needs a scan: it waits for its turn, which
    // comes third (after one scan of each forged /24), not after all 100.
    const roaming = verifier.verify(
      unhintedKnock(alice.privateKey),
      ip("192.0.2.77"),
    );
    assert.ok(roaming instanceof Promise);
    clock.ms += 15; // 150 checks: three scans of 50
    const late = await within(roaming, "alice's scan to run");
    assert.equal(late.ok && late.client.name, "alice");
  } finally {
    verifier.close();
  }
});

Deno.test("a knock from our client (key hint) from a new address gets in at once while forged knocks have spent the budget", () => {
  const { verifier } = budgetScene();
  try {
    for (const { knock, source } of forgeries()) verifier.verify(knock, source);
    const result = verifier.verify(
      knockFrom(alice.privateKey),
      ip("192.0.2.5"),
    );
    assert.ok(!(result instanceof Promise) && result.ok);
    assert.equal(result.client.name, "alice");
  } finally {
    verifier.close();
  }
});

Deno.test("a reload keeps the last addresses of clients whose key did not change, and forgets those of a changed key", async () => {
  const { verifier, clients } = budgetScene();
  try {
    const home = ip("192.0.2.10");
    const bobHome = ip("192.0.2.20");
    const bobPair = generateEd25519KeyPair();
    verifier.setClients([...clients, {
      name: "bob",
      publicKey: bobPair.publicKey,
    }]);
    for (const [key, from] of [[alice, home], [bobPair, bobHome]] as const) {
      const result = await verifier.verify(unhintedKnock(key.privateKey), from);
      assert.ok(result.ok);
    }
    for (const { knock, source } of forgeries()) verifier.verify(knock, source);
    // The same keys under new objects (a reload), bob with a new key.
    const reloaded = [
      ...clients.map((c) => ({ ...c })),
      { name: "bob", publicKey: generateEd25519KeyPair().publicKey },
    ];
    verifier.setClients(reloaded);
    const result = verifier.verify(unhintedKnock(alice.privateKey), home);
    assert.ok(!(result instanceof Promise), "alice needed the spent budget");
    assert.ok(result.ok);
    assert.equal(result.client, reloaded.at(-2), "the reloaded alice");
    // Bob's old key is gone: from his address it is a scan (which waits).
    const oldBob = verifier.verify(unhintedKnock(bobPair.privateKey), bobHome);
    assert.ok(oldBob instanceof Promise);
  } finally {
    verifier.close();
  }
});
