/**
 * The server config file (SPEC §4) as a validated {@linkcode ServerConfig}, and the annotated text `openme init` writes.
 *
 * @module
 */

import { dirname, isAbsolute, join, resolve } from "node:path";
import { prepareEd25519VerifyKey } from "../protocol/crypto.ts";
import {
  DEFAULT_KNOCK_RATE_LIMIT,
  INTERFACE_NAME_PATTERN,
  type KnockRateLimit,
  MAX_KNOCK_RATE,
} from "../firewall/backend.ts";
import { readClientsDir } from "./clients_dir.ts";
import { formatDuration, parseDuration } from "./duration.ts";
import { ConfigError, describeValue } from "./errors.ts";
import {
  isGroupName,
  mergePortRanges,
  parsePortSpec,
  type PortRange,
} from "./ports.ts";
import {
  booleanField,
  type Fail,
  type Field,
  hostField,
  isRecord,
  keyField,
  NAME_HINT,
  nameProblem,
  portField,
  readSection,
  unknownKeyWarnings,
} from "./validate.ts";
import { accountIds, SERVICE_ACCOUNT } from "./ownership.ts";
import {
  errorAt,
  keyLinesOf,
  lineOf,
  looseModeWarning,
  parseYamlFile,
  readYamlFile,
  type YamlFile,
  yamlText,
  yamlValue,
} from "./yaml_file.ts";

/** Where the server config lives unless `--config` says otherwise. */
export const DEFAULT_SERVER_CONFIG_PATH = "/etc/openme/config.yaml";
/** Default knock port (`server.udp_port`). */
export const DEFAULT_UDP_PORT = 54154;
/** Default `server.knock_timeout`: how long ports stay open. */
export const DEFAULT_KNOCK_TIMEOUT_MS = 30_000;
/** Default `server.replay_window`. */
export const DEFAULT_REPLAY_WINDOW_MS = 60_000;
/** Default `server.firewall`. */
export const DEFAULT_FIREWALL: FirewallKind = "nft";
/** Longest accepted `knock_timeout` / `replay_window` (timers beyond ~24.8 days misfire). */
export const MAX_CONFIG_DURATION_MS = 24 * 60 * 60 * 1000;
/** What a good `expires` value looks like, for messages. */
const EXPIRES_HINT =
  'a full RFC 3339 timestamp with time zone, e.g. "2026-12-31T23:59:59Z"';

/** Port group used by clients whose `allowed_ports` is empty. */
const DEFAULT_PORT_GROUP = "default";
const DEFAULT_PROFILE_NAME = "default";
const DURATION_HINT = "a duration such as 30s, 1m30s or 1h";
/** Durations written longer than this are shown formatted (e.g. 30s) in messages. */
const MAX_DURATION_TEXT_SHOWN = 20;

/** Firewall backends a server config may name. */
export type FirewallKind = "nft" | "iptables";

/** One registered client, validated. */
export interface ServerClient {
  /** Key under `clients:`. */
  name: string;
  /** Decoded `ed25519_pubkey` (32 bytes). */
  ed25519PublicKey: Uint8Array;
  /** `allowed_ports` entries as written (groups and inline specs). */
  allowedPorts: string[];
  /** Ports the client's knocks open: groups resolved, merged, health port not included. */
  ports: PortRange[];
  /** When the client stops being accepted; null = never. */
  expires: Date | null;
  /** True when knocks must not open `health_port` for this client. */
  disableHealthPort: boolean;
  /** The file that defines it: the config file or one in `clients_dir`. */
  file: string;
  /** The line of its name in that file, when known. */
  line: number | undefined;
}

