/**
 * The server config file (SPEC §4): parsing and validation into a typed
 * {@linkcode ServerConfig}, the annotated file written by `openme init`, and
 * the locked, comment-preserving edits made by `openme add` and `openme revoke`.
 *
 * @module
 */

import { INTERFACE_NAME_PATTERN } from "../firewall/backend.ts";
import { dirname } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { Document, isMap, Scalar, YAMLMap, type YAMLSeq } from "yaml";
import { decodeBase64Key } from "../encoding.ts";
import { parseDuration } from "./duration.ts";
import {
  ConfigError,
  describeValue,
  formatKeyPath,
  type KeyPathSegment,
} from "./errors.ts";
import {
  ensureDir,
  errorText,
  fileExists,
  type FileLockOptions,
  lineOfKeyPath,
  parseYamlSource,
  readYamlDocument,
  spliceInsertMapEntry,
  spliceRemoveMapEntry,
  withFileLock,
  writeConfigFile,
  type YamlSource,
  yamlToValue,
} from "./file_io.ts";
import {
  isGroupName,
  mergePortRanges,
  parsePortSpec,
  type PortRange,
} from "./ports.ts";

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
/** Mode of the server config directory when openme creates it. */
export const SERVER_CONFIG_DIR_MODE = 0o750;
/** Mode of the server config file (it holds the private key). */
export const SERVER_CONFIG_FILE_MODE = 0o600;
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

const CLIENT_NAME_PATTERN = /^[\p{L}\p{N}][\p{L}\p{N}._@-]*$/u;
const PROFILE_NAME_PATTERN = /^[\p{L}\p{N}][\p{L}\p{N}._@-]*$/u;
/** Host names and IP literals: no whitespace, quotes or control characters. */
// deno-lint-ignore no-control-regex
const HOST_PATTERN = /^[^\s"'`\\\u0000-\u001f\u007f]{1,253}$/;

const PORT_HINT = "an integer 1-65535, e.g. 54154";
const DURATION_HINT = "a duration such as 30s, 1m30s or 1h";
const BOOL_HINT = "true or false";
const EXPIRES_HINT =
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
  if (source.mode !== null && (source.mode & 0o077) !== 0) {
    config.warnings.push(
      `config ${path}: file mode ${
        source.mode.toString(8).padStart(4, "0")
      } lets other users read the server private key (run chmod 600 ${path})`,
    );
  }
  return config;
}

