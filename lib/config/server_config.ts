/**
 * The server config file (SPEC §4): parsed and validated into a typed
 * {@linkcode ServerConfig}, and the annotated text `openme init` writes.
 *
 * @module
 */

import { Document } from "yaml";
import { prepareEd25519VerifyKey } from "../protocol/crypto.ts";
import { INTERFACE_NAME_PATTERN } from "../firewall/backend.ts";
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
import {
  errorAt,
  looseModeWarning,
  parseYamlFile,
  readYamlFile,
  type YamlFile,
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
export const EXPIRES_HINT =
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
  /** `server.drop_ports`. */
  dropPorts: boolean;
  /** `server.default_profile`. */
  defaultProfile: string;
  /** `server.interface`; null = all interfaces. */
  interface: string | null;
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
  drop_ports: booleanField(false),
  default_profile: {
    hint:
      "a profile name such as default (letters, digits, '.', '_', '-', '@')",
    default: DEFAULT_PROFILE_NAME,
    check: checkProfileName,
  },
  interface: {
    hint:
      'an interface name such as eth0 (at most 15 characters), or "" for all interfaces',
    default: null,
    check: checkInterface,
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

/** The keys of one `clients:` entry. */
type ClientFields = {
  ed25519_pubkey: Field<Uint8Array>;
  allowed_ports: Field<AllowedPorts>;
  expires: Field<Date | null>;
  disable_health_port: Field<boolean>;
};

/** The fields of a `clients:` entry; `allowed_ports` resolves against the port groups. */
function clientFields(
  portGroups: ReadonlyMap<string, PortRange[]>,
): ClientFields {
  return {
    ed25519_pubkey: {
      hint: "the client's base64 Ed25519 public key",
      check: checkClientKey,
    },
    allowed_ports: {
      hint: "e.g. [default, 2222/tcp]",
      check(value: unknown, fail: Fail): AllowedPorts {
        return checkAllowedPorts(value, { fail, portGroups });
      },
    },
    expires: { hint: EXPIRES_HINT, default: null, check: checkExpires },
    disable_health_port: booleanField(false),
  };
}

/** Parses and validates server config text; throws ConfigError for server-level problems, skips invalid clients with a warning. */
export function parseServerConfig(
  text: string,
  options: { path: string },
): ServerConfig {
  return buildServerConfig(parseYamlFile(text, { path: options.path }));
}

/** Reads, parses and validates the server config file; throws ConfigError. */
export async function loadServerConfig(path: string): Promise<ServerConfig> {
  const file = await readYamlFile(path, {
    missingHint:
      'create it with "openme init --server HOST", or pass --config PATH',
  });
  const config = buildServerConfig(file);
  const modeWarning = looseModeWarning(file, "the server private key");
  if (modeWarning !== null) config.warnings.push(modeWarning);
  return config;
}

/** Validates a parsed server config file like {@linkcode parseServerConfig}. */
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
    dropPorts: server.drop_ports,
    defaultProfile: server.default_profile,
    interface: server.interface,
    privateKey: server.private_key,
    publicKey: server.public_key,
    portGroups,
    clients: clients.clients,
    skippedClients: clients.skippedClients,
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
  for (const [name, entry] of Object.entries(options.value)) {
    let client: ServerClient;
    try {
      client = readClient(file, {
        name,
        entry,
        portGroups: options.portGroups,
        warnings: read.warnings,
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
  const section = {
    keyPath,
    map: client.entry,
    fields: clientFields(client.portGroups),
  };
  client.warnings.push(...unknownKeyWarnings(file, section));
  const values = readSection(file, section);
  return {
    name: client.name,
    ed25519PublicKey: values.ed25519_pubkey,
    allowedPorts: values.allowed_ports.entries,
    ports: values.allowed_ports.ports,
    expires: values.expires,
    disableHealthPort: values.disable_health_port,
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

/** Why a client name is not allowed, or null when it is fine. */
export function validateClientName(name: string): string | null {
  return nameProblem(name, "client");
}

/** RFC 3339 `date-time`: what Temporal also accepts, minus its other ISO 8601 and RFC 9557 forms. */
const RFC3339_PATTERN =
  /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

/** Parses a full RFC 3339 timestamp with time zone such as `2026-12-31T23:59:59Z`, or returns null. */
export function parseRfc3339Timestamp(text: string): Date | null {
  if (typeof text !== "string") return null;
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
    "# It holds the server's private key: keep it owned by root, mode 0600.",
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
    "  # true: the server adds the firewall rule that lets knock packets in.",
    "  open_knock_port: true",
    "  # true: the server adds DROP rules for every managed port (every port",
    "  # group and client port below), so only knocked addresses reach them.",
    "  drop_ports: false",
    "  # Profile name written into the client configurations `openme add` prints.",
    `  default_profile: ${DEFAULT_PROFILE_NAME}`,
    '  # Input interface the rules match, e.g. eth0; "" means all interfaces.',
    `  interface: ${yamlScalar(options.interface ?? "")}`,
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
  return new Document(value).toString({ lineWidth: 0 }).trimEnd();
}
