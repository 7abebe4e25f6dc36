/**
 * Test helpers for the server tests: a firewall backend that records every
 * call and can be told to fail or hang, a server config writer, a knock
 * sender over loopback UDP and a log capture.
 *
 * @module
 */

import { createSocket } from "node:dgram";
import { connect } from "node:net";
import type {
  BaseRulesCheck,
  BaseRulesOptions,
  FirewallBackend,
  FirewallRulePort,
  GateCounters,
  OpenedRules,
} from "../../lib/firewall/backend.ts";
import { FirewallError } from "../../lib/firewall/backend.ts";
import {
  type Ed25519KeyPair,
  generateEd25519KeyPair,
  generateX25519KeyPair,
  type X25519KeyPair,
} from "../../lib/protocol/crypto.ts";
import { encodeBase64 } from "../../lib/encoding.ts";
import type { IpAddress } from "../../lib/ip.ts";
import { type LogLevel, setLogLevel, setLogSink } from "../../lib/log.ts";
import { monotonicNow } from "../../lib/server/session_manager.ts";

/** One call the recording backend received. */
export interface BackendCall {
  /** Which method was called. */
  op:
    | "setup"
    | "updateBaseRules"
    | "open"
    | "close"
    | "ensureBaseRules"
    | "teardown";
  /** Address of an open or close. */
  address?: string;
  /** Ports of an open or close, as "22/tcp,8080-8090/tcp". */
  ports?: string;
  /** Handles of a close. */
  handles?: string[];
  /** Base rules of a setup or update. */
  base?: BaseRulesOptions;
  /** When the call came (the session manager's monotonic clock). */
  atMs: number;
}

function portsText(ports: FirewallRulePort[]): string {
  return ports.map((p) =>
    p.endPort !== undefined
      ? `${p.port}-${p.endPort}/${p.proto}`
      : `${p.port}/${p.proto}`
  ).join(",");
}

/** A fake firewall: records calls, keeps the set of open rules, can fail or hang opens. */
export class RecordingBackend implements FirewallBackend {
  /** Backend name. */
  readonly name = "recording";
  /** Every call, in order. */
  calls: BackendCall[] = [];
  /** When true, open() rejects with a FirewallError. */
  failOpen = false;
  /** When true, open() waits until {@linkcode releaseHeld} is called. */
  hangOpen = false;
  /** How many of the next close() calls reject (a firewall timeout); counts down. */
  failCloses = 0;
  /** What the next ensureBaseRules() reports as put back (then cleared). */
  nextRepairs: string[] = [];
  /** When set, ensureBaseRules() lists the rules at once and answers after it resolves (a slow check). */
  holdChecks: Promise<void> | null = null;
  /** What gateCounters() reports (the kernel gate's drops). */
  gate: GateCounters | null = null;
  /** Handles currently open (opened and not closed or torn down). */
  live = new Set<string>();
  #nextHandle = 1;
  #held: (() => void)[] = [];

  /** Calls of one kind. */
  callsOf(op: BackendCall["op"]): BackendCall[] {
    return this.calls.filter((c) => c.op === op);
  }

  /** Lets every held open finish. */
  releaseHeld(): void {
    const held = this.#held;
    this.#held = [];
    for (const resume of held) resume();
  }

  /** Number of opens waiting in {@linkcode hangOpen}. */
  get heldCount(): number {
    return this.#held.length;
  }

  setup(options: BaseRulesOptions): Promise<void> {
    this.calls.push({ op: "setup", base: options, atMs: monotonicNow() });
    return Promise.resolve();
  }

  updateBaseRules(options: BaseRulesOptions): Promise<void> {
    this.calls.push({
      op: "updateBaseRules",
      base: options,
      atMs: monotonicNow(),
    });
    return Promise.resolve();
  }

