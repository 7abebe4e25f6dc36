/**
 * The server's decision on one datagram (SPEC §2): accept it as a knock from
 * a registered client, or drop it with the first reason that applies, in
 * order of cost. It never throws for any datagram.
 *
 * Order of checks: size, version, rate limit (per source, before any
 * crypto), AEAD open, timestamp window, signature against each client,
 * replay nonce, client expiry.
 *
 * Replay nonces are recorded only after a signature verified, so
 * unauthenticated traffic cannot fill the cache. A knock passes the
 * timestamp check while `|now - ts| <= replay_window`, and a knock stamped
 * up to `replay_window` in the future stays valid until `2 * replay_window`
 * after it was first accepted; nonces are therefore kept for
 * `2 * replay_window` (more than the `replay_window` SPEC §2 requires). The
 * cache is bounded (`replayCacheSize`, default 65536), evicting the oldest.
 *
 * @module
 */

import {
  type Ed25519VerifyKey,
  prepareX25519PrivateKey,
  X25519_KEY_BYTES,
  type X25519PrivateKey,
} from "../protocol/crypto.ts";
import type { IpAddress } from "../ip.ts";

export type { IpAddress } from "../ip.ts";
import {
  KNOCK_PACKET_BYTES,
  type KnockPacket,
  openKnockPacket,
  parseKnockPacket,
  PROTOCOL_VERSION,
  verifyKnockSignature,
  VERSION_OFFSET,
} from "../protocol/packet.ts";
import {
  DEFAULT_REPLAY_CACHE_SIZE,
  ReplayCache,
  type ReplayCacheEntry,
} from "./replay_cache.ts";
import { RateLimiter, type RateLimiterOptions } from "./rate_limit.ts";

/** Why a datagram was dropped. */
export type RejectReason =
  | "size"
  | "version"
  | "rate_limit"
  | "decrypt"
  | "stale"
  | "unknown_client"
  | "replay"
  | "expired";

/** Every reject reason, in the order the checks run. */
export const REJECT_REASONS: readonly RejectReason[] = [
  "size",
  "version",
  "rate_limit",
  "decrypt",
  "stale",
  "unknown_client",
  "replay",
  "expired",
];

/** A registered client as the verifier sees it. */
export interface VerifierClient {
  /** Client name from the config. */
  name: string;
  /** The client's prepared Ed25519 public key. */
  verifyKey: Ed25519VerifyKey;
  /** When the client stops being accepted; null or absent means never. */
  expires?: Date | null;
}

/** The verifier's decision on one datagram. */
export type VerifyResult =
  | {
    ok: true;
    clientName: string;
    timestampNs: bigint;
    /** Address to open: the packet's target, or the source when the target is the wildcard. */
    target: IpAddress;
  }
  | { ok: false; reason: RejectReason };

/** Per-source token bucket settings for {@linkcode KnockVerifierOptions}: those of the rate limiter itself. */
export type KnockRateLimitOptions = RateLimiterOptions;

/** Options for {@linkcode KnockVerifier}. */
export interface KnockVerifierOptions {
  /** Server's 32-byte X25519 private key. */
  serverPrivateKey: Uint8Array;
  /** Largest accepted |now - timestamp|, in milliseconds (> 0). */
  replayWindowMs: number;
  /** Registered clients. */
  clients: VerifierClient[];
  /** Most replay nonces kept; default 65536. */
  replayCacheSize?: number;
  /** Per-source rate limit; null or absent means none. */
  rateLimit?: KnockRateLimitOptions | null;
  /**
   * Server-wide budget of Ed25519 checks for packets that decrypt but whose
   * signer is not yet known from their source (each costs one check per
   * registered client); null or absent means none.
   */
  signatureBudget?: { perSecond: number; burst: number } | null;
}

/** Options for {@linkcode KnockVerifier.verify}. */
export interface VerifyOptions {
  /** Current time in Unix milliseconds; default `Date.now()`. */
  nowMs?: number;
}

