/**
 * Open sessions, one per (client, target address), recorded once their rules
 * are in and closed at a deadline on a monotonic clock; a close the firewall
 * refuses is retried with backoff.
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

export type { FirewallRulePort, OpenedRules };

/** Most sessions (target addresses) one client may hold; a knock for one more closes its least recently knocked session. */
export const MAX_SESSIONS_PER_CLIENT = 8;

/** Most opens of one client waiting for the firewall at once (fewer than its sessions): further first knocks of that client are dropped as busy, so no client takes the whole shared bound. */
export const MAX_PENDING_OPENS_PER_CLIENT = 4;

/** Waits before the first, second, ... retry of a failed close; the last one repeats. */
export const CLOSE_RETRY_DELAYS_MS: readonly number[] = [1e3, 2e3, 5e3, 1e4];

/** A monotonic clock in ms (close to the epoch at start-up, but never stepped with the wall clock). */
export function monotonicNow(): number {
  return performance.timeOrigin + performance.now();
}

/** A client as the session manager needs it. */
export interface SessionClient {
  /** Client name from the config. */
  name: string;
  /** Ports its knocks open (health port included). */
  ports: FirewallRulePort[];
  /** Fingerprint of its key, for the log. */
  fingerprint: string;
}

/** One open session. */
export interface Session {
  /** Client name from the server config. */
  clientName: string;
  /** When the rules went in (ms on the manager's monotonic clock; see toWallMs). */
  openedAtMs: number;
  /** When the rules come out (ms on the manager's monotonic clock; see toWallMs). */
  expiresAtMs: number;
  /** The rules: address, ports and what the backend needs to remove them. */
  rules: OpenedRules;
}

/** Rules whose removal failed and is retried. */
export interface PendingClose {
  /** Client the rules were opened for. */
  clientName: string;
  /** Why they are being removed ("timeout", "client revoked", ...). */
  reason: string;
  /** Failed attempts so far. */
  attempts: number;
  /** The latest failure. */
  lastError: string;
  /** When the next attempt runs (manager clock). */
  nextAttemptMs: number;
  /** The rules to remove. */
  rules: OpenedRules;
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
  /** Waits before retries of a failed close (default {@linkcode CLOSE_RETRY_DELAYS_MS}). */
  closeRetryDelaysMs?: readonly number[];
  /** Called after every open, refresh and close (the state file is written from here). */
  onChange?: () => void;
  /** Most firewall opens waiting at once; further first knocks are dropped as busy (default 64). */
  maxPendingOpens?: number;
  /** How long shutdown waits for opens in flight (default 1000 ms). */
  shutdownWaitMs?: number;
}

interface PendingOpen {
  clientName: string;
  done: Promise<KnockOutcome>;
  /** Set when a reload revoked or expired the client while its rules went in. */
  refusal: string | null;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Formats ports for logs: "22/tcp,8080-8090/tcp". */
export function describePorts(ports: readonly FirewallRulePort[]): string {
  return ports.map((p) =>
    `${p.port}${p.endPort === undefined ? "" : `-${p.endPort}`}/${p.proto}`
  ).join(",");
}

function describeRules(rules: OpenedRules, clientName: string): string {
  const ports = describePorts(rules.ports);
  return `${ports} for ${rules.address.text} (client ${clientName})`;
}

/** Keeps the open sessions and their deadlines, and drives the firewall backend. */
export class SessionManager {
  #backend: FirewallBackend;
  #knockTimeoutMs: number;
  #now: () => number;
  #wallNow: () => number;
  #onChange: () => void;
  #maxPending: number;
  #retryDelaysMs: readonly number[];
  #shutdownWaitMs: number;
  /** Key: client name, NUL, address text. */
  #sessions = new Map<string, Session>();
  #pending = new Map<string, PendingOpen>();
  /** Sessions whose rules are being replaced (port change or re-open). */
  #replacing = new Set<string>();
  #retries = new Set<PendingClose>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #stopped = false;

  /** Creates a manager that opens and closes rules through the backend. */
  constructor(backend: FirewallBackend, options: SessionManagerOptions) {
    this.#backend = backend;
    this.#knockTimeoutMs = options.knockTimeoutMs;
    this.#now = options.now ?? monotonicNow;
    this.#wallNow = options.wallNow ?? Date.now;
    this.#onChange = options.onChange ?? (() => {});
    this.#maxPending = options.maxPendingOpens ?? 64;
    this.#retryDelaysMs = options.closeRetryDelaysMs ?? CLOSE_RETRY_DELAYS_MS;
    this.#shutdownWaitMs = options.shutdownWaitMs ?? 1000;
  }

  /** Changes the session length for knocks from now on (a reload). */
  setKnockTimeout(ms: number): void {
    this.#knockTimeoutMs = ms;
  }