/** Validates a parsed server config file. */
function buildServerConfig(source: YamlSource): ServerConfig {
  const warnings: string[] = [...source.warnings];
  const root = yamlToValue(source);
  if (!isRecord(root)) {
    throw fail(
      source,
      [],
      root === null || root === undefined
        ? "the file is empty"
        : `the top level is ${describeValue(root)}`,
      'a map with server:, ports: and clients: sections; "openme init" writes one',
    );
  }

  const server = root.server;
  if (!isRecord(server)) {
    throw fail(
      source,
      ["server"],
      server === undefined
        ? "missing server: section"
        : `expected a map, got ${describeValue(server)}`,
      'a map with host, udp_port, private_key, public_key ...; "openme init" writes one',
    );
  }
  warnUnknownKeys(source, ["server"], server, SERVER_KEYS, warnings);

  const host = requireHost(source, ["server", "host"], server.host);
  const udpPort = optionalPort(
    source,
    ["server", "udp_port"],
    server.udp_port,
    DEFAULT_UDP_PORT,
  );
  const healthPort = optionalPort(
    source,
    ["server", "health_port"],
    server.health_port,
    udpPort,
  );
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
      formatAt(
        source,
        ["server", "replay_window"],
        `replay_window (${
          durationText(server.replay_window, replayWindowMs)
        }) is shorter than knock_timeout (${
          durationText(server.knock_timeout, knockTimeoutMs)
        })`,
        "keep replay_window at least as long as knock_timeout",
      ),
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
  const privateKey = requireKey(
    source,
    ["server", "private_key"],
    server.private_key,
    SERVER_KEY_BYTES,
    'the base64 X25519 private key written by "openme init"',
  );
  const publicKey = requireKey(
    source,
    ["server", "public_key"],
    server.public_key,
    SERVER_KEY_BYTES,
    'the base64 X25519 public key written by "openme init"',
  );

  const portGroups = parsePortGroups(source, root.ports);
  const clients: ServerClient[] = [];
  const skippedClients: string[] = [];
  const clientsValue = root.clients;
  if (clientsValue !== undefined && clientsValue !== null) {
    if (!isRecord(clientsValue)) {
      throw fail(
        source,
        ["clients"],
        `expected a map of client names, got ${describeValue(clientsValue)}`,
        'e.g. clients: {} and then "openme add NAME"',
      );
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
            formatAt(
              source,
              ["clients", name, "ed25519_pubkey"],
              `client ${JSON.stringify(name)} has the same key as client ${
                JSON.stringify(owner)
              }; its knocks are attributed to ${JSON.stringify(owner)}`,
              "give each client its own key",
            ),
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
            JSON.stringify(name)
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
    throw fail(
      source,
      ["ports"],
      `expected a map of port groups, got ${describeValue(value)}`,
      "e.g. ports: {default: [22/tcp], devops: [22/tcp, 8080-8090/tcp]}",
    );
  }
  for (const [name, list] of Object.entries(value)) {
    if (!isGroupName(name)) {
      throw fail(
        source,
        ["ports", name],
        `group name ${JSON.stringify(name)} looks like a port spec`,
        "group names contain no / or - and are not all digits, e.g. devops",
      );
    }
    if (list === null || list === undefined) {
      groups.set(name, []);
      continue;
    }
    if (!Array.isArray(list)) {
      throw fail(
        source,
        ["ports", name],
        `expected a list of port specs, got ${describeValue(list)}`,
        "e.g. [22/tcp, 8080-8090/tcp]",
      );
    }
    const ranges: PortRange[] = [];
    for (let index = 0; index < list.length; index++) {
      const keyPath = ["ports", name, index];
      const spec = portEntryText(list[index]);
      if (spec === null) {
        throw fail(
          source,
          keyPath,
          `expected a port spec, got ${describeValue(list[index])}`,
          "e.g. 22/tcp or 8080-8090/tcp",
        );
      }
      if (isGroupName(spec)) {
        throw fail(
          source,
          keyPath,
          `${
            JSON.stringify(spec)
          } is not a port spec (groups cannot contain groups)`,
          "list port specs such as 22/tcp or 8080-8090/tcp",
        );
      }
      const parsed = parsePortSpec(spec);
      if (typeof parsed === "string") throw fail(source, keyPath, parsed);
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
    throw fail(
      source,
      ["clients", name],
      nameProblem,
      "letters, digits, '.', '_', '-' or '@', starting with a letter or digit",
    );
  }
  if (!isRecord(entry)) {
    throw fail(
      source,
      ["clients", name],
      `expected a map, got ${describeValue(entry)}`,
      "a map with ed25519_pubkey and allowed_ports",
    );
  }
  warnUnknownKeys(source, ["clients", name], entry, CLIENT_KEYS, warnings);

  const ed25519PublicKey = requireKey(
    source,
    ["clients", name, "ed25519_pubkey"],
    entry.ed25519_pubkey,
    CLIENT_PUBLIC_KEY_BYTES,
    "the client's base64 Ed25519 public key",
  );

  const allowedPorts: string[] = [];
  const rawPorts = entry.allowed_ports;
  if (rawPorts !== undefined && rawPorts !== null) {
    if (!Array.isArray(rawPorts)) {
      throw fail(
        source,
        ["clients", name, "allowed_ports"],
        `expected a list, got ${describeValue(rawPorts)}`,
        "e.g. [default, 2222/tcp]",
      );
    }
    for (let index = 0; index < rawPorts.length; index++) {
      const text = portEntryText(rawPorts[index]);
      if (text === null) {
        throw fail(
          source,
          ["clients", name, "allowed_ports", index],
          `expected a port group name or port spec, got ${
            describeValue(rawPorts[index])
          }`,
          "e.g. default or 2222/tcp",
        );
      }
      allowedPorts.push(text);
    }
  }
  const resolved = resolveAllowedPorts(allowedPorts, portGroups);
  if (!resolved.ok) {
    throw fail(
      source,
      ["clients", name, "allowed_ports", resolved.index],
      resolved.problem,
      resolved.expected,
    );
  }

  let expires: Date | null = null;
  const rawExpires = entry.expires;
  if (rawExpires !== undefined && rawExpires !== null) {
    if (typeof rawExpires !== "string") {
      throw fail(
        source,
        ["clients", name, "expires"],
        `expected a timestamp, got ${describeValue(rawExpires)}`,
        EXPIRES_HINT,
      );
    }
    expires = parseRfc3339Timestamp(rawExpires);
    if (expires === null) {
      throw fail(
        source,
        ["clients", name, "expires"],
        `invalid timestamp ${describeValue(rawExpires)}`,
        EXPIRES_HINT,
      );
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
          problem: `unknown port group ${JSON.stringify(entry)}`,
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
  if (!CLIENT_NAME_PATTERN.test(name)) {
    return `invalid client name ${JSON.stringify(name)}`;
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
    throw fail(source, keyPath, "missing server host", hint);
  }
  if (typeof value !== "string") {
    throw fail(
      source,
      keyPath,
      `expected a host name, got ${describeValue(value)}`,
      hint,
    );
  }
  const host = value.trim();
  if (!HOST_PATTERN.test(host)) {
    throw fail(
      source,
      keyPath,
      `invalid host ${describeValue(value)}`,
      hint,
    );
  }
  return host;
}

function optionalPort(
  source: YamlSource,
  keyPath: KeyPathSegment[],
  value: unknown,
  fallback: number,
): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw fail(
      source,
      keyPath,
      `expected a port number, got ${describeValue(value)}`,
      PORT_HINT,
    );
  }
  if (value < 1 || value > 65535) {
    throw fail(
      source,
      keyPath,
      `port ${describeValue(value)} out of range 1-65535`,
      PORT_HINT,
    );
  }
  return value;
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
  throw fail(
    source,
    keyPath,
    `unknown firewall ${describeValue(value)}`,
    "expected nft or iptables",
  );
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
    throw fail(
      source,
      keyPath,
      `duration ${describeValue(value)} has no unit`,
      DURATION_HINT,
    );
  } else {
    throw fail(
      source,
      keyPath,
      `expected a duration, got ${describeValue(value)}`,
      DURATION_HINT,
    );
  }
  const ms = parseDuration(text);
  if (ms === null) {
    throw fail(
      source,
      keyPath,
      `invalid duration ${describeValue(value)}`,
      DURATION_HINT,
    );
  }
  if (ms <= 0) {
    throw fail(
      source,
      keyPath,
      `duration ${describeValue(value)} must be longer than zero`,
      DURATION_HINT,
    );
  }
  if (ms > MAX_CONFIG_DURATION_MS) {
    throw fail(
      source,
      keyPath,
      `duration ${describeValue(value)} is longer than the 24h maximum`,
      DURATION_HINT,
    );
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
    throw fail(
      source,
      keyPath,
      `expected true or false, got ${describeValue(value)}`,
      BOOL_HINT,
    );
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
    !PROFILE_NAME_PATTERN.test(value)
  ) {
    throw fail(
      source,
      keyPath,
      `invalid profile name ${describeValue(value)}`,
      "a profile name such as default (letters, digits, '.', '_', '-', '@')",
    );
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
    throw fail(
      source,
      keyPath,
      `invalid interface name ${describeValue(value)}`,
      'an interface name such as eth0 (at most 15 characters), or "" for all interfaces',
    );
  }
  return value.trim();
}

function requireKey(
  source: YamlSource,
  keyPath: KeyPathSegment[],
  value: unknown,
  size: number,
  hint: string,
): Uint8Array {
  if (value !== undefined && value !== null && typeof value !== "string") {
    throw fail(
      source,
      keyPath,
      `expected base64 text, got ${describeValue(value)}`,
      hint,
    );
  }
  const decoded = decodeBase64Key(value ?? "", { sizes: [size] });
  if (!decoded.ok) throw fail(source, keyPath, decoded.reason, hint);
  return decoded.bytes;
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
      formatAt(
        source,
        [...keyPath, key],
        "unknown key, ignored",
        `known keys: ${known.join(", ")}`,
      ),
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

/** The duration as written, for messages. */
function durationText(value: unknown, ms: number): string {
  if (typeof value === "string") return value;
  return `${ms}ms`;
}

/** Builds a ConfigError at a key path, with the line taken from the YAML. */
function fail(
  source: YamlSource,
  keyPath: KeyPathSegment[],
  problem: string,
  expected?: string,
): ConfigError {
  return new ConfigError({
    file: source.path,
    line: lineOfKeyPath(source, keyPath),
    keyPath: keyPath.length === 0 ? undefined : formatKeyPath(keyPath),
    problem,
    expected,
  });
}

/** Formats a warning at a key path like a ConfigError message. */
function formatAt(
  source: YamlSource,
  keyPath: KeyPathSegment[],
  problem: string,
  expected?: string,
): string {
  return fail(source, keyPath, problem, expected).message;
}

/** True for a YAML map converted to an object. */
function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null &&
    !Array.isArray(value) && !(value instanceof Uint8Array);
}

// ---------------------------------------------------------------------------
// openme init

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
    throw new ConfigError({
      file: path,
      keyPath: error.keyPath,
      problem: error.problem,
      expected: error.expected,
    });
  }
  return text;
}

