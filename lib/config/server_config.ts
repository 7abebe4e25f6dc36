/**
 * The server config file (SPEC §4): parsing and validation into a typed
 * {@linkcode ServerConfig}, and the annotated text `openme init` writes.
 * Writing the file (init, add, revoke) lives in
 * lib/config/server_config_edit.ts.
 *
 * @module
 */

import { Document } from "yaml";
import { prepareEd25519VerifyKey } from "../protocol/crypto.ts";
import { INTERFACE_NAME_PATTERN } from "../firewall/backend.ts";
import { formatDuration, parseDuration } from "./duration.ts";
import { ConfigError, describeValue, type KeyPathSegment } from "./errors.ts";
import {
  parseYamlSource,
  readYamlDocument,
  type YamlSource,
  yamlToValue,
} from "./file_io.ts";
import {
  isGroupName,
  mergePortRanges,
  parsePortSpec,
  type PortRange,
} from "./ports.ts";
import {
  configErrorAt,
  HOST_PATTERN,
  isRecord,
  looseModeWarning,
  NAME_HINT,
  NAME_PATTERN,
  optionalPort,
  type ProblemAt,
  requireKey,
  withoutGeneratedLine,
} from "./validate.ts";

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
/** Default `server.default_profile`. */
export const DEFAULT_PROFILE_NAME = "default";
/** Port group used by clients whose `allowed_ports` is empty. */
export const DEFAULT_PORT_GROUP = "default";
/** Longest accepted `knock_timeout` / `replay_window` (timers beyond ~24.8 days misfire). */
export const MAX_CONFIG_DURATION_MS = 24 * 60 * 60 * 1000;
/** X25519 key size for `server.private_key` / `server.public_key`. */
export const SERVER_KEY_BYTES = 32;
/** Ed25519 public key size for `clients.*.ed25519_pubkey`. */
export const CLIENT_PUBLIC_KEY_BYTES = 32;
/** Longest client name. */
export const MAX_CLIENT_NAME_LENGTH = 64;

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
  /** Ports the client's knocks open: groups resolved, merged, health port NOT included. */
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

/** Options for {@linkcode parseServerConfig}. */
export interface ParseServerConfigOptions {
  /** File name used in messages. */
  path: string;
}

const SERVER_KEYS: readonly string[] = [
  "host",
  "udp_port",
  "health_port",
  "firewall",
  "knock_timeout",
  "replay_window",
  "open_knock_port",
  "drop_ports",
  "default_profile",
  "interface",
  "private_key",
  "public_key",
];

const CLIENT_KEYS: readonly string[] = [
  "ed25519_pubkey",
  "allowed_ports",
  "expires",
  "disable_health_port",
];

const DURATION_HINT = "a duration such as 30s, 1m30s or 1h";
/** Durations written longer than this are shown formatted (e.g. 30s) in messages. */
const MAX_DURATION_TEXT_SHOWN = 20;
const BOOL_HINT = "true or false";
/** What a good `expires` value looks like, for messages. */
export const EXPIRES_HINT =
  'a full RFC 3339 timestamp with time zone, e.g. "2026-12-31T23:59:59Z"';

/** Parses and validates server config text; throws ConfigError for server-level problems, skips invalid clients with a warning. */
export function parseServerConfig(
  text: string,
  options: ParseServerConfigOptions,
): ServerConfig {
  return buildServerConfig(parseYamlSource(text, { path: options.path }));
}

/** Reads, parses and validates the server config file; throws ConfigError. */
export async function loadServerConfig(path: string): Promise<ServerConfig> {
  const source = await readYamlDocument(path, {
    missingHint:
      'create it with "openme init --server HOST", or pass --config PATH',
  });
  const config = buildServerConfig(source);
  const modeWarning = looseModeWarning(source, "the server private key");
  if (modeWarning !== null) config.warnings.push(modeWarning);
  return config;
}

