/**
 * In-process benchmarks of the knock verification path (`deno task bench`):
 *
 * - group "floor": the crypto every valid knock costs at least — X25519 with
 *   the packet's ephemeral key, HKDF-SHA256, ChaCha20-Poly1305 open and one
 *   Ed25519 verify — each alone and all four together (the baseline).
 * - group "verify": `KnockVerifier.verify` on a valid knock, a 165-byte junk
 *   datagram with version 1, and a 40-byte datagram, against the floor.
 * - groups "clients N": with 1, 100 and 1000 registered clients, a valid
 *   knock by the client that matches last (a new source each time, so the
 *   per-source cache cannot help), the same from a source whose last match is
 *   cached, and 165-byte junk (which never reaches the client scan).
 * - group "x25519": the floor's X25519 split into its two `node:crypto`
 *   calls (wrapping the ephemeral key in a KeyObject, then diffieHellman),
 *   and WebCrypto's X25519 (asynchronous) for comparison.
 *
 * Knocks are built before timing starts; each measured call gets a distinct
 * packet (the verifier is replaced when a pool wraps, so no call is a replay).
 *
 * @module
 */

import {
  chacha20Poly1305Open,
  ed25519Verify,
  generateEd25519KeyPair,
  generateX25519KeyPair,
  hkdfSha256,
  prepareEd25519VerifyKey,
  prepareX25519PrivateKey,
  x25519SharedSecret,
} from "../lib/protocol/crypto.ts";
import type { IpAddress } from "../lib/ip.ts";
import { Buffer } from "node:buffer";
import { createPrivateKey, createPublicKey, diffieHellman } from "node:crypto";
import {
  AEAD_NONCE_BYTES,
  AEAD_NONCE_OFFSET,
  buildKnock,
  CIPHERTEXT_BYTES,
  CIPHERTEXT_OFFSET,
  EPHEMERAL_KEY_BYTES,
  EPHEMERAL_KEY_OFFSET,
  KNOCK_PACKET_BYTES,
  PROTOCOL_VERSION,
  SIGNATURE_BYTES,
  SIGNATURE_OFFSET,
  SIGNED_BYTES,
} from "../lib/protocol/packet.ts";
import {
  KnockVerifier,
  type VerifierClient,
  type VerifyResult,
} from "../lib/server/verifier.ts";
import { cryptoFloor, field, KDF_INFO_BYTES } from "./crypto_floor.ts";

/** Distinct valid knocks per pool. */
const POOL = 1000;
/** Client counts of the scaling groups. */
const CLIENT_COUNTS = [1, 100, 1000];
/** Replay window of the bench verifiers: long enough for the whole run. */
const REPLAY_WINDOW_MS = 3_600_000;
const SOURCE: IpAddress = { family: 4, text: "192.0.2.2" };

const server = generateX25519KeyPair();
const serverKey = prepareX25519PrivateKey(server.privateKey);

function makeClients(count: number): {
  clients: VerifierClient[];
  lastPrivateKey: Uint8Array;
} {
  const clients: VerifierClient[] = [];
  let lastPrivateKey: Uint8Array = new Uint8Array(0);
  for (let i = 0; i < count; i++) {
    const pair = generateEd25519KeyPair();
    clients.push({
      name: `client${i}`,
      publicKey: pair.publicKey,
    });
    lastPrivateKey = pair.privateKey;
  }
  return { clients, lastPrivateKey };
}

function knocks(clientPrivateKey: Uint8Array, count: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    out.push(
      buildKnock({ serverPublicKey: server.publicKey, clientPrivateKey }),
    );
  }
  return out;
}

function junk165(count: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const datagram = new Uint8Array(KNOCK_PACKET_BYTES);
    crypto.getRandomValues(datagram);
    datagram[0] = PROTOCOL_VERSION;
    out.push(datagram);
  }
  return out;
}

/** A decision of a verifier without a signature budget, which never waits. */
function decided(result: VerifyResult | Promise<VerifyResult>): VerifyResult {
  if (result instanceof Promise) throw new Error("the decision was deferred");
  return result;
}

/** Serves distinct packets to a fresh verifier; swaps the verifier when the pool wraps. */
class ValidFeed {
  #packets: Uint8Array[];
  #makeVerifier: () => KnockVerifier;
  #verifier: KnockVerifier;
  #next = 0;

  constructor(packets: Uint8Array[], makeVerifier: () => KnockVerifier) {
    this.#packets = packets;
    this.#makeVerifier = makeVerifier;
    this.#verifier = makeVerifier();
  }

  verifyNext(source: IpAddress): void {
    if (this.#next === this.#packets.length) {
      this.#next = 0;
      this.#verifier = this.#makeVerifier();
    }
    const result = decided(
      this.#verifier.verify(this.#packets[this.#next++], source),
    );
    if (!result.ok) throw new Error(`valid knock rejected: ${result.reason}`);
  }
}

// ---------------------------------------------------------------------------
// floor

const floorClient = generateEd25519KeyPair();
const floorVerifyKey = prepareEd25519VerifyKey(floorClient.publicKey);
const floorPackets = knocks(floorClient.privateKey, POOL);
let floorIndex = 0;