/** A validated server config. */
export interface ServerConfig {
  /** File the config was read from (used in messages). */
  path: string;
  /** `server.host`: public name or IP written into client configs. */
  host: string;
  /** `server.udp_port`: knock port. */
  udpPort: number;
  /** `server.health_port` (tcp); defaults to `udpPort`. */
  healthPort: number;
  /** `server.firewall`. */
  firewall: FirewallKind;
  /** `server.knock_timeout` in milliseconds. */
  knockTimeoutMs: number;
  /** `server.replay_window` in milliseconds. */
  replayWindowMs: number;
  /** `server.require_explicit_target`: refuse knocks for "the packet's source address". */
  requireExplicitTarget: boolean;
  /** `server.open_knock_port`. */
  openKnockPort: boolean;
  /** `server.knock_rate_limit` and `server.knock_burst`: each source's budget, in the kernel and in openme. */
  knockRateLimit: KnockRateLimit;
  /** `server.drop_ports`. */
  dropPorts: boolean;
  /** `server.default_profile`. */
  defaultProfile: string;
  /** `server.interface`; null = all interfaces. */
  interface: string | null;
  /** `server.metrics_file`; null = no metrics. */
  metricsFile: string | null;
  /** `server.clients_dir`, relative to the config file's directory. */
  clientsDir: string;
  /** Decoded `server.private_key` (32-byte X25519 scalar). */
  privateKey: Uint8Array;
  /** Decoded `server.public_key` (32 bytes). */
  publicKey: Uint8Array;
  /** `ports:` groups, each merged and sorted. */
  portGroups: Map<string, PortRange[]>;
  /** Valid clients, in file order. */
  clients: ServerClient[];
  /** Names of clients skipped because their entry is invalid. */
  skippedClients: string[];
  /** Why each refused file of `clients_dir` was refused (their last good clients stay). */
  dropInErrors: string[];
  /** One-line warnings (skipped clients, unknown keys, replay_window < knock_timeout, loose file mode). */
  warnings: string[];
}

/** The keys of `server:`, in the order `openme init` writes them. */
const SERVER_FIELDS = {
  host: hostField(
    "the public name or IP address clients knock, e.g. myserver.example.com",
    "missing server host",
  ),
  udp_port: portField(DEFAULT_UDP_PORT),
  health_port: portField(null),
  firewall: {
    hint: "expected nft or iptables",
    default: DEFAULT_FIREWALL,
    check: checkFirewall,
  },
  knock_timeout: {
    hint: DURATION_HINT,
    default: DEFAULT_KNOCK_TIMEOUT_MS,
    check: checkDuration,
  },
  replay_window: {
    hint: DURATION_HINT,
    default: DEFAULT_REPLAY_WINDOW_MS,
    check: checkDuration,
  },
  require_explicit_target: booleanField(false),
  open_knock_port: booleanField(true),
  knock_rate_limit: {
    hint: `a count 1-${MAX_KNOCK_RATE} per s, m or h, e.g. 20/s or 30/m`,
    default: {
      count: DEFAULT_KNOCK_RATE_LIMIT.count,
      unit: DEFAULT_KNOCK_RATE_LIMIT.unit,
    },
    check: checkRate,
  },
  knock_burst: {
    hint: `an integer 1-${MAX_KNOCK_RATE}, e.g. 40`,
    default: DEFAULT_KNOCK_RATE_LIMIT.burst,
    check: checkBurst,
  },
  drop_ports: booleanField(false),
  default_profile: {
    hint:
      "a profile name such as default (letters, digits, '.', '_', '-', '@')",
    default: DEFAULT_PROFILE_NAME,
    check: checkProfileName,
  },
  clients_dir: {
    hint: "a directory, e.g. clients.d (relative to the config file's)",
    default: "clients.d",
    check(value: unknown, fail: Fail): string {
      if (typeof value !== "string" || value.trim() === "") {
        fail(`expected a directory, got ${describeValue(value)}`);
      }
      return value.trim();
    },
  },
  interface: {
    hint:
      'an interface name such as eth0 (at most 15 characters), or "" for all interfaces',
    default: null,
    check: checkInterface,
  },
  metrics_file: {
    hint:
      'an absolute path such as /var/lib/prometheus/node-exporter/openme.prom, or "" for none',
    default: null,
    check: checkMetricsFile,
  },
  private_key: keyField(
    'the base64 X25519 private key written by "openme init"',
    [32],
  ),
  public_key: keyField(
    'the base64 X25519 public key written by "openme init"',
    [32],
  ),
};