/** Validates a parsed server config file (as read by lib/config/file_io.ts); throws ConfigError like {@linkcode parseServerConfig}. */
export function buildServerConfig(source: YamlSource): ServerConfig {
  const warnings: string[] = [...source.warnings];
  const root = yamlToValue(source);
  if (!isRecord(root)) {
    throw configErrorAt(source, {
      keyPath: [],
      problem: root === null || root === undefined
        ? "the file is empty"
        : `the top level is ${describeValue(root)}`,
      expected:
        'a map with server:, ports: and clients: sections; "openme init" writes one',
    });
  }

  const server = root.server;
  if (!isRecord(server)) {
    throw configErrorAt(source, {
      keyPath: ["server"],
      problem: server === undefined
        ? "missing server: section"
        : `expected a map, got ${describeValue(server)}`,
      expected:
        'a map with host, udp_port, private_key, public_key ...; "openme init" writes one',
    });
  }
  warnUnknownKeys(source, ["server"], server, SERVER_KEYS, warnings);

  const host = requireHost(source, ["server", "host"], server.host);
  const udpPort = optionalPort(source, {
    keyPath: ["server", "udp_port"],
    value: server.udp_port,
    fallback: DEFAULT_UDP_PORT,
  });
  const healthPort = optionalPort(source, {
    keyPath: ["server", "health_port"],
    value: server.health_port,
    fallback: udpPort,
  });
  const firewall = optionalFirewall(
    source,
    ["server", "firewall"],
    server.firewall,
  );
  const knockTimeoutMs = optionalDuration(
    source,
    ["server", "knock_timeout"],
    server.knock_timeout,
    DEFAULT_KNOCK_TIMEOUT_MS,
  );
  const replayWindowMs = optionalDuration(
    source,
    ["server", "replay_window"],
    server.replay_window,
    DEFAULT_REPLAY_WINDOW_MS,
  );
  if (replayWindowMs < knockTimeoutMs) {
    warnings.push(
      warningAt(source, {
        keyPath: ["server", "replay_window"],
        problem: `replay_window (${
          durationText(server.replay_window, replayWindowMs)
        }) is shorter than knock_timeout (${
          durationText(server.knock_timeout, knockTimeoutMs)
        })`,
        expected: "keep replay_window at least as long as knock_timeout",
      }),
    );
  }
  const openKnockPort = optionalBoolean(
    source,
    ["server", "open_knock_port"],
    server.open_knock_port,
    true,
  );
  const dropPorts = optionalBoolean(
    source,
    ["server", "drop_ports"],
    server.drop_ports,
    false,
  );
  const defaultProfile = optionalProfileName(
    source,
    ["server", "default_profile"],
    server.default_profile,
  );
  const networkInterface = optionalInterface(
    source,
    ["server", "interface"],
    server.interface,
  );
  const privateKey = requireKey(source, {
    keyPath: ["server", "private_key"],
    value: server.private_key,
    sizes: [SERVER_KEY_BYTES],
    hint: 'the base64 X25519 private key written by "openme init"',
  });
  const publicKey = requireKey(source, {
    keyPath: ["server", "public_key"],
    value: server.public_key,
    sizes: [SERVER_KEY_BYTES],
    hint: 'the base64 X25519 public key written by "openme init"',
  });

  const portGroups = parsePortGroups(source, root.ports);
  const clients: ServerClient[] = [];
  const skippedClients: string[] = [];
  const clientsValue = root.clients;
  if (clientsValue !== undefined && clientsValue !== null) {
    if (!isRecord(clientsValue)) {
      throw configErrorAt(source, {
        keyPath: ["clients"],
        problem: `expected a map of client names, got ${
          describeValue(clientsValue)
        }`,
        expected: 'e.g. clients: {} and then "openme add NAME"',
      });
    }
    const keyOwners = new Map<string, string>();
    for (const [name, entry] of Object.entries(clientsValue)) {
      try {
        const client = parseClientEntry(
          source,
          name,
          entry,
          portGroups,
          warnings,
        );
        const keyText = client.ed25519PublicKey.join(",");
        const owner = keyOwners.get(keyText);
        if (owner !== undefined) {
          warnings.push(
            warningAt(source, {
              keyPath: ["clients", name, "ed25519_pubkey"],
              problem: `client ${
                describeValue(name)
              } has the same key as client ${
                describeValue(owner)
              }; its knocks are attributed to ${describeValue(owner)}`,
              expected: "give each client its own key",
            }),
          );
        } else {
          keyOwners.set(keyText, name);
        }
        clients.push(client);
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        skippedClients.push(name);
        warnings.push(
          `${error.message}; client ${
            describeValue(name)
          } skipped, the other clients are served`,
        );
      }
    }
  }

  return {
    path: source.path,
    host,
    udpPort,
    healthPort,
    firewall,
    knockTimeoutMs,
    replayWindowMs,
    openKnockPort,
    dropPorts,
    defaultProfile,
    interface: networkInterface,
    privateKey,
    publicKey,
    portGroups,
    clients,
    skippedClients,
    warnings,
  };
}