function nextFloorPacket(): Uint8Array {
  floorIndex = (floorIndex + 1) % floorPackets.length;
  return floorPackets[floorIndex];
}

/** The whole floor on the next packet; throws when the knock does not open and verify. */
function floorKnock(): void {
  if (!cryptoFloor(serverKey, floorVerifyKey, nextFloorPacket())) {
    throw new Error("floor: the knock did not open and verify");
  }
}

/** The floor's X25519 alone, on the next packet. */
function floorX25519(): void {
  x25519SharedSecret(
    serverKey,
    field(nextFloorPacket(), EPHEMERAL_KEY_OFFSET, EPHEMERAL_KEY_BYTES),
  );
}

const samplePacket = floorPackets[0];
const sampleShared = x25519SharedSecret(
  serverKey,
  field(samplePacket, EPHEMERAL_KEY_OFFSET, EPHEMERAL_KEY_BYTES),
);
const sampleKey = hkdfSha256(sampleShared, {
  info: KDF_INFO_BYTES,
  length: 32,
});

Deno.bench({
  name: "floor: X25519 + HKDF + ChaCha20-Poly1305 open + Ed25519 verify",
  group: "floor",
  baseline: true,
  fn: floorKnock,
});

Deno.bench({
  name: "floor: X25519 alone",
  group: "floor",
  fn: floorX25519,
});

Deno.bench({
  name: "floor: HKDF-SHA256 alone",
  group: "floor",
  fn(): void {
    hkdfSha256(sampleShared, { info: KDF_INFO_BYTES, length: 32 });
  },
});

Deno.bench({
  name: "floor: ChaCha20-Poly1305 open alone (valid)",
  group: "floor",
  fn(): void {
    chacha20Poly1305Open(
      sampleKey,
      field(samplePacket, AEAD_NONCE_OFFSET, AEAD_NONCE_BYTES),
      field(samplePacket, CIPHERTEXT_OFFSET, CIPHERTEXT_BYTES),
    );
  },
});

const badCiphertext = field(samplePacket, CIPHERTEXT_OFFSET, CIPHERTEXT_BYTES)
  .slice();
badCiphertext[0] ^= 1;

Deno.bench({
  name: "floor: ChaCha20-Poly1305 open alone (bad tag)",
  group: "floor",
  fn(): void {
    chacha20Poly1305Open(
      sampleKey,
      field(samplePacket, AEAD_NONCE_OFFSET, AEAD_NONCE_BYTES),
      badCiphertext,
    );
  },
});

Deno.bench({
  name: "floor: Ed25519 verify alone",
  group: "floor",
  fn(): void {
    ed25519Verify(
      floorVerifyKey,
      samplePacket.subarray(0, SIGNED_BYTES),
      field(samplePacket, SIGNATURE_OFFSET, SIGNATURE_BYTES),
    );
  },
});

// ---------------------------------------------------------------------------
// x25519: where the X25519 of the floor goes, and the alternatives Deno has

/** SPKI DER prefix of a raw X25519 public key (as lib/crypto.ts wraps it). */
const X25519_SPKI_PREFIX_HEX = "302a300506032b656e032100";
/** PKCS#8 DER prefix of a raw X25519 private key. */
const X25519_PKCS8_PREFIX_HEX = "302e020100300506032b656e04220420";
const spkiScratch = Buffer.alloc(12 + EPHEMERAL_KEY_BYTES);
spkiScratch.set(Buffer.from(X25519_SPKI_PREFIX_HEX, "hex"), 0);
const nodeServerKey = createPrivateKey({
  key: Buffer.concat([
    Buffer.from(X25519_PKCS8_PREFIX_HEX, "hex"),
    server.privateKey,
  ]),
  format: "der",
  type: "pkcs8",
});
const ephemeralKeyObjects = floorPackets.slice(0, POOL).map((packet) => {
  spkiScratch.set(field(packet, EPHEMERAL_KEY_OFFSET, EPHEMERAL_KEY_BYTES), 12);
  return createPublicKey({ key: spkiScratch, format: "der", type: "spki" });
});
const ephemeralRaw = floorPackets.slice(0, POOL).map((packet) =>
  packet.slice(EPHEMERAL_KEY_OFFSET, EPHEMERAL_KEY_OFFSET + EPHEMERAL_KEY_BYTES)
);
let ephemeralIndex = 0;
const webServerKey = await crypto.subtle.importKey(
  "pkcs8",
  Buffer.concat([
    Buffer.from(X25519_PKCS8_PREFIX_HEX, "hex"),
    server.privateKey,
  ]),
  { name: "X25519" },
  false,
  ["deriveBits"],
);

Deno.bench({
  name: "x25519: x25519SharedSecret (as the floor)",
  group: "x25519",
  baseline: true,
  fn: floorX25519,
});

Deno.bench({
  name: "x25519: createPublicKey from SPKI DER alone",
  group: "x25519",
  fn(): void {
    const packet = nextFloorPacket();
    spkiScratch.set(
      field(packet, EPHEMERAL_KEY_OFFSET, EPHEMERAL_KEY_BYTES),
      12,
    );
    createPublicKey({ key: spkiScratch, format: "der", type: "spki" });
  },
});

