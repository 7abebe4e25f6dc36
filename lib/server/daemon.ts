/**
 * `openme serve`: datagrams in → verified knock → session manager → firewall
 * backend. One UDP socket (dual-stack), one health listener, one verifier;
 * each datagram is checked synchronously, cheapest test first, and nothing is
 * ever sent back. The config is reloaded on SIGHUP and when its file changes.
 * Every few seconds (and on SIGHUP) the firewall is checked: what an
 * operator's ruleset reload removed is put back, sessions included. Accepted
 * replay nonces go to the state file, so a restart does not reopen the door
 * to a captured knock. Shutdown removes every openme rule with one teardown.
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
import { keyFingerprint, prepareEd25519VerifyKey } from "../protocol/crypto.ts";
import type {
  BaseRulesOptions,
  FirewallBackend,
  FirewallRulePort,
} from "../firewall/backend.ts";
import { createFirewallBackend } from "../firewall/mod.ts";
import { type IpAddress, parseIp } from "../ip.ts";
import { error, info, isLogEnabled, warn } from "../log.ts";
import {
  KNOCK_PACKET_BYTES,
  PROTOCOL_VERSION,
  VERSION_OFFSET,
} from "../protocol/packet.ts";
import { KnockVerifier, type VerifierClient } from "./verifier.ts";
import { type HealthListener, startHealthListener } from "./health.ts";
import {
  describePorts,
  type FirewallCheckResult,
  type Session,
  SessionManager,
} from "./session_manager.ts";
import {
  readStateReplayNonces,
  renderStateFile,
  type StateFile,
  type StatePort,
  writeStateText,
} from "./state_file.ts";
import { DROP_SUMMARY_INTERVAL_MS, KnockStats } from "./stats.ts";
import { formatRfc3339 } from "../time.ts";

/** How often the config file is checked for changes. */
export const CONFIG_POLL_INTERVAL_MS = 500;

/** Per-source token bucket: sustained datagrams per second that reach the crypto. */
export const RATE_LIMIT_PER_SECOND = 20;

/** Per-source token bucket: burst size. */
export const RATE_LIMIT_BURST = 40;

/**
 * Server-wide Ed25519 checks per second (and burst) for packets that decrypt
 * but come from a source whose client is not yet known: about 0.4 of a core,
 * so packets forged with the public server key cannot take the whole CPU.
 */
export const SIGNATURE_CHECKS_PER_SECOND = 10_000;

/** How often the firewall is checked for openme rules removed from outside (a ruleset reload). */
export const FIREWALL_CHECK_INTERVAL_MS = 5000;

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
  /** Config file poll interval (default 500 ms). */
  configPollMs?: number;
  /** Per-source rate limit; null disables it and the server-wide signature budget. */
  rateLimit?: { perSecond: number; burst: number } | null;
  /** UDP port to bind instead of `udp_port` (0: any free port; tests). */
  udpPort?: number;
  /** TCP health port to bind instead of `health_port` (0: any free port; tests). */
  healthPort?: number;
  /** Interval of the drop summary line (default 60 s). */
  summaryIntervalMs?: number;
  /** Longest delay before drop counters reach the state file (default 1000 ms). */
  dropWriteDelayMs?: number;
  /** How long shutdown waits for firewall opens in flight (default 1000 ms). */
  shutdownWaitMs?: number;
  /** Interval of the firewall check (default 5000 ms). */
  firewallCheckMs?: number;
  /** Waits before retries of a failed close (default 1 s, 2 s, 5 s, then every 10 s). */
  closeRetryDelaysMs?: readonly number[];
}

/**
 * Most peer address texts whose parsed form is kept (the table is emptied
 * when full: a flood of new addresses only costs the parsing it saves).
 */
export const PEER_ADDRESS_CACHE_SIZE = 4096;

/** Longest delay before new drop counters are written to the state file. */
export const DROP_STATE_WRITE_DELAY_MS = 1000;

/** Shortest time between two state file writes while changes keep coming (the first is written at once). */
export const STATE_WRITE_MIN_INTERVAL_MS = 200;

/**
 * While changes keep coming, the next write waits this many times as long as
 * building the last write's text took, so the state file (which grows with
 * the replay nonces, up to tens of milliseconds to build) takes at most about
 * a tenth of the server's time.
 */
