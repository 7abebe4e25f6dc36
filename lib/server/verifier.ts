/**
 * The server's decision on one datagram (SPEC §2), each check made once, in
 * order of cost: size, version, rate limit per source, AEAD open, timestamp
 * window, signature, replay nonce (recorded only after a signature
 * verified), client expiry.
 *
 * @module
 */

import {
  type Ed25519VerifyKey,
  prepareX25519PrivateKey,
  type X25519PrivateKey,
} from "../protocol/crypto.ts";
import type { IpAddress } from "../ip.ts";
import {
  KNOCK_PACKET_BYTES,
  type KnockPacket,
  openKnockPacket,
  parseKnockPacket,
  verifyKnockSignature,
} from "../protocol/packet.ts";
import { ReplayCache } from "./replay_cache.ts";
import { RateLimiter, type RateLimiterOptions } from "./rate_limit.ts";

export type { Ed25519VerifyKey, IpAddress };

/** Every reason a datagram is dropped for, in the order the checks run. */
export const REJECT_REASONS = [
  "size",
  "version",
  "rate_limit",
  "decrypt",
  "stale",
  "unknown_client",
  "replay",
  "expired",
] as const;

/** Why a datagram was dropped. */
export type RejectReason = typeof REJECT_REASONS[number];

/** A registered client as the verifier needs it. */
export interface VerifierClient {
  /** Client name from the config. */
  name: string;
  /** The client's prepared Ed25519 public key. */
  verifyKey: Ed25519VerifyKey;
  /** When the client stops being accepted; null or absent means never. */
  expires?: Date | null;
}

/** The verifier's decision on one datagram. */
export type VerifyResult<C extends VerifierClient = VerifierClient> =
  | {
    ok: true;
    /** The client whose key signed the knock. */
    client: C;
    /** Address to open: the packet's target, or the source for the wildcard. */
    target: IpAddress;
  }
  | { ok: false; reason: RejectReason };

/** Options for {@linkcode KnockVerifier}. */
export interface KnockVerifierOptions<
  C extends VerifierClient = VerifierClient,
> {
  /** Server's 32-byte X25519 private key. */
  serverPrivateKey: Uint8Array;
  /** Largest accepted |now - timestamp|, in milliseconds. */
  replayWindowMs: number;
  /** Registered clients. */
  clients: readonly C[];
  /** Per-source rate limit; null or absent means none. */
  rateLimit?: RateLimiterOptions | null;
  /** Server-wide budget of signature checks beyond the free one for a source's last signer; null or absent means none. */
  signatureBudget?: { perSecond: number; burst: number } | null;
}

/** Most source addresses whose last signer is remembered. */
const MAX_SIGNER_HINTS = 4096;
const NS_PER_MS = 1_000_000n;

/** Whether the client's `expires` has passed at `nowMs`. */
export function isExpired(client: VerifierClient, nowMs: number): boolean {
  return client.expires != null && client.expires.getTime() <= nowMs;
}

/** Checks knock datagrams against the server key and the registered clients. */
export class KnockVerifier<C extends VerifierClient = VerifierClient> {
  #serverKey: X25519PrivateKey;
  #replayWindowNs = 0n;
  #clients: readonly C[];
  /** The accepted nonces (the server saves and restores them). */
  readonly replayCache: ReplayCache;
  #rateLimiter: RateLimiter | null;
  #signatureBudget: RateLimiter | null;
  /** Source address text -> client whose key last verified a knock from it (access order). */
  #hints = new Map<string, C>();

  /** Prepares the server key once; throws on a key of the wrong size. */
  constructor(options: KnockVerifierOptions<C>) {
    this.#serverKey = prepareX25519PrivateKey(options.serverPrivateKey);
    this.#clients = options.clients;
    this.replayCache = new ReplayCache(0);
    this.setReplayWindow(options.replayWindowMs);
    this.#rateLimiter = options.rateLimit
      ? new RateLimiter(options.rateLimit)
      : null;
    this.#signatureBudget = options.signatureBudget
      ? new RateLimiter({ ...options.signatureBudget, maxSources: 1 })
      : null;
  }

  /** Changes the replay window; a wider one still refuses packets older than the nonces kept. */
  setReplayWindow(replayWindowMs: number): void {
    this.replayCache.windowMs = Math.round(replayWindowMs);
    this.#replayWindowNs = BigInt(this.replayCache.windowMs) * NS_PER_MS;
  }

  /** Replaces the registered clients (config reload); remembered nonces are kept. */
  setClients(clients: readonly C[]): void {
    this.#clients = clients;
    this.#hints.clear();
  }

  /** Decides whether a datagram from `source` is a valid knock at `options.nowMs` (default now); never throws for any datagram. */
  verify(
    datagram: Uint8Array,
    source: IpAddress,
    options?: { nowMs?: number },
  ): VerifyResult<C> {
    const nowMs = options?.nowMs ?? Date.now();
    const packet = parseKnockPacket(datagram);
    if (packet === null) {
      return {
        ok: false,
        reason: datagram.length === KNOCK_PACKET_BYTES ? "version" : "size",
      };
    }
    if (this.#rateLimiter?.allow(source.text, nowMs) === false) {
      return { ok: false, reason: "rate_limit" };
    }
    const plaintext = openKnockPacket(packet, this.#serverKey);
    if (plaintext === null) return { ok: false, reason: "decrypt" };
    const skewNs = BigInt(Math.trunc(nowMs)) * NS_PER_MS -
      plaintext.timestampNs;
    if (skewNs > this.#replayWindowNs || -skewNs > this.#replayWindowNs) {
      return { ok: false, reason: "stale" };
    }
    const client = this.#findSigner(packet, source.text, nowMs);
    if (client === "over_budget") return { ok: false, reason: "rate_limit" };
    if (client === null) return { ok: false, reason: "unknown_client" };
    const stampedMs = Number(plaintext.timestampNs / NS_PER_MS);
    if (!this.replayCache.add(plaintext.replayNonce, stampedMs, nowMs)) {
      return { ok: false, reason: "replay" };
    }
    if (isExpired(client, nowMs)) return { ok: false, reason: "expired" };
    return { ok: true, client, target: plaintext.target ?? source };
  }

  /**
   * The client whose key verifies the signature: the source's last signer
   * first, for free, then every other client, each check taking a token of
   * the signature budget ("over_budget" when it is spent).
   */
  #findSigner(
    packet: KnockPacket,
    source: string,
    nowMs: number,
  ): C | null | "over_budget" {
    const hint = this.#hints.get(source);
    let signer: C | null = null;
    if (hint !== undefined && verifyKnockSignature(packet, hint.verifyKey)) {
      signer = hint;
    }
    for (let i = 0; signer === null && i < this.#clients.length; i++) {
      const client = this.#clients[i];
      if (client === hint) continue;
      if (this.#signatureBudget?.allow("", nowMs) === false) {
        return "over_budget";
      }
      if (verifyKnockSignature(packet, client.verifyKey)) signer = client;
    }
    if (signer === null) return null;
    this.#hints.delete(source);
    if (this.#hints.size >= MAX_SIGNER_HINTS) {
      this.#hints.delete(this.#hints.keys().next().value as string);
    }
    this.#hints.set(source, signer);
    return signer;
  }
}