/** Parses the `ports:` section into merged groups; throws ConfigError. */
function parsePortGroups(
  source: YamlSource,
  value: unknown,
): Map<string, PortRange[]> {
  const groups = new Map<string, PortRange[]>();
  if (value === undefined || value === null) return groups;
  if (!isRecord(value)) {
    throw configErrorAt(source, {
      keyPath: ["ports"],
      problem: `expected a map of port groups, got ${describeValue(value)}`,
      expected:
        "e.g. ports: {default: [22/tcp], devops: [22/tcp, 8080-8090/tcp]}",
    });
  }
  for (const [name, list] of Object.entries(value)) {
    if (!isGroupName(name)) {
      throw configErrorAt(source, {
        keyPath: ["ports", name],
        problem: `group name ${describeValue(name)} looks like a port spec`,
        expected:
          "group names contain no / or - and are not all digits, e.g. devops",
      });
    }
    if (list === null || list === undefined) {
      groups.set(name, []);
      continue;
    }
    if (!Array.isArray(list)) {
      throw configErrorAt(source, {
        keyPath: ["ports", name],
        problem: `expected a list of port specs, got ${describeValue(list)}`,
        expected: "e.g. [22/tcp, 8080-8090/tcp]",
      });
    }
    const ranges: PortRange[] = [];
    for (let index = 0; index < list.length; index++) {
      const keyPath = ["ports", name, index];
      const spec = portEntryText(list[index]);
      if (spec === null) {
        throw configErrorAt(source, {
          keyPath,
          problem: `expected a port spec, got ${describeValue(list[index])}`,
          expected: "e.g. 22/tcp or 8080-8090/tcp",
        });
      }
      if (isGroupName(spec)) {
        throw configErrorAt(source, {
          keyPath,
          problem: `${
            describeValue(spec)
          } is not a port spec (groups cannot contain groups)`,
          expected: "list port specs such as 22/tcp or 8080-8090/tcp",
        });
      }
      const parsed = parsePortSpec(spec);
      if (typeof parsed === "string") {
        throw configErrorAt(source, { keyPath, problem: parsed });
      }
      ranges.push(...parsed);
    }
    groups.set(name, mergePortRanges(ranges));
  }
  return groups;
}

/** Validates one `clients:` entry; throws ConfigError (the caller skips the client). */
function parseClientEntry(
  source: YamlSource,
  name: string,
  entry: unknown,
  portGroups: Map<string, PortRange[]>,
  warnings: string[],
): ServerClient {
  const nameProblem = validateClientName(name);
  if (nameProblem !== null) {
    throw configErrorAt(source, {
      keyPath: ["clients", name],
      problem: nameProblem,
      expected: NAME_HINT,
    });
  }
  if (!isRecord(entry)) {
    throw configErrorAt(source, {
      keyPath: ["clients", name],
      problem: `expected a map, got ${describeValue(entry)}`,
      expected: "a map with ed25519_pubkey and allowed_ports",
    });
  }
  warnUnknownKeys(source, ["clients", name], entry, CLIENT_KEYS, warnings);

  const ed25519PublicKey = requireKey(source, {
    keyPath: ["clients", name, "ed25519_pubkey"],
    value: entry.ed25519_pubkey,
    sizes: [CLIENT_PUBLIC_KEY_BYTES],
    hint: "the client's base64 Ed25519 public key",
  });
  try {
    // 32 bytes that are not a curve point would fail later, in the server.
    prepareEd25519VerifyKey(ed25519PublicKey);
  } catch {
    throw configErrorAt(source, {
      keyPath: ["clients", name, "ed25519_pubkey"],
      problem:
        "not a valid Ed25519 public key (32 bytes, but not a curve point)",
      expected:
        "the client's base64 Ed25519 public key, copied completely from its `openme init` output",
    });
  }

  const allowedPorts: string[] = [];
  const rawPorts = entry.allowed_ports;
  if (rawPorts !== undefined && rawPorts !== null) {
    if (!Array.isArray(rawPorts)) {
      throw configErrorAt(source, {
        keyPath: ["clients", name, "allowed_ports"],
        problem: `expected a list, got ${describeValue(rawPorts)}`,
        expected: "e.g. [default, 2222/tcp]",
      });
    }
    for (let index = 0; index < rawPorts.length; index++) {
      const text = portEntryText(rawPorts[index]);
      if (text === null) {
        throw configErrorAt(source, {
          keyPath: ["clients", name, "allowed_ports", index],
          problem: `expected a port group name or port spec, got ${
            describeValue(rawPorts[index])
          }`,
          expected: "e.g. default or 2222/tcp",
        });
      }
      allowedPorts.push(text);
    }
  }
  const resolved = resolveAllowedPorts(allowedPorts, portGroups);
  if (!resolved.ok) {
    throw configErrorAt(source, {
      keyPath: ["clients", name, "allowed_ports", resolved.index],
      problem: resolved.problem,
      expected: resolved.expected,
    });
  }

  let expires: Date | null = null;
  const rawExpires = entry.expires;
  if (rawExpires !== undefined && rawExpires !== null) {
    if (typeof rawExpires !== "string") {
      throw configErrorAt(source, {
        keyPath: ["clients", name, "expires"],
        problem: `expected a timestamp, got ${describeValue(rawExpires)}`,
        expected: EXPIRES_HINT,
      });
    }
    expires = parseRfc3339Timestamp(rawExpires);
    if (expires === null) {
      throw configErrorAt(source, {
        keyPath: ["clients", name, "expires"],
        problem: `invalid timestamp ${describeValue(rawExpires)}`,
        expected: EXPIRES_HINT,
      });
    }
  }

  const disableHealthPort = optionalBoolean(
    source,
    ["clients", name, "disable_health_port"],
    entry.disable_health_port,
    false,
  );

  return {
    name,
    ed25519PublicKey,
    allowedPorts,
    ports: resolved.ports,
    expires,
    disableHealthPort,
  };
}

