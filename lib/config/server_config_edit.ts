/**
 * Writes to the server config file, each under the file's lock and
 * atomically with mode 0600: the annotated file `openme init` creates, and
 * the comment-preserving edits of `openme add` (a new client) and
 * `openme revoke` (a client removed). Parsing and validation live in
 * lib/config/server_config.ts.
 *
 * @module
 */

import { isDeepStrictEqual } from "node:util";
import { Document, Scalar, YAMLMap, type YAMLSeq } from "yaml";
import { decodeBase64Key } from "../encoding.ts";
import {
  ConfigError,
  describeValue,
  formatKeyPath,
  type KeyPathSegment,
} from "./errors.ts";
import {
  ensureConfigDir,
  fileExists,
  type FileLockOptions,
  lineOfKeyPath,
  parseYamlSource,
  readYamlDocument,
  setSectionEntry,
  spliceInsertMapEntry,
  spliceRemoveMapEntry,
  withFileLock,
  writeConfigFile,
  type YamlSource,
  yamlToValue,
} from "./file_io.ts";
import {
  buildServerConfig,
  CLIENT_PUBLIC_KEY_BYTES,
  EXPIRES_HINT,
  type InitialServerConfigOptions,
  MAX_CLIENT_NAME_LENGTH,
  parseRfc3339Timestamp,
  renderInitialServerConfig,
  resolveAllowedPorts,
  validateClientName,
} from "./server_config.ts";
import { isRecord, NAME_HINT, passesCheck } from "./validate.ts";

/** Mode of the server config directory when openme creates it. */
export const SERVER_CONFIG_DIR_MODE = 0o750;
/** Mode of the server config file (it holds the private key). */
export const SERVER_CONFIG_FILE_MODE = 0o600;

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
  await ensureConfigDir(path, {
    mode: SERVER_CONFIG_DIR_MODE,
    expected: "run as root, or pass --config PATH in a writable directory",
  });
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
      expected: `${NAME_HINT}, at most ${MAX_CLIENT_NAME_LENGTH}`,
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
        problem: `client ${describeValue(name)} already exists`,
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
    if (spliced !== null && passesCheck(check, spliced)) {
      text = spliced;
    } else {
      const fallback = addWithDocumentApi(source, name, entryValue);
      if (passesCheck(check, fallback)) text = fallback;
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
    if (spliced !== null && passesCheck(check, spliced)) {
      text = spliced;
    } else {
      const doc = source.doc.clone();
      doc.deleteIn(["clients", name]);
      const fallback = doc.toString({ flowCollectionPadding: false });
      if (passesCheck(check, fallback)) text = fallback;
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
  setSectionEntry(doc, "clients", name, buildEntryNode(doc, entryValue));
  return doc.toString({ flowCollectionPadding: false });
}
