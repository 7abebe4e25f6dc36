/**
 * Which registered client signed a knock (SPEC §1, §2): the one last verified
 * from the source, the one the key hint names, then a scan of the others,
 * most recently accepted first, past its first chunk on worker threads. A
 * budget charged by the time scans take admits a scan whole; waiting source
 * prefixes (IPv4 /24, IPv6 /48) take turns, and a full queue drops from the
 * prefix that holds the most.
 *
 * @module
 */

import { type IpAddress, ipToBytes } from "../ip.ts";
import {
  ed25519Sign,
  generateEd25519KeyPair,
  keyFingerprint,
  randomBytes,
} from "../protocol/crypto.ts";
import {
  type KnockPacket,
  SIGNED_BYTES,
  type SignedKnock,
  verifyKnockSignature,
} from "../protocol/packet.ts";
import { type RateLimiterOptions, TokenBucket } from "./rate_limit.ts";
import { ScanPool } from "./scan_pool.ts";

export type { KnockPacket, SignedKnock };

/** What the search needs of a client: its raw Ed25519 public key. */
export interface SignerClient {
  /** 32-byte Ed25519 public key. */
  publicKey: Uint8Array;
}

/** Options for {@linkcode SignerSearch}. */
export interface SignerSearchOptions {
  /** Budget for scans; "measured": sized from the measured time of one check; null or absent: none. */
  budget?: RateLimiterOptions | "measured" | null;
  /** Worker threads for long scans; default one per core (at most 4) with a measured budget, else none. */
  workers?: number;
  /** Checks one signature (tests count checks with their own; no workers then); default Ed25519. */
  checkSignature?: (knock: SignedKnock, publicKey: Uint8Array) => boolean;
  /** Clock of the budget in ms; default `Date.now`. */
  clock?: () => number;
  /** Checks per chunk of a scan; default as many as take 2 ms, measured. */
  chunk?: number;
}

/** What a search that the budget refused resolves to. */
export const OVER_BUDGET = "over_budget";

/** The signer, null when no client's key verifies, or {@linkcode OVER_BUDGET}. */
export type SearchResult<C> = C | null | typeof OVER_BUDGET;

/** A scan: the clients already tried are skipped; its cost is the client count when it came. */
interface Scan<C> {
  knock: SignedKnock;
  source: IpAddress;
  skip: (C | undefined)[];
  cost: number;
}

/** A scan waiting for the budget. */
interface Waiting<C> extends Scan<C> {
  resolve(result: SearchResult<C> | Promise<SearchResult<C>>): void;
}

// Source addresses whose last signer is remembered; the share of this
// thread's time a measured budget gives scans (each worker may take a core);
// seconds of budget a full bucket holds, and the waiting scans may ask for;
// the time of one chunk of checks (bench/RESULTS.md: a worker round trip is
// about 0.1 ms, and each worker holds two chunks).
const MAX_SOURCE_HINTS = 4096;
const MAIN_THREAD_SCAN_SHARE = 0.5;
const BURST_SECONDS = 0.5;
const QUEUE_SECONDS = 2;
const CHUNK_MS = 2;
const MAX_WORKERS = 4;

/** Finds the signer of a knock among the registered clients. */
export class SignerSearch<C extends SignerClient> {
  #checkSignature: (knock: SignedKnock, publicKey: Uint8Array) => boolean;
  #clock: () => number;
  /** Measured time of one check in ms, for a measured budget; null otherwise. */
  #checkMs: number | null;
  #chunk: number;
  #workers: number;
  #pool: ScanPool | null = null;
  #bucket: TokenBucket | null = null;
  /** Most checks the waiting scans may ask for together. */
  #queueLimit = 0;
  /** Key fingerprint -> first client with that key. */
  #byKey = new Map<string, C>();
  /** Most recently accepted first; clients never accepted after, in config order. */
  #order: C[] = [];
  /** Source address text -> client last verified from it (access order). */
  #bySource = new Map<string, C>();
  /** Source prefix -> its waiting scans; prefixes take turns in this map's order. */
  #waiting = new Map<string, Waiting<C>[]>();
  #waitingChecks = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** Creates a search with no clients; measures one check for a measured budget or workers. */
  constructor(options: SignerSearchOptions = {}) {
    this.#clock = options.clock ?? Date.now;
    this.#checkSignature = options.checkSignature ?? verifyKnockSignature;
    const measured = options.budget === "measured";
    const cores = Math.min(MAX_WORKERS, navigator.hardwareConcurrency);
    this.#workers = options.checkSignature !== undefined
      ? 0
      : options.workers ?? (measured ? cores : 0);
    const measureChunk = this.#workers > 0 && options.chunk === undefined;
    const checkMs = measured || measureChunk ? measureCheckMs() : 1;
    this.#checkMs = measured ? checkMs : null;
    this.#chunk = options.chunk ?? Math.max(1, Math.round(CHUNK_MS / checkMs));
    const budget = options.budget;
    if (budget !== "measured" && budget != null) this.#setBudget(budget);
  }