/** Result of {@linkcode resolveAllowedPorts}. */
export type ResolvedPorts =
  | { ok: true; ports: PortRange[] }
  | { ok: false; index: number; problem: string; expected?: string };

/**
 * Resolves `allowed_ports` entries (group names and port specs) against the
 * port groups; an empty list means the `default` group (or no ports if there
 * is none). The result is merged and sorted.
 */
export function resolveAllowedPorts(
  entries: readonly string[],
  portGroups: ReadonlyMap<string, PortRange[]>,
): ResolvedPorts {
  if (entries.length === 0) {
    return {
      ok: true,
      ports: mergePortRanges(portGroups.get(DEFAULT_PORT_GROUP) ?? []),
    };
  }
  const ranges: PortRange[] = [];
  for (let index = 0; index < entries.length; index++) {
    const entry = entries[index].trim();
    if (isGroupName(entry)) {
      const group = portGroups.get(entry);
      if (group === undefined) {
        return {
          ok: false,
          index,
          problem: `unknown port group ${describeValue(entry)}`,
          expected: definedGroupsText(portGroups),
        };
      }
      ranges.push(...group);
      continue;
    }
    const parsed = parsePortSpec(entry);
    if (typeof parsed === "string") {
      return { ok: false, index, problem: parsed };
    }
    ranges.push(...parsed);
  }
  return { ok: true, ports: mergePortRanges(ranges) };
}

/** "defined: default, devops", or a hint when no group is defined. */
function definedGroupsText(
  portGroups: ReadonlyMap<string, PortRange[]>,
): string {
  const names = [...portGroups.keys()].sort();
  if (names.length === 0) {
    return "no port groups are defined under ports:; use a port spec such as 22/tcp or define the group";
  }
  return `defined: ${names.join(", ")}`;
}

/** Every port openme manages: all groups' ports and all valid clients' ports, merged (used for `drop_ports`). */
export function allManagedPorts(config: ServerConfig): PortRange[] {
  const ranges: PortRange[] = [];
  for (const group of config.portGroups.values()) ranges.push(...group);
  for (const client of config.clients) ranges.push(...client.ports);
  return mergePortRanges(ranges);
}

/** Returns why a client name is not allowed, or null when it is fine. */
export function validateClientName(name: string): string | null {
  if (typeof name !== "string" || name === "") return "empty client name";
  if (name.length > MAX_CLIENT_NAME_LENGTH) {
    return `client name is ${name.length} characters, longer than ${MAX_CLIENT_NAME_LENGTH}`;
  }
  if (!NAME_PATTERN.test(name)) {
    return `invalid client name ${describeValue(name)}`;
  }
  return null;
}

