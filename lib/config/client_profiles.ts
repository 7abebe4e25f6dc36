/**
 * Client config values (SPEC §5) without any YAML: the validated profile
 * type, its sizes and defaults, the default path per platform, and the
 * checks that turn plain values into profiles. Both the full loader
 * (lib/config/client_config.ts) and the fast one used at knock time
 * (lib/config/client_config_fast.ts) validate with these.
 *
 * @module
 */

import { defaultClientConfigPathFor, type Platform } from "../platform.ts";
import { ConfigError, describeValue, type KeyPathSegment } from "./errors.ts";
import {
  ASCII_NAME_PATTERN,
  checkKey,
  checkOptionalPort,
  HOST_PATTERN,
  isRecord,
  NAME_HINT,
  NAME_PATTERN,
  type ReportProblem,
} from "./value_checks.ts";

/** Default `server_udp_port` of a profile. */
export const CLIENT_DEFAULT_SERVER_UDP_PORT = 54154;
/** Mode of the client config directory (`~/.openme`) when openme creates it. */
export const CLIENT_CONFIG_DIR_MODE = 0o700;
/** Mode of the client config file (it holds the private key). */
export const CLIENT_CONFIG_FILE_MODE = 0o600;
/** Server X25519 public key size. */
export const SERVER_PUBLIC_KEY_BYTES = 32;
/** Accepted client private key sizes: 64-byte Ed25519 key (seed || public) or a bare 32-byte seed. */
export const CLIENT_PRIVATE_KEY_SIZES: readonly number[] = [64, 32];
/** Client Ed25519 public key size. */
export const CLIENT_PUBLIC_KEY_BYTES = 32;
/** Longest profile name. */
export const MAX_PROFILE_NAME_LENGTH = 64;

/** One validated profile. */
export interface ClientProfile {
  /** Key under `profiles:`. */
  name: string;
  /** `server_host`: name or IP address knocks are sent to. */
  serverHost: string;
  /** `server_udp_port`: the server's knock port. */
  serverUdpPort: number;
  /** Decoded `server_pubkey` (32-byte X25519 public key). */
  serverPublicKey: Uint8Array;
  /** Decoded `private_key`: 64 bytes (seed || public key) or a 32-byte seed. */
  privateKey: Uint8Array;
  /** Decoded `public_key`; taken from a 64-byte private key when absent; null if unknown (bare seed, no public_key). */
  publicKey: Uint8Array | null;
  /** `post_knock` command, or null. */
  postKnock: string | null;
}

/** A validated client config. */
export interface ClientConfig {
  /** File the config was read from. */
  path: string;
  /** Profiles by name, in file order. */
  profiles: Map<string, ClientProfile>;
  /** Non-fatal YAML warnings and loose file mode. */
  warnings: string[];
}

/** Options for {@linkcode defaultClientConfigPath}. */
export interface ClientConfigPathOptions {
  /** Operating system as `Deno.build.os` names it; default the current one. */
  platform?: string;
  /** Environment lookup; default `Deno.env.get`. */
  env?: (name: string) => string | undefined;
}

/**
 * The default client config path: `$HOME/.openme/config.yaml`, or
 * `%USERPROFILE%\.openme\config.yaml` on Windows (the per-platform rule
 * lives in lib/platform.ts). Throws ConfigError when the home directory is
 * unknown.
 */
export function defaultClientConfigPath(
  options: ClientConfigPathOptions = {},
): string {
  const result = defaultClientConfigPathFor({
    platform: options.platform as Platform | undefined,
    env: options.env,
  });
  if (result.ok) return result.path;
  throw new ConfigError({
    file: result.display,
    problem: `${result.variable} is not set, so the default path is unknown`,
    expected: `set ${result.variable} or pass --client-config PATH`,
  });
}

/**
 * Validates a client config given as plain values (YAML maps as objects) and
 * returns its profiles in file order; reports the first problem found.
 */
export function checkClientProfiles(
  root: unknown,
  report: ReportProblem,
): Map<string, ClientProfile> {
  const profiles = new Map<string, ClientProfile>();
  if (root === null || root === undefined) return profiles;
  if (!isRecord(root)) {
    report({
      keyPath: [],
      problem: `the top level is ${describeValue(root)}`,
      expected: 'a map with a profiles: section, as printed by "openme add"',
    });
  }
  const section = root.profiles;
  if (section === undefined || section === null) return profiles;
  if (!isRecord(section)) {
    report({
      keyPath: ["profiles"],
      problem: `expected a map of profile names, got ${describeValue(section)}`,
      expected:
        'e.g. profiles: {default: {server_host: ...}}, as printed by "openme add"',
    });
  }
  for (const [name, entry] of Object.entries(section)) {
    profiles.set(name, checkProfile(name, entry, report));
  }
  return profiles;
}

