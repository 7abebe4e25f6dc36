/**
 * The client config file (SPEC §5): profiles with the server's address and
 * key and the client's Ed25519 key pair. Parsing, the default path per
 * platform, rendering for `openme add`, and a locked, comment-preserving
 * profile upsert.
 *
 * @module
 */

import { isDeepStrictEqual } from "node:util";
import { Document, YAMLMap } from "yaml";
import {
  checkClientProfiles,
  CLIENT_CONFIG_DIR_MODE,
  CLIENT_CONFIG_FILE_MODE,
  type ClientConfig,
  validateProfileName,
} from "./client_profiles.ts";
import { ConfigError, describeValue, formatKeyPath } from "./errors.ts";
import {
  ensureConfigDir,
  fileExists,
  type FileLockOptions,
  lineOfKeyPath,
  parseYamlSource,
  readYamlDocument,
  setSectionEntry,
  spliceInsertMapEntry,
  withFileLock,
  writeConfigFile,
  type YamlSource,
  yamlToValue,
} from "./file_io.ts";
import {
  isRecord,
  looseModeWarning,
  NAME_HINT,
  passesCheck,
  reportAt,
  withoutGeneratedLine,
} from "./validate.ts";

export {
  CLIENT_CONFIG_DIR_MODE,
  CLIENT_CONFIG_FILE_MODE,
  CLIENT_DEFAULT_SERVER_UDP_PORT,
  CLIENT_PRIVATE_KEY_SIZES,
  CLIENT_PUBLIC_KEY_BYTES,
  type ClientConfig,
  type ClientConfigPathOptions,
  type ClientProfile,
  defaultClientConfigPath,
  MAX_PROFILE_NAME_LENGTH,
  SERVER_PUBLIC_KEY_BYTES,
  validateProfileName,
} from "./client_profiles.ts";

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

/** Validates a parsed client config; throws ConfigError at the line of the first problem. */
function buildClientConfig(source: YamlSource): ClientConfig {
  return {
    path: source.path,
    profiles: checkClientProfiles(yamlToValue(source), reportAt(source)),
    warnings: [...source.warnings],
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
  for (const profile of profiles) {
    checkNewProfile("(new client config)", profile);
  }
  return profilesText(profiles);
}

/** Renders profiles as a client config without checking them. */
function profilesText(profiles: readonly NewClientProfile[]): string {
  const doc = new Document();
  const root = new YAMLMap();
  const section = new YAMLMap();
  for (const profile of profiles) {
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
  await ensureConfigDir(path, {
    mode: CLIENT_CONFIG_DIR_MODE,
    expected: "check the path and permissions",
  });

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
    setSectionEntry(doc, "profiles", profile.name, doc.createNode(value));
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
      expected: NAME_HINT,
    });
  }
  try {
    parseClientConfig(profilesText([profile]), { path });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // Line numbers of the generated text would point into the wrong file.
    throw withoutGeneratedLine(error, path);
  }
}
