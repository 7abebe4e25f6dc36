/**
 * `openme serve`: datagrams in -> verifier -> session manager -> firewall
 * backend, and nothing ever sent back. The config is reloaded on SIGHUP and
 * when its file changes; every few seconds the firewall is checked and what
 * an operator's ruleset reload removed is put back. Accepted replay nonces
 * go to the state file, so a restart does not reopen the door to a captured
 * knock.
 *
 * @module
 */

import { createSocket, type Socket } from "node:dgram";
import { formatDuration } from "../config/duration.ts";
import {
  allManagedPorts,
  loadServerConfig,
  type ServerConfig,
} from "../config/server_config.ts";
import { keyFingerprint } from "../protocol/crypto.ts";
import type {
  BaseRulesOptions,
  FirewallBackend,
  FirewallRulePort,
} from "../firewall/backend.ts";
import { createFirewallBackend } from "../firewall/mod.ts";
import { type IpAddress, parseIp } from "../ip.ts";
import { error, info, warn } from "../log.ts";
import {
  isExpired,
  KnockVerifier,
  type VerifierClient,
  type VerifyResult,
} from "./verifier.ts";
import { type HealthListener, startHealthListener } from "./health.ts";
import {
  type Session,
  type SessionClient,
  SessionManager,
} from "./session_manager.ts";
import {
  readStateNonces,
  renderStateFile,
  type StateFile,
  type StatePort,
  writeStateText,
} from "./state_file.ts";
import { DROP_SUMMARY_INTERVAL_MS, KnockStats } from "./stats.ts";
import { formatRfc3339 } from "../time.ts";

export type {
  BaseRulesCheck,
  BaseRulesOptions,
  FirewallBackend,
} from "../firewall/backend.ts";

// The per-source token bucket before any crypto (datagrams per second and
// burst); how often the config file and the firewall are checked; the
// longest delay of new drop counters to the state file; the most peer
// address texts whose parsed form is kept (emptied when full).
const RATE_LIMIT = { perSecond: 20, burst: 40 };
const CONFIG_POLL_INTERVAL_MS = 500;
const FIREWALL_CHECK_INTERVAL_MS = 5000;
const DROP_STATE_WRITE_DELAY_MS = 1000;
const PEER_ADDRESS_CACHE_SIZE = 4096;

/** Options for {@linkcode OpenmeServer.start}. */
export interface ServerOptions {
  /** Where the session state file is written. */
  stateFile: string;
  /** The firewall backend; default: the one the config names. */
  backend?: FirewallBackend;
  /** Input interface override (`serve --interface`). */
  interfaceOverride?: string | null;
  /** Address to bind the UDP and health sockets; default dual-stack `::`. */
  hostname?: string;
  /** Per-source rate limit; null disables it and the signature budget. */
  rateLimit?: { perSecond: number; burst: number } | null;
  /** UDP port to bind instead of `udp_port` (0: any free port; tests). */
  udpPort?: number;
  /** TCP health port to bind instead of `health_port` (0: any free port; tests). */
  healthPort?: number;
  /** Interval of the firewall check (default 5000 ms). */
  firewallCheckMs?: number;
  /** Waits before retries of a failed close (default 1 s, 2 s, 5 s, then every 10 s). */
  closeRetryDelaysMs?: readonly number[];
}

/** A client as the server knows it, built once per config load and handed to the verifier and the session manager. */
interface Client extends VerifierClient, SessionClient {}

function clientsOf(config: ServerConfig): Client[] {
  const health: FirewallRulePort = { port: config.healthPort, proto: "tcp" };
  return config.clients.map((c) => ({
    name: c.name,
    publicKey: c.ed25519PublicKey,
    fingerprint: keyFingerprint(c.ed25519PublicKey),
    expires: c.expires,
    // The health port too, unless the client opts out or has it already.
    ports: c.disableHealthPort ||
        c.ports.some((p) =>
          p.proto === "tcp" && p.port === health.port && p.endPort === undefined
        )
      ? c.ports
      : [...c.ports, health],
  }));
}