/** Validates one profile; reports the first problem found. */
function checkProfile(
  name: string,
  entry: unknown,
  report: ReportProblem,
): ClientProfile {
  const base: KeyPathSegment[] = ["profiles", name];
  const nameProblem = validateProfileName(name);
  if (nameProblem !== null) {
    report({
      keyPath: base,
      problem: nameProblem,
      expected: NAME_HINT,
    });
  }
  if (!isRecord(entry)) {
    report({
      keyPath: base,
      problem: `expected a map, got ${describeValue(entry)}`,
      expected: "a map with server_host, server_pubkey and private_key",
    });
  }

  const hostValue = entry.server_host;
  const hostHint = "the server's name or IP address, e.g. myserver.example.com";
  if (hostValue === undefined || hostValue === null || hostValue === "") {
    report({
      keyPath: [...base, "server_host"],
      problem: "missing server_host",
      expected: hostHint,
    });
  }
  if (typeof hostValue !== "string" || !HOST_PATTERN.test(hostValue.trim())) {
    report({
      keyPath: [...base, "server_host"],
      problem: `invalid host ${describeValue(hostValue)}`,
      expected: hostHint,
    });
  }

  const serverUdpPort = checkOptionalPort({
    keyPath: [...base, "server_udp_port"],
    value: entry.server_udp_port,
    fallback: CLIENT_DEFAULT_SERVER_UDP_PORT,
  }, report);

  const serverPublicKey = checkKey({
    keyPath: [...base, "server_pubkey"],
    value: entry.server_pubkey,
    sizes: [SERVER_PUBLIC_KEY_BYTES],
    hint:
      "the server's base64 X25519 public key (server.public_key on the server)",
  }, report);
  const privateKey = checkKey({
    keyPath: [...base, "private_key"],
    value: entry.private_key,
    sizes: CLIENT_PRIVATE_KEY_SIZES,
    hint: "your base64 Ed25519 private key (64 bytes, or a 32-byte seed)",
  }, report);
  let publicKey: Uint8Array | null = null;
  if (entry.public_key !== undefined && entry.public_key !== null) {
    publicKey = checkKey({
      keyPath: [...base, "public_key"],
      value: entry.public_key,
      sizes: [CLIENT_PUBLIC_KEY_BYTES],
      hint: "your base64 Ed25519 public key (32 bytes)",
    }, report);
    if (
      privateKey.length === 64 &&
      privateKey.subarray(32).toHex() !== publicKey.toHex()
    ) {
      report({
        keyPath: [...base, "public_key"],
        problem: "public_key does not match the public half of private_key",
        expected: "copy both keys from the same openme add output",
      });
    }
  } else if (privateKey.length === 64) {
    publicKey = privateKey.slice(32);
  }

  let postKnock: string | null = null;
  const postValue = entry.post_knock;
  if (postValue !== undefined && postValue !== null && postValue !== "") {
    if (typeof postValue !== "string") {
      report({
        keyPath: [...base, "post_knock"],
        problem: `expected a command line, got ${describeValue(postValue)}`,
        expected: 'a quoted command, e.g. "ssh me@myserver.example.com"',
      });
    }
    postKnock = postValue;
  }

  return {
    name,
    serverHost: hostValue.trim(),
    serverUdpPort,
    serverPublicKey,
    privateKey,
    publicKey,
    postKnock,
  };
}

/** Returns why a profile name is not allowed, or null when it is fine. */
export function validateProfileName(name: string): string | null {
  if (typeof name !== "string" || name === "") return "empty profile name";
  if (name.length > MAX_PROFILE_NAME_LENGTH) {
    return `profile name is ${name.length} characters, longer than ${MAX_PROFILE_NAME_LENGTH}`;
  }
  if (!ASCII_NAME_PATTERN.test(name) && !NAME_PATTERN.test(name)) {
    return `invalid profile name ${describeValue(name)}`;
  }
  return null;
}