/** Options for {@linkcode initServerConfig}. */
export interface InitServerConfigOptions extends InitialServerConfigOptions {
  /** Overwrite an existing file (its keys and clients are lost). */
  force?: boolean;
}

/**
 * Writes the annotated initial server config for `openme init`: creates the
 * directory (mode 0750) when missing, refuses to replace an existing file
 * unless `force`, and writes atomically with mode 0600. Returns the text
 * written. Throws ConfigError.
 */
export async function initServerConfig(
  path: string,
  options: InitServerConfigOptions,
): Promise<string> {
  const text = renderInitialServerConfig({ ...options, path });
  try {
    await ensureDir(dirname(path), { mode: SERVER_CONFIG_DIR_MODE });
  } catch (error) {
    throw new ConfigError({
      file: path,
      problem: `cannot create directory ${dirname(path)}: ${errorText(error)}`,
      expected: "run as root, or pass --config PATH in a writable directory",
      cause: error,
    });
  }
  await withFileLock(path, async () => {
    if (options.force !== true && await fileExists(path)) {
      throw new ConfigError({
        file: path,
        problem: "a config file already exists",
        expected:
          "pass --force to replace it (new server keys: every client must be added again), or pass --config PATH",
      });
    }
    await writeConfigFile(path, text, { mode: SERVER_CONFIG_FILE_MODE });
  });
  return text;
}

