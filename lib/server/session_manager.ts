/**
 * Open sessions: one per (client, target address). A first knock opens the
 * client's ports through the firewall backend; a repeat knock only moves the
 * deadline; at the deadline the rules are removed. A session is recorded only
 * once its rules are in place, so the manager never claims a port is open when
 * it is not.
 *
 * Deadlines run on a monotonic clock, so a wall-clock step (NTP, an operator's
 * `date -s`) neither keeps ports open longer nor closes them early; wall time
 * is only used to display deadlines. One client holds at most
 * {@linkcode MAX_SESSIONS_PER_CLIENT} sessions. A close the firewall refuses
 * is retried with backoff until it succeeds; at shutdown the caller removes
 * every rule with the backend's teardown instead of closing sessions one by
 * one.
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
import { formatRfc3339 } from "../time.ts";

/** How many firewall opens may wait at once; further first knocks are dropped as busy. */
export const DEFAULT_MAX_PENDING_OPENS = 64;

/** How long shutdown waits for firewall opens in flight. */
export const DEFAULT_SHUTDOWN_WAIT_MS = 1000;

/** Most sessions (target addresses) one client may hold; a knock for one more closes its least recently knocked session. */
export const MAX_SESSIONS_PER_CLIENT = 8;

/** Milliseconds per second: deadlines are shown to the second. */
const MS_PER_SECOND = 1000;

/** Waits before the first, second, ... retry of a failed close; the last one repeats. */
export const CLOSE_RETRY_DELAYS_MS: readonly number[] = [
  1000,
  2000,
  5000,
  10_000,
];

/** A monotonic clock in ms (close to the epoch at start-up, but never stepped with the wall clock). */
export function monotonicNow(): number {
  return performance.timeOrigin + performance.now();
}

/** One open session. */
export interface Session {
  /** Client name from the server config. */
  clientName: string;
  /** Address the rules admit. */
  address: IpAddress;
  /** Ports the rules open. */
  ports: FirewallRulePort[];
  /** When the rules went in (ms on the manager's monotonic clock; see toWallMs). */
  openedAtMs: number;
  /** When the rules come out (ms on the manager's monotonic clock; see toWallMs). */
  expiresAtMs: number;
  /** What the backend needs to remove the rules. */
  rules: OpenedRules;
}

/** Rules whose removal failed and is retried. */
export interface PendingClose {
  /** Client the rules were opened for. */
  clientName: string;
  /** Address the rules admit. */
  address: IpAddress;
  /** Ports the rules open. */
  ports: FirewallRulePort[];
  /** Why they are being removed ("timeout", "client revoked", ...). */
  reason: string;
  /** Failed attempts so far. */
  attempts: number;
  /** The latest failure. */
  lastError: string;
  /** When the next attempt runs (manager clock). */
  nextAttemptMs: number;
  /** What the backend needs to remove the rules. */
  rules: OpenedRules;
}

/** What {@linkcode SessionManager.checkFirewall} found and did. */
export interface FirewallCheckResult {
  /** Base objects (table, chain, jump, knock and drop rules) that were missing and were put back. */
  repaired: string[];
  /** Sessions whose rules were gone and were added again. */
  reopened: number;
  /** Sessions whose rules were gone and could not be added again (no longer listed). */
  dropped: number;
}

/** What {@linkcode SessionManager.shutdown} left for the backend's teardown. */
export interface ShutdownResult {
  /** Sessions that were open; their rules are removed by the teardown. */
  sessions: Session[];
  /** Failed closes still pending; their rules are removed by the teardown. */
  pendingCloses: PendingClose[];
}

/** What became of one accepted knock. */
export type KnockOutcome = "opened" | "refreshed" | "failed" | "busy";