const RFC3339_PATTERN =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/**
 * Parses a full RFC 3339 timestamp with time zone (`2026-12-31T23:59:59Z`,
 * `2026-12-31T23:59:59.5+02:00`), or returns null. Date-only or zone-less text
 * is refused.
 */
export function parseRfc3339Timestamp(text: string): Date | null {
  if (typeof text !== "string") return null;
  const match = RFC3339_PATTERN.exec(text.trim());
  if (match === null) return null;
  const year = Number(match[1]);
  const month = Number(match[2]);
  const day = Number(match[3]);
  const hour = Number(match[4]);
  const minute = Number(match[5]);
  const second = Number(match[6]);
  const fraction = match[7] === undefined
    ? 0
    : Number(match[7].slice(1, 4).padEnd(3, "0"));
  if (month < 1 || month > 12) return null;
  if (day < 1 || day > daysInMonth(year, month)) return null;
  if (hour > 23 || minute > 59 || second > 60) return null;
  let offsetMinutes = 0;
  if (match[8] === undefined) {
    const offsetHours = Number(match[10]);
    const offsetRest = Number(match[11]);
    if (offsetHours > 23 || offsetRest > 59) return null;
    offsetMinutes = (offsetHours * 60 + offsetRest) *
      (match[9] === "-" ? -1 : 1);
  }
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, fraction);
  return new Date(date.getTime() - offsetMinutes * 60_000);
}

/** Days in a month of the proleptic Gregorian calendar. */
function daysInMonth(year: number, month: number): number {
  if (month === 2) {
    const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
    return leap ? 29 : 28;
  }
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

// ---------------------------------------------------------------------------
// Field validators. Each throws a ConfigError naming file, line and key path.

function requireHost(
  source: YamlSource,
  keyPath: KeyPathSegment[],
  value: unknown,
): string {
  const hint =
    "the public name or IP address clients knock, e.g. myserver.example.com";
  if (value === undefined || value === null || value === "") {
    throw configErrorAt(source, {
      keyPath,
      problem: "missing server host",
      expected: hint,
    });
  }
  if (typeof value !== "string") {
    throw configErrorAt(source, {
      keyPath,
      problem: `expected a host name, got ${describeValue(value)}`,
      expected: hint,
    });
  }
  const host = value.trim();
  if (!HOST_PATTERN.test(host)) {
    throw configErrorAt(source, {
      keyPath,
      problem: `invalid host ${describeValue(value)}`,
      expected: hint,
    });
  }
  return host;
}

function optionalFirewall(
  source: YamlSource,
  keyPath: KeyPathSegment[],
  value: unknown,
): FirewallKind {
  if (value === undefined || value === null) return DEFAULT_FIREWALL;
  if (typeof value === "string") {
    const kind = value.trim().toLowerCase();
    if (kind === "nft" || kind === "iptables") return kind;
  }
  throw configErrorAt(source, {
    keyPath,
    problem: `unknown firewall ${describeValue(value)}`,
    expected: "expected nft or iptables",
  });
}

function optionalDuration(
  source: YamlSource,
  keyPath: KeyPathSegment[],
  value: unknown,
  fallback: number,
): number {
  if (value === undefined || value === null) return fallback;
  let text: string;
  if (typeof value === "string") {
    text = value.trim();
  } else if (typeof value === "number" && value === 0) {
    text = "0";
  } else if (typeof value === "number") {
    throw configErrorAt(source, {
      keyPath,
      problem: `duration ${describeValue(value)} has no unit`,
      expected: DURATION_HINT,
    });
  } else {
    throw configErrorAt(source, {
      keyPath,
      problem: `expected a duration, got ${describeValue(value)}`,
      expected: DURATION_HINT,
    });
  }
  const ms = parseDuration(text);
  if (ms === null) {
    throw configErrorAt(source, {
      keyPath,
      problem: `invalid duration ${describeValue(value)}`,
      expected: DURATION_HINT,
    });
  }
  if (ms <= 0) {
    throw configErrorAt(source, {
      keyPath,
      problem: `duration ${describeValue(value)} must be longer than zero`,
      expected: DURATION_HINT,
    });
  }
  if (ms > MAX_CONFIG_DURATION_MS) {
    throw configErrorAt(source, {
      keyPath,
      problem: `duration ${
        describeValue(value)
      } is longer than the 24h maximum`,
      expected: DURATION_HINT,
    });
  }
  return ms;
}

function optionalBoolean(
  source: YamlSource,
  keyPath: KeyPathSegment[],
  value: unknown,
  fallback: boolean,
): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "boolean") {
    throw configErrorAt(source, {
      keyPath,
      problem: `expected true or false, got ${describeValue(value)}`,
      expected: BOOL_HINT,
    });
  }
  return value;
}