Deno.bench({
  name: "x25519: diffieHellman alone (KeyObjects made beforehand)",
  group: "x25519",
  fn(): void {
    const publicKey =
      ephemeralKeyObjects[ephemeralIndex++ % ephemeralKeyObjects.length];
    diffieHellman({ privateKey: nodeServerKey, publicKey });
  },
});

Deno.bench({
  name: "x25519: WebCrypto importKey (raw) + deriveBits, awaited",
  group: "x25519",
  async fn(): Promise<void> {
    const raw = ephemeralRaw[ephemeralIndex++ % ephemeralRaw.length];
    const publicKey = await crypto.subtle.importKey(
      "raw",
      raw,
      { name: "X25519" },
      false,
      [],
    );
    await crypto.subtle.deriveBits(
      { name: "X25519", public: publicKey },
      webServerKey,
      256,
    );
  },
});

// ---------------------------------------------------------------------------
// verify

const verifyFeed = new ValidFeed(
  knocks(floorClient.privateKey, POOL),
  () =>
    new KnockVerifier({
      serverPrivateKey: server.privateKey,
      replayWindowMs: REPLAY_WINDOW_MS,
      clients: [{ name: "alice", publicKey: floorClient.publicKey }],
    }),
);
const junkVerifier = new KnockVerifier({
  serverPrivateKey: server.privateKey,
  replayWindowMs: REPLAY_WINDOW_MS,
  clients: [{ name: "alice", publicKey: floorClient.publicKey }],
});
const junkPool = junk165(POOL);
let junkIndex = 0;
const shortJunk = new Uint8Array(40);
crypto.getRandomValues(shortJunk);

Deno.bench({
  name: "verify: crypto floor (same as group floor)",
  group: "verify",
  baseline: true,
  fn: floorKnock,
});

Deno.bench({
  name: "verify: valid knock (1 client)",
  group: "verify",
  fn(): void {
    verifyFeed.verifyNext(SOURCE);
  },
});

Deno.bench({
  name: "verify: 165-byte junk, version 1",
  group: "verify",
  fn(): void {
    junkIndex = (junkIndex + 1) % junkPool.length;
    const result = decided(junkVerifier.verify(junkPool[junkIndex], SOURCE));
    if (result.ok) throw new Error("junk accepted");
  },
});

Deno.bench({
  name: "verify: 40-byte junk",
  group: "verify",
  fn(): void {
    junkVerifier.verify(shortJunk, SOURCE);
  },
});

// ---------------------------------------------------------------------------
// scaling with the number of registered clients

let sourceCounter = 0;

/** A source address never seen before (so no cached last match applies). */
function freshSource(): IpAddress {
  sourceCounter++;
  return {
    family: 6,
    text: `2001:db8::${(sourceCounter >>> 16).toString(16)}:${
      (sourceCounter & 0xffff).toString(16)
    }`,
  };
}

for (const count of CLIENT_COUNTS) {
  const { clients, lastPrivateKey } = makeClients(count);
  const makeVerifier = (): KnockVerifier =>
    new KnockVerifier({
      serverPrivateKey: server.privateKey,
      replayWindowMs: REPLAY_WINDOW_MS,
      clients,
    });
  // Fewer packets for the slow case: a 1000-client scan takes milliseconds.
  const poolSize = count >= 1000 ? 200 : POOL;
  const coldFeed = new ValidFeed(
    knocks(lastPrivateKey, poolSize),
    makeVerifier,
  );
  const warmPackets = knocks(lastPrivateKey, POOL);
  let warmVerifier = makeVerifier();
  let warmIndex = 0;
  const prime = (): void => {
    // The first knock from SOURCE scans every client and caches the match.
    const result = decided(
      warmVerifier.verify(knocks(lastPrivateKey, 1)[0], SOURCE),
    );
    if (!result.ok) throw new Error(`priming failed: ${result.reason}`);
  };
  prime();
  const scaleJunkVerifier = makeVerifier();
  const group = `clients ${count}`;

  Deno.bench({
    name: `${count} clients: 165-byte junk`,
    group,
    baseline: true,
    fn(): void {
      junkIndex = (junkIndex + 1) % junkPool.length;
      scaleJunkVerifier.verify(junkPool[junkIndex], SOURCE);
    },
  });

  Deno.bench({
    name: `${count} clients: valid knock, last client, new source`,
    group,
    fn(): void {
      coldFeed.verifyNext(freshSource());
    },
  });

  Deno.bench({
    name: `${count} clients: valid knock, last client, cached source`,
    group,
    fn(b: Deno.BenchContext): void {
      if (warmIndex === warmPackets.length) {
        // Not timed: a fresh verifier, primed with one full scan.
        warmIndex = 0;
        warmVerifier = makeVerifier();
        prime();
      }
      const packet = warmPackets[warmIndex++];
      b.start();
      const result = decided(warmVerifier.verify(packet, SOURCE));
      b.end();
      if (!result.ok) throw new Error(`rejected: ${result.reason}`);
    },
  });
}
