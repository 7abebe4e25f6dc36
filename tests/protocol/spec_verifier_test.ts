/**
 * Knocks from our client, checked by a verifier written from SPEC §1 and §2
 * alone with raw `node:crypto` (none of openme's code): the key hint in the
 * replay nonce keeps them valid v1 for any server that treats the nonce as
 * opaque bytes that must be unique.
 */

import assert from "node:assert/strict";
import {
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
  verify,
} from "node:crypto";
import { Buffer } from "node:buffer";
import { buildKnock } from "../../lib/protocol/packet.ts";
import { ip } from "../support/literals.ts";

/** An OKP JWK of raw key bytes (RFC 8037). */
function jwk(crv: "X25519" | "Ed25519", x: Uint8Array, d?: Uint8Array) {
  const b64url = (bytes: Uint8Array) =>
    bytes.toBase64({ alphabet: "base64url", omitPadding: true });
  return {
    key: { kty: "OKP", crv, x: b64url(x), ...(d ? { d: b64url(d) } : {}) },
    format: "jwk" as const,
  };
}

/** A v1 server's view of a knock, per SPEC §1-§2: null when it is dropped, with the reason. */
class SpecVerifier {
  #serverKey: KeyObject;
  #clientKey: KeyObject;
  #seen = new Set<string>();

  constructor(
    server: { privateKey: Uint8Array; publicKey: Uint8Array },
    clientPublicKey: Uint8Array,
  ) {
    this.#serverKey = createPrivateKey(
      jwk("X25519", server.publicKey, server.privateKey),
    );
    this.#clientKey = createPublicKey(jwk("Ed25519", clientPublicKey));
  }

  check(datagram: Uint8Array, nowMs: number): { target: Uint8Array } | string {
    if (datagram.length !== 165) return "size";
    if (datagram[0] !== 0x01) return "version";
    const plaintext = this.open(datagram);
    if (plaintext === null) return "decrypt";
    const timestampNs = plaintext.readBigInt64BE(0);
    const skewNs = BigInt(nowMs) * 1_000_000n - timestampNs;
    if (skewNs > 60_000_000_000n || skewNs < -60_000_000_000n) return "stale";
    const signed = datagram.subarray(0, 101);
    const signature = datagram.subarray(101, 165);
    if (!verify(null, signed, this.#clientKey, signature)) return "signature";
    // The replay nonce is opaque: it only has to be new.
    const replayNonce = plaintext.subarray(8, 24).toString("hex");
    if (this.#seen.has(replayNonce)) return "replay";
    this.#seen.add(replayNonce);
    return { target: new Uint8Array(plaintext.subarray(24, 40)) };
  }

  /** The 40-byte plaintext of a 165-byte knock, or null when it does not decrypt. */
  open(datagram: Uint8Array): Buffer | null {
    const ephemeral = datagram.subarray(1, 33);
    const nonce = datagram.subarray(33, 45);
    const sealed = datagram.subarray(45, 101);
    const shared = diffieHellman({
      privateKey: this.#serverKey,
      publicKey: createPublicKey(jwk("X25519", ephemeral)),
    });
    const key = Buffer.from(
      hkdfSync(
        "sha256",
        shared,
        Buffer.alloc(0),
        "openme-v1-chacha20poly1305",
        32,
      ),
    );
    try {
      const decipher = createDecipheriv("chacha20-poly1305", key, nonce, {
        authTagLength: 16,
      });
      decipher.setAuthTag(sealed.subarray(40));
      return Buffer.concat([
        decipher.update(sealed.subarray(0, 40)),
        decipher.final(),
      ]);
    } catch {
      return null;
    }
  }
}

/** Raw key bytes of a fresh key pair, from JWK exports. */
function rawPair(type: "x25519" | "ed25519") {
  const pair = type === "x25519"
    ? generateKeyPairSync("x25519")
    : generateKeyPairSync("ed25519");
  const exported = pair.privateKey.export({ format: "jwk" });
  return {
    privateKey: Uint8Array.fromBase64(exported.d!, { alphabet: "base64url" }),
    publicKey: Uint8Array.fromBase64(exported.x!, { alphabet: "base64url" }),
  };
}

Deno.test("knocks from our client pass a verifier written from the SPEC's steps alone", () => {
  const server = rawPair("x25519");
  const client = rawPair("ed25519");
  const seed = client.privateKey;
  const spec = new SpecVerifier(server, client.publicKey);
  const nowMs = Date.now();
  const keys = {
    serverPublicKey: server.publicKey,
    clientPrivateKey: new Uint8Array([...seed, ...client.publicKey]),
  };
  const wildcard = spec.check(buildKnock(keys), nowMs);
  assert.ok(typeof wildcard !== "string", `dropped: ${wildcard}`);
  assert.deepEqual(wildcard.target, new Uint8Array(16));
  const named = spec.check(
    buildKnock(
      { ...keys, clientPrivateKey: seed },
      { target: ip("198.51.100.20") },
    ),
    nowMs,
  );
  assert.ok(typeof named !== "string", `dropped: ${named}`);
  assert.deepEqual(
    named.target,
    Uint8Array.fromHex("00000000000000000000ffffc6336414"),
  );
  // Every knock is new to it, though each starts its nonce with the hint.
  for (let i = 0; i < 20; i++) {
    assert.equal(typeof spec.check(buildKnock(keys), nowMs), "object");
  }
  // A replay is still a replay.
  const knock = buildKnock(keys);
  assert.equal(typeof spec.check(knock, nowMs), "object");
  assert.equal(spec.check(knock, nowMs), "replay");
});

Deno.test("our client's replay nonce is its key fingerprint then 8 random bytes (SPEC §1 key hint)", () => {
  const server = rawPair("x25519");
  const client = rawPair("ed25519");
  const spec = new SpecVerifier(server, client.publicKey);
  const fingerprint = createHash("sha256").update(client.publicKey).digest()
    .subarray(0, 8).toString("hex");
  const tails = new Set<string>();
  for (let i = 0; i < 10; i++) {
    const plaintext = spec.open(buildKnock({
      serverPublicKey: server.publicKey,
      clientPrivateKey: client.privateKey,
    }))!;
    assert.equal(plaintext.subarray(8, 16).toString("hex"), fingerprint);
    tails.add(plaintext.subarray(16, 24).toString("hex"));
  }
  assert.equal(tails.size, 10, "the last 8 bytes are random");
});