function optionalProfileName(
  source: YamlSource,
  keyPath: KeyPathSegment[],
  value: unknown,
): string {
  if (value === undefined || value === null) return DEFAULT_PROFILE_NAME;
  if (
    typeof value !== "string" || value.length > MAX_CLIENT_NAME_LENGTH ||
    !NAME_PATTERN.test(value)
  ) {
    throw configErrorAt(source, {
      keyPath,
      problem: `invalid profile name ${describeValue(value)}`,
      expected:
        "a profile name such as default (letters, digits, '.', '_', '-', '@')",
    });
  }
  return value;
}

function optionalInterface(
  source: YamlSource,
  keyPath: KeyPathSegment[],
  value: unknown,
): string | null {
  if (value === undefined || value === null || value === "") return null;
  if (typeof value !== "string" || !INTERFACE_NAME_PATTERN.test(value.trim())) {
    throw configErrorAt(source, {
      keyPath,
      problem: `invalid interface name ${describeValue(value)}`,
      expected:
        'an interface name such as eth0 (at most 15 characters), or "" for all interfaces',
    });
  }
  return value.trim();
}

/** Adds a warning for each key of `map` that is not in `known` (kept in the file, otherwise ignored). */
function warnUnknownKeys(
  source: YamlSource,
  keyPath: KeyPathSegment[],
  map: Record<string, unknown>,
  known: readonly string[],
  warnings: string[],
): void {
  for (const key of Object.keys(map)) {
    if (known.includes(key)) continue;
    warnings.push(
      warningAt(source, {
        keyPath: [...keyPath, key],
        problem: "unknown key, ignored",
        expected: `known keys: ${known.join(", ")}`,
      }),
    );
  }
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
  if (typeof value === "string" && value.length <= MAX_DURATION_TEXT_SHOWN) {
    return value;
  }
  if (typeof value === "string") return formatDuration(ms);
  return `${ms}ms`;
}

/** Formats a warning at a key path like a ConfigError message. */
function warningAt(source: YamlSource, at: ProblemAt): string {
  return configErrorAt(source, at).message;
}

// ---------------------------------------------------------------------------
// openme init: the annotated text (written to disk by server_config_edit.ts)

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

/**
 * Renders the annotated server config written by `openme init`: every key
 * with a comment, a `default: [22/tcp]` port group and no clients. Throws
 * ConfigError when the options would not make a valid config.
 */
export function renderInitialServerConfig(
  options: InitialServerConfigOptions,
): string {
  const udpPort = options.udpPort ?? DEFAULT_UDP_PORT;
  const firewall = options.firewall ?? DEFAULT_FIREWALL;
  const networkInterface = options.interface ?? "";
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
    `  firewall: ${yamlScalar(firewall)}`,
    "  # How long ports stay open after a valid knock (durations: 30s, 1m30s, 1h).",
    "  knock_timeout: 30s",
    "  # How far a knock's timestamp may be from the server clock, and how long",
    "  # accepted nonces are remembered against replays; keep it >= knock_timeout.",
    "  replay_window: 60s",
    "  # true: the server adds the firewall rule that lets knock packets in.",
    "  open_knock_port: true",
    "  # true: the server adds DROP rules for every managed port (every port",
    "  # group and client port below), so only knocked addresses reach them.",
    "  drop_ports: false",
    "  # Profile name written into the client configurations `openme add` prints.",
    `  default_profile: ${DEFAULT_PROFILE_NAME}`,
    '  # Input interface the rules match, e.g. eth0; "" means all interfaces.',
    `  interface: ${yamlScalar(networkInterface)}`,
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
  const path = options.path ?? "(new config)";
  try {
    parseServerConfig(text, { path });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // Line numbers of the generated text would point into a file not yet written.
    throw withoutGeneratedLine(error, path);
  }
  return text;
}

/** Renders a string as a YAML scalar, quoted only when YAML needs it. */
function yamlScalar(value: string): string {
  const doc = new Document(value);
  return doc.toString({ lineWidth: 0 }).trimEnd();
}