/** Reads, parses and validates the server config file, then the clients of `clients_dir`; throws ConfigError. A refused file of `clients_dir` keeps the clients it gave in `previous`, the config in force. */
export async function loadServerConfig(
  path: string,
  options: { previous?: ServerConfig } = {},
): Promise<ServerConfig> {
  const file = await readYamlFile(path, {
    missingHint:
      'create it with "openme init --server HOST", or pass --config PATH',
  });
  const config = buildServerConfig(file);
  const service = await accountIds(SERVICE_ACCOUNT);
  const modeWarning = looseModeWarning(
    file,
    "the server private key",
    service.gid,
  );
  if (modeWarning !== null) config.warnings.push(modeWarning);
  // Where each name is defined, as file:line.
  const places = new Map<string, string>();
  for (const c of config.clients) places.set(c.name, `${c.file}:${c.line}`);
  for (const dropIn of await readClientsDir(config.clientsDir, service.uid)) {
    if (resolve(dropIn.path) === resolve(config.path)) continue;
    let clients: ServerClient[];
    try {
      if ("error" in dropIn) throw dropIn.error;
      clients = readDropIn(dropIn.file, { config, places });
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      config.dropInErrors.push(
        `${error.message}; file refused, the clients it gave before stay in force`,
      );
      clients = (options.previous?.clients ?? []).filter((c) =>
        c.file !== config.path && !places.has(c.name) &&
        (c.file === dropIn.path || dirname(c.file) === dropIn.path)
      );
    }
    for (const c of clients) {
      config.clients.push(c);
      places.set(c.name, `${c.file}:${c.line}`);
    }
  }
  return config;
}

/** The clients of a `clients_dir` file; throws ConfigError for any problem, a name already in `places` included. */
function readDropIn(
  file: YamlFile,
  options: { config: ServerConfig; places: ReadonlyMap<string, string> },
): ServerClient[] {
  const { config, places } = options;
  const root = yamlValue(file) ?? {};
  if (!isRecord(root) || !(root.clients == null || isRecord(root.clients))) {
    throw errorAt(file, {
      keyPath: isRecord(root) ? ["clients"] : [],
      problem: `expected a map with a clients: map, got ${describeValue(root)}`,
      expected: "clients: {bob: {ed25519_pubkey: ..., allowed_ports: [...]}}",
    });
  }
  const section = { keyPath: [], map: root, fields: { clients: null } };
  config.warnings.push(...unknownKeyWarnings(file, section));
  const clients: ServerClient[] = [];
  const lines = keyLinesOf(file, "clients");
  for (const [name, entry] of Object.entries(root.clients ?? {})) {
    const other = places.get(name);
    if (other !== undefined) {
      throw errorAt(file, {
        keyPath: ["clients", name],
        problem: `client ${describeValue(name)} is also defined at ${other}`,
        expected: "remove one of the two",
      });
    }
    const { portGroups, warnings } = config;
    const line = lines.get(name);
    clients.push(
      readClient(file, { name, entry, portGroups, warnings, line }),
    );
  }
  return clients;
}

