/**
 * `openme serve`: datagrams in -> verifier -> session manager -> firewall
 * backend, nothing ever sent back; the config is reloaded when it changes,
 * the firewall is checked and repaired, and replay nonces are saved.
 *
 * @module
 */

import { createSocket, type Socket } from "node:dgram";
import { configStamp } from "../config/clients_dir.ts";
import { formatDuration } from "../config/duration.ts";
import {
  allManagedPorts,
  loadServerConfig,
  type ServerConfig,
} from "../config/server_config.ts";
import { keyFingerprint } from "../protocol/crypto.ts";
import {
  type BaseRulesOptions,
  type FirewallBackend,
  type FirewallRulePort,
  type OpenedRules,
  RATE_UNIT_SECONDS,
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
  nonceFilePath,
  readStateBytes,
  type StateFile,
  type StateRules,
  writeNonceFile,
  writeStateFile,
} from "./state_file.ts";
import {
  countedBackend,
  DROP_SUMMARY_INTERVAL_MS,
  KnockStats,
} from "./stats.ts";
import { METRICS_INTERVAL_MS, renderMetrics } from "./metrics.ts";
import { writeFileNoFollow } from "../config/atomic_write.ts";
import { formatRfc3339 } from "../time.ts";

export type {
  BaseRulesCheck,
  BaseRulesOptions,
  FirewallBackend,
  GateCounters,
  KnockRateLimit,
} from "../firewall/backend.ts";

// How often the config file and the firewall are checked; the shortest time
// between two state file writes; how often new nonces and drop counters are
// written; the most peer address texts whose parsed form is kept (emptied
// when full); the receive buffer (see bindKnockSocket).
const CONFIG_POLL_INTERVAL_MS = 500;
const FIREWALL_CHECK_INTERVAL_MS = 5000;
const STATE_WRITE_SPACING_MS = 200;
const SAVE_INTERVAL_MS = 1000;
const PEER_ADDRESS_CACHE_SIZE = 4096;
const RECEIVE_BUFFER_BYTES = 256;

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
  /** Per-source rate limit (default: knock_rate_limit and knock_burst); null disables it and the signature budget. */
  rateLimit?: { perSecond: number; burst: number } | null;
  /** UDP port to bind instead of `udp_port` (0: any free port; tests). */
  udpPort?: number;
  /** TCP health port to bind instead of `health_port` (0: any free port; tests). */
  healthPort?: number;
  /** Interval of the firewall check (default 5000 ms). */
  firewallCheckMs?: number;
  /** Waits before retries of a failed close (default 1 s, 2 s, 5 s, then every 10 s). */
  closeRetryDelaysMs?: readonly number[];
  /** Interval of the metrics file's rewrite (default 15 s). */
  metricsIntervalMs?: number;
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
  iface: string | null | undefined,
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
    knockRateLimit: config.knockRateLimit,
  };
}

function stateRules(clientName: string, rules: OpenedRules): StateRules {
  const ports = rules.ports.map(({ port, endPort, proto }) =>
    endPort === undefined ? { port, proto } : { port, proto, end_port: endPort }
  );
  return { client_name: clientName, ip: rules.address.text, ports };
}

function oneLine(err: unknown): string {
  const lines = (err as Error).message.split("\n").map((line) => line.trim());
  return lines.filter((line) => line !== "").join(" | ");
}