/** Most source addresses whose last matching client is remembered. */
const MAX_CLIENT_HINTS = 4096;
const NS_PER_MS = 1_000_000n;
/** The single key under which the server-wide signature budget is kept. */
const SIGNATURE_BUDGET_KEY = "*";

/** The replay window in nanoseconds; throws RangeError, naming `where`, unless it is a positive number of milliseconds. */
function replayWindowNs(where: string, replayWindowMs: number): bigint {
  if (!Number.isFinite(replayWindowMs) || replayWindowMs <= 0) {
    throw new RangeError(
      `${where}: replayWindowMs must be a positive number of milliseconds, got ${replayWindowMs}`,
    );
  }
  return BigInt(Math.round(replayWindowMs * Number(NS_PER_MS)));
}

/** Checks knock datagrams against the server key and the registered clients. */
export class KnockVerifier {
  #replayWindowMs: number;
  #serverKey: X25519PrivateKey;
  #replayWindowNs: bigint;
  #clients: VerifierClient[];
  #replayCache: ReplayCache;
  #rateLimiter: RateLimiter | null;
  /** One shared bucket (key {@linkcode SIGNATURE_BUDGET_KEY}) of signature checks. */
  #signatureBudget: RateLimiter | null;
  /** Source address text -> client whose key last verified a knock from it (access order). */
  #clientHints = new Map<string, VerifierClient>();