/** Validates a parsed server config file without its `clients_dir`; throws ConfigError for server-level problems, skips invalid clients with a warning. */
export function buildServerConfig(file: YamlFile): ServerConfig {
  const root = yamlValue(file);
  if (!isRecord(root)) {
    throw errorAt(file, {
      keyPath: [],
      problem: root === null || root === undefined
        ? "the file is empty"
        : `the top level is ${describeValue(root)}`,
      expected:
        'a map with server:, ports: and clients: sections; "openme init" writes one',
    });
  }
  if (!isRecord(root.server)) {
    throw errorAt(file, {
      keyPath: ["server"],
      problem: root.server === undefined
        ? "missing server: section"
        : `expected a map, got ${describeValue(root.server)}`,
      expected:
        'a map with host, udp_port, private_key, public_key ...; "openme init" writes one',
    });
  }
  const section = { keyPath: ["server"], map: root.server };
  const warnings = [
    ...file.warnings,
    ...unknownKeyWarnings(file, { ...section, fields: SERVER_FIELDS }),
  ];
  const server = readSection(file, { ...section, fields: SERVER_FIELDS });
  if (server.replay_window < server.knock_timeout) {
    warnings.push(
      errorAt(file, {
        keyPath: ["server", "replay_window"],
        problem: `replay_window (${
          durationText(root.server.replay_window, server.replay_window)
        }) is shorter than knock_timeout (${
          durationText(root.server.knock_timeout, server.knock_timeout)
        })`,
        expected: "keep replay_window at least as long as knock_timeout",
      }).message,
    );
  }
  const portGroups = readPortGroups(file, root.ports);
  const clients = readClients(file, { value: root.clients, portGroups });
  warnings.push(...clients.warnings);
  return {
    path: file.path,
    host: server.host,
    udpPort: server.udp_port,
    healthPort: server.health_port ?? server.udp_port,
    firewall: server.firewall,
    knockTimeoutMs: server.knock_timeout,
    replayWindowMs: server.replay_window,
    requireExplicitTarget: server.require_explicit_target,
    openKnockPort: server.open_knock_port,
    knockRateLimit: { ...server.knock_rate_limit, burst: server.knock_burst },
    dropPorts: server.drop_ports,
    defaultProfile: server.default_profile,
    interface: server.interface,
    metricsFile: server.metrics_file,
    clientsDir: isAbsolute(server.clients_dir)
      ? server.clients_dir
      : join(dirname(file.path), server.clients_dir),
    privateKey: server.private_key,
    publicKey: server.public_key,
    portGroups,
    clients: clients.clients,
    skippedClients: clients.skippedClients,
    dropInErrors: [],
    warnings,
  };
}

/** Parses the `ports:` section into merged groups; throws ConfigError. */
function readPortGroups(
  file: YamlFile,
  value: unknown,
): Map<string, PortRange[]> {
  const groups = new Map<string, PortRange[]>();
  if (value === undefined || value === null) return groups;
  if (!isRecord(value)) {
    throw errorAt(file, {
      keyPath: ["ports"],
      problem: `expected a map of port groups, got ${describeValue(value)}`,
      expected:
        "e.g. ports: {default: [22/tcp], devops: [22/tcp, 8080-8090/tcp]}",
    });
  }
  for (const name of Object.keys(value)) {
    if (!isGroupName(name)) {
      throw errorAt(file, {
        keyPath: ["ports", name],
        problem: `group name ${describeValue(name)} looks like a port spec`,
        expected:
          "group names contain no / or - and are not all digits, e.g. devops",
      });
    }
    const fields = { [name]: GROUP_FIELD };
    groups.set(
      name,
      readSection(file, { keyPath: ["ports"], map: value, fields })[name],
    );
  }
  return groups;
}

/** A `ports:` group: a list of port specs, merged. */
const GROUP_FIELD: Field<PortRange[]> = {
  hint: "e.g. [22/tcp, 8080-8090/tcp]",
  default: [],
  check(value: unknown, fail: Fail): PortRange[] {
    if (!Array.isArray(value)) {
      fail(`expected a list of port specs, got ${describeValue(value)}`);
    }
    const ranges: PortRange[] = [];
    for (const [index, item] of value.entries()) {
      const spec = portEntryText(item);
      if (spec === null) {
        fail(`expected a port spec, got ${describeValue(item)}`, {
          index,
          expected: "e.g. 22/tcp or 8080-8090/tcp",
        });
      }
      if (isGroupName(spec)) {
        fail(
          `${
            describeValue(spec)
          } is not a port spec (groups cannot contain groups)`,
          {
            index,
            expected: "list port specs such as 22/tcp or 8080-8090/tcp",
          },
        );
      }
      const parsed = parsePortSpec(spec);
      if (typeof parsed === "string") fail(parsed, { index, expected: "" });
      ranges.push(...parsed);
    }
    return mergePortRanges(ranges);
  },
};

