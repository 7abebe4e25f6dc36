/**
 * Open sessions: one per (client, target address). A first knock opens the
 * client's ports through the firewall backend; a repeat knock only moves the
 * deadline; at the deadline the rules are removed. A session is recorded only
 * once its rules are in place, so the manager never claims a port is open when
 * it is not.
 *
 * @module
 */

import type {
  FirewallBackend,
  FirewallRulePort,
  OpenedRules,
} from "../firewall/backend.ts";
import type { IpAddress } from "../ip.ts";
import { error, info, warn } from "../log.ts";

/** How many firewall opens may wait at once; further first knocks are dropped as busy. */
export const DEFAULT_MAX_PENDING_OPENS = 64;

/** One open session. */
export interface Session {
  /** Client name from the server config. */
  clientName: string;
  /** Address the rules admit. */
  address: IpAddress;
  /** Ports the rules open. */
  ports: FirewallRulePort[];
  /** When the rules went in (ms since the epoch). */
  openedAtMs: number;
  /** When the rules come out (ms since the epoch). */
  expiresAtMs: number;
  /** What the backend needs to remove the rules. */
  rules: OpenedRules;
}

/** What became of one accepted knock. */
export type KnockOutcome = "opened" | "refreshed" | "failed" | "busy";

/** Options for {@linkcode SessionManager}. */
export interface SessionManagerOptions {
  /** How long a session stays open after its latest knock. */
  knockTimeoutMs: number;
  /** Clock in ms since the epoch; defaults to Date.now. */
  now?: () => number;
  /** Called after every open, refresh and close (the state file is written from here). */
  onChange?: () => void;
  /** Bound on concurrent first-time opens (default 64). */
  maxPendingOpens?: number;
}

/** Extra facts logged with an opened session. */
export interface KnockDetails {
  /** Address the datagram came from. */
  source?: string;
  /** Fingerprint of the client's key. */
  fingerprint?: string;
}

function sessionKey(clientName: string, address: IpAddress): string {
  return `${clientName}\u0000${address.text}`;
}

function describePorts(ports: FirewallRulePort[]): string {
  return ports.map((p) =>
    p.endPort !== undefined && p.endPort > p.port
      ? `${p.port}-${p.endPort}/${p.proto}`
      : `${p.port}/${p.proto}`
  ).join(",");
}

/** Keeps the open sessions and their deadlines, and drives the firewall backend. */
export class SessionManager {
  #backend: FirewallBackend;
  #knockTimeoutMs: number;
  #now: () => number;
  #onChange: () => void;
  #maxPending: number;
  #sessions = new Map<string, Session>();
  #pending = new Map<string, Promise<KnockOutcome>>();
  #closing = new Set<Promise<void>>();
  #lastSeen = new Map<string, number>();
  #timer: ReturnType<typeof setTimeout> | null = null;
  #timerAt = Infinity;
  #stopped = false;

  /** Creates a manager that opens and closes rules through the backend. */
  constructor(backend: FirewallBackend, options: SessionManagerOptions) {
    this.#backend = backend;
    this.#knockTimeoutMs = options.knockTimeoutMs;
    this.#now = options.now ?? Date.now;
    this.#onChange = options.onChange ?? (() => {});
    this.#maxPending = options.maxPendingOpens ?? DEFAULT_MAX_PENDING_OPENS;
  }

  /** Changes the session length for knocks from now on (a reload). */
  setKnockTimeout(ms: number): void {
    this.#knockTimeoutMs = ms;
  }

