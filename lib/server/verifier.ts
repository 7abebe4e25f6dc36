/**
 * The server's decision on one datagram (SPEC §2): each check once, cheapest
 * first (see {@linkcode REJECT_REASONS}); a replay nonce is recorded only
 * after the signature verified.
 *
 * @module
 */

import {
  prepareX25519PrivateKey,
  type X25519PrivateKey,
} from "../protocol/crypto.ts";
import type { IpAddress } from "../ip.ts";
import {
  keyHint,
  KNOCK_PACKET_BYTES,
  type KnockPlaintext,
  openKnockPacket,
  parseKnockPacket,
} from "../protocol/packet.ts";
import { ReplayCache } from "./replay_cache.ts";
import { RateLimiter, type RateLimiterOptions } from "./rate_limit.ts";
import {
  OVER_BUDGET,
  type SearchResult,
  SignerSearch,
  type SignerSearchOptions,
} from "./signer_search.ts";

export type { IpAddress };

/** Every reason a datagram is dropped for, in the order the checks run. */
// deno-fmt-ignore
export const REJECT_REASONS = [
  "size", "version", "rate_limit", "decrypt", "stale", "target_required",
  "unknown_client", "replay", "expired",
] as const;

/** Why a datagram was dropped. */
export type RejectReason = typeof REJECT_REASONS[number];

/** A registered client as the verifier needs it. */
export interface VerifierClient {
  /** Client name from the config. */
  name: string;
  /** The client's 32-byte Ed25519 public key. */
  publicKey: Uint8Array;
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
  /** Refuse knocks whose target is "the packet's source address" (`require_explicit_target`). */
  requireExplicitTarget?: boolean;
  /** How the signer is searched for: budget, workers (see {@linkcode SignerSearchOptions}). */
  search?: Omit<SignerSearchOptions, "clock">;
  /** Clock in ms for knocks whose signer is found later, and the default of `verify`'s `nowMs`; default `Date.now`. */
  clock?: () => number;
}

const NS_PER_MS = 1_000_000n;

/** Whether the client's `expires` has passed at `nowMs`. */
export function isExpired(client: VerifierClient, nowMs: number): boolean {
  return client.expires != null && client.expires.getTime() <= nowMs;
}

/** Checks knock datagrams against the server key and the registered clients. */
export class KnockVerifier<C extends VerifierClient = VerifierClient> {
  #serverKey: X25519PrivateKey;
  /** The accepted nonces (the server saves and restores them). */
  readonly replayCache: ReplayCache;
  #rateLimiter: RateLimiter | null;
  #search: SignerSearch<C>;
  #clock: () => number;
  /** Whether knocks for "the packet's source address" are refused. */
  requireExplicitTarget: boolean;

  /** Prepares the server key once; throws on a key of the wrong size. */
  constructor(options: KnockVerifierOptions<C>) {
    this.#serverKey = prepareX25519PrivateKey(options.serverPrivateKey);
    this.#clock = options.clock ?? Date.now;
    this.requireExplicitTarget = options.requireExplicitTarget ?? false;
    this.#search = new SignerSearch({ ...options.search, clock: this.#clock });
    this.#search.setClients(options.clients);
    this.replayCache = new ReplayCache(Math.round(options.replayWindowMs));
    this.#rateLimiter = options.rateLimit
      ? new RateLimiter(options.rateLimit)
      : null;
  }

  /** Changes the replay window; a wider one still refuses packets older than the nonces kept. */
  setReplayWindow(replayWindowMs: number): void {
    this.replayCache.windowMs = Math.round(replayWindowMs);
  }

  /** Replaces the registered clients (config reload); remembered nonces are kept, and so are the addresses and order of clients whose key did not change. */
  setClients(clients: readonly C[]): void {
    this.#search.setClients(clients);
  }

  /** Stops the signer search's workers and queue. */
  close(): void {
    this.#search.close();
  }

  /** Decides whether a datagram from `source` is a valid knock at `options.nowMs` (default: the clock), never throwing; a promise when its signer is searched for later or on workers. */
  verify(
    datagram: Uint8Array,
    source: IpAddress,
    options?: { nowMs?: number },
  ): VerifyResult<C> | Promise<VerifyResult<C>> {
    const nowMs = options?.nowMs ?? this.#clock();
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
    const windowNs = BigInt(this.replayCache.windowMs) * NS_PER_MS;
    if (skewNs > windowNs || -skewNs > windowNs) {
      return { ok: false, reason: "stale" };
    }
    if (plaintext.target === null && this.requireExplicitTarget) {
      return { ok: false, reason: "target_required" };
    }
    const signer = this.#search.find(packet, {
      hint: keyHint(plaintext),
      source,
    });
    if (signer instanceof Promise) {
      return signer.then((found) =>
        this.#decide(found, { plaintext, source, nowMs: this.#clock() })
      );
    }
    return this.#decide(signer, { plaintext, source, nowMs });
  }

  /** The checks after the signature: replay nonce, then expiry. */
  #decide(
    signer: SearchResult<C>,
    knock: { plaintext: KnockPlaintext; source: IpAddress; nowMs: number },
  ): VerifyResult<C> {
    const { plaintext, nowMs } = knock;
    if (signer === OVER_BUDGET) return { ok: false, reason: "rate_limit" };
    if (signer === null) return { ok: false, reason: "unknown_client" };
    const stampedMs = Number(plaintext.timestampNs / NS_PER_MS);
    if (!this.replayCache.add(plaintext.replayNonce, stampedMs, nowMs)) {
      return { ok: false, reason: "replay" };
    }
    if (isExpired(signer, nowMs)) return { ok: false, reason: "expired" };
    return {
      ok: true,
      client: signer,
      target: plaintext.target ?? knock.source,
    };
  }
}