/** The clients of a `clients:` map, those with an invalid entry skipped with a warning. */
interface ClientsRead {
  clients: ServerClient[];
  skippedClients: string[];
  warnings: string[];
}

/** Validates a `clients:` map (the value and the file it came from) against the port groups; throws ConfigError when it is not a map. */
function readClients(
  file: YamlFile,
  options: { value: unknown; portGroups: ReadonlyMap<string, PortRange[]> },
): ClientsRead {
  const read: ClientsRead = { clients: [], skippedClients: [], warnings: [] };
  if (options.value === undefined || options.value === null) return read;
  if (!isRecord(options.value)) {
    throw errorAt(file, {
      keyPath: ["clients"],
      problem: `expected a map of client names, got ${
        describeValue(options.value)
      }`,
      expected: 'e.g. clients: {} and then "openme add NAME"',
    });
  }
  const keyOwners = new Map<string, string>();
  const lines = keyLinesOf(file, "clients");
  for (const [name, entry] of Object.entries(options.value)) {
    let client: ServerClient;
    try {
      client = readClient(file, {
        name,
        entry,
        portGroups: options.portGroups,
        warnings: read.warnings,
        line: lines.get(name),
      });
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      read.skippedClients.push(name);
      read.warnings.push(
        `${error.message}; client ${
          describeValue(name)
        } skipped, the other clients are served`,
      );
      continue;
    }
    const keyHex = client.ed25519PublicKey.toHex();
    const owner = keyOwners.get(keyHex);
    if (owner === undefined) {
      keyOwners.set(keyHex, name);
    } else {
      read.warnings.push(
        errorAt(file, {
          keyPath: ["clients", name, "ed25519_pubkey"],
          problem: `client ${describeValue(name)} has the same key as client ${
            describeValue(owner)
          }; its knocks are attributed to ${describeValue(owner)}`,
          expected: "give each client its own key",
        }).message,
      );
    }
    read.clients.push(client);
  }
  return read;
}

/** Validates one `clients:` entry against the port groups, adding unknown-key warnings to `warnings`; throws ConfigError at the first problem. */
export function readClient(
  file: YamlFile,
  client: {
    name: string;
    entry: unknown;
    portGroups: ReadonlyMap<string, PortRange[]>;
    warnings: string[];
    /** The entry's line when the caller already knows it. */
    line?: number;
  },
): ServerClient {
  const keyPath = ["clients", client.name];
  const problem = nameProblem(client.name, "client");
  if (problem !== null) {
    throw errorAt(file, { keyPath, problem, expected: NAME_HINT });
  }
  if (!isRecord(client.entry)) {
    throw errorAt(file, {
      keyPath,
      problem: `expected a map, got ${describeValue(client.entry)}`,
      expected: "a map with ed25519_pubkey and allowed_ports",
    });
  }
  // The keys of the entry; allowed_ports resolves against the port groups.
  const fields = {
    ed25519_pubkey: {
      hint: "the client's base64 Ed25519 public key",
      check: checkClientKey,
    },
    allowed_ports: {
      hint: "e.g. [default, 2222/tcp]",
      check(value: unknown, fail: Fail): AllowedPorts {
        return checkAllowedPorts(value, {
          fail,
          portGroups: client.portGroups,
        });
      },
    },
    expires: { hint: EXPIRES_HINT, default: null, check: checkExpires },
    disable_health_port: booleanField(false),
  };
  const section = { keyPath, map: client.entry, fields };
  client.warnings.push(...unknownKeyWarnings(file, section));
  const values = readSection(file, section);
  return {
    name: client.name,
    ed25519PublicKey: values.ed25519_pubkey,
    allowedPorts: values.allowed_ports.entries,
    ports: values.allowed_ports.ports,
    expires: values.expires,
    disableHealthPort: values.disable_health_port,
    file: file.path,
    line: client.line ?? lineOf(file, keyPath),
  };
}

function checkFirewall(value: unknown, fail: Fail): FirewallKind {
  const kind = typeof value === "string" ? value.trim().toLowerCase() : "";
  if (kind === "nft" || kind === "iptables") return kind;
  fail(`unknown firewall ${describeValue(value)}`);
}