  /** Prepares the server key once; throws RangeError on a bad key, window or limit. */
  constructor(options: KnockVerifierOptions) {
    if (
      !(options.serverPrivateKey instanceof Uint8Array) ||
      options.serverPrivateKey.length !== X25519_KEY_BYTES
    ) {
      throw new RangeError(
        `KnockVerifier: serverPrivateKey must be ${X25519_KEY_BYTES} bytes (X25519), got ${
          options.serverPrivateKey instanceof Uint8Array
            ? options.serverPrivateKey.length
            : typeof options.serverPrivateKey
        }`,
      );
    }
    this.#replayWindowNs = replayWindowNs(
      "KnockVerifier",
      options.replayWindowMs,
    );
    this.#replayWindowMs = options.replayWindowMs;
    this.#serverKey = prepareX25519PrivateKey(options.serverPrivateKey);
    this.#clients = [...options.clients];
    this.#replayCache = new ReplayCache({
      retentionMs: 2 * options.replayWindowMs,
      capacity: options.replayCacheSize ?? DEFAULT_REPLAY_CACHE_SIZE,
    });
    this.#rateLimiter = options.rateLimit
      ? new RateLimiter(options.rateLimit)
      : null;
    this.#signatureBudget = options.signatureBudget
      ? new RateLimiter({ ...options.signatureBudget, maxSources: 1 })
      : null;
  }

  /** Largest accepted |now - timestamp|, in milliseconds. */
  get replayWindowMs(): number {
    return this.#replayWindowMs;
  }

  /**
   * Changes the replay window (config reload); remembered nonces are kept.
   * Nonces are then kept for twice the largest window in force since start,
   * so a shorter window never lets a knock accepted under the longer one
   * through again; throws RangeError on a bad window.
   */
  setReplayWindow(replayWindowMs: number): void {
    this.#replayWindowNs = replayWindowNs(
      "KnockVerifier.setReplayWindow",
      replayWindowMs,
    );
    this.#replayWindowMs = replayWindowMs;
    if (2 * replayWindowMs > this.#replayCache.retentionMs) {
      this.#replayCache.setRetention(2 * replayWindowMs);
    }
  }

  /** Replaces the registered clients (config reload); remembered nonces are kept. */
  setClients(clients: VerifierClient[]): void {
    this.#clients = [...clients];
    this.#clientHints.clear();
  }

  /** Decides whether a datagram from `source` is a valid knock; never throws for any datagram. */
  verify(
    datagram: Uint8Array,
    source: IpAddress,
    options?: VerifyOptions,
  ): VerifyResult {
    const nowMs = options?.nowMs ?? Date.now();
    if (!Number.isFinite(nowMs)) {
      throw new RangeError(
        `KnockVerifier.verify: nowMs must be a finite number of Unix milliseconds, got ${nowMs}`,
      );
    }
    if (
      !(datagram instanceof Uint8Array) ||
      datagram.length !== KNOCK_PACKET_BYTES
    ) {
      return { ok: false, reason: "size" };
    }
    if (datagram[VERSION_OFFSET] !== PROTOCOL_VERSION) {
      return { ok: false, reason: "version" };
    }
    if (
      this.#rateLimiter !== null &&
      !this.#rateLimiter.allow(source.text, nowMs)
    ) {
      return { ok: false, reason: "rate_limit" };
    }
    const packet = parseKnockPacket(datagram);
    if (packet === null) return { ok: false, reason: "size" };

    const plaintext = openKnockPacket(packet, this.#serverKey);
    if (plaintext === null) return { ok: false, reason: "decrypt" };

    const nowNs = BigInt(Math.trunc(nowMs)) * NS_PER_MS;
    const skewNs = nowNs - plaintext.timestampNs;
    const absSkewNs = skewNs < 0n ? -skewNs : skewNs;
    if (absSkewNs > this.#replayWindowNs) return { ok: false, reason: "stale" };

    const client = this.#findSigner(packet, source.text, nowMs);
    if (client === "over_budget") return { ok: false, reason: "rate_limit" };
    if (client === null) return { ok: false, reason: "unknown_client" };

    // Records the nonce, or reports that it was already there (one lookup).
    if (!this.#replayCache.add(plaintext.replayNonce, nowMs)) {
      return { ok: false, reason: "replay" };
    }

    if (
      client.expires !== undefined && client.expires !== null &&
      client.expires.getTime() <= nowMs
    ) {
      return { ok: false, reason: "expired" };
    }
    return {
      ok: true,
      clientName: client.name,
      timestampNs: plaintext.timestampNs,
      target: plaintext.target ?? { family: source.family, text: source.text },
    };
  }

  /**
   * Finds the client whose key verifies the signature, trying the one last
   * seen from this source first (free); every further check takes one token of
   * the signature budget, and the search stops with "over_budget" when none
   * is left, so forged packets cannot buy more than the budget of CPU.
   */
  #findSigner(
    packet: KnockPacket,
    sourceText: string,
    nowMs: number,
  ): VerifierClient | null | "over_budget" {
    const hint = this.#clientHints.get(sourceText);
    if (hint !== undefined && verifyKnockSignature(packet, hint.verifyKey)) {
      this.#rememberSigner(sourceText, hint);
      return hint;
    }
    for (const client of this.#clients) {
      if (client === hint) continue;
      if (
        this.#signatureBudget !== null &&
        !this.#signatureBudget.allow(SIGNATURE_BUDGET_KEY, nowMs)
      ) {
        return "over_budget";
      }
      if (verifyKnockSignature(packet, client.verifyKey)) {
        this.#rememberSigner(sourceText, client);
        return client;
      }
    }
    return null;
  }

  #rememberSigner(sourceText: string, client: VerifierClient): void {
    this.#clientHints.delete(sourceText);
    while (this.#clientHints.size >= MAX_CLIENT_HINTS) {
      const oldest = this.#clientHints.keys().next().value as string;
      this.#clientHints.delete(oldest);
    }
    this.#clientHints.set(sourceText, client);
  }

  /** The accepted replay nonces still within their retention (2 × replay_window) at `nowMs`, as the state file stores them: lowercase hex → accepted at (ms since the epoch, rounded), oldest first. */
  recentNonceRecord(nowMs: number = Date.now()): Record<string, number> {
    return this.#replayCache.hexRecord(nowMs);
  }

  /** Remembers nonces an earlier run accepted (call before the first verify) so their knocks are refused as replays; returns how many were kept. */
  rememberNonces(
    entries: readonly ReplayCacheEntry[],
    nowMs: number = Date.now(),
  ): number {
    return this.#replayCache.restore(entries, nowMs);
  }
}