/** Renders a string as a YAML scalar, quoted only when YAML needs it. */
function yamlScalar(value: string): string {
  const doc = new Document(value);
  return doc.toString({ lineWidth: 0 }).trimEnd();
}

// ---------------------------------------------------------------------------
// openme add / revoke

/** A client to register with {@linkcode addServerClient}. */
export interface NewServerClient {
  /** Client name (key under `clients:`). */
  name: string;
  /** Base64 Ed25519 public key (32 bytes). */
  ed25519PublicKeyB64: string;
  /** Groups and/or port specs; empty = the default group. */
  allowedPorts: string[];
  /** RFC 3339 expiry, or null for none. */
  expires: string | null;
  /** Write `disable_health_port: true`. */
  disableHealthPort?: boolean;
}

/** Options for {@linkcode addServerClient} and {@linkcode removeServerClient}. */
export interface EditServerConfigOptions extends FileLockOptions {
  /** Current time for the expiry check; default Date.now(). */
  nowMs?: number;
}

/**
 * Registers a client in the server config: under an exclusive lock it
 * re-reads the file, refuses an existing name or unknown port group, inserts
 * the entry keeping every comment, key order and unknown key, checks the
 * result and writes it atomically with mode 0600. Throws ConfigError.
 */
export async function addServerClient(
  path: string,
  client: NewServerClient,
  options: EditServerConfigOptions = {},
): Promise<void> {
  const name = client.name;
  const baseKeyPath: KeyPathSegment[] = ["clients", name];
  const nameProblem = validateClientName(name);
  if (nameProblem !== null) {
    throw new ConfigError({
      file: path,
      keyPath: formatKeyPath(baseKeyPath),
      problem: nameProblem,
      expected:
        "letters, digits, '.', '_', '-' or '@', starting with a letter or digit, at most 64",
    });
  }
  const key = decodeBase64Key(client.ed25519PublicKeyB64, {
    sizes: [CLIENT_PUBLIC_KEY_BYTES],
  });
  if (!key.ok) {
    throw new ConfigError({
      file: path,
      keyPath: formatKeyPath([...baseKeyPath, "ed25519_pubkey"]),
      problem: key.reason,
      expected: "the client's base64 Ed25519 public key",
    });
  }
  if (client.expires !== null) {
    const expires = parseRfc3339Timestamp(client.expires);
    if (expires === null) {
      throw new ConfigError({
        file: path,
        keyPath: formatKeyPath([...baseKeyPath, "expires"]),
        problem: `invalid timestamp ${describeValue(client.expires)}`,
        expected: EXPIRES_HINT,
      });
    }
    if (expires.getTime() <= (options.nowMs ?? Date.now())) {
      throw new ConfigError({
        file: path,
        keyPath: formatKeyPath([...baseKeyPath, "expires"]),
        problem: `expiry ${client.expires} is in the past`,
        expected: "a future RFC 3339 timestamp, or no expiry",
      });
    }
  }
  const allowedPorts = client.allowedPorts.map((entry) => entry.trim());

  await withFileLock(path, async () => {
    const source = await readYamlDocument(path, {
      missingHint: 'create it with "openme init --server HOST" first',
    });
    const config = buildServerConfig(source);
    const before = yamlToValue(source) as Record<string, unknown>;
    const existing = isRecord(before.clients) ? before.clients : {};
    if (Object.hasOwn(existing, name)) {
      throw new ConfigError({
        file: path,
        line: lineOfKeyPath(source, baseKeyPath),
        keyPath: formatKeyPath(baseKeyPath),
        problem: `client ${JSON.stringify(name)} already exists`,
        expected:
          `revoke it first with "openme revoke ${name}", or pick another name`,
      });
    }
    const resolved = resolveAllowedPorts(allowedPorts, config.portGroups);
    if (!resolved.ok) {
      throw new ConfigError({
        file: path,
        keyPath: formatKeyPath([
          ...baseKeyPath,
          "allowed_ports",
          resolved.index,
        ]),
        problem: resolved.problem,
        expected: resolved.expected,
      });
    }

    const entryValue: Record<string, unknown> = {
      ed25519_pubkey: client.ed25519PublicKeyB64.trim(),
      allowed_ports: allowedPorts.map(portEntryValue),
    };
    if (client.expires !== null) entryValue.expires = client.expires.trim();
    if (client.disableHealthPort === true) {
      entryValue.disable_health_port = true;
    }
    const expected: Record<string, unknown> = {
      ...before,
      clients: { ...existing, [name]: entryValue },
    };

    const check = (text: string): boolean => {
      const after = parseYamlSource(text, { path });
      if (!isDeepStrictEqual(yamlToValue(after), expected)) return false;
      const parsed = buildServerConfig(after);
      return parsed.clients.some((c) => c.name === name);
    };

    const spliced = spliceInsertMapEntry(source, {
      section: "clients",
      text: renderClientEntry(name, entryValue),
    });
    let text: string | null = null;
    if (spliced !== null && safeCheck(check, spliced)) {
      text = spliced;
    } else {
      const fallback = addWithDocumentApi(source, name, entryValue);
      if (safeCheck(check, fallback)) text = fallback;
    }
    if (text === null) {
      throw new ConfigError({
        file: path,
        keyPath: formatKeyPath(baseKeyPath),
        problem:
          "could not add the client without changing other parts of the file",
        expected: "add the entry by hand, or simplify the clients: section",
      });
    }
    await writeConfigFile(path, text, { mode: SERVER_CONFIG_FILE_MODE });
  }, options);
}