/** A positive Go duration of at most 24h, in milliseconds; a bare number other than 0 has no unit. */
function checkDuration(value: unknown, fail: Fail): number {
  if (typeof value === "number" && value !== 0) {
    fail(`duration ${describeValue(value)} has no unit`);
  }
  if (typeof value !== "number" && typeof value !== "string") {
    fail(`expected a duration, got ${describeValue(value)}`);
  }
  const ms = parseDuration(String(value).trim());
  if (ms === null) fail(`invalid duration ${describeValue(value)}`);
  if (ms <= 0) {
    fail(`duration ${describeValue(value)} must be longer than zero`);
  }
  if (ms > MAX_CONFIG_DURATION_MS) {
    fail(`duration ${describeValue(value)} is longer than the 24h maximum`);
  }
  return ms;
}

/** A count 1-999 per second, minute or hour: `20/s`, `30/m`, `100/h`. */
function checkRate(value: unknown, fail: Fail): Omit<KnockRateLimit, "burst"> {
  const text = typeof value === "string" ? value.trim() : "";
  const m = /^([1-9]\d{0,2})\/([smh])$/.exec(text);
  if (m === null) fail(`invalid rate ${describeValue(value)}`);
  const units = { s: "second", m: "minute", h: "hour" } as const;
  return { count: Number(m[1]), unit: units[m[2] as keyof typeof units] };
}

function checkBurst(value: unknown, fail: Fail): number {
  const ok = Number.isInteger(value) && (value as number) >= 1;
  if (!ok || (value as number) > MAX_KNOCK_RATE) {
    fail(`invalid burst ${describeValue(value)}`);
  }
  return value as number;
}

function checkProfileName(value: unknown, fail: Fail): string {
  if (typeof value !== "string" || nameProblem(value, "profile") !== null) {
    fail(`invalid profile name ${describeValue(value)}`);
  }
  return value;
}

function checkInterface(value: unknown, fail: Fail): string | null {
  if (value === "") return null;
  if (typeof value !== "string" || !INTERFACE_NAME_PATTERN.test(value.trim())) {
    fail(`invalid interface name ${describeValue(value)}`);
  }
  return value.trim();
}

function checkMetricsFile(value: unknown, fail: Fail): string | null {
  if (value === "") return null;
  if (typeof value !== "string" || !value.startsWith("/")) {
    fail(`metrics_file ${describeValue(value)} is not an absolute path`);
  }
  return value;
}

/** A 32-byte base64 Ed25519 public key that is a curve point. */
function checkClientKey(value: unknown, fail: Fail): Uint8Array {
  const key = keyField("the client's base64 Ed25519 public key", [32])
    .check(value, fail);
  try {
    // 32 bytes that are not a curve point would fail later, in the server.
    prepareEd25519VerifyKey(key);
  } catch {
    fail("not a valid Ed25519 public key (32 bytes, but not a curve point)", {
      expected:
        "the client's base64 Ed25519 public key, copied completely from its `openme init` output",
    });
  }
  return key;
}

/** `allowed_ports` as written, and the ports they open. */
interface AllowedPorts {
  entries: string[];
  ports: PortRange[];
}

/** Resolves `allowed_ports` (groups and port specs; none means the `default` group) against the port groups. */
function checkAllowedPorts(
  value: unknown,
  options: { fail: Fail; portGroups: ReadonlyMap<string, PortRange[]> },
): AllowedPorts {
  const fail: Fail = options.fail;
  if (value !== null && !Array.isArray(value)) {
    fail(`expected a list, got ${describeValue(value)}`);
  }
  const entries: string[] = [];
  for (const [index, item] of (value ?? []).entries()) {
    const text = portEntryText(item);
    if (text === null) {
      fail(
        `expected a port group name or port spec, got ${describeValue(item)}`,
        { index, expected: "e.g. default or 2222/tcp" },
      );
    }
    entries.push(text);
  }
  const ranges: PortRange[] = [];
  for (const [index, text] of entries.entries()) {
    const entry = text.trim();
    const group = options.portGroups.get(entry);
    if (isGroupName(entry) && group === undefined) {
      const names = [...options.portGroups.keys()].sort();
      fail(`unknown port group ${describeValue(entry)}`, {
        index,
        expected: names.length === 0
          ? "no port groups are defined under ports:; use a port spec such as 22/tcp or define the group"
          : `defined: ${names.join(", ")}`,
      });
    }
    const parsed = group ?? parsePortSpec(entry);
    if (typeof parsed === "string") fail(parsed, { index, expected: "" });
    ranges.push(...parsed);
  }
  if (entries.length === 0) {
    ranges.push(...options.portGroups.get(DEFAULT_PORT_GROUP) ?? []);
  }
  return { entries, ports: mergePortRanges(ranges) };
}