  /** Converts a time on the manager's clock (a deadline) to wall-clock ms since the epoch, for display. */
  toWallMs(ms: number): number {
    return this.#wallNow() + (ms - this.#now());
  }

  /** Opens the session for a verified knock, or moves the deadline of the one that is open (answered at once, as is a knock dropped as busy). */
  knock(
    client: SessionClient,
    address: IpAddress,
    source: string,
  ): KnockOutcome | Promise<KnockOutcome> {
    if (this.#stopped) return "failed";
    const key = `${client.name}\u0000${address.text}`;
    const what =
      `for ${address.text} (client ${client.name} key ${client.fingerprint} from ${source})`;
    const session = this.#sessions.get(key);
    if (session !== undefined) {
      session.expiresAtMs = this.#now() + this.#knockTimeoutMs;
      const ports = describePorts(session.rules.ports);
      const until = formatRfc3339(this.#wallNow() + this.#knockTimeoutMs);
      info(`refreshed ${ports} ${what} until ${until}`);
      // The timer fires at or before the soonest deadline unless this one
      // moved before it (a reload shortened knock_timeout).
      if (this.#timerAt > session.expiresAtMs) this.#schedule();
      this.#onChange();
      return "refreshed";
    }
    if (this.#pending.has(key)) {
      // The open in flight sets the deadline from its own completion time.
      info(`knock ${what} while its ports are being opened`);
      return "refreshed";
    }
    const dropped = `knock from ${client.name} for ${address.text} dropped`;
    if (this.#pending.size >= this.#maxPending) {
      warn(
        `${dropped}: ${this.#pending.size} firewall changes already waiting`,
      );
      return "busy";
    }
    const inFlight =
      [...this.#pending.values()].filter((p) => p.clientName === client.name)
        .length;
    if (inFlight >= MAX_PENDING_OPENS_PER_CLIENT) {
      warn(
        `${dropped}: ${inFlight} opens of this client already waiting (at most ${MAX_PENDING_OPENS_PER_CLIENT} per client)`,
      );
      return "busy";
    }
    // A client at its session limit loses its least recently knocked one.
    const max = MAX_SESSIONS_PER_CLIENT;
    const own = [...this.#sessions].filter(([, s]) =>
      s.clientName === client.name
    );
    if (own.length + inFlight >= max) {
      const [oldKey, old] = own.reduce((a, b) =>
        b[1].expiresAtMs < a[1].expiresAtMs ? b : a
      );
      const gone = old.rules.address.text;
      warn(
        `client ${client.name} has ${max} sessions, the most one client may hold: closing the one for ${gone} (least recently knocked) to open ${address.text}`,
      );
      this.#close(
        oldKey,
        `session limit (${max} per client) reached by a knock for ${address.text}`,
      )
        .catch((err) => error(`closing an evicted session failed: ${err}`));
    }
    const done = this.#open(key, client, address, what);
    this.#pending.set(key, { clientName: client.name, done, refusal: null });
    return done;
  }

  async #open(
    key: string,
    client: SessionClient,
    address: IpAddress,
    what: string,
  ): Promise<KnockOutcome> {
    let rules: OpenedRules;
    try {
      rules = await this.#backend.open(address, client.ports);
    } catch (err) {
      this.#pending.delete(key);
      const why = errorMessage(err);
      error(
        `knock from ${client.name} for ${address.text} failed: could not open ports: ${why}`,
      );
      return "failed";
    }
    // Shutdown, or a reload that revoked or expired the client, came while the rules went in.
    const refusal = this.#stopped
      ? "shutdown"
      : this.#pending.get(key)!.refusal;
    this.#pending.delete(key);
    if (refusal !== null) {
      const removed = await this.#removeRules(client.name, rules, refusal);
      if (removed && refusal !== "shutdown") {
        const closed = describeRules(rules, client.name);
        info(`closed ${closed} right after opening: ${refusal}`);
      }
      return "failed";
    }
    const now = this.#now();
    const expiresAtMs = now + this.#knockTimeoutMs;
    this.#sessions.set(key, {
      clientName: client.name,
      openedAtMs: now,
      expiresAtMs,
      rules,
    });
    const ports = describePorts(client.ports);
    const until = formatRfc3339(this.toWallMs(expiresAtMs));
    info(`opened ${ports} ${what} until ${until}`);
    this.#schedule();
    this.#onChange();
    return "opened";
  }