/**
 * Removes a client from the server config under the lock, keeping everything
 * else byte for byte where possible; returns false when there is no such
 * client. Throws ConfigError.
 */
export async function removeServerClient(
  path: string,
  name: string,
  options: EditServerConfigOptions = {},
): Promise<boolean> {
  return await withFileLock(path, async () => {
    const source = await readYamlDocument(path, {
      missingHint: "check the path or pass --config PATH",
    });
    const before = yamlToValue(source);
    if (!isRecord(before) || !isRecord(before.clients)) return false;
    if (!Object.hasOwn(before.clients, name)) return false;
    const remaining: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(before.clients)) {
      if (key !== name) remaining[key] = value;
    }
    const expected: Record<string, unknown> = {
      ...before,
      clients: remaining,
    };
    const check = (text: string): boolean => {
      const after = parseYamlSource(text, { path });
      return isDeepStrictEqual(yamlToValue(after), expected);
    };

    const spliced = spliceRemoveMapEntry(source, {
      section: "clients",
      key: name,
    });
    let text: string | null = null;
    if (spliced !== null && safeCheck(check, spliced)) {
      text = spliced;
    } else {
      const doc = source.doc.clone();
      doc.deleteIn(["clients", name]);
      const fallback = doc.toString({ flowCollectionPadding: false });
      if (safeCheck(check, fallback)) text = fallback;
    }
    if (text === null) {
      throw new ConfigError({
        file: path,
        line: lineOfKeyPath(source, ["clients", name]),
        keyPath: formatKeyPath(["clients", name]),
        problem:
          "could not remove the client without changing other parts of the file (is it referenced by a YAML alias?)",
        expected: "remove the entry by hand",
      });
    }
    await writeConfigFile(path, text, { mode: SERVER_CONFIG_FILE_MODE });
    return true;
  }, options);
}

