/**
 * The client config file (SPEC §5): profiles of a server's address and key and the client's Ed25519 key pair.
 *
 * @module
 */

import { type IpAddress, parseIp } from "../ip.ts";
import { defaultClientConfigPathFor } from "../platform.ts";
import { ConfigError, describeValue } from "./errors.ts";
import { withFileLock } from "./lock.ts";
import { processUid, unsafeOwnership } from "./ownership.ts";
import { DEFAULT_UDP_PORT } from "./server_config.ts";
import {
  type Fail,
  hostField,
  isRecord,
  keyField,
  NAME_HINT,
  nameProblem,
  portField,
  readSection,
} from "./validate.ts";
import {
  changedFile,
  ensureConfigDir,
  errorAt,
  fileExists,
  looseModeWarning,
  parseYamlFile,
  readYamlFile,
  writeConfigFile,
  type YamlChange,
  type YamlFile,
  yamlText,
  yamlValue,
} from "./yaml_file.ts";

/** Mode of the client config directory (`~/.openme`) when openme creates it. */
const CLIENT_CONFIG_DIR_MODE = 0o700;
/** Mode of the client config file (it holds the private key). */
const CLIENT_CONFIG_FILE_MODE = 0o600;

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
  /** Decoded `public_key`, else the half of a 64-byte private key; null for a bare seed without one. */
  publicKey: Uint8Array | null;
  /** `post_knock` command, or null. */
  postKnock: string | null;
  /** `target_ip`: the address knocks ask to open unless `--ip` says otherwise; null = the packet's source. */
  targetIp: IpAddress | null;
}

/** A validated client config. */
export interface ClientConfig {
  /** File the config was read from. */
  path: string;
  /** Profiles by name, in file order. */
  profiles: Map<string, ClientProfile>;
  /** Non-fatal YAML warnings and loose file mode. */
  warnings: string[];
  /** Why its `post_knock` commands must not run (other users may change the file) and what to run, or null. */
  postKnockRefusal: string | null;
}

/** The keys of one profile. */
const PROFILE_FIELDS = {
  server_host: hostField(
    "the server's name or IP address, e.g. myserver.example.com",
    "missing server_host",
  ),
  server_udp_port: portField(DEFAULT_UDP_PORT),
  server_pubkey: keyField(
    "the server's base64 X25519 public key (server.public_key on the server)",
    [32],
  ),
  private_key: keyField(
    "your base64 Ed25519 private key (64 bytes, or a 32-byte seed)",
    [64, 32],
  ),
  public_key: {
    ...keyField("your base64 Ed25519 public key (32 bytes)", [32]),
    default: null,
  },
  post_knock: {
    hint: 'a quoted command, e.g. "ssh me@myserver.example.com"',
    default: null,
    check(value: unknown, fail: Fail): string | null {
      if (value === "") return null;
      if (typeof value !== "string") {
        fail(`expected a command line, got ${describeValue(value)}`);
      }
      return value;
    },
  },
  target_ip: {
    hint: "the address to open, e.g. 198.51.100.20 or 2001:db8::20",
    default: null,
    check: checkTargetIp,
  },
};

function checkTargetIp(value: unknown, fail: Fail): IpAddress | null {
  if (value === "") return null;
  const ip = typeof value === "string" ? parseIp(value) : null;
  if (ip === null) fail(`not an IP address: ${describeValue(value)}`);
  return ip;
}

/** The default client config path, `$HOME/.openme/config.yaml` (`%USERPROFILE%\.openme\config.yaml` on Windows); throws ConfigError when the home directory is unknown. */
export function defaultClientConfigPath(): string {
  const result = defaultClientConfigPathFor();
  if (result.ok) return result.path;
  throw new ConfigError({
    file: result.display,
    problem: `${result.variable} is not set, so the default path is unknown`,
    expected: `set ${result.variable} or pass --client-config PATH`,
  });
}

/** Parses and validates client config text; throws ConfigError naming file, line and key path. */
export function parseClientConfig(
  text: string,
  options: { path: string },
): ClientConfig {
  return buildClientConfig(parseYamlFile(text, { path: options.path }));
}

/** Reads, parses and validates the client config file; throws ConfigError. */
export async function loadClientConfig(path: string): Promise<ClientConfig> {
  const file = await readYamlFile(path, {
    missingHint:
      'save the profile block printed by "openme add" there, or pass --client-config PATH',
  });
  const config = buildClientConfig(file);
  const modeWarning = looseModeWarning(file, "your private key");
  if (modeWarning !== null) config.warnings.push(modeWarning);
  const uid = processUid();
  config.postKnockRefusal = unsafeOwnership(path, {
    mode: file.mode,
    uid: uid === null ? null : file.uid,
  }, { owners: [0, uid ?? 0], fixOwner: "$(id -un)" });
  return config;
}