export const STATE_WRITE_COST_FACTOR = 10;

/** Longest time between two state file writes while changes keep coming. */
export const STATE_WRITE_MAX_INTERVAL_MS = 5000;

/** How long to wait before writing the state file again after a write whose text took `lastWriteMs` to build, while changes keep coming. */
export function stateWriteDelayMs(lastWriteMs: number): number {
  return Math.min(
    STATE_WRITE_MAX_INTERVAL_MS,
    Math.max(
      STATE_WRITE_MIN_INTERVAL_MS,
      STATE_WRITE_COST_FACTOR * lastWriteMs,
    ),
  );
}

interface ClientGrant {
  ports: FirewallRulePort[];
  fingerprint: string;
}

function portKey(p: FirewallRulePort): string {
  return `${p.port}-${p.endPort ?? p.port}/${p.proto}`;
}

function grantsOf(config: ServerConfig): Map<string, ClientGrant> {
  const grants = new Map<string, ClientGrant>();
  for (const client of config.clients) {
    const ports: FirewallRulePort[] = [];
    const seen = new Set<string>();
    const all: FirewallRulePort[] = [...client.ports];
    if (!client.disableHealthPort) {
      all.push({ port: config.healthPort, proto: "tcp" });
    }
    for (const p of all) {
      const key = portKey(p);
      if (seen.has(key)) continue;
      seen.add(key);
      ports.push(
        p.endPort !== undefined && p.endPort > p.port
          ? { port: p.port, endPort: p.endPort, proto: p.proto }
          : { port: p.port, proto: p.proto },
      );
    }
    grants.set(client.name, {
      ports,
      fingerprint: keyFingerprint(client.ed25519PublicKey),
    });
  }
  return grants;
}

function verifierClientsOf(config: ServerConfig): VerifierClient[] {
  return config.clients.map((c) => ({
    name: c.name,
    verifyKey: prepareEd25519VerifyKey(c.ed25519PublicKey),
    expires: c.expires,
  }));
}

function baseRulesOf(
  config: ServerConfig,
  interfaceOverride: string | null,
): BaseRulesOptions {
  const dropPorts: FirewallRulePort[] = [];
  if (config.dropPorts) {
    dropPorts.push(...allManagedPorts(config));
    // The health port too: otherwise `status` reports "open" without a
    // knock on a host whose policy accepts.
    const health = config.healthPort;
    const covered = dropPorts.some((p) =>
      p.proto === "tcp" && p.port <= health && (p.endPort ?? p.port) >= health
    );
    if (!covered) dropPorts.push({ port: health, proto: "tcp" });
  }
  return {
    knockPort: config.udpPort,
    openKnockPort: config.openKnockPort,
    dropPorts,
    interface: interfaceOverride ?? config.interface,
  };
}

function statePorts(ports: FirewallRulePort[]): StatePort[] {
  return ports.map((p) =>
    p.endPort !== undefined && p.endPort > p.port
      ? { port: p.port, proto: p.proto, end_port: p.endPort }
      : { port: p.port, proto: p.proto }
  );
}

function sameBaseRules(a: BaseRulesOptions, b: BaseRulesOptions): boolean {
  return a.knockPort === b.knockPort && a.openKnockPort === b.openKnockPort &&
    a.interface === b.interface &&
    a.dropPorts.map(portKey).join(",") === b.dropPorts.map(portKey).join(",");
}

function oneLine(text: string): string {
  return text.split("\n").map((line) => line.trim()).filter((line) =>
    line !== ""
  ).join(" | ");
}

/** Logs why a reload failed (the previous config stays in force); returns false, the reload's result. */
function reloadFailed(why: string, err: unknown): false {
  error(
    `reload (${why}) failed, the previous config stays in force: ${
      oneLine((err as Error).message)
    }`,
  );
  return false;
}

/** What identifies one version of the config file: a rename-over-write changes the inode. */
interface FileStamp {
  mtime: number;
  ctime: number;
  size: number;
  ino: number;
  dev: number;
}