/** Options for {@linkcode SessionManager}. */
export interface SessionManagerOptions {
  /** How long a session stays open after its latest knock. */
  knockTimeoutMs: number;
  /** Monotonic clock in ms for deadlines; default {@linkcode monotonicNow}. */
  now?: () => number;
  /** Wall clock in ms since the epoch, for display only; default Date.now. */
  wallNow?: () => number;
  /** Most sessions per client (default {@linkcode MAX_SESSIONS_PER_CLIENT}). */
  maxSessionsPerClient?: number;
  /** Waits before retries of a failed close (default {@linkcode CLOSE_RETRY_DELAYS_MS}). */
  closeRetryDelaysMs?: readonly number[];
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

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function describeRules(
  ports: FirewallRulePort[],
  address: IpAddress,
  clientName: string,
): string {
  return `${describePorts(ports)} for ${address.text} (client ${clientName})`;
}

function describeKnock(
  clientName: string,
  address: IpAddress,
  source: string | undefined,
  fingerprint: string | undefined,
): string {
  const fp = fingerprint !== undefined ? ` key ${fingerprint}` : "";
  const from = source !== undefined ? ` from ${source}` : "";
  return `for ${address.text} (client ${clientName}${fp}${from})`;
}

/**
 * {@linkcode describePorts} of the port lists refreshes log and compare,
 * computed once per list: a port list is never changed in place once a
 * session or a grant holds it (new grants are new lists).
 */
const PORTS_TEXT = new WeakMap<readonly FirewallRulePort[], string>();

function portsText(ports: FirewallRulePort[]): string {
  let text = PORTS_TEXT.get(ports);
  if (text === undefined) {
    text = describePorts(ports);
    PORTS_TEXT.set(ports, text);
  }
  return text;
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
  #wallNow: () => number;
  #onChange: () => void;
  #maxPending: number;
  #maxPerClient: number;
  #retryDelaysMs: readonly number[];
  #refuse: (clientName: string) => string | null;
  #shutdownWaitMs: number;
  #sessions = new Map<string, Session>();
  #retries = new Set<PendingClose>();
  #retryTimer: ReturnType<typeof setTimeout> | null = null;
  #retrying = false;
  #pending = new Map<string, Promise<KnockOutcome>>();
  #swapping = new Set<string>();
  #lastSeen = new Map<string, number>();
  #timer: ReturnType<typeof setTimeout> | null = null;
  #timerAt = Infinity;
  #stopped = false;
  /** The second (wall clock) of the latest deadline shown, and how it was shown. */
  #untilSecond = NaN;
  #untilText = "";

  /** Creates a manager that opens and closes rules through the backend. */
  constructor(backend: FirewallBackend, options: SessionManagerOptions) {
    this.#backend = backend;
    this.#knockTimeoutMs = options.knockTimeoutMs;
    this.#now = options.now ?? monotonicNow;
    this.#wallNow = options.wallNow ?? Date.now;
    this.#onChange = options.onChange ?? (() => {});
    this.#maxPending = options.maxPendingOpens ?? DEFAULT_MAX_PENDING_OPENS;
    this.#maxPerClient = options.maxSessionsPerClient ??
      MAX_SESSIONS_PER_CLIENT;
    this.#retryDelaysMs = options.closeRetryDelaysMs ?? CLOSE_RETRY_DELAYS_MS;
    this.#refuse = options.refuse ?? (() => null);
    this.#shutdownWaitMs = options.shutdownWaitMs ?? DEFAULT_SHUTDOWN_WAIT_MS;
  }

  /** Changes the session length for knocks from now on (a reload). */
  setKnockTimeout(ms: number): void {
    this.#knockTimeoutMs = ms;
  }

  /** Converts a time on the manager's clock (a deadline) to wall-clock ms since the epoch, for display. */
  toWallMs(ms: number): number {
    return this.#wallNow() + (ms - this.#now());
  }

  #until(ms: number): string {
    return this.#untilWall(this.toWallMs(ms));
  }

