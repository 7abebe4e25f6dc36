/**
 * The client config file (SPEC §5): profiles with the server's address and
 * key and the client's Ed25519 key pair. Parsing, the default path per
 * platform, rendering for `openme add`, and a locked, comment-preserving
 * profile upsert.
 *
 * @module
 */

import { dirname } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { Document, isMap, YAMLMap } from "yaml";
import { defaultClientConfigPathFor, type Platform } from "../platform.ts";
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
  withFileLock,
  writeConfigFile,
  type YamlSource,
  yamlToValue,
} from "./file_io.ts";
import {
  configErrorAt,
  HOST_PATTERN,
  isRecord,
  looseModeWarning,
  NAME_PATTERN,
  optionalPort,
  passesCheck,
  requireKey,
  withoutGeneratedLine,
} from "./validate.ts";
import { equalBytes } from "../encoding.ts";

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

/** Options for {@linkcode parseClientConfig}. */
export interface ParseClientConfigOptions {
  /** File name used in messages. */
  path: string;
}

/** Parses and validates client config text; throws ConfigError naming file, line and key path. */
export function parseClientConfig(
  text: string,
  options: ParseClientConfigOptions,
): ClientConfig {
  return buildClientConfig(parseYamlSource(text, { path: options.path }));
}

/** Reads, parses and validates the client config file; throws ConfigError. */
export async function loadClientConfig(path: string): Promise<ClientConfig> {
  const source = await readYamlDocument(path, {
    missingHint:
      'save the profile block printed by "openme add" there, or pass --client-config PATH',
  });
  const config = buildClientConfig(source);
  const modeWarning = looseModeWarning(source, "your private key");
  if (modeWarning !== null) config.warnings.push(modeWarning);
  return config;
}

/** Validates a parsed client config. */
function buildClientConfig(source: YamlSource): ClientConfig {
  const root = yamlToValue(source);
  const profiles = new Map<string, ClientProfile>();
  const config: ClientConfig = {
    path: source.path,
    profiles,
    warnings: [...source.warnings],
  };
  if (root === null || root === undefined) return config;
  if (!isRecord(root)) {
    throw configErrorAt(source, {
      keyPath: [],
      problem: `the top level is ${describeValue(root)}`,
      expected: 'a map with a profiles: section, as printed by "openme add"',
    });
  }
  const section = root.profiles;
  if (section === undefined || section === null) return config;
  if (!isRecord(section)) {
    throw configErrorAt(source, {
      keyPath: ["profiles"],
      problem: `expected a map of profile names, got ${describeValue(section)}`,
      expected:
        'e.g. profiles: {default: {server_host: ...}}, as printed by "openme add"',
    });
  }
  for (const [name, entry] of Object.entries(section)) {
    profiles.set(name, parseProfile(source, name, entry));
  }
  return config;
}