function baseRulesOf(
  config: ServerConfig,
  iface: string | null,
): BaseRulesOptions {
  const dropPorts: FirewallRulePort[] = [];
  if (config.dropPorts) {
    // The health port too: otherwise `status` reports "open" without a
    // knock on a host whose policy accepts.
    const hp = config.healthPort;
    dropPorts.push(...allManagedPorts(config));
    if (
      !dropPorts.some((p) =>
        p.proto === "tcp" && p.port <= hp && (p.endPort ?? p.port) >= hp
      )
    ) dropPorts.push({ port: hp, proto: "tcp" });
  }
  return {
    knockPort: config.udpPort,
    openKnockPort: config.openKnockPort,
    dropPorts,
    interface: iface ?? config.interface,
  };
}

function statePorts(rules: { ports: FirewallRulePort[] }): StatePort[] {
  return rules.ports.map(({ port, endPort, proto }) =>
    endPort === undefined ? { port, proto } : { port, proto, end_port: endPort }
  );
}

function oneLine(err: unknown): string {
  const lines = (err as Error).message.split("\n").map((line) => line.trim());
  return lines.filter((line) => line !== "").join(" | ");
}

/** What identifies one version of the config file (a rename-over-write changes the inode), or null when it is gone. */
async function stampOf(path: string): Promise<string | null> {
  const st = await Deno.stat(path).catch(() => null);
  return st &&
    `${st.mtime?.getTime()} ${st.ctime?.getTime()} ${st.size} ${st.ino} ${st.dev}`;
}

function bindUdp(port: number, hostname: string | undefined): Promise<Socket> {
  const bind = (host: string): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const type = host.includes(":") ? "udp6" : "udp4";
      const socket = createSocket({ type, ipv6Only: false });
      socket.once("error", (err) => {
        socket.close();
        reject(err);
      });
      socket.bind({ port, address: host }, () => {
        socket.removeAllListeners("error");
        resolve(socket);
      });
    });
  return hostname !== undefined
    ? bind(hostname)
    : bind("::").catch(() => bind("0.0.0.0"));
}

/** A running openme server. */
export class OpenmeServer {
  #configPath: string;
  #options: ServerOptions;
  #config: ServerConfig;
  #clients: Client[];
  #baseRules: BaseRulesOptions;
  #backend: FirewallBackend;
  #socket: Socket;
  #health: HealthListener;
  #verifier: KnockVerifier<Client>;
  #sessions: SessionManager;
  #stats = new KnockStats();
  /** Peer address text as the socket reports it -> parsed address. */
  #peers = new Map<string, IpAddress>();
  #stamp: string | null = null;
  #timers: ReturnType<typeof setInterval>[] = [];
  #polling = false;
  /** The latest reload; each waits for the one before. */
  #reloading: Promise<boolean> = Promise.resolve(true);
  #checking: Promise<void> | null = null;
  #checkAgain: Promise<void> | null = null;
  #checkFailed = false;
  #lastSummaryMs = Date.now();
  #dropWriteTimer: ReturnType<typeof setTimeout> | undefined;
  #stateDirty = false;
  #stateWriting: Promise<void> | null = null;
  #stateWarned = false;
  #stopping = false;
  #stopped: Promise<void> | null = null;

