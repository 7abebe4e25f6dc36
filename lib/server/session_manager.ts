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

/** How long shutdown waits for firewall opens in flight. */
export const DEFAULT_SHUTDOWN_WAIT_MS = 1000;

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
  /**
   * Asked when an open finishes: a reason to take the new rules out again at
   * once (the client was revoked or expired while its rules went in), or null.
   */
  refuse?: (clientName: string) => string | null;
  /** How long shutdown waits for opens in flight before closing the rest (default 1000 ms). */
  shutdownWaitMs?: number;
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

function describeKnock(
  clientName: string,
  address: IpAddress,
  details: KnockDetails,
): string {
  const fp = details.fingerprint !== undefined
    ? ` key ${details.fingerprint}`
    : "";
  const from = details.source !== undefined ? ` from ${details.source}` : "";
  return `for ${address.text} (client ${clientName}${fp}${from})`;
}

function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Formats ports for logs: "22/tcp,8080-8090/tcp". */
export function describePorts(ports: FirewallRulePort[]): string {
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
  #refuse: (clientName: string) => string | null;
  #shutdownWaitMs: number;
  #sessions = new Map<string, Session>();
  #pending = new Map<string, Promise<KnockOutcome>>();
  #closing = new Set<Promise<void>>();
  #swapping = new Set<string>();
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
    this.#refuse = options.refuse ?? (() => null);
    this.#shutdownWaitMs = options.shutdownWaitMs ?? DEFAULT_SHUTDOWN_WAIT_MS;
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
    if (this.#stopped) return Promise.resolve("failed");
    if (existing !== undefined) {
      existing.expiresAtMs = now + this.#knockTimeoutMs;
      info(
        `refreshed ${describePorts(existing.ports)} ${
          describeKnock(clientName, address, details)
        } until ${rfc3339(existing.expiresAtMs)}`,
      );
      this.#schedule();
      this.#onChange();
      if (describePorts(ports) !== describePorts(existing.ports)) {
        // The grant changed and the reload could not move the rules yet.
        this.#track(this.#swapPorts(key, existing, ports));
      }
      return Promise.resolve("refreshed");
    }
    const pending = this.#pending.get(key);
    if (pending !== undefined) {
      // The open in flight sets the deadline from its own completion time.
      info(
        `knock ${
          describeKnock(clientName, address, details)
        } while its ports are being opened`,
      );
      return Promise.resolve("refreshed");
    }
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
      const refusal = this.#refuse(clientName);
      if (refusal !== null) {
        // A reload revoked or expired the client while the rules went in.
        await this.#closeRules(clientName, address, rules);
        info(
          `closed ${
            describePorts(ports)
          } for ${address.text} (client ${clientName}) right after opening: ${refusal}`,
        );
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
      info(
        `opened ${describePorts(ports)} ${
          describeKnock(clientName, address, details)
        } until ${rfc3339(now + this.#knockTimeoutMs)}`,
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

  /**
   * Moves sessions to new ports when a reload changed their client's grant:
   * opens the new ports, then closes the old rules; the deadline stays.
   * `portsOf` returns the client's ports now, or null to leave the session.
   */
  async regrant(
    portsOf: (clientName: string) => FirewallRulePort[] | null,
  ): Promise<void> {
    const work: Promise<void>[] = [];
    for (const [key, session] of this.#sessions) {
      const ports = portsOf(session.clientName);
      if (ports === null) continue;
      if (describePorts(ports) === describePorts(session.ports)) continue;
      work.push(this.#track(this.#swapPorts(key, session, ports)));
    }
    await Promise.all(work);
  }

  async #swapPorts(
    key: string,
    session: Session,
    ports: FirewallRulePort[],
  ): Promise<void> {
    if (this.#swapping.has(key)) return;
    this.#swapping.add(key);
    try {
      await this.#swapPortsOnce(key, session, ports);
    } finally {
      this.#swapping.delete(key);
    }
  }

  async #swapPortsOnce(
    key: string,
    session: Session,
    ports: FirewallRulePort[],
  ): Promise<void> {
    const { clientName, address } = session;
    let rules: OpenedRules;
    try {
      rules = await this.#backend.open(address, ports);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      error(
        `changing the ports of ${address.text} (client ${clientName}) to ${
          describePorts(ports)
        } failed, ${
          describePorts(session.ports)
        } stay open until the deadline: ${message}`,
      );
      return;
    }
    if (this.#stopped || this.#sessions.get(key) !== session) {
      // The session ended while the new rules went in.
      await this.#closeRules(clientName, address, rules);
      return;
    }
    const oldRules = session.rules;
    const oldPorts = session.ports;
    session.rules = rules;
    session.ports = ports;
    await this.#closeRules(clientName, address, oldRules);
    info(
      `changed ${describePorts(oldPorts)} to ${
        describePorts(ports)
      } for ${address.text} (client ${clientName}): config reload; until ${
        rfc3339(session.expiresAtMs)
      }`,
    );
    this.#onChange();
  }

  /** Stops accepting knocks, waits for opens in flight and closes every session. */
  async closeAll(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#pending.size > 0) {
      // Opens still in flight close their own rules when they finish (see
      // #open); wait a little so their sessions are closed here, in order.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const limit = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.#shutdownWaitMs);
      });
      await Promise.race([
        Promise.allSettled([...this.#pending.values()]),
        limit,
      ]);
      clearTimeout(timer);
      if (this.#pending.size > 0) {
        warn(
          `${this.#pending.size} firewall opens still running at shutdown; their rules are removed when they finish`,
        );
      }
    }
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