function checkExpires(value: unknown, fail: Fail): Date {
  if (typeof value !== "string") {
    fail(`expected a timestamp, got ${describeValue(value)}`);
  }
  const expires = parseRfc3339Timestamp(value);
  if (expires === null) fail(`invalid timestamp ${describeValue(value)}`);
  return expires;
}

/** The text of an `allowed_ports` or group entry (a YAML integer such as 22 counts), or null. */
function portEntryText(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (typeof value === "number" && Number.isSafeInteger(value)) {
    return String(value);
  }
  return null;
}

/** The duration as written, for messages; a long text is shown as its formatted value instead. */
function durationText(value: unknown, ms: number): string {
  if (typeof value !== "string") return `${ms}ms`;
  return value.length <= MAX_DURATION_TEXT_SHOWN ? value : formatDuration(ms);
}

/** Every port openme manages (all groups' and all valid clients' ports, merged), for `drop_ports`. */
export function allManagedPorts(config: ServerConfig): PortRange[] {
  const ranges: PortRange[] = [];
  for (const group of config.portGroups.values()) ranges.push(...group);
  for (const client of config.clients) ranges.push(...client.ports);
  return mergePortRanges(ranges);
}

/** RFC 3339 `date-time`: what Temporal also accepts, minus its other ISO 8601 and RFC 9557 forms. */
const RFC3339_PATTERN =
  /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

/** Parses a full RFC 3339 timestamp with time zone such as `2026-12-31T23:59:59Z`, or returns null. */
export function parseRfc3339Timestamp(text: string): Date | null {
  const trimmed = text.trim();
  if (!RFC3339_PATTERN.test(trimmed)) return null;
  try {
    // Temporal reads at most nine fraction digits; RFC 3339 allows more.
    const instant = Temporal.Instant.from(
      trimmed.replace(/(\.\d{9})\d+/, "$1"),
    );
    return new Date(instant.epochMilliseconds);
  } catch {
    return null; // A day, hour or offset out of range.
  }
}

/** Options for {@linkcode renderInitialServerConfig}. */
export interface InitialServerConfigOptions {
  /** Public name or IP address of the server. */
  host: string;
  /** Knock port; default {@linkcode DEFAULT_UDP_PORT}. */
  udpPort?: number;
  /** Firewall backend; default nft. */
  firewall?: FirewallKind;
  /** Input interface the rules match; null or absent = all. */
  interface?: string | null;
  /** Base64 X25519 private key (32 bytes, clamped). */
  privateKeyB64: string;
  /** Base64 X25519 public key (32 bytes). */
  publicKeyB64: string;
  /** File name used in messages when the options are invalid. */
  path?: string;
}