/** Validates a parsed client config; throws ConfigError at the first problem. */
function buildClientConfig(file: YamlFile): ClientConfig {
  const config: ClientConfig = {
    path: file.path,
    profiles: new Map(),
    warnings: [...file.warnings],
    postKnockRefusal: null,
  };
  const root = yamlValue(file);
  if (root === null || root === undefined) return config;
  if (!isRecord(root)) {
    throw errorAt(file, {
      keyPath: [],
      problem: `the top level is ${describeValue(root)}`,
      expected: 'a map with a profiles: section, as printed by "openme add"',
    });
  }
  if (root.profiles === undefined || root.profiles === null) return config;
  if (!isRecord(root.profiles)) {
    throw errorAt(file, {
      keyPath: ["profiles"],
      problem: `expected a map of profile names, got ${
        describeValue(root.profiles)
      }`,
      expected:
        'e.g. profiles: {default: {server_host: ...}}, as printed by "openme add"',
    });
  }
  for (const [name, entry] of Object.entries(root.profiles)) {
    config.profiles.set(name, readProfile(file, name, entry));
  }
  return config;
}

/** Validates one profile; throws ConfigError at the first problem. */
function readProfile(
  file: YamlFile,
  name: string,
  entry: unknown,
): ClientProfile {
  const keyPath = ["profiles", name];
  const problem = nameProblem(name, "profile");
  if (problem !== null) {
    throw errorAt(file, { keyPath, problem, expected: NAME_HINT });
  }
  if (!isRecord(entry)) {
    throw errorAt(file, {
      keyPath,
      problem: `expected a map, got ${describeValue(entry)}`,
      expected: "a map with server_host, server_pubkey and private_key",
    });
  }
  const values = readSection(file, {
    keyPath,
    map: entry,
    fields: PROFILE_FIELDS,
  });
  const privateKey = values.private_key;
  let publicKey = values.public_key;
  if (publicKey === null && privateKey.length === 64) {
    publicKey = privateKey.slice(32);
  } else if (
    publicKey !== null && privateKey.length === 64 &&
    privateKey.subarray(32).toHex() !== publicKey.toHex()
  ) {
    throw errorAt(file, {
      keyPath: [...keyPath, "public_key"],
      problem: "public_key does not match the public half of private_key",
      expected: "copy both keys from the same openme add output",
    });
  }
  return {
    name,
    serverHost: values.server_host,
    serverUdpPort: values.server_udp_port,
    serverPublicKey: values.server_pubkey,
    privateKey,
    publicKey,
    postKnock: values.post_knock,
    targetIp: values.target_ip,
  };
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

/** Renders profiles as a client config starting with `profiles:` (what `openme add` prints); throws ConfigError, naming `path`, for invalid values. */
export function renderClientConfig(
  profiles: readonly NewClientProfile[],
  options: { path?: string } = {},
): string {
  const section: Record<string, unknown> = {};
  for (const profile of profiles) section[profile.name] = profileValue(profile);
  const text = yamlText({ profiles: section });
  const path = options.path ?? "(new client config)";
  buildClientConfig(parseYamlFile(text, { path, generated: true }));
  return text;
}

/** Adds a profile to the client config (directory 0700 and file 0600 when missing), or with `force` replaces its known keys, keeping comments and unknown keys; throws ConfigError. */
export async function upsertClientProfile(
  path: string,
  profile: NewClientProfile,
  options: { force?: boolean } = {},
): Promise<void> {
  const name = profile.name;
  const value = profileValue(profile);
  // Checked on its own first, so that its problems name no line of the file.
  renderClientConfig([profile], { path });
  await ensureConfigDir(path, {
    mode: CLIENT_CONFIG_DIR_MODE,
    expected: "check the path and permissions",
  });
  await withFileLock(path, async () => {
    const file = await fileExists(path)
      ? await readYamlFile(path)
      : parseYamlFile("", { path });
    buildClientConfig(file);
    const before = yamlValue(file);
    const root = isRecord(before) ? before : {};
    const profiles = isRecord(root.profiles) ? root.profiles : {};
    const exists = Object.hasOwn(profiles, name);
    const old = exists ? profiles[name] : null;
    if (exists && options.force !== true) {
      throw errorAt(file, {
        keyPath: ["profiles", name],
        problem: `profile ${describeValue(name)} already exists`,
        expected:
          "replace it with --force, or choose another profile name with --profile",
      });
    }
    const edits: YamlChange[] = [];
    let newValue = value;
    if (isRecord(old)) {
      newValue = { ...old, ...value };
      for (const [key, item] of Object.entries(value)) {
        edits.push({ keyPath: ["profiles", name, key], value: item });
      }
      if (profile.postKnock === null) {
        delete newValue.post_knock;
        edits.push({ keyPath: ["profiles", name, "post_knock"] });
      }
    } else {
      edits.push({ keyPath: ["profiles", name], value });
    }
    const edited = changedFile(file, {
      edits,
      expected: { ...root, profiles: { ...profiles, [name]: newValue } },
      failure: {
        keyPath: ["profiles", name],
        problem:
          "could not write the profile without changing other parts of the file",
        expected: "edit the file by hand",
      },
    });
    buildClientConfig(edited);
    await writeConfigFile(path, edited.text, { mode: CLIENT_CONFIG_FILE_MODE });
  });
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