  private constructor(
    configPath: string,
    options: ServerOptions,
    config: ServerConfig,
    socket: Socket,
    health: HealthListener,
  ) {
    this.#configPath = configPath;
    this.#options = options;
    this.#config = config;
    this.#clients = clientsOf(config);
    this.#baseRules = baseRulesOf(config, options.interfaceOverride ?? null);
    this.#backend = options.backend ?? createFirewallBackend(config.firewall);
    this.#socket = socket;
    this.#health = health;
    const rateLimit = options.rateLimit === undefined
      ? RATE_LIMIT
      : options.rateLimit;
    this.#verifier = new KnockVerifier({
      serverPrivateKey: config.privateKey,
      replayWindowMs: config.replayWindowMs,
      clients: this.#clients,
      rateLimit,
      requireExplicitTarget: config.requireExplicitTarget,
      search: { budget: rateLimit === null ? null : "measured" },
    });
    this.#sessions = new SessionManager(this.#backend, {
      knockTimeoutMs: config.knockTimeoutMs,
      onChange: () => this.#scheduleStateWrite(),
      closeRetryDelaysMs: options.closeRetryDelaysMs,
    });
  }

  /** Loads the config, binds the sockets, sets up the firewall and starts serving. */
  static async start(
    configPath: string,
    options: ServerOptions,
  ): Promise<OpenmeServer> {
    const config = await loadServerConfig(configPath);
    for (const w of config.warnings) warn(w);
    const udpPort = options.udpPort ?? config.udpPort;
    const healthPort = options.healthPort ?? config.healthPort;
    let socket: Socket | null = null;
    let health: HealthListener;
    try {
      socket = await bindUdp(udpPort, options.hostname);
      health = await startHealthListener(healthPort, options.hostname);
    } catch (err) {
      socket?.close();
      const why = (err as Error).message;
      throw new Error(
        `cannot listen on udp/${udpPort} and tcp/${healthPort}: ${why} (is another openme running? see \`ss -lunp\` and \`ss -ltnp\`)`,
      );
    }
    // Port 0 (tests) binds a free port: rules and grants use the bound ones.
    const bound = {
      ...config,
      udpPort: socket.address().port,
      healthPort: health.port,
    };
    const server = new OpenmeServer(configPath, options, bound, socket, health);
    await server.#start();
    return server;
  }

  async #start(): Promise<void> {
    this.#stamp = await stampOf(this.#configPath);
    this.#socket.on("error", (err) => error(`udp socket: ${err.message}`));
    try {
      await this.#backend.setup(this.#baseRules);
    } catch (err) {
      await new Promise<void>((resolve) => this.#socket.close(() => resolve()));
      await this.#health.close();
      await this.#backend.teardown().catch(() => {});
      throw err;
    }
    const stateFile = this.#options.stateFile;
    try {
      const kept = this.#verifier.rememberNonces(
        await readStateNonces(stateFile),
      );
      if (kept > 0) {
        info(
          `remembered ${kept} replay nonces accepted by the previous run (state file ${stateFile})`,
        );
      }
    } catch (err) {
      const why = oneLine(err);
      warn(
        `could not read the replay nonces of the previous run: ${why} (knocks it accepted within the replay window could be replayed once)`,
      );
    }
    this.#socket.on("message", (msg, rinfo) => {
      const datagram = new Uint8Array(
        msg.buffer,
        msg.byteOffset,
        msg.byteLength,
      );
      this.handleDatagram(datagram, rinfo.address);
    });
    this.#timers.push(
      setInterval(() => {
        if (this.#polling || this.#stopping) return;
        this.#polling = true;
        this.#pollConfig().finally(() => this.#polling = false);
      }, CONFIG_POLL_INTERVAL_MS),
      setInterval(() => {
        this.#stats.logSummary(DROP_SUMMARY_INTERVAL_MS);
        this.#lastSummaryMs = Date.now();
      }, DROP_SUMMARY_INTERVAL_MS),
      setInterval(
        () => this.#checking ?? this.checkFirewall("periodic check"),
        this.#options.firewallCheckMs ?? FIREWALL_CHECK_INTERVAL_MS,
      ),
    );
    await this.#writeState();
    const timeout = formatDuration(this.#config.knockTimeoutMs);
    info(
      `openme serving: knocks on udp/${this.udpPort}, health on tcp/${this.healthPort}, ${this.#clients.length} client(s), firewall ${this.#backend.name}, knock_timeout ${timeout}`,
    );
  }

  /** The UDP port knocks arrive on. */
  get udpPort(): number {
    return this.#config.udpPort;
  }

  /** The TCP health port. */
  get healthPort(): number {
    return this.#config.healthPort;
  }

  /** The open sessions, soonest deadline first. */
  sessions(): Session[] {
    return this.#sessions.list();
  }

  /** Accepted knocks since start. */
  accepted(): number {
    return this.#stats.accepted;
  }

  /** Counters of drops by reason since start. */
  drops(): Record<string, number> {
    return this.#stats.drops();
  }

  /** Handles one datagram from a peer address; never replies. */
  handleDatagram(datagram: Uint8Array, peer: string): void {
    if (this.#stopping) return;
    const source = this.#peers.get(peer) ?? parseIp(peer);
    if (source === null) return this.#drop("source", peer);
    if (this.#peers.size >= PEER_ADDRESS_CACHE_SIZE) this.#peers.clear();
    this.#peers.set(peer, source);
    const result = this.#verifier.verify(datagram, source);
    if (result instanceof Promise) {
      result.then((late) => this.#handleResult(late, source));
    } else this.#handleResult(result, source);
  }

  /** Opens (or refreshes) the session of a verified knock, or counts its drop. */
  #handleResult(result: VerifyResult<Client>, source: IpAddress): void {
    if (this.#stopping) return;
    if (!result.ok) return this.#drop(result.reason, source.text);
    this.#stats.accepted++;
    const outcome = this.#sessions.knock(
      result.client,
      result.target,
      source.text,
    );
    if (outcome === "busy") return this.#drop("busy", source.text);
    if (outcome instanceof Promise) {
      outcome.then((done) => {
        if (done === "failed") this.#drop("firewall", source.text);
      }).catch((err) => error(`knock handling failed: ${err}`));
    }
  }

  /** Counts a drop and makes sure the counters reach the state file soon. */
  #drop(reason: string, source: string): void {
    this.#stats.drop(reason, source);
    if (this.#dropWriteTimer !== undefined || this.#stopping) return;
    this.#dropWriteTimer = setTimeout(() => {
      this.#dropWriteTimer = undefined;
      this.#scheduleStateWrite();
    }, DROP_STATE_WRITE_DELAY_MS);
  }

  /**
   * Checks the firewall for openme rules removed from outside (an operator's
   * ruleset reload) and puts them back, sessions included, and moves sessions
   * a reload could not move to their client's ports; a failure is logged
   * once until a check works again.
   */
  checkFirewall(why: string): Promise<void> {
    if (this.#stopping) return Promise.resolve();
    if (this.#checking !== null) {
      // The running check may have listed the rules before the change that
      // prompted this one (SIGHUP after a ruleset reload): check once more.
      this.#checkAgain ??= this.#checking.then(() => {
        this.#checkAgain = null;
        return this.checkFirewall(why);
      });
      return this.#checkAgain;
    }
    this.#checking = this.#sessions.checkFirewall(why)
      .then(() => this.#sessions.regrant(this.#clients))
      .then(() => {
        this.#checkFailed = false;
      }, (err) => {
        const what = `checking openme's firewall rules (${why}) failed`;
        if (!this.#checkFailed) {
          error(`${what}: ${oneLine(err)} (will keep trying)`);
        }
        this.#checkFailed = true;
      })
      .finally(() => this.#checking = null);
    return this.#checking;
  }

  /** Reloads when the config file changed (content, or a new file renamed over it). */
  async #pollConfig(): Promise<void> {
    const stamp = await stampOf(this.#configPath);
    if (stamp === this.#stamp) return;
    if (stamp === null) {
      warn(
        `config ${this.#configPath} is gone; the config in force stays until it is back`,
      );
    }
    this.#stamp = stamp;
    if (stamp !== null) await this.reload("config file changed");
  }

  /** Reloads the config (after any reload in progress); on error logs it and keeps the old one. Resolves to whether it changed. */
  reload(why: string): Promise<boolean> {
    const done = this.#reloading.then(() =>
      !this.#stopping && this.#reload(why)
    );
    this.#reloading = done.catch(() => false);
    return done;
  }

  async #reload(why: string): Promise<boolean> {
    const old = this.#config;
    let config: ServerConfig;
    let clients: Client[];
    try {
      const next = await loadServerConfig(this.#configPath);
      for (const w of next.warnings) warn(w);
      if (
        next.udpPort !== old.udpPort && this.#options.udpPort === undefined ||
        next.healthPort !== old.healthPort &&
          this.#options.healthPort === undefined
      ) {
        warn(
          `udp_port/health_port changes take effect after a restart (still udp/${old.udpPort}, tcp/${old.healthPort})`,
        );
      }
      if (next.firewall !== old.firewall) {
        warn(
          `firewall changes take effect after a restart (still ${this.#backend.name})`,
        );
      }
      if (next.privateKey.toHex() !== old.privateKey.toHex()) {
        warn(
          "server key changes take effect after a restart (knocks are still decrypted with the key the server started with)",
        );
      }
      const { udpPort, healthPort, privateKey, publicKey } = old;
      config = { ...next, udpPort, healthPort, privateKey, publicKey };
      clients = clientsOf(config);
    } catch (err) {
      const what = `reload (${why}) failed, the previous config stays in force`;
      error(`${what}: ${oneLine(err)}`);
      return false;
    }
    if (this.#stopping) return false;
    // The sessions of clients this config revokes or expires are closed.
    const now = Date.now();
    const names = new Set(clients.map((c) => c.name));
    const closing = new Map<string, string>();
    for (const c of this.#clients) {
      if (!names.has(c.name)) closing.set(c.name, "client revoked");
    }
    for (const c of clients) {
      if (isExpired(c, now)) closing.set(c.name, "client expired");
    }
    this.#config = config;
    this.#clients = clients;
    this.#verifier.setClients(clients);
    this.#verifier.setReplayWindow(config.replayWindowMs);
    this.#verifier.requireExplicitTarget = config.requireExplicitTarget;
    this.#sessions.setKnockTimeout(config.knockTimeoutMs);
    const closed = this.#sessions.closeClients(closing);
    const baseRules = baseRulesOf(
      config,
      this.#options.interfaceOverride ?? null,
    );
    if (JSON.stringify(baseRules) !== JSON.stringify(this.#baseRules)) {
      try {
        await this.#backend.updateBaseRules(baseRules);
        this.#baseRules = baseRules;
      } catch (err) {
        error(`updating knock/drop rules failed: ${(err as Error).message}`);
      }
    }
    await closed;
    await this.#sessions.regrant(clients);
    const timeout = formatDuration(config.knockTimeoutMs);
    const window = formatDuration(config.replayWindowMs);
    info(
      `config reloaded (${why}): ${clients.length} client(s), knock_timeout ${timeout}, replay_window ${window}`,
    );
    return true;
  }

  /** Writes the state file at once, then, while changes keep coming, spaced by the cost of the last write. */
  #scheduleStateWrite(): void {
    this.#stateDirty = true;
    if (this.#stateWriting !== null) return;
    this.#stateWriting = (async () => {
      while (this.#stateDirty) {
        this.#stateDirty = false;
        const costMs = await this.#writeState();
        if (this.#stateDirty && !this.#stopping) {
          // 10 times the cost of the last write's text (200 ms to 5 s): the
          // state file takes at most about a tenth of the server's time.
          const delayMs = Math.min(5000, Math.max(200, 10 * costMs));
          await new Promise((resolve) => setTimeout(resolve, delayMs));
        }
      }
    })().finally(() => this.#stateWriting = null);
  }

  /** The state as written to the state file. */
  state(): StateFile {
    const wall = (ms: number): string =>
      formatRfc3339(this.#sessions.toWallMs(ms));
    const lastSeen: Record<string, string> = {};
    for (const [name, ms] of this.#sessions.lastSeen()) {
      lastSeen[name] = formatRfc3339(ms);
    }
    return {
      updated_at: formatRfc3339(Date.now()),
      active_sessions: this.#sessions.list().map((s) => ({
        client_name: s.clientName,
        ip: s.rules.address.text,
        ports: statePorts(s.rules),
        opened_at: wall(s.openedAtMs),
        expires_at: wall(s.expiresAtMs),
      })),
      last_seen: lastSeen,
      accepted: this.#stats.accepted,
      drops: this.#stats.drops(),
      pid: Deno.pid,
      pending_closes: this.#sessions.pendingCloses().map((p) => ({
        client_name: p.clientName,
        ip: p.rules.address.text,
        ports: statePorts(p.rules),
        reason: p.reason,
        attempts: p.attempts,
        last_error: p.lastError,
      })),
      replay_nonces: this.#verifier.nonceRecord(),
    };
  }

  /** Writes the state file; returns how long building its text took (ms), not counting the write itself. */
  async #writeState(): Promise<number> {
    const started = performance.now();
    const text = renderStateFile(this.state());
    const costMs = performance.now() - started;
    const path = this.#options.stateFile;
    try {
      await writeStateText(path, text);
      this.#stateWarned = false;
    } catch (err) {
      if (!this.#stateWarned) {
        const why = (err as Error).message;
        warn(
          `cannot write state file ${path}: ${why} (serving continues; \`openme sessions\` will be stale)`,
        );
      }
      this.#stateWarned = true;
    }
    return costMs;
  }

  /** Stops serving, removes every rule openme added and writes the final state. */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    this.#stopping = true;
    for (const timer of this.#timers) clearInterval(timer);
    clearTimeout(this.#dropWriteTimer);
    this.#socket.removeAllListeners("message");
    this.#verifier.close();
    await new Promise<void>((resolve) => this.#socket.close(() => resolve()));
    await this.#health.close();
    await this.#reloading;
    await this.#checking;
    const removed = await this.#sessions.shutdown();
    await this.#stateWriting;
    await this.#writeState();
    this.#stats.logSummary(Date.now() - this.#lastSummaryMs);
    info(
      removed
        ? "openme stopped; every rule it added is removed"
        : "openme stopped; some of its rules may be left (see the error above)",
    );
  }
}