  /** Removes rules through the backend; true when that worked (a failure goes to #closeFailed). */
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
      const entry = {
        clientName,
        reason,
        attempts: 0,
        lastError: "",
        nextAttemptMs: 0,
        rules,
      };
      this.#closeFailed(entry, err, retry);
      return false;
    }
  }

  /** Logs a failed close and, unless shutting down or told not to, lists it for a retry after the next wait of the backoff. */
  #closeFailed(entry: PendingClose, err: unknown, retry = true): void {
    entry.attempts++;
    entry.lastError = errorMessage(err);
    const rules = describeRules(entry.rules, entry.clientName);
    const what = `closing ${rules} (${entry.reason}) failed`;
    if (this.#stopped || !retry) {
      const then = this.#stopped
        ? "shutting down, the teardown removes openme's rules"
        : "not retried";
      error(`${what}: ${entry.lastError}; ${then}`);
      return;
    }
    const delays = this.#retryDelaysMs;
    const delayMs = delays[Math.min(entry.attempts, delays.length) - 1];
    entry.nextAttemptMs = this.#now() + delayMs;
    this.#retries.add(entry);
    const again = entry.attempts > 1
      ? ` again (attempt ${entry.attempts})`
      : "";
    error(
      `${what}${again}, will retry in ${delayMs / 1000} s: ${entry.lastError}`,
    );
    this.#schedule();
    this.#onChange();
  }

  /** Rules whose removal failed and is being retried. */
  pendingCloses(): PendingClose[] {
    return [...this.#retries];
  }

  /** Takes a session out at once and removes its rules. */
  async #close(key: string, reason: string): Promise<void> {
    const session = this.#sessions.get(key)!;
    this.#sessions.delete(key);
    if (await this.#removeRules(session.clientName, session.rules, reason)) {
      info(
        `closed ${describeRules(session.rules, session.clientName)}: ${reason}`,
      );
    }
    this.#onChange();
  }

  /** Closes the sessions whose deadline has passed and retries the failed closes that are due (the timer calls it). */
  async runDue(): Promise<void> {
    const now = this.#now();
    const work: Promise<void>[] = [];
    for (const [key, session] of this.#sessions) {
      if (session.expiresAtMs <= now) work.push(this.#close(key, "timeout"));
    }
    for (const entry of this.#retries) {
      if (this.#stopped || entry.nextAttemptMs > now) continue;
      entry.nextAttemptMs = Infinity; // not due again while it runs
      work.push(
        this.#backend.close(entry.rules).then(() => {
          this.#retries.delete(entry);
          const what = describeRules(entry.rules, entry.clientName);
          info(
            `closed ${what}: ${entry.reason} (after ${entry.attempts} failed attempts)`,
          );
          this.#onChange();
        }, (err) => this.#closeFailed(entry, err)),
      );
    }
    // What is handled here is off the timer's list already: the next time
    // is set now, not after these firewall calls.
    this.#schedule();
    await Promise.all(work);
  }

  /** Closes the sessions of the clients named in `reasons` (revoked or expired by a reload), and their opens in flight once they finish. */
  async closeClients(reasons: ReadonlyMap<string, string>): Promise<void> {
    for (const pending of this.#pending.values()) {
      pending.refusal = reasons.get(pending.clientName) ?? pending.refusal;
    }
    const work: Promise<void>[] = [];
    for (const [key, session] of this.#sessions) {
      const reason = reasons.get(session.clientName);
      if (reason !== undefined) work.push(this.#close(key, reason));
    }
    this.#schedule();
    await Promise.all(work);
  }

  /** Moves the sessions whose client's ports changed (a reload) to the new ports, keeping their deadline. */
  async regrant(clients: readonly SessionClient[]): Promise<void> {
    const byName = new Map(clients.map((client) => [client.name, client]));
    const work: Promise<unknown>[] = [];
    for (const [key, session] of this.#sessions) {
      const ports = byName.get(session.clientName)?.ports;
      if (
        ports && describePorts(ports) !== describePorts(session.rules.ports)
      ) {
        work.push(this.#replaceRules(key, session, ports));
      }
    }
    await Promise.all(work);
  }

  /** Has the backend put back what an operator's firewall reload removed, re-opening sessions with their deadline (or dropping them), and logs it; throws when the backend cannot check. */
  async checkFirewall(why: string): Promise<void> {
    if (this.#stopped) return;
    const sessions = [...this.#sessions];
    const check = await this.#backend.ensureBaseRules(
      sessions.map(([, s]) => s.rules),
    );
    if (check.repaired.length > 0) {
      const what = check.repaired.join(", ");
      warn(
        `firewall: openme's rules were removed outside openme (firewall reloaded?); put back: ${what} (${why})`,
      );
    }
    const lost = new Set(check.lost);
    const count = { replaced: 0, dropped: 0, failed: 0 };
    for (const [key, session] of sessions) {
      if (lost.has(session.rules) && this.#sessions.get(key) === session) {
        count[await this.#replaceRules(key, session, null)]++;
      }
    }
    if (count.replaced > 0 || count.dropped > 0) {
      warn(
        `firewall: ${count.replaced} session(s) re-opened, ${count.dropped} dropped after their rules were removed outside openme (${why})`,
      );
    }
  }

  /**
   * Gives a session, keeping its deadline, rules for new `ports` (added before
   * the old come out) or, for null, new rules for lost ones (what is left of
   * them goes first: for iptables, removing by spec after adding would take
   * out the new rule).
   */
  async #replaceRules(
    key: string,
    session: Session,
    ports: FirewallRulePort[] | null,
  ): Promise<"replaced" | "dropped" | "failed"> {
    if (this.#replacing.has(key)) return "failed";
    this.#replacing.add(key);
    const { clientName, rules: old } = session;
    const what = describeRules(old, clientName);
    const oldPorts = describePorts(old.ports);
    try {
      if (ports === null) {
        await this.#removeRules(clientName, old, "rules replaced", false);
      }
      let rules: OpenedRules;
      try {
        rules = await this.#backend.open(old.address, ports ?? old.ports);
      } catch (err) {
        const why = errorMessage(err);
        if (ports !== null) {
          const to = describePorts(ports);
          error(
            `changing the ports of ${old.address.text} (client ${clientName}) to ${to} failed, ${oldPorts} stay open until the deadline: ${why}`,
          );
          return "failed";
        }
        if (this.#sessions.get(key) !== session) return "failed";
        this.#sessions.delete(key);
        error(
          `${what} was removed from the firewall outside openme and could not be added again: ${why}; session dropped (the client must knock again)`,
        );
        this.#schedule();
        this.#onChange();
        return "dropped";
      }
      if (this.#stopped || this.#sessions.get(key) !== session) {
        await this.#removeRules(clientName, rules, "session ended");
        return "failed";
      }
      session.rules = rules;
      const until = formatRfc3339(this.toWallMs(session.expiresAtMs));
      if (ports === null) {
        warn(
          `re-opened ${what} until ${until}: its rules had been removed outside openme (firewall reloaded?)`,
        );
      } else {
        await this.#removeRules(clientName, old, "ports changed");
        const to = describePorts(ports);
        info(
          `changed ${oldPorts} to ${to} for ${old.address.text} (client ${clientName}): config reload; until ${until}`,
        );
      }
      this.#onChange();
      return "replaced";
    } finally {
      this.#replacing.delete(key);
    }
  }

  /** Stops knocks, expiry and retries, waits a bounded time for opens in flight and removes every rule openme added with one teardown; resolves to whether that worked. */
  async shutdown(): Promise<boolean> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    if (this.#pending.size > 0) {
      let timer;
      const waited = new Promise((resolve) =>
        timer = setTimeout(resolve, this.#shutdownWaitMs)
      );
      await Promise.race([
        Promise.allSettled([...this.#pending.values()].map((p) => p.done)),
        waited,
      ]);
      clearTimeout(timer);
      if (this.#pending.size > 0) {
        warn(
          `${this.#pending.size} firewall opens still running at shutdown; their rules are removed when they finish`,
        );
      }
    }
    const sessions = this.list();
    const failedCloses = this.#retries.size;
    this.#sessions.clear();
    this.#retries.clear();
    try {
      await this.#backend.teardown();
    } catch (err) {
      const why = errorMessage(err);
      error(
        `removing openme's firewall rules failed: ${why} (${sessions.length} session(s) may still be open: list and delete the rules tagged "openme" by hand)`,
      );
      return false;
    }
    for (const s of sessions) {
      info(`closed ${describeRules(s.rules, s.clientName)}: shutdown`);
    }
    if (failedCloses > 0) {
      info(
        `removed the rules of ${failedCloses} earlier failed close(s): shutdown`,
      );
    }
    return true;
  }

  /** The open sessions, soonest deadline first. */
  list(): Session[] {
    return [...this.#sessions.values()].sort((a, b) =>
      a.expiresAtMs - b.expiresAtMs
    );
  }

  /** Sets the timer for the soonest deadline or retry. */
  #schedule(): void {
    let next = Infinity;
    for (const s of this.#sessions.values()) {
      next = Math.min(next, s.expiresAtMs);
    }
    for (const r of this.#retries) next = Math.min(next, r.nextAttemptMs);
    if (this.#stopped || next >= this.#timerAt && this.#timerAt !== Infinity) {
      return;
    }
    clearTimeout(this.#timer);
    this.#timerAt = next;
    if (next === Infinity) return;
    this.#timer = setTimeout(() => {
      this.#timerAt = Infinity;
      this.runDue().catch((err) => error(`expiring sessions failed: ${err}`));
    }, Math.max(0, next - this.#now()));
  }
}