async function stampOf(path: string): Promise<FileStamp | null> {
  try {
    const st = await Deno.stat(path);
    return {
      mtime: st.mtime?.getTime() ?? 0,
      ctime: st.ctime?.getTime() ?? 0,
      size: st.size,
      ino: st.ino ?? 0,
      dev: st.dev,
    };
  } catch {
    return null;
  }
}

function sameStamp(a: FileStamp, b: FileStamp): boolean {
  return a.mtime === b.mtime && a.ctime === b.ctime && a.size === b.size &&
    a.ino === b.ino && a.dev === b.dev;
}

function bindUdp(port: number, hostname: string | undefined): Promise<Socket> {
  const tryBind = (type: "udp4" | "udp6", host: string): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const socket = createSocket({ type, ipv6Only: false, reuseAddr: false });
      socket.once("error", (err) => {
        socket.close();
        reject(err);
      });
      socket.bind({ port, address: host }, () => {
        socket.removeAllListeners("error");
        resolve(socket);
      });
    });
  if (hostname !== undefined) {
    return tryBind(hostname.includes(":") ? "udp6" : "udp4", hostname);
  }
  return tryBind("udp6", "::").catch(() => tryBind("udp4", "0.0.0.0"));
}

/** A running openme server. */
export class OpenmeServer {
  #configPath: string;
  #config: ServerConfig;
  #options: ServerOptions;
  #backend: FirewallBackend;
  #verifier: KnockVerifier;
  #grants: Map<string, ClientGrant>;
  #sessions: SessionManager;
  #stats = new KnockStats();
  #baseRules: BaseRulesOptions;
  #socket: Socket | null = null;
  #health: HealthListener | null = null;
  #stamp: FileStamp | null = null;
  #pollTimer: ReturnType<typeof setInterval> | null = null;
  #polling: Promise<void> | null = null;
  #summaryTimer: ReturnType<typeof setInterval> | null = null;
  #lastSummaryMs = Date.now();
  #dropWriteTimer: ReturnType<typeof setTimeout> | null = null;
  #reloading: Promise<boolean> | null = null;
  #stateDirty = false;
  #stateWriting: Promise<void> | null = null;
  #stateWarned = false;
  #stopping = false;
  #stopped: Promise<void> | null = null;
  #firewallTimer: ReturnType<typeof setInterval> | null = null;
  #checking: Promise<FirewallCheckResult | null> | null = null;
  #checkFailed = false;
  /** Peer address text as the socket reports it -> parsed address (never changed once made). */
  #peers = new Map<string, IpAddress>();