  /** Opens (or refreshes) the session for a verified knock. */
  knock(
    clientName: string,
    address: IpAddress,
    ports: FirewallRulePort[],
    details: KnockDetails = {},
  ): Promise<KnockOutcome> {
    const now = this.#now();
    this.#lastSeen.set(clientName, now);
    const key = sessionKey(clientName, address);
    const existing = this.#sessions.get(key);
    if (existing !== undefined) {
      existing.expiresAtMs = now + this.#knockTimeoutMs;
      this.#schedule();
      this.#onChange();
      return Promise.resolve("refreshed");
    }
    const pending = this.#pending.get(key);
    if (pending !== undefined) {
      // The open in flight sets the deadline from its own completion time.
      return Promise.resolve("refreshed");
    }
    if (this.#stopped) return Promise.resolve("failed");
    if (this.#pending.size >= this.#maxPending) {
      warn(
        `knock from ${clientName} for ${address.text} dropped: ${this.#pending.size} firewall changes already waiting`,
      );
      return Promise.resolve("busy");
    }
    const work = this.#open(key, clientName, address, ports, details);
    this.#pending.set(key, work);
    return work;
  }

  async #open(
    key: string,
    clientName: string,
    address: IpAddress,
    ports: FirewallRulePort[],
    details: KnockDetails,
  ): Promise<KnockOutcome> {
    try {
      let rules: OpenedRules;
      try {
        rules = await this.#backend.open(address, ports);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        error(
          `knock from ${clientName} for ${address.text} failed: could not open ports: ${message}`,
        );
        return "failed";
      }
      if (this.#stopped) {
        // Shutdown began while the rules went in: take them out again.
        await this.#closeRules(clientName, address, rules);
        return "failed";
      }
      const now = this.#now();
      this.#sessions.set(key, {
        clientName,
        address,
        ports,
        openedAtMs: now,
        expiresAtMs: now + this.#knockTimeoutMs,
        rules,
      });
      const from = details.source !== undefined
        ? ` from ${details.source}`
        : "";
      const fp = details.fingerprint !== undefined
        ? ` key ${details.fingerprint}`
        : "";
      info(
        `opened ${
          describePorts(ports)
        } for ${address.text} (client ${clientName}${fp}${from}) for ${
          Math.round(this.#knockTimeoutMs / 1000)
        }s`,
      );
      this.#schedule();
      this.#onChange();
      return "opened";
    } finally {
      this.#pending.delete(key);
    }
  }

  async #closeRules(
    clientName: string,
    address: IpAddress,
    rules: OpenedRules,
  ): Promise<void> {
    try {
      await this.#backend.close(rules);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      error(`closing ${address.text} for ${clientName} failed: ${message}`);
    }
  }

  async #close(key: string, reason: string): Promise<void> {
    const session = this.#sessions.get(key);
    if (session === undefined) return;
    this.#sessions.delete(key);
    await this.#closeRules(session.clientName, session.address, session.rules);
    info(
      `closed ${
        describePorts(session.ports)
      } for ${session.address.text} (client ${session.clientName}): ${reason}`,
    );
    this.#onChange();
  }

  #track(work: Promise<void>): Promise<void> {
    this.#closing.add(work);
    return work.finally(() => this.#closing.delete(work));
  }

  /** Closes every session whose deadline has passed. */
  async expireDue(): Promise<void> {
    const now = this.#now();
    const due: string[] = [];
    for (const [key, session] of this.#sessions) {
      if (session.expiresAtMs <= now) due.push(key);
    }
    await Promise.all(
      due.map((key) => this.#track(this.#close(key, "timeout"))),
    );
    this.#schedule();
  }

  /** Closes every session of clients the predicate rejects (revoked or expired after a reload). */
  async closeWhere(
    shouldClose: (session: Session) => string | null,
  ): Promise<void> {
    const work: Promise<void>[] = [];
    for (const [key, session] of this.#sessions) {
      const reason = shouldClose(session);
      if (reason !== null) work.push(this.#track(this.#close(key, reason)));
    }
    await Promise.all(work);
    this.#schedule();
  }

  /** Stops accepting knocks, waits for opens in flight and closes every session. */
  async closeAll(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    await Promise.allSettled([...this.#pending.values()]);
    await Promise.allSettled([...this.#closing]);
    const keys = [...this.#sessions.keys()];
    await Promise.all(keys.map((key) => this.#close(key, "shutdown")));
  }

  /** The open sessions, soonest deadline first. */
  list(): Session[] {
    return [...this.#sessions.values()].sort((a, b) =>
      a.expiresAtMs - b.expiresAtMs
    );
  }

  /** When each client last sent an accepted knock (ms since the epoch). */
  lastSeen(): ReadonlyMap<string, number> {
    return this.#lastSeen;
  }

  /** Number of firewall opens in flight. */
  pendingOpens(): number {
    return this.#pending.size;
  }

  #schedule(): void {
    if (this.#stopped) return;
    let next = Infinity;
    for (const session of this.#sessions.values()) {
      if (session.expiresAtMs < next) next = session.expiresAtMs;
    }
    if (next === Infinity) {
      if (this.#timer !== null) clearTimeout(this.#timer);
      this.#timer = null;
      this.#timerAt = Infinity;
      return;
    }
    if (this.#timer !== null && this.#timerAt <= next) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timerAt = next;
    const delay = Math.max(0, next - this.#now());
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#timerAt = Infinity;
      this.expireDue().catch((err) =>
        error(`expiring sessions failed: ${err}`)
      );
    }, delay);
  }
}