/** Binds the knock socket on `hostname` (default dual-stack `::`, else `0.0.0.0`); the floors in bench/ bind theirs with it too. */
export function bindKnockSocket(
  port: number,
  hostname?: string,
): Promise<Socket> {
  const bind = (host: string): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const type = host.includes(":") ? "udp6" : "udp4";
      // Deno's node:dgram allocates this (doubled on Linux) for each receive
      // instead of 64 KiB; longer datagrams arrive cut, still too long.
      const socket = createSocket({
        type,
        ipv6Only: false,
        recvBufferSize: RECEIVE_BUFFER_BYTES,
      });
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
  #dropsDirty = false;
  #stateDirty = false;
  #stateWriting: Promise<void> | null = null;
  #metricsWriting: Promise<void> = Promise.resolve();
  /** Nonces added to the replay cache when the nonce file was last written. */
  #noncesSaved = -1;
  #nonceSaving: Promise<void> = Promise.resolve();
  /** Files whose last write failed (warned about once). */
  #unwritable = new Set<string>();
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
    this.#baseRules = baseRulesOf(config, options.interfaceOverride);
    this.#backend = countedBackend(
      options.backend ?? createFirewallBackend(config.firewall),
      this.#stats,
    );
    this.#socket = socket;
    this.#health = health;
    const limit = config.knockRateLimit;
    const rateLimit = options.rateLimit !== undefined ? options.rateLimit : {
      perSecond: limit.count / RATE_UNIT_SECONDS[limit.unit],
      burst: limit.burst,
    };
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
    for (const e of config.dropInErrors) error(e);
    const udpPort = options.udpPort ?? config.udpPort;
    const healthPort = options.healthPort ?? config.healthPort;
    let socket: Socket | null = null;
    let health: HealthListener;
    try {
      socket = await bindKnockSocket(udpPort, options.hostname);
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
    this.#stamp = await configStamp(this.#configPath, this.#config.clientsDir);
    this.#socket.on("error", (err) => error(`udp socket: ${err.message}`));
    try {
      await this.#backend.setup(this.#baseRules);
    } catch (err) {
      await new Promise<void>((resolve) => this.#socket.close(() => resolve()));
      await this.#health.close();
      await this.#backend.teardown().catch(() => {});
      throw err;
    }
    const path = nonceFilePath(this.#options.stateFile);
    const cache = this.#verifier.replayCache;
    try {
      const saved = await readStateBytes(path);
      const kept = saved === null ? 0 : cache.restore(saved, Date.now());
      if (kept > 0) {
        info(`remembered ${kept} replay nonces of the previous run (${path})`);
      }
    } catch (err) {
      // Nothing stamped before now can be a replay this run would miss.
      cache.horizonMs = Date.now();
      warn(
        `could not read the replay nonces of the previous run from ${path}: ${
          oneLine(err)
        } (knocks stamped before now are refused)`,
      );
    }
    await this.#saveNonces();
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
      setInterval(
        () => this.writeMetrics(),
        this.#options.metricsIntervalMs ?? METRICS_INTERVAL_MS,
      ),
      setInterval(() => {
        this.#nonceSaving = this.#nonceSaving.then(() => this.#saveNonces());
        if (this.#dropsDirty) this.#scheduleStateWrite();
        this.#dropsDirty = false;
      }, SAVE_INTERVAL_MS),
    );
    await this.#writeState();
    await this.writeMetrics();
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
    this.#stats.accept(result.client.name);
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

  /** Counts a drop; the counters reach the state file within a second. */
  #drop(reason: string, source: string): void {
    this.#stats.drop(reason, source);
    this.#dropsDirty = true;
  }

  /** Puts back the openme rules an operator's ruleset reload removed, sessions included, and moves sessions to their client's ports; a failure is logged once until a check works. */
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
      .then(() => this.#backend.gateCounters())
      .then((counters) => {
        this.#checkFailed = false;
        const changed =
          JSON.stringify(counters) !== JSON.stringify(this.#stats.kernelDrops);
        this.#stats.kernelDrops = counters;
        if (changed) this.#scheduleStateWrite();
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

  /** Reloads when the config file or a file of `clients_dir` changed (content, or a new file renamed over it). */
  async #pollConfig(): Promise<void> {
    const stamp = await configStamp(this.#configPath, this.#config.clientsDir);
    if (stamp === this.#stamp) return;
    if (stamp === null) {
      warn(
        `config ${this.#configPath} is gone; the config in force stays until it is back`,
      );
    }
    this.#stamp = stamp;
    if (stamp !== null) await this.reload("config file changed");
  }

  /** Reloads the config after any reload in progress, resolving to whether it changed; on error logs it and keeps the old one. */
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
      const next = await loadServerConfig(this.#configPath, { previous: old });
      for (const w of next.warnings) warn(w);
      for (const e of next.dropInErrors) error(e);
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
      this.#stats.reloads.error++;
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
    const baseRules = baseRulesOf(config, this.#options.interfaceOverride);
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
    this.#stats.reloads.ok++;
    info(
      `config reloaded (${why}): ${clients.length} client(s), knock_timeout ${timeout}, replay_window ${window}`,
    );
    return true;
  }

  /** Writes the state file at once, then, while changes keep coming, at most every STATE_WRITE_SPACING_MS. */
  #scheduleStateWrite(): void {
    this.#stateDirty = true;
    this.#stateWriting ??= (async () => {
      while (this.#stateDirty) {
        this.#stateDirty = false;
        await this.#writeState();
        if (this.#stateDirty && !this.#stopping) {
          await new Promise((ok) => setTimeout(ok, STATE_WRITE_SPACING_MS));
        }
      }
    })().finally(() => this.#stateWriting = null);
  }

  /** The state as written to the state file. */
  state(): StateFile {
    const wall = (ms: number): string =>
      formatRfc3339(this.#sessions.toWallMs(ms));
    const lastSeen: Record<string, string> = {};
    for (const [name, ms] of this.#stats.lastSeen) {
      lastSeen[name] = formatRfc3339(ms);
    }
    return {
      updated_at: formatRfc3339(Date.now()),
      active_sessions: this.#sessions.list().map((s) => ({
        ...stateRules(s.clientName, s.rules),
        opened_at: wall(s.openedAtMs),
        expires_at: wall(s.expiresAtMs),
      })),
      last_seen: lastSeen,
      accepted: this.#stats.accepted,
      drops: this.#stats.drops(),
      kernel_drops: this.#stats.kernelDrops ?? undefined,
      pid: Deno.pid,
      pending_closes: this.#sessions.pendingCloses().map((p) => ({
        ...stateRules(p.clientName, p.rules),
        reason: p.reason,
        attempts: p.attempts,
        last_error: p.lastError,
      })),
    };
  }

  /** Waits for one write of a file; a failure is warned about once, until a write of that file works again. */
  async #write(
    what: string,
    path: string,
    writing: Promise<void>,
  ): Promise<void> {
    try {
      await writing;
      this.#unwritable.delete(path);
    } catch (err) {
      if (!this.#unwritable.has(path)) {
        const why = (err as Error).message;
        const stale = what === "state file"
          ? "`openme sessions` will be stale"
          : what === "metrics file"
          ? "check metrics_file and the directory's permissions"
          : "after a restart, knocks accepted since could be replayed once within replay_window";
        warn(
          `cannot write ${what} ${path}: ${why} (serving continues; ${stale})`,
        );
      }
      this.#unwritable.add(path);
    }
  }

  #writeState(): Promise<void> {
    const path = this.#options.stateFile;
    return this.#write("state file", path, writeStateFile(path, this.state()));
  }

  /** Writes the nonce file when nonces were added since it was last written. */
  #saveNonces(): Promise<void> {
    const cache = this.#verifier.replayCache;
    const added = cache.added;
    if (added === this.#noncesSaved) return Promise.resolve();
    const path = nonceFilePath(this.#options.stateFile);
    const writing = writeNonceFile(path, cache.snapshot()).then(() => {
      this.#noncesSaved = added;
    });
    return this.#write("replay nonce file", path, writing);
  }

  /** Writes the metrics file when `metrics_file` is set, after the write in progress; a failure is logged once until a write works. */
  writeMetrics(): Promise<void> {
    this.#metricsWriting = this.#metricsWriting.then(async () => {
      const path = this.#config.metricsFile;
      if (path === null) return;
      const text = renderMetrics(this.#stats, {
        backend: this.#backend.name,
        startTimeSeconds: performance.timeOrigin / 1000,
        openSessions: this.#sessions.list().length,
      });
      const writing = writeFileNoFollow(path, text, {
        force: true,
        mode: 0o644,
      });
      await this.#write("metrics file", path, writing);
    });
    return this.#metricsWriting;
  }

  /** Stops serving, removes every rule openme added and writes the final state. */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    this.#stopping = true;
    for (const timer of this.#timers) clearInterval(timer);
    this.#socket.removeAllListeners("message");
    this.#verifier.close();
    await new Promise<void>((resolve) => this.#socket.close(() => resolve()));
    await this.#health.close();
    await this.#reloading;
    await this.#checking;
    const removed = await this.#sessions.shutdown();
    await this.#stateWriting;
    await this.#writeState();
    await this.#nonceSaving;
    await this.#saveNonces();
    await this.writeMetrics();
    this.#stats.logSummary(Date.now() - this.#lastSummaryMs);
    info(
      removed
        ? "openme stopped; every rule it added is removed"
        : "openme stopped; some of its rules may be left (see the error above)",
    );
  }
}