/** Validates one profile; throws ConfigError. */
function parseProfile(
  source: YamlSource,
  name: string,
  entry: unknown,
): ClientProfile {
  const base: KeyPathSegment[] = ["profiles", name];
  const nameProblem = validateProfileName(name);
  if (nameProblem !== null) {
    throw configErrorAt(source, {
      keyPath: base,
      problem: nameProblem,
      expected:
        "letters, digits, '.', '_', '-' or '@', starting with a letter or digit",
    });
  }
  if (!isRecord(entry)) {
    throw configErrorAt(source, {
      keyPath: base,
      problem: `expected a map, got ${describeValue(entry)}`,
      expected: "a map with server_host, server_pubkey and private_key",
    });
  }

  const hostValue = entry.server_host;
  const hostHint = "the server's name or IP address, e.g. myserver.example.com";
  if (hostValue === undefined || hostValue === null || hostValue === "") {
    throw configErrorAt(source, {
      keyPath: [...base, "server_host"],
      problem: "missing server_host",
      expected: hostHint,
    });
  }
  if (typeof hostValue !== "string" || !HOST_PATTERN.test(hostValue.trim())) {
    throw configErrorAt(source, {
      keyPath: [...base, "server_host"],
      problem: `invalid host ${describeValue(hostValue)}`,
      expected: hostHint,
    });
  }

  const serverUdpPort = optionalPort(source, {
    keyPath: [...base, "server_udp_port"],
    value: entry.server_udp_port,
    fallback: CLIENT_DEFAULT_SERVER_UDP_PORT,
  });

  const serverPublicKey = requireKey(source, {
    keyPath: [...base, "server_pubkey"],
    value: entry.server_pubkey,
    sizes: [SERVER_PUBLIC_KEY_BYTES],
    hint:
      "the server's base64 X25519 public key (server.public_key on the server)",
  });
  const privateKey = requireKey(source, {
    keyPath: [...base, "private_key"],
    value: entry.private_key,
    sizes: CLIENT_PRIVATE_KEY_SIZES,
    hint: "your base64 Ed25519 private key (64 bytes, or a 32-byte seed)",
  });
  let publicKey: Uint8Array | null = null;
  if (entry.public_key !== undefined && entry.public_key !== null) {
    publicKey = requireKey(source, {
      keyPath: [...base, "public_key"],
      value: entry.public_key,
      sizes: [CLIENT_PUBLIC_KEY_BYTES],
      hint: "your base64 Ed25519 public key (32 bytes)",
    });
    if (
      privateKey.length === 64 &&
      !equalBytes(privateKey.subarray(32), publicKey)
    ) {
      throw configErrorAt(source, {
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
      throw configErrorAt(source, {
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
  if (!NAME_PATTERN.test(name)) {
    return `invalid profile name ${describeValue(name)}`;
  }
  return null;
}

/** A profile to write with {@linkcode upsertClientProfile} or {@linkcode renderClientConfig}. */
export interface NewClientProfile {
  /** Profile name. */
  name: string;
  /** Server name or IP address. */
  serverHost: string;
  /** Server knock port. */
  serverUdpPort: number;
  /** Base64 X25519 public key of the server (32 bytes). */
  serverPubkeyB64: string;
  /** Base64 Ed25519 private key (64 bytes, or a 32-byte seed). */
  privateKeyB64: string;
  /** Base64 Ed25519 public key (32 bytes). */
  publicKeyB64: string;
  /** Command to run after a knock: a string sets it, null removes it, absent keeps what the file has. */
  postKnock?: string | null;
}

/** Options for {@linkcode upsertClientProfile}. */
export interface UpsertProfileOptions extends FileLockOptions {
  /** Replace an existing profile of the same name (its unknown keys stay). */
  force?: boolean;
}

/**
 * Renders profiles as a client config (first line `profiles:`), ready to be
 * saved as `~/.openme/config.yaml`; used by `openme add`. Throws ConfigError
 * for invalid values.
 */
export function renderClientConfig(
  profiles: readonly NewClientProfile[],
): string {
  const doc = new Document();
  const root = new YAMLMap();
  const section = new YAMLMap();
  for (const profile of profiles) {
    checkNewProfile("(new client config)", profile);
    section.set(profile.name, doc.createNode(profileValue(profile)));
  }
  root.set("profiles", section);
  doc.contents = root;
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}

/**
 * Adds or (with `force`) replaces a profile in the client config: creates the
 * directory (0700) and file (0600) when missing, and otherwise, under an
 * exclusive lock, keeps every comment and unknown key. Writes atomically.
 * Throws ConfigError, e.g. when the profile exists and `force` is not set.
 */
export async function upsertClientProfile(
  path: string,
  profile: NewClientProfile,
  options: UpsertProfileOptions = {},
): Promise<void> {
  checkNewProfile(path, profile);
  try {
    await ensureDir(dirname(path), { mode: CLIENT_CONFIG_DIR_MODE });
  } catch (error) {
    throw new ConfigError({
      file: path,
      problem: `cannot create directory ${dirname(path)}: ${errorText(error)}`,
      expected: "check the path and permissions",
      cause: error,
    });
  }

  await withFileLock(path, async () => {
    const name = profile.name;
    const value = profileValue(profile);
    if (!(await fileExists(path))) {
      await writeConfigFile(path, renderClientConfig([profile]), {
        mode: CLIENT_CONFIG_FILE_MODE,
      });
      return;
    }
    const source = await readYamlDocument(path);
    buildClientConfig(source);
    const before = yamlToValue(source);
    const rootBefore: Record<string, unknown> = isRecord(before) ? before : {};
    const profilesBefore = isRecord(rootBefore.profiles)
      ? rootBefore.profiles
      : {};
    const exists = Object.hasOwn(profilesBefore, name);
    if (exists && options.force !== true) {
      throw new ConfigError({
        file: path,
        line: lineOfKeyPath(source, ["profiles", name]),
        keyPath: formatKeyPath(["profiles", name]),
        problem: `profile ${describeValue(name)} already exists`,
        expected:
          "replace it with --force, or choose another profile name with --profile",
      });
    }

    let newProfileValue: Record<string, unknown> = value;
    if (exists) {
      const old = profilesBefore[name];
      newProfileValue = { ...(isRecord(old) ? old : {}), ...value };
      if (profile.postKnock === null) delete newProfileValue.post_knock;
    }
    const expected: Record<string, unknown> = {
      ...rootBefore,
      profiles: { ...profilesBefore, [name]: newProfileValue },
    };
    const check = (text: string): boolean => {
      const after = parseYamlSource(text, { path });
      if (!isDeepStrictEqual(yamlToValue(after), expected)) return false;
      return buildClientConfig(after).profiles.has(name);
    };

    let text: string | null = null;
    if (before === null || before === undefined) {
      text = renderClientConfig([profile]);
      if (source.text.trim() !== "") text = `${source.text.trimEnd()}\n${text}`;
    } else if (!exists) {
      const entryDoc = new Document();
      const entryRoot = new YAMLMap();
      entryRoot.set(name, entryDoc.createNode(value));
      entryDoc.contents = entryRoot;
      const spliced = spliceInsertMapEntry(source, {
        section: "profiles",
        text: entryDoc.toString({ lineWidth: 0, flowCollectionPadding: false }),
      });
      if (spliced !== null && passesCheck(check, spliced)) text = spliced;
    }
    if (text === null || !passesCheck(check, text)) {
      text = editWithDocumentApi(source, profile, exists);
      if (!passesCheck(check, text)) {
        throw new ConfigError({
          file: path,
          keyPath: formatKeyPath(["profiles", name]),
          problem:
            "could not write the profile without changing other parts of the file",
          expected: "edit the file by hand",
        });
      }
    }
    await writeConfigFile(path, text, { mode: CLIENT_CONFIG_FILE_MODE });
  }, options);
}

/** Sets the profile with the Document API: known keys replaced in place, everything else kept. */
function editWithDocumentApi(
  source: YamlSource,
  profile: NewClientProfile,
  exists: boolean,
): string {
  const doc = source.doc.clone();
  const value = profileValue(profile);
  if (!exists) {
    let section = doc.get("profiles", true);
    if (!isMap(section)) {
      const created = new YAMLMap();
      doc.set("profiles", created);
      section = created;
    }
    if (isMap(section)) {
      if (section.items.length === 0) section.flow = false;
      section.set(profile.name, doc.createNode(value));
    }
  } else {
    for (const [key, item] of Object.entries(value)) {
      doc.setIn(["profiles", profile.name, key], item);
    }
    if (profile.postKnock === null) {
      doc.deleteIn(["profiles", profile.name, "post_knock"]);
    }
  }
  return doc.toString({ flowCollectionPadding: false });
}

/** The YAML keys of a new profile (post_knock only when given as a string). */
function profileValue(profile: NewClientProfile): Record<string, unknown> {
  const value: Record<string, unknown> = {
    server_host: profile.serverHost.trim(),
    server_udp_port: profile.serverUdpPort,
    server_pubkey: profile.serverPubkeyB64.trim(),
    private_key: profile.privateKeyB64.trim(),
    public_key: profile.publicKeyB64.trim(),
  };
  if (typeof profile.postKnock === "string" && profile.postKnock !== "") {
    value.post_knock = profile.postKnock;
  }
  return value;
}

/** Validates a profile before it is written, by rendering and parsing it on its own. */
function checkNewProfile(path: string, profile: NewClientProfile): void {
  const nameProblem = validateProfileName(profile.name);
  if (nameProblem !== null) {
    throw new ConfigError({
      file: path,
      keyPath: formatKeyPath(["profiles", profile.name]),
      problem: nameProblem,
      expected:
        "letters, digits, '.', '_', '-' or '@', starting with a letter or digit",
    });
  }
  const doc = new Document();
  const root = new YAMLMap();
  const section = new YAMLMap();
  section.set(profile.name, doc.createNode(profileValue(profile)));
  root.set("profiles", section);
  doc.contents = root;
  try {
    parseClientConfig(doc.toString({ lineWidth: 0 }), { path });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // Line numbers of the generated text would point into the wrong file.
    throw withoutGeneratedLine(error, path);
  }
}