/** Runs a result check, treating a thrown error as a failed check. */
function safeCheck(check: (text: string) => boolean, text: string): boolean {
  try {
    return check(text);
  } catch {
    return false;
  }
}

/** Writes an all-digits port spec as a YAML integer (`22`), anything else as text. */
function portEntryValue(entry: string): string | number {
  return /^[0-9]{1,5}$/.test(entry) ? Number(entry) : entry;
}

/** Renders `name:` and the entry's keys as YAML at indent 0, ports as a flow list, expiry quoted. */
function renderClientEntry(
  name: string,
  entryValue: Record<string, unknown>,
): string {
  const doc = new Document();
  const root = new YAMLMap();
  root.set(name, buildEntryNode(doc, entryValue));
  doc.contents = root;
  return doc.toString({ flowCollectionPadding: false, lineWidth: 0 });
}

/** Builds the YAML node of a client entry for a given Document. */
function buildEntryNode(
  doc: Document,
  entryValue: Record<string, unknown>,
): YAMLMap {
  const entry = new YAMLMap();
  for (const [key, value] of Object.entries(entryValue)) {
    if (key === "allowed_ports") {
      const ports = doc.createNode(value) as YAMLSeq;
      ports.flow = true;
      entry.set(key, ports);
    } else if (key === "expires") {
      const scalar = new Scalar(value);
      scalar.type = Scalar.QUOTE_DOUBLE;
      entry.set(key, scalar);
    } else {
      entry.set(key, doc.createNode(value));
    }
  }
  return entry;
}

/** Adds the entry with the Document API (comments and unknown keys kept, spacing may be normalised). */
function addWithDocumentApi(
  source: YamlSource,
  name: string,
  entryValue: Record<string, unknown>,
): string {
  const doc = source.doc.clone();
  let clients = doc.get("clients", true);
  if (!isMap(clients)) {
    const created = new YAMLMap();
    doc.set("clients", created);
    clients = created;
  }
  if (isMap(clients)) {
    if (clients.items.length === 0) clients.flow = false;
    clients.set(name, buildEntryNode(doc, entryValue));
  }
  return doc.toString({ flowCollectionPadding: false });
}
