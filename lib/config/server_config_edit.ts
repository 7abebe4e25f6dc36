/**
 * The writes of `openme init`, `openme add` and `openme revoke` to the server config, each under its lock.
 *
 * @module
 */

import { Document, isScalar, isSeq, Scalar, type YAMLMap } from "yaml";
import { ConfigError, describeValue } from "./errors.ts";
import { type FileLockOptions, withFileLock } from "./lock.ts";
import { dirname } from "node:path";
import { accountIds, processUid, SERVICE_ACCOUNT } from "./ownership.ts";
import {
  buildServerConfig,
  type InitialServerConfigOptions,
  loadServerConfig,
  readClient,
  renderInitialServerConfig,
} from "./server_config.ts";
import { isRecord } from "./validate.ts";
import {
  changedFile,
  ensureConfigDir,
  errorAt,
  fileExists,
  readYamlFile,
  writeConfigFile,
  type YamlFile,
  yamlValue,
} from "./yaml_file.ts";

/** Mode of the server config directory when openme creates it. */
const SERVER_CONFIG_DIR_MODE = 0o750;
/** Mode of the server config file (it holds the private key); 0640 when group openme, the service's, must read it. */
const SERVER_CONFIG_FILE_MODE = 0o600;

/** Options for {@linkcode initServerConfig}. */
export interface InitServerConfigOptions extends InitialServerConfigOptions {
  /** Overwrite an existing file (its keys and clients are lost). */
  force?: boolean;
  /** Group that may read the config (root:group, 0640; a new directory root:group 0750); default group openme when run as root and it exists, else none (0600). */
  readerGroup?: number | null;
}

/** Writes the annotated initial server config for `openme init` (directory 0750 when missing, file 0600 or root:openme 0640, no overwrite without `force`) and returns its text and mode. */
export async function initServerConfig(
  path: string,
  options: InitServerConfigOptions,
): Promise<{ text: string; mode: number }> {
  const text = renderInitialServerConfig({ ...options, path });
  const group = options.readerGroup !== undefined
    ? options.readerGroup
    : processUid() === 0
    ? (await accountIds(SERVICE_ACCOUNT)).gid
    : null;
  const created = await ensureConfigDir(path, {
    mode: SERVER_CONFIG_DIR_MODE,
    expected: "run as root, or pass --config PATH in a writable directory",
  });
  if (created && group !== null) await Deno.chown(dirname(path), 0, group);
  const mode = group === null ? SERVER_CONFIG_FILE_MODE : 0o640;
  await withFileLock(path, async () => {
    if (options.force !== true && await fileExists(path)) {
      throw new ConfigError({
        file: path,
        problem: "a config file already exists",
        expected:
          "pass --force to replace it (new server keys: every client must be added again), or pass --config PATH",
      });
    }
    const owner = group === null ? undefined : { uid: 0, gid: group };
    await writeConfigFile(path, text, { mode, owner });
  });
  return { text, mode };
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
}

/** Options for {@linkcode addServerClient} and {@linkcode removeServerClient}. */
export interface EditServerConfigOptions extends FileLockOptions {
  /** The group that may keep reading a 0640 config; default group openme. */
  readerGroup?: number | null;
}

/** Registers a client in the server config, refusing an existing name or an invalid entry; throws ConfigError. */
export async function addServerClient(
  path: string,
  client: NewServerClient,
  options: EditServerConfigOptions = {},
): Promise<void> {
  const name = client.name;
  await withFileLock(path, async () => {
    const file = await readYamlFile(path, {
      missingHint: 'create it with "openme init --server HOST" first',
    });
    const config = buildServerConfig(file);
    const before = yamlValue(file) as Record<string, unknown>;
    const clients = isRecord(before.clients) ? before.clients : {};
    if (Object.hasOwn(clients, name)) {
      throw errorAt(file, {
        keyPath: ["clients", name],
        problem: `client ${describeValue(name)} already exists`,
        expected:
          `revoke it first with "openme revoke ${name}", or pick another name`,
      });
    }
    const entry: Record<string, unknown> = {
      ed25519_pubkey: client.ed25519PublicKeyB64.trim(),
      // An all-digits port spec as a YAML integer (22), anything else as text.
      allowed_ports: client.allowedPorts.map((text) =>
        /^[0-9]{1,5}$/.test(text.trim()) ? Number(text) : text.trim()
      ),
    };
    if (client.expires !== null) entry.expires = client.expires.trim();
    const edited = changedFile(file, {
      edits: [{ keyPath: ["clients", name], value: entryNode(entry) }],
      expected: { ...before, clients: { ...clients, [name]: entry } },
      failure: {
        keyPath: ["clients", name],
        problem:
          "could not add the client without changing other parts of the file",
        expected: "add the entry by hand, or simplify the clients: section",
      },
    });
    const portGroups = config.portGroups;
    readClient(edited, { name, entry, portGroups, warnings: [] });
    const mode = await keptMode(file, options.readerGroup);
    await writeConfigFile(path, edited.text, { mode });
  }, options);
}