  open(address: IpAddress, ports: FirewallRulePort[]): Promise<OpenedRules> {
    this.calls.push({
      op: "open",
      address: address.text,
      ports: portsText(ports),
      atMs: monotonicNow(),
    });
    if (this.failOpen) {
      return Promise.reject(
        new FirewallError(
          `firewall: opening ${
            portsText(ports)
          } for ${address.text}: nft failed (exit 1): Error: Could not process rule: No such file or directory`,
        ),
      );
    }
    const handles = ports.map(() => String(this.#nextHandle++));
    const finish = (): OpenedRules => {
      for (const h of handles) this.live.add(h);
      return { address, ports, handles };
    };
    if (this.hangOpen) {
      return new Promise((resolve) => {
        this.#held.push(() => resolve(finish()));
      });
    }
    return Promise.resolve(finish());
  }

  close(rules: OpenedRules): Promise<void> {
    this.calls.push({
      op: "close",
      address: rules.address.text,
      ports: portsText(rules.ports),
      handles: rules.handles,
      atMs: monotonicNow(),
    });
    if (this.failCloses > 0) {
      this.failCloses--;
      return Promise.reject(
        new FirewallError(
          `firewall: deleting rules for ${rules.address.text}: nft -f - did not finish within 5000 ms and was killed`,
        ),
      );
    }
    for (const h of rules.handles) this.live.delete(h);
    return Promise.resolve();
  }

  /** Reports the rule sets with a handle no longer live (see {@linkcode vanish}) and the queued repairs, after {@linkcode holdChecks} resolves when set. */
  async ensureBaseRules(open: OpenedRules[]): Promise<BaseRulesCheck> {
    this.calls.push({ op: "ensureBaseRules", atMs: monotonicNow() });
    const lost = open.filter((rules) =>
      rules.handles.some((h) => !this.live.has(h))
    );
    if (this.holdChecks !== null) await this.holdChecks;
    const repaired = this.nextRepairs;
    this.nextRepairs = [];
    return { repaired, lost };
  }

  /** Removes rules behind the manager's back, like an operator's firewall reload. */
  vanish(handles: string[]): void {
    for (const h of handles) this.live.delete(h);
  }

  teardown(): Promise<void> {
    this.calls.push({ op: "teardown", atMs: monotonicNow() });
    this.live.clear();
    return Promise.resolve();
  }

  /** Returns {@linkcode gate}. */
  gateCounters(): Promise<GateCounters | null> {
    return Promise.resolve(this.gate);
  }
}

/** A client for the test configs. */
export interface TestClient {
  /** Client name. */
  name: string;
  /** Its Ed25519 key pair. */
  keys: Ed25519KeyPair;
  /** allowed_ports entries; default the default group. */
  allowedPorts?: string[];
  /** RFC 3339 expiry. */
  expires?: string;
}

/** Options for {@linkcode renderTestConfig}. */
export interface TestConfigOptions {
  /** Server key pair. */
  server: X25519KeyPair;
  /** Registered clients. */
  clients: TestClient[];
  /** knock_timeout text (default 30s). */
  knockTimeout?: string;
  /** replay_window text (default 60s). */
  replayWindow?: string;
  /** Extra lines under `ports:` (default only `default: [22/tcp]`). */
  portGroups?: string[];
  /** drop_ports value. */
  dropPorts?: boolean;
  /** require_explicit_target value (default: the key is absent). */
  requireExplicitTarget?: boolean;
}

/** Renders a server config for the tests (ports in the config are overridden by the tests). */
export function renderTestConfig(options: TestConfigOptions): string {
  const lines = [
    "server:",
    "  host: 192.0.2.1",
    "  udp_port: 54154",
    "  firewall: nft",
    `  knock_timeout: ${options.knockTimeout ?? "30s"}`,
    `  replay_window: ${options.replayWindow ?? "60s"}`,
    "  open_knock_port: true",
    `  drop_ports: ${options.dropPorts === true}`,
    ...(options.requireExplicitTarget === undefined
      ? []
      : [`  require_explicit_target: ${options.requireExplicitTarget}`]),
    `  private_key: ${encodeBase64(options.server.privateKey)}`,
    `  public_key: ${encodeBase64(options.server.publicKey)}`,
    "ports:",
    "  default: [22/tcp]",
    ...(options.portGroups ?? []).map((line) => `  ${line}`),
  ];
  if (options.clients.length === 0) {
    lines.push("clients: {}");
  } else {
    lines.push("clients:");
    for (const client of options.clients) {
      lines.push(`  ${client.name}:`);
      lines.push(`    ed25519_pubkey: ${encodeBase64(client.keys.publicKey)}`);
      lines.push(
        `    allowed_ports: [${(client.allowedPorts ?? []).join(", ")}]`,
      );
      if (client.expires !== undefined) {
        lines.push(`    expires: "${client.expires}"`);
      }
    }
  }
  return lines.join("\n") + "\n";
}

/** Writes a file the way `openme add`/`revoke` do: a temp file renamed over the target (new inode). */
export async function writeByRename(path: string, text: string): Promise<void> {
  const temp = `${path}.tmp-${crypto.randomUUID()}`;
  await Deno.writeTextFile(temp, text, { mode: 0o600 });
  await Deno.rename(temp, path);
}

/** Fresh keys for a server and named clients. */
export function freshKeys(names: string[]): {
  server: X25519KeyPair;
  clients: Map<string, Ed25519KeyPair>;
} {
  const clients = new Map<string, Ed25519KeyPair>();
  for (const name of names) clients.set(name, generateEd25519KeyPair());
  return { server: generateX25519KeyPair(), clients };
}

/** Sends datagrams to 127.0.0.1:port from one loopback UDP socket; resolves when all went out. */
export async function sendDatagrams(
  port: number,
  datagrams: Uint8Array[],
): Promise<void> {
  const socket = createSocket("udp4");
  try {
    for (const datagram of datagrams) {
      await new Promise<void>((resolve, reject) => {
        socket.send(datagram, port, "127.0.0.1", (err) => {
          if (err) reject(err);
          else resolve();
        });
      });
    }
  } finally {
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
}

/** Captured log lines; call restore() in finally. */
export interface LogCapture {
  /** Lines written so far. */
  lines: string[];
  /** Lines containing a text. */
  matching(text: string | RegExp): string[];
  /** Puts the previous sink and level back. */
  restore(): void;
}

/** Sends log lines to an array at the given level. */
export function captureLog(level: LogLevel = "info"): LogCapture {
  const lines: string[] = [];
  const previous = setLogSink((line) => lines.push(line));
  setLogLevel(level);
  return {
    lines,
    matching(text: string | RegExp): string[] {
      return lines.filter((line) =>
        typeof text === "string" ? line.includes(text) : text.test(line)
      );
    },
    restore(): void {
      setLogSink(previous);
      setLogLevel("info");
    },
  };
}

/** Waits for ms milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Connects over TCP and waits (up to 10 s) until the other side closes; says whether it connected and how many bytes came. */
export function connectAndWaitClose(
  host: string,
  port: number,
): Promise<{ connected: boolean; bytes: number }> {
  return new Promise((resolve, reject) => {
    let connected = false;
    let bytes = 0;
    const socket = connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connection to ${host}:${port} not closed within 10 s`));
    }, 10_000);
    socket.on("connect", () => connected = true);
    socket.on("data", (chunk) => bytes += chunk.length);
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ connected, bytes });
    });
  });
}