  /** A deadline in wall-clock ms, as logs show it. */
  #untilWall(wallMs: number): string {
    // Shown to the second: one formatting per second of deadlines.
    const second = Math.floor(wallMs / MS_PER_SECOND);
    if (second !== this.#untilSecond) {
      this.#untilSecond = second;
      this.#untilText = formatRfc3339(wallMs);
    }
    return this.#untilText;
  }

  /**
   * The synchronous fast path of {@linkcode knock} for a session that is
   * open: moves its deadline, exactly as `knock` would, and returns true.
   * Returns false, having done nothing, when there is no such session or the
   * manager is shutting down (then call `knock`).
   */
  refresh(
    clientName: string,
    address: IpAddress,
    ports: FirewallRulePort[],
    source?: string,
    fingerprint?: string,
  ): boolean {
    if (this.#stopped) return false;
    const key = sessionKey(clientName, address);
    const existing = this.#sessions.get(key);
    if (existing === undefined) return false;
    // One reading of each clock serves the deadline, last seen and the log.
    const now = this.#now();
    const wallNow = this.#wallNow();
    this.#lastSeen.set(clientName, wallNow);
    existing.expiresAtMs = now + this.#knockTimeoutMs;
    info(
      `refreshed ${portsText(existing.ports)} ${
        describeKnock(
          existing.clientName,
          existing.address,
          source,
          fingerprint,
        )
      } until ${this.#untilWall(wallNow + this.#knockTimeoutMs)}`,
    );
    // The timer already fires at or before the soonest deadline unless this
    // one moved before it (a reload shortened knock_timeout).
    if (this.#timer === null || this.#timerAt > existing.expiresAtMs) {
      this.#schedule();
    }
    this.#onChange();
    if (
      ports !== existing.ports && portsText(ports) !== portsText(existing.ports)
    ) {
      // The grant changed and the reload could not move the rules yet.
      this.#swapPorts(key, existing, ports).catch((err) =>
        error(`changing ports failed: ${err}`)
      );
    }
    return true;
  }

  /** Opens (or refreshes) the session for a verified knock. */
  knock(
    clientName: string,
    address: IpAddress,
    ports: FirewallRulePort[],
    details: KnockDetails = {},
  ): Promise<KnockOutcome> {
    if (
      this.refresh(
        clientName,
        address,
        ports,
        details.source,
        details.fingerprint,
      )
    ) {
      return Promise.resolve("refreshed");
    }
    this.#lastSeen.set(clientName, this.#wallNow());
    if (this.#stopped) return Promise.resolve("failed");
    const key = sessionKey(clientName, address);
    if (this.#pending.has(key)) {
      // The open in flight sets the deadline from its own completion time.
      info(
        `knock ${
          describeKnock(
            clientName,
            address,
            details.source,
            details.fingerprint,
          )
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
    if (!this.#makeRoomFor(clientName, address)) {
      return Promise.resolve("busy");
    }
    const work = this.#open(key, clientName, address, ports, details);
    this.#pending.set(key, work);
    return work;
  }

  /**
   * Keeps a client below its session limit before a new session opens: closes
   * its least recently knocked session. False when every slot is an open
   * still in flight (the knock is then dropped).
   */
  #makeRoomFor(clientName: string, address: IpAddress): boolean {
    const own: [string, Session][] = [];
    for (const entry of this.#sessions) {
      if (entry[1].clientName === clientName) own.push(entry);
    }
    const prefix = `${clientName}\u0000`;
    let inFlight = 0;
    for (const key of this.#pending.keys()) {
      if (key.startsWith(prefix)) inFlight++;
    }
    if (own.length + inFlight < this.#maxPerClient) return true;
    if (own.length === 0) {
      warn(
        `knock from ${clientName} for ${address.text} dropped: ${inFlight} opens of this client in flight (at most ${this.#maxPerClient} sessions per client)`,
      );
      return false;
    }
    own.sort((a, b) => a[1].expiresAtMs - b[1].expiresAtMs);
    const [oldestKey, oldest] = own[0];
    warn(
      `client ${clientName} has ${this.#maxPerClient} sessions, the most one client may hold: closing the one for ${oldest.address.text} (least recently knocked) to open ${address.text}`,
    );
    this.#close(
      oldestKey,
      `session limit (${this.#maxPerClient} per client) reached by a knock for ${address.text}`,
    ).catch((err) => error(`closing an evicted session failed: ${err}`));
    return true;
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
        error(
          `knock from ${clientName} for ${address.text} failed: could not open ports: ${
            errorMessage(err)
          }`,
        );
        return "failed";
      }
      if (this.#stopped) {
        // Shutdown began while the rules went in: take them out again.
        await this.#removeRules(clientName, rules, "shutdown");
        return "failed";
      }
      const refusal = this.#refuse(clientName);
      if (refusal !== null) {
        // A reload revoked or expired the client while the rules went in.
        const removed = await this.#removeRules(clientName, rules, refusal);
        if (removed) {
          info(
            `closed ${
              describeRules(ports, address, clientName)
            } right after opening: ${refusal}`,
          );
        }
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
          describeKnock(
            clientName,
            address,
            details.source,
            details.fingerprint,
          )
        } until ${this.#until(now + this.#knockTimeoutMs)}`,
      );
      this.#schedule();
      this.#onChange();
      return "opened";
    } finally {
      this.#pending.delete(key);
    }
  }

  /**
   * Removes rules through the backend; true when that worked. A failure is
   * logged and the rules go to the retry list (unless shutting down: the
   * teardown removes them).
   */
  async #removeRules(
    clientName: string,
    rules: OpenedRules,
    reason: string,
    retry = true,
  ): Promise<boolean> {
    try {
      await this.#backend.close(rules);
      return true;
    } catch (err) {
      const what = describeRules(rules.ports, rules.address, clientName);
      if (this.#stopped || !retry) {
        error(
          `closing ${what} (${reason}) failed: ${errorMessage(err)}; ${
            this.#stopped
              ? "shutting down, the teardown removes openme's rules"
              : "not retried"
          }`,
        );
        return false;
      }
      const entry: PendingClose = {
        clientName,
        address: rules.address,
        ports: rules.ports,
        reason,
        attempts: 1,
        lastError: errorMessage(err),
        nextAttemptMs: this.#now() + this.#retryDelay(1),
        rules,
      };
      this.#retries.add(entry);
      error(
        `closing ${what} (${reason}) failed, will retry in ${
          this.#retryDelay(1) / 1000
        } s: ${entry.lastError}`,
      );
      this.#scheduleRetry();
      this.#onChange();
      return false;
    }
  }

  #retryDelay(attempts: number): number {
    const delays = this.#retryDelaysMs;
    return delays[Math.min(attempts, delays.length) - 1];
  }

  #scheduleRetry(): void {
    if (this.#stopped || this.#retrying) return;
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    let next = Infinity;
    for (const entry of this.#retries) {
      if (entry.nextAttemptMs < next) next = entry.nextAttemptMs;
    }
    if (next === Infinity) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#retrying = true;
      this.retryCloses().catch((err) => error(`retrying closes failed: ${err}`))
        .finally(() => {
          this.#retrying = false;
          this.#scheduleRetry();
        });
    }, Math.max(0, next - this.#now()));
  }

  /** Retries the failed closes that are due; returns how many are still pending. */
  async retryCloses(): Promise<number> {
    const now = this.#now();
    const due = [...this.#retries].filter((entry) =>
      entry.nextAttemptMs <= now
    );
    for (const entry of due) {
      if (this.#stopped) break;
      const what = describeRules(entry.ports, entry.address, entry.clientName);
      try {
        await this.#backend.close(entry.rules);
      } catch (err) {
        entry.attempts++;
        entry.lastError = errorMessage(err);
        const delay = this.#retryDelay(entry.attempts);
        entry.nextAttemptMs = this.#now() + delay;
        error(
          `closing ${what} (${entry.reason}) failed again (attempt ${entry.attempts}), will retry in ${
            delay / 1000
          } s: ${entry.lastError}`,
        );
        continue;
      }
      this.#retries.delete(entry);
      info(
        `closed ${what}: ${entry.reason} (after ${entry.attempts} failed attempts)`,
      );
      this.#onChange();
    }
    return this.#retries.size;
  }

  /** Rules whose removal failed and is being retried. */
  pendingCloses(): PendingClose[] {
    return [...this.#retries];
  }

  async #close(key: string, reason: string): Promise<void> {
    const session = this.#sessions.get(key);
    if (session === undefined) return;
    this.#sessions.delete(key);
    const removed = await this.#removeRules(
      session.clientName,
      session.rules,
      reason,
    );
    if (removed) {
      info(
        `closed ${
          describeRules(session.ports, session.address, session.clientName)
        }: ${reason}`,
      );
    }
    this.#onChange();
  }

  /** Closes every session whose deadline has passed. */
  async expireDue(): Promise<void> {
    const now = this.#now();
    const due: string[] = [];
    for (const [key, session] of this.#sessions) {
      if (session.expiresAtMs <= now) due.push(key);
    }
    // #close takes each session out of the map at once: the next deadline
    // is scheduled now, not after these firewall calls.
    const work = due.map((key) => this.#close(key, "timeout"));
    this.#schedule();
    await Promise.all(work);
  }

  /** Closes every session of clients the predicate rejects (revoked or expired after a reload). */
  async closeWhere(
    shouldClose: (session: Session) => string | null,
  ): Promise<void> {
    const work: Promise<void>[] = [];
    for (const [key, session] of this.#sessions) {
      const reason = shouldClose(session);
      if (reason !== null) work.push(this.#close(key, reason));
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
      work.push(this.#swapPorts(key, session, ports));
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
      error(
        `changing the ports of ${address.text} (client ${clientName}) to ${
          describePorts(ports)
        } failed, ${
          describePorts(session.ports)
        } stay open until the deadline: ${errorMessage(err)}`,
      );
      return;
    }
    if (this.#stopped || this.#sessions.get(key) !== session) {
      // The session ended while the new rules went in.
      await this.#removeRules(clientName, rules, "session ended");
      return;
    }
    const oldRules = session.rules;
    const oldPorts = session.ports;
    session.rules = rules;
    session.ports = ports;
    await this.#removeRules(clientName, oldRules, "ports changed");
    info(
      `changed ${describePorts(oldPorts)} to ${
        describePorts(ports)
      } for ${address.text} (client ${clientName}): config reload; until ${
        this.#until(session.expiresAtMs)
      }`,
    );
    this.#onChange();
  }

  /**
   * Has the backend check its base rules and every session's rules (an
   * operator may have reloaded the firewall); sessions whose rules are gone
   * are opened again with their deadline, or dropped when that fails.
   */
  async checkFirewall(): Promise<FirewallCheckResult> {
    const result: FirewallCheckResult = {
      repaired: [],
      reopened: 0,
      dropped: 0,
    };
    if (this.#stopped) return result;
    const sessions = [...this.#sessions];
    const check = await this.#backend.ensureBaseRules(
      sessions.map(([, session]) => session.rules),
    );
    result.repaired = check.repaired;
    const lost = new Set(check.lost);
    for (const [key, session] of sessions) {
      if (!lost.has(session.rules)) continue;
      if (this.#stopped || this.#sessions.get(key) !== session) continue;
      if (this.#swapping.has(key)) continue;
      this.#swapping.add(key);
      try {
        const outcome = await this.#reopen(key, session);
        if (outcome === "reopened") result.reopened++;
        if (outcome === "dropped") result.dropped++;
      } finally {
        this.#swapping.delete(key);
      }
    }
    return result;
  }

  async #reopen(
    key: string,
    session: Session,
  ): Promise<"reopened" | "dropped" | "ended"> {
    const { clientName, address, ports } = session;
    const what = describeRules(ports, address, clientName);
    // Whatever is left of the old rules goes first (for iptables, removing
    // by spec after adding would take out the new rule); not retried later
    // for the same reason.
    await this.#removeRules(clientName, session.rules, "rules replaced", false);
    let rules: OpenedRules;
    try {
      rules = await this.#backend.open(address, ports);
    } catch (err) {
      if (this.#sessions.get(key) !== session) return "ended";
      this.#sessions.delete(key);
      error(
        `${what} was removed from the firewall outside openme and could not be added again: ${
          errorMessage(err)
        }; session dropped (the client must knock again)`,
      );
      this.#schedule();
      this.#onChange();
      return "dropped";
    }
    if (this.#stopped || this.#sessions.get(key) !== session) {
      await this.#removeRules(clientName, rules, "session ended");
      return "ended";
    }
    session.rules = rules;
    warn(
      `re-opened ${what} until ${
        this.#until(session.expiresAtMs)
      }: its rules had been removed outside openme (firewall reloaded?)`,
    );
    this.#onChange();
    return "reopened";
  }

  /**
   * Shutdown: stops accepting knocks, expiring and retrying, waits (bounded)
   * for opens in flight, and forgets every session and pending close without
   * a firewall call each: the caller removes all their rules at once with the
   * backend's teardown. Opens that finish later remove their own rules.
   */
  async shutdown(): Promise<ShutdownResult> {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
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
    const sessions = this.list();
    this.#sessions.clear();
    const pendingCloses = [...this.#retries];
    this.#retries.clear();
    return { sessions, pendingCloses };
  }

  /** The open sessions, soonest deadline first. */
  list(): Session[] {
    return [...this.#sessions.values()].sort((a, b) =>
      a.expiresAtMs - b.expiresAtMs
    );
  }

  /** When each client last sent an accepted knock (wall-clock ms since the epoch). */
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