/** Renders the annotated server config `openme init` writes (every key commented, no clients); throws ConfigError for invalid options. */
export function renderInitialServerConfig(
  options: InitialServerConfigOptions,
): string {
  const udpPort = options.udpPort ?? DEFAULT_UDP_PORT;
  const lines = [
    "# openme server configuration (openme v1), written by `openme init`.",
    "# It holds the server's private key: keep it owned by root, mode 0600",
    "# (or 0640 with group openme, the service's).",
    "# `openme serve` reloads it when it changes and on SIGHUP.",
    "",
    "server:",
    "  # Public name or IP address of this server, written into the client",
    "  # configurations that `openme add` prints.",
    `  host: ${yamlScalar(options.host)}`,
    "  # UDP port the server listens on for knock packets (1-65535).",
    `  udp_port: ${udpPort}`,
    "  # TCP port opened together with each knock's ports so that",
    "  # `openme status` can check reachability; defaults to udp_port.",
    `  health_port: ${udpPort}`,
    "  # Firewall backend: nft (nftables) or iptables.",
    `  firewall: ${yamlScalar(options.firewall ?? DEFAULT_FIREWALL)}`,
    "  # How long ports stay open after a valid knock (durations: 30s, 1m30s, 1h).",
    "  knock_timeout: 30s",
    "  # How far a knock's timestamp may be from the server clock, and how long",
    "  # accepted nonces are remembered against replays; keep it >= knock_timeout.",
    "  replay_window: 60s",
    "  # true: refuse knocks that name no address (they open for the packet's",
    "  # source, so a copy resent first from elsewhere would open for its sender);",
    "  # clients then knock with --ip ADDRESS or a profile's target_ip.",
    "  require_explicit_target: false",
    "  # true: the server adds the firewall rule that lets knock packets in,",
    "  # behind a gate that drops in the kernel what cannot be a knock: other",
    "  # sizes, other versions and more than knock_rate_limit per source.",
    "  open_knock_port: true",
    "  # Datagrams each source (an IPv4 address, an IPv6 /64) may send to the",
    "  # knock port per s, m or h (1-999); the kernel gate drops the rest and",
    "  # openme itself refuses them too.",
    "  knock_rate_limit: 20/s",
    "  # Most datagrams a quiet source may send at once (1-999).",
    "  knock_burst: 40",
    "  # true: the server adds DROP rules for every managed port (every port",
    "  # group and client port below), so only knocked addresses reach them.",
    "  drop_ports: false",
    "  # Profile name written into the client configurations `openme add` prints.",
    `  default_profile: ${DEFAULT_PROFILE_NAME}`,
    "  # Directory of drop-in client files (*.yaml, each a clients: map as below),",
    "  # loaded in name order after this file; relative to this file's directory.",
    "  clients_dir: clients.d",
    '  # Input interface the rules match, e.g. eth0; "" means all interfaces.',
    `  interface: ${yamlScalar(options.interface ?? "")}`,
    "  # File the counters are written to every 15 s for Prometheus, e.g.",
    "  # /var/lib/prometheus/node-exporter/openme.prom (node_exporter's",
    '  # textfile collector reads it); "" writes none.',
    '  metrics_file: ""',
    "  # X25519 private key of this server (base64). Never share it.",
    `  private_key: ${yamlScalar(options.privateKeyB64)}`,
    "  # X25519 public key of this server (base64); every client config holds it.",
    `  public_key: ${yamlScalar(options.publicKeyB64)}`,
    "",
    "# Named port groups. A port spec is 22 (tcp and udp), 22/tcp, 22/udp,",
    "# 80-82 (a range, tcp and udp) or 8080-8090/tcp.",
    "ports:",
    "  # Used by clients whose allowed_ports is empty.",
    "  default: [22/tcp]",
    "",
    "# Registered clients; manage them with `openme add NAME` and",
    "# `openme revoke NAME` (changes apply without a restart). An entry:",
    "#   alice:",
    "#     ed25519_pubkey: <base64>            # the client's Ed25519 public key",
    "#     allowed_ports: [default, 2222/tcp]  # groups and/or port specs; empty = default",
    '#     expires: "2026-12-31T23:59:59Z"     # optional RFC 3339 expiry',
    "#     disable_health_port: false          # optional: do not open health_port",
    "clients: {}",
    "",
  ];
  const text = lines.join("\n");
  buildServerConfig(
    parseYamlFile(text, {
      path: options.path ?? "(new config)",
      generated: true,
    }),
  );
  return text;
}

/** Renders a string as a YAML scalar, quoted only when YAML needs it. */
function yamlScalar(value: string): string {
  return yamlText(value).trimEnd();
}