  /** Replaces the clients; those whose key did not change keep their place in the order and their source addresses. */
  setClients(clients: readonly C[]): void {
    const bySource = this.#bySource;
    this.#byKey = new Map();
    for (const client of clients) {
      const fingerprint = keyFingerprint(client.publicKey);
      if (!this.#byKey.has(fingerprint)) this.#byKey.set(fingerprint, client);
    }
    const kept = new Set<C>();
    for (const client of this.#order) {
      const current = this.#current(client);
      if (current !== null) kept.add(current);
    }
    this.#order = [...kept, ...clients.filter((client) => !kept.has(client))];
    this.#bySource = new Map();
    for (const [source, client] of bySource) {
      const current = this.#current(client);
      if (current !== null) this.#bySource.set(source, current);
    }
    if (this.#checkMs !== null) {
      // Scans of more than a chunk run on every worker.
      const useWorkers = this.#workers > 0 && clients.length > this.#chunk;
      const cores = useWorkers ? this.#workers : MAIN_THREAD_SCAN_SHARE;
      const perSecond = cores * 1000 / this.#checkMs;
      this.#setBudget({ perSecond, burst: perSecond * BURST_SECONDS });
    }
  }

  /** The client whose key verifies the knock, null for none, or {@linkcode OVER_BUDGET}; a promise when its scan waits or runs on workers. */
  find(
    knock: SignedKnock,
    options: { hint: string; source: IpAddress },
  ): SearchResult<C> | Promise<SearchResult<C>> {
    const source = options.source;
    const known = this.#bySource.get(source.text);
    if (known !== undefined && this.#checkSignature(knock, known.publicKey)) {
      return this.#verified(known, source);
    }
    const hinted = this.#byKey.get(options.hint);
    if (
      hinted !== undefined && hinted !== known &&
      this.#checkSignature(knock, hinted.publicKey)
    ) return this.#verified(hinted, source);
    const skip = [known, hinted];
    const cost = this.#order.length;
    // The scan may wait or run on workers: it keeps a copy of the bytes.
    const copy = {
      signedBytes: knock.signedBytes.slice(),
      signature: knock.signature.slice(),
    };
    if (
      this.#bucket === null ||
      this.#waiting.size === 0 && this.#bucket.take(cost, this.#clock())
    ) return this.#scan({ knock: copy, source, skip, cost });
    const prefix = source.family === 4
      ? source.text.slice(0, source.text.lastIndexOf("."))
      : ipToBytes(source).subarray(0, 6).toHex();
    if (!this.#makeRoom(prefix, cost)) return OVER_BUDGET;
    return new Promise((resolve) => {
      const list = this.#waiting.get(prefix) ?? [];
      list.push({ knock: copy, source, skip, cost, resolve });
      this.#waiting.set(prefix, list);
      this.#waitingChecks += cost;
      this.#pump();
    });
  }

  /** Stops the workers and the queue; waiting scans resolve to {@linkcode OVER_BUDGET}. */
  close(): void {
    clearTimeout(this.#timer);
    this.#pool?.close();
    this.#pool = null;
    for (const list of this.#waiting.values()) {
      for (const waiting of list) waiting.resolve(OVER_BUDGET);
    }
    this.#waiting.clear();
    this.#waitingChecks = 0;
  }

  #setBudget(budget: RateLimiterOptions): void {
    this.#queueLimit = budget.perSecond * QUEUE_SECONDS;
    this.#bucket = new TokenBucket(budget, this.#clock());
  }

  /** Checks every client not yet tried: the first chunk (the most recently active) on this thread, the rest on the workers; then settles the budget. */
  #scan(scan: Scan<C>): SearchResult<C> | Promise<SearchResult<C>> {
    const candidates = this.#order.filter((c) => !scan.skip.includes(c));
    const here = this.#workers > 0 ? this.#chunk : candidates.length;
    const started = performance.now();
    let found: C | null = null;
    let checks = 0;
    while (found === null && checks < Math.min(here, candidates.length)) {
      const client = candidates[checks++];
      if (this.#checkSignature(scan.knock, client.publicKey)) found = client;
    }
    const ms = performance.now() - started;
    if (found !== null || checks === candidates.length) {
      this.#charge(scan.cost, { checks, ms });
      return found && this.#verified(found, scan.source);
    }
    const rest = candidates.slice(checks);
    const keys = rest.map((client) => client.publicKey);
    this.#pool ??= new ScanPool({ size: this.#workers, chunk: this.#chunk });
    return this.#pool.scan(scan.knock, keys).then((result) => {
      this.#charge(scan.cost, {
        checks: checks + (result.index < 0 ? keys.length : result.index + 1),
        ms: ms + result.ms,
      });
      if (this.#waiting.size > 0) this.#pump();
      if (result.index < 0) return null;
      // A reload may have come while the workers checked.
      const current = this.#current(rest[result.index]);
      return current && this.#verified(current, scan.source);
    });
  }

  /** Settles a scan that took `cost` from the budget: by the time it took when the budget is measured, else by its checks. */
  #charge(cost: number, used: { checks: number; ms: number }): void {
    const spent = this.#checkMs === null
      ? used.checks
      : used.ms / this.#checkMs;
    this.#bucket?.refund(cost - spent);
  }

  /** Moves the signer to the front of the order and remembers it for the source. */
  #verified(client: C, source: IpAddress): C {
    const at = this.#order.indexOf(client);
    if (at > 0) {
      this.#order.splice(at, 1);
      this.#order.unshift(client);
    }
    this.#bySource.delete(source.text);
    if (this.#bySource.size >= MAX_SOURCE_HINTS) {
      this.#bySource.delete(this.#bySource.keys().next().value as string);
    }
    this.#bySource.set(source.text, client);
    return client;
  }

  /** The current client with the same key, or null when the key is gone. */
  #current(client: C): C | null {
    const current = this.#byKey.get(keyFingerprint(client.publicKey));
    return current?.publicKey.toHex() === client.publicKey.toHex()
      ? current
      : null;
  }

  /** Whether a scan of `cost` from `prefix` may wait, after dropping the newest scans of prefixes that hold more. */
  #makeRoom(prefix: string, cost: number): boolean {
    const own = this.#waiting.get(prefix)?.length ?? 0;
    while (
      this.#waiting.size > 0 && this.#waitingChecks + cost > this.#queueLimit
    ) {
      let longest: [string, Waiting<C>[]] = ["", []];
      for (const entry of this.#waiting) {
        if (entry[1].length > longest[1].length) longest = entry;
      }
      const [longestPrefix, list] = longest;
      if (list.length <= own) return false;
      const dropped = list.pop() as Waiting<C>;
      if (list.length === 0) this.#waiting.delete(longestPrefix);
      this.#waitingChecks -= dropped.cost;
      dropped.resolve(OVER_BUDGET);
    }
    return true;
  }

  /** Starts waiting scans, prefixes in turn, while the budget admits them; otherwise waits for it. */
  #pump(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const bucket = this.#bucket as TokenBucket;
    while (this.#waiting.size > 0) {
      const [prefix, list] = this.#waiting.entries().next().value!;
      const next = list[0];
      const nowMs = this.#clock();
      if (!bucket.take(next.cost, nowMs)) {
        const waitMs = Math.max(1, Math.ceil(bucket.waitMs(next.cost, nowMs)));
        this.#timer = setTimeout(() => this.#pump(), waitMs);
        return;
      }
      list.shift();
      this.#waiting.delete(prefix);
      if (list.length > 0) this.#waiting.set(prefix, list);
      this.#waitingChecks -= next.cost;
      next.resolve(this.#scan(next));
    }
  }
}

/** The time of one Ed25519 check here in ms: the best of a few rounds, so that a busy moment does not inflate it. */
function measureCheckMs(): number {
  const { privateKey, publicKey } = generateEd25519KeyPair();
  const signedBytes = randomBytes(SIGNED_BYTES);
  const knock = {
    signedBytes,
    signature: ed25519Sign(privateKey, signedBytes),
  };
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const started = performance.now();
    for (let i = 0; i < 10; i++) verifyKnockSignature(knock, publicKey);
    best = Math.min(best, (performance.now() - started) / 10);
  }
  return best;
}