/** Removes a client from the server config and every `clients_dir` file that defines it, keeping everything else; returns the files it was in, each deleted when it held only that client (none: no such client). */
export async function removeServerClient(
  path: string,
  name: string,
  options: EditServerConfigOptions = {},
): Promise<{ file: string; deleted: boolean }[]> {
  return await withFileLock(path, async () => {
    const removed = [];
    if (await removeClientFrom(path, name, options)) {
      removed.push({ file: path, deleted: false });
    }
    // Each round removes one definition: a file refused as a duplicate loads once the other is gone.
    for (;;) {
      const client = (await loadServerConfig(path)).clients.find((c) =>
        c.name === name && c.file !== path
      );
      if (client === undefined) return removed;
      const result = await removeClientFrom(client.file, name, null);
      if (result === false) return removed; // changed meanwhile
      removed.push({ file: client.file, deleted: result === "deleted" });
    }
  }, options);
}

/** Removes a client's entry from the server config, or with `config` null from a `clients_dir` file (deleted when it held only that client); returns false when the file has no such client. */
async function removeClientFrom(
  path: string,
  name: string,
  config: EditServerConfigOptions | null,
): Promise<false | "edited" | "deleted"> {
  const file = await readYamlFile(path, {
    missingHint: "check the path or pass --config PATH",
  });
  const before = yamlValue(file);
  if (!isRecord(before) || !isRecord(before.clients)) return false;
  if (!Object.hasOwn(before.clients, name)) return false;
  const { [name]: _removed, ...remaining } = before.clients;
  const onlyClient = Object.keys(remaining).length === 0 &&
    Object.keys(before).length === 1;
  if (config === null && onlyClient) {
    await Deno.remove(path);
    return "deleted";
  }
  const edited = changedFile(file, {
    edits: [{ keyPath: ["clients", name] }],
    expected: { ...before, clients: remaining },
    failure: {
      keyPath: ["clients", name],
      problem:
        "could not remove the client without changing other parts of the file (is it referenced by a YAML alias?)",
      expected: "remove the entry by hand",
    },
  });
  // A clients_dir file holds no secret: it keeps its mode.
  const mode = config === null
    ? file.mode ?? 0o644
    : await keptMode(file, config.readerGroup);
  await writeConfigFile(path, edited.text, { mode });
  return "edited";
}

/** The mode a rewritten server config gets: 0600, or 0640 when `readerGroup` (default openme) may read it now. */
async function keptMode(
  file: YamlFile,
  readerGroup: number | null | undefined,
): Promise<number> {
  const group = readerGroup !== undefined
    ? readerGroup
    : (await accountIds(SERVICE_ACCOUNT)).gid;
  const readable = file.gid === group && ((file.mode ?? 0) & 0o040) !== 0;
  return readable ? 0o640 : SERVER_CONFIG_FILE_MODE;
}

/** The YAML node of a client entry: ports as a flow list, expiry quoted. */
function entryNode(entry: Record<string, unknown>): YAMLMap {
  const node = new Document(entry).contents as YAMLMap;
  const ports = node.get("allowed_ports");
  if (isSeq(ports)) ports.flow = true;
  const expires = node.get("expires", true);
  if (isScalar(expires)) expires.type = Scalar.QUOTE_DOUBLE;
  return node;
}