  private constructor(
    configPath: string,
    config: ServerConfig,
    options: ServerOptions,
  ) {
    this.#configPath = configPath;
    this.#config = {
      ...config,
      udpPort: options.udpPort ?? config.udpPort,
      healthPort: options.healthPort ?? config.healthPort,
    };
    this.#options = options;
    this.#backend = options.backend ?? createFirewallBackend(config.firewall);
    this.#grants = grantsOf(this.#config);
    this.#baseRules = baseRulesOf(
      this.#config,
      options.interfaceOverride ?? null,
    );
    const rateLimit = options.rateLimit === undefined
      ? { perSecond: RATE_LIMIT_PER_SECOND, burst: RATE_LIMIT_BURST }
      : options.rateLimit;
    this.#verifier = new KnockVerifier({
      serverPrivateKey: config.privateKey,
      replayWindowMs: config.replayWindowMs,
      clients: verifierClientsOf(config),
      rateLimit,
      signatureBudget: rateLimit === null ? null : {
        perSecond: SIGNATURE_CHECKS_PER_SECOND,
        burst: SIGNATURE_CHECKS_PER_SECOND,
      },
    });
    this.#sessions = new SessionManager(this.#backend, {
      knockTimeoutMs: config.knockTimeoutMs,
      onChange: () => this.#scheduleStateWrite(),
      refuse: (clientName) => this.#refusal(clientName, Date.now()),
      shutdownWaitMs: options.shutdownWaitMs,
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
    const server = new OpenmeServer(configPath, config, options);
    await server.#start();
    return server;
  }

  /** The UDP port knocks arrive on. */
  get udpPort(): number {
    return this.#config.udpPort;
  }

  /** The TCP health port. */
  get healthPort(): number {
    return this.#config.healthPort;
  }

  /** The config in force (after the latest successful reload). */
  get config(): ServerConfig {
    return this.#config;
  }

  /** The open sessions, soonest deadline first. */
  sessions(): Session[] {
    return this.#sessions.list();
  }

  async #start(): Promise<void> {
    this.#stamp = await stampOf(this.#configPath);
    const wantUdp = this.#config.udpPort;
    const wantHealth = this.#config.healthPort;
    try {
      this.#socket = await bindUdp(wantUdp, this.#options.hostname);
      this.#health = await startHealthListener(wantHealth, {
        hostname: this.#options.hostname,
      });
    } catch (err) {
      this.#socket?.close();
      this.#socket = null;
      throw new Error(
        `cannot listen on udp/${wantUdp} and tcp/${wantHealth}: ${
          (err as Error).message
        } (is another openme running? see \`ss -lunp\` and \`ss -ltnp\`)`,
      );
    }
    this.#socket.on("error", (err) => error(`udp socket: ${err.message}`));
    // Port 0 (tests) binds a free port: rules and grants use the bound ones.
    this.#config = {
      ...this.#config,
      udpPort: this.#socket.address().port,
      healthPort: this.#health.port,
    };
    this.#grants = grantsOf(this.#config);
    this.#baseRules = baseRulesOf(
      this.#config,
      this.#options.interfaceOverride ?? null,
    );
    try {
      await this.#backend.setup(this.#baseRules);
    } catch (err) {
      const socket = this.#socket;
      await new Promise<void>((resolve) => socket.close(() => resolve()));
      await this.#health.close();
      await this.#backend.teardown().catch(() => {});
      throw err;
    }
    await this.#rememberReplayNonces();
    this.#socket.on("message", (msg, rinfo) => {
      this.handleDatagram(
        new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength),
        rinfo.address,
      );
    });
    const pollMs = this.#options.configPollMs ?? CONFIG_POLL_INTERVAL_MS;
    this.#pollTimer = setInterval(() => {
      if (this.#polling !== null || this.#stopping) return;
      this.#polling = this.#pollConfig().catch((err) =>
        error(`checking config ${this.#configPath} failed: ${err}`)
      ).finally(() => {
        this.#polling = null;
      });
    }, pollMs);
    const summaryMs = this.#options.summaryIntervalMs ??
      DROP_SUMMARY_INTERVAL_MS;
    this.#lastSummaryMs = Date.now();
    this.#summaryTimer = setInterval(() => {
      this.#stats.logSummary(summaryMs);
      this.#lastSummaryMs = Date.now();
    }, summaryMs);
    this.#firewallTimer = setInterval(() => {
      if (this.#checking === null) this.checkFirewall("periodic check");
    }, this.#options.firewallCheckMs ?? FIREWALL_CHECK_INTERVAL_MS);
    await this.#writeState();
    info(
      `openme serving: knocks on udp/${this.#config.udpPort}, health on tcp/${this.#config.healthPort}, ${this.#config.clients.length} client(s), firewall ${this.#backend.name}, knock_timeout ${
        formatDuration(this.#config.knockTimeoutMs)
      }`,
    );
  }

  /** Loads the replay nonces the previous run wrote to the state file into the verifier. */
  async #rememberReplayNonces(): Promise<void> {
    try {
      const entries = await readStateReplayNonces(this.#options.stateFile);
      if (entries.length === 0) return;
      const kept = this.#verifier.rememberNonces(entries);
      info(
        `remembered ${kept} replay nonces accepted by the previous run (state file ${this.#options.stateFile})`,
      );
    } catch (err) {
      warn(
        `could not read the replay nonces of the previous run: ${
          oneLine((err as Error).message)
        } (knocks it accepted within the replay window could be replayed once)`,
      );
    }
  }

  /**
   * Checks the firewall for openme rules removed from outside (an operator's
   * ruleset reload) and puts them back, sessions included; runs every few
   * seconds and on SIGHUP. Resolves to null when stopping or when it failed.
   */
  checkFirewall(why: string): Promise<FirewallCheckResult | null> {
    if (this.#stopping) return Promise.resolve(null);
    if (this.#checking !== null) return this.#checking;
    this.#checking = this.#checkFirewall(why).finally(() => {
      this.#checking = null;
    });
    return this.#checking;
  }

  async #checkFirewall(why: string): Promise<FirewallCheckResult | null> {
    let result: FirewallCheckResult;
    try {
      result = await this.#sessions.checkFirewall();
    } catch (err) {
      if (!this.#checkFailed) {
        error(
          `checking openme's firewall rules (${why}) failed: ${
            oneLine((err as Error).message)
          } (will keep trying)`,
        );
        this.#checkFailed = true;
      }
      return null;
    }
    this.#checkFailed = false;
    if (result.repaired.length > 0) {
      warn(
        `firewall: openme's rules were removed outside openme (firewall reloaded?); put back: ${
          result.repaired.join(", ")
        } (${why})`,
      );
    }
    if (result.reopened > 0 || result.dropped > 0) {
      warn(
        `firewall: ${result.reopened} session(s) re-opened, ${result.dropped} dropped after their rules were removed outside openme (${why})`,
      );
    }
    return result;
  }

  /** Why a client's knocks are refused now (revoked or expired), or null. */
  #refusal(clientName: string, nowMs: number): string | null {
    const client = this.#config.clients.find((c) => c.name === clientName);
    if (client === undefined) return "client revoked";
    if (client.expires !== null && client.expires.getTime() <= nowMs) {
      return "client expired";
    }
    return null;
  }

  /** Handles one datagram from a peer address; never replies. */
  handleDatagram(datagram: Uint8Array, peer: string): void {
    if (this.#stopping) return;
    // Size and version first, before parsing the peer address: junk costs
    // no more than it must (the verifier checks them again, in SPEC order).
    if (
      datagram.length !== KNOCK_PACKET_BYTES ||
      datagram[VERSION_OFFSET] !== PROTOCOL_VERSION
    ) {
      const shown = isLogEnabled("debug") ? parseIp(peer)?.text ?? peer : peer;
      this.#drop(
        datagram.length !== KNOCK_PACKET_BYTES ? "size" : "version",
        shown,
      );
      return;
    }
    const source = this.#peerAddress(peer);
    if (source === null) {
      this.#drop("source", peer);
      return;
    }
    const result = this.#verifier.verify(datagram, source);
    if (!result.ok) {
      this.#drop(result.reason, source.text);
      return;
    }
    const grant = this.#grants.get(result.clientName);
    if (grant === undefined) {
      this.#drop("unknown_client", source.text);
      return;
    }
    this.#stats.accept();
    // An open session is refreshed synchronously: no promise per knock.
    if (
      this.#sessions.refresh(
        result.clientName,
        result.target,
        grant.ports,
        source.text,
        grant.fingerprint,
      )
    ) {
      return;
    }
    this.#sessions.knock(result.clientName, result.target, grant.ports, {
      source: source.text,
      fingerprint: grant.fingerprint,
    }).then((outcome) => {
      if (outcome === "failed") this.#drop("firewall", source.text);
      if (outcome === "busy") this.#drop("busy", source.text);
    }).catch((err) => error(`knock handling failed: ${err}`));
  }

  /** The peer's address, parsed once per distinct text; null when it is not an IP address. */
  #peerAddress(peer: string): IpAddress | null {
    const known = this.#peers.get(peer);
    if (known !== undefined) return known;
    const parsed = parseIp(peer);
    if (parsed === null) return null;
    if (this.#peers.size >= PEER_ADDRESS_CACHE_SIZE) this.#peers.clear();
    this.#peers.set(peer, parsed);
    return parsed;
  }

  /** Counts a drop and makes sure the counters reach the state file soon. */
  #drop(reason: string, source: string): void {
    this.#stats.drop(reason, source);
    if (this.#dropWriteTimer !== null || this.#stopping) return;
    this.#dropWriteTimer = setTimeout(() => {
      this.#dropWriteTimer = null;
      this.#scheduleStateWrite();
    }, this.#options.dropWriteDelayMs ?? DROP_STATE_WRITE_DELAY_MS);
  }

  /** Reloads when the config file changed (content, or a new file renamed over it). */
  async #pollConfig(): Promise<void> {
    const stamp = await stampOf(this.#configPath);
    const old = this.#stamp;
    if (stamp === null) {
      if (old !== null) {
        warn(
          `config ${this.#configPath} is gone; the config in force stays until it is back`,
        );
        this.#stamp = null;
      }
      return;
    }
    if (old !== null && sameStamp(stamp, old)) return;
    this.#stamp = stamp;
    await this.reload("config file changed");
  }

  /** Reloads the config; on error logs it and keeps the old one. Returns whether it changed. */
  reload(why: string): Promise<boolean> {
    if (this.#stopping) return Promise.resolve(false);
    if (this.#reloading !== null) {
      return this.#reloading.then(() => this.reload(why));
    }
    this.#reloading = this.#reload(why).finally(() => {
      this.#reloading = null;
    });
    return this.#reloading;
  }

  async #reload(why: string): Promise<boolean> {
    let next: ServerConfig;
    try {
      next = await loadServerConfig(this.#configPath);
    } catch (err) {
      return reloadFailed(why, err);
    }
    if (this.#stopping) return false;
    for (const w of next.warnings) warn(w);
    if (
      next.udpPort !== this.#config.udpPort &&
        this.#options.udpPort === undefined ||
      next.healthPort !== this.#config.healthPort &&
        this.#options.healthPort === undefined
    ) {
      warn(
        `udp_port/health_port changes take effect after a restart (still udp/${this.#config.udpPort}, tcp/${this.#config.healthPort})`,
      );
    }
    if (next.firewall !== this.#config.firewall) {
      warn(
        `firewall changes take effect after a restart (still ${this.#backend.name})`,
      );
    }
    if (next.privateKey.toHex() !== this.#config.privateKey.toHex()) {
      warn(
        "server key changes take effect after a restart (knocks are still decrypted with the key the server started with)",
      );
    }
    // Everything derived from the new config is built before any state
    // changes: a failure here leaves the old config fully in force.
    const config: ServerConfig = {
      ...next,
      udpPort: this.#config.udpPort,
      healthPort: this.#config.healthPort,
      privateKey: this.#config.privateKey,
      publicKey: this.#config.publicKey,
    };
    let grants: Map<string, ClientGrant>;
    let verifierClients: VerifierClient[];
    try {
      grants = grantsOf(config);
      verifierClients = verifierClientsOf(config);
    } catch (err) {
      return reloadFailed(why, err);
    }
    this.#config = config;
    this.#grants = grants;
    this.#verifier.setClients(verifierClients);
    if (this.#config.replayWindowMs !== this.#verifier.replayWindowMs) {
      this.#verifier.setReplayWindow(this.#config.replayWindowMs);
    }
    this.#sessions.setKnockTimeout(this.#config.knockTimeoutMs);
    const baseRules = baseRulesOf(
      this.#config,
      this.#options.interfaceOverride ?? null,
    );
    if (!sameBaseRules(baseRules, this.#baseRules)) {
      try {
        await this.#backend.updateBaseRules(baseRules);
        this.#baseRules = baseRules;
      } catch (err) {
        error(`updating knock/drop rules failed: ${(err as Error).message}`);
      }
    }
    const now = Date.now();
    await this.#sessions.closeWhere((session) =>
      this.#refusal(session.clientName, now)
    );
    await this.#sessions.regrant((clientName) =>
      this.#grants.get(clientName)?.ports ?? null
    );
    info(
      `config reloaded (${why}): ${this.#config.clients.length} client(s), knock_timeout ${
        formatDuration(this.#config.knockTimeoutMs)
      }, replay_window ${formatDuration(this.#config.replayWindowMs)}`,
    );
    return true;
  }

  #scheduleStateWrite(): void {
    this.#stateDirty = true;
    if (this.#stateWriting !== null) return;
    this.#stateWriting = (async () => {
      while (this.#stateDirty) {
        this.#stateDirty = false;
        const costMs = await this.#writeState();
        // A lone change is written at once; a storm of them (refreshes at
        // line rate) is written at most once per stateWriteDelayMs.
        if (this.#stateDirty && !this.#stopping) {
          await new Promise((r) => setTimeout(r, stateWriteDelayMs(costMs)));
        }
      }
    })().finally(() => {
      this.#stateWriting = null;
    });
  }

  /** The state as written to the state file. */
  state(): StateFile {
    const lastSeen: Record<string, string> = {};
    for (const [name, ms] of this.#sessions.lastSeen()) {
      lastSeen[name] = formatRfc3339(ms);
    }
    const replayNonces = this.#verifier.recentNonceRecord();
    return {
      updated_at: formatRfc3339(Date.now()),
      active_sessions: this.#sessions.list().map((s) => ({
        client_name: s.clientName,
        ip: s.address.text,
        ports: statePorts(s.ports),
        opened_at: formatRfc3339(this.#sessions.toWallMs(s.openedAtMs)),
        expires_at: formatRfc3339(this.#sessions.toWallMs(s.expiresAtMs)),
      })),
      last_seen: lastSeen,
      accepted: this.#stats.accepted,
      drops: this.#stats.drops(),
      pid: Deno.pid,
      pending_closes: this.#sessions.pendingCloses().map((p) => ({
        client_name: p.clientName,
        ip: p.address.text,
        ports: statePorts(p.ports),
        reason: p.reason,
        attempts: p.attempts,
        last_error: p.lastError,
      })),
      replay_nonces: replayNonces,
    };
  }

  /** Writes the state file; returns the CPU time building its text took (ms), which spaces the next write. */
  async #writeState(): Promise<number> {
    // Timed without the write itself: across that await the event loop
    // also serves datagrams, which is not the state file's cost.
    const started = performance.now();
    const text = renderStateFile(this.state());
    const costMs = performance.now() - started;
    try {
      await writeStateText(this.#options.stateFile, text);
      this.#stateWarned = false;
    } catch (err) {
      if (!this.#stateWarned) {
        warn(
          `cannot write state file ${this.#options.stateFile}: ${
            (err as Error).message
          } (serving continues; \`openme sessions\` will be stale)`,
        );
        this.#stateWarned = true;
      }
    }
    return costMs;
  }

  /** Accepted knocks since start. */
  accepted(): number {
    return this.#stats.accepted;
  }

  /** Counters of drops by reason since start. */
  drops(): Record<string, number> {
    return this.#stats.drops();
  }

  /** Stops serving, removes every rule openme added and writes the final state. */
  stop(): Promise<void> {
    if (this.#stopped === null) this.#stopped = this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    this.#stopping = true;
    if (this.#pollTimer !== null) clearInterval(this.#pollTimer);
    if (this.#summaryTimer !== null) clearInterval(this.#summaryTimer);
    if (this.#firewallTimer !== null) clearInterval(this.#firewallTimer);
    if (this.#dropWriteTimer !== null) clearTimeout(this.#dropWriteTimer);
    this.#dropWriteTimer = null;
    this.#socket?.removeAllListeners("message");
    const socket = this.#socket;
    if (socket !== null) {
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    }
    await this.#health?.close();
    if (this.#polling !== null) await this.#polling;
    if (this.#reloading !== null) await this.#reloading.catch(() => {});
    if (this.#checking !== null) await this.#checking;
    // No close per session: one teardown removes every rule openme added
    // (sessions, failed closes, knock and drop rules) in a few tool runs.
    const { sessions, pendingCloses } = await this.#sessions.shutdown();
    let removed = false;
    try {
      await this.#backend.teardown();
      removed = true;
    } catch (err) {
      error(
        `removing openme's firewall rules failed: ${
          (err as Error).message
        } (${sessions.length} session(s) may still be open: list and delete the rules tagged "openme" by hand)`,
      );
    }
    if (removed) {
      for (const s of sessions) {
        info(
          `closed ${
            describePorts(s.ports)
          } for ${s.address.text} (client ${s.clientName}): shutdown`,
        );
      }
      if (pendingCloses.length > 0) {
        info(
          `removed the rules of ${pendingCloses.length} earlier failed close(s): shutdown`,
        );
      }
    }
    if (this.#stateWriting !== null) await this.#stateWriting;
    await this.#writeState();
    this.#stats.logSummary(Date.now() - this.#lastSummaryMs);
    info(
      removed
        ? "openme stopped; every rule it added is removed"
        : "openme stopped; some of its rules may be left (see the error above)",
    );
  }
}
