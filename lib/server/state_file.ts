/**
 * The session state file (SPEC §7): what is open, until when, and when each
 * client was last seen, plus openme's counters and failed closes. Written
 * atomically by the server; read by `openme sessions`. Beside it, the replay
 * nonce file: the accepted nonces, appended to and now and then written anew.
 *
 * @module
 */

import { NONCE_RECORD_BYTES, type NonceSnapshot } from "./replay_cache.ts";

/** Default state file path: kept across reboots, as it lists the rules to remove after a crash and the nonces beside it. */
export const DEFAULT_STATE_FILE = "/var/lib/openme/sessions.json";
/** The first bytes of a replay nonce file; the horizon (float64, ms) follows. */
const NONCE_FILE_MAGIC = new TextEncoder().encode("openme nonces v1");
const NONCE_HEADER_BYTES = NONCE_FILE_MAGIC.length + 8;

/** A port in the state file (`end_port` only for ranges). */
export interface StatePort {
  /** First port. */
  port: number;
  /** `tcp` or `udp`. */
  proto: "tcp" | "udp";
  /** Last port of a range. */
  end_port?: number;
}

/** Rules in the state file: whose, for which address, which ports. */
export interface StateRules {
  /** Client name. */
  client_name: string;
  /** Address the rules admit. */
  ip: string;
  /** Ports the rules open. */
  ports: StatePort[];
}

/** One open session in the state file. */
export interface StateSession extends StateRules {
  /** RFC 3339 time the rules went in. */
  opened_at: string;
  /** RFC 3339 time the rules come out. */
  expires_at: string;
}

/** The whole state file. */
export interface StateFile {
  /** RFC 3339 time of this write. */
  updated_at: string;
  /** Open sessions. */
  active_sessions: StateSession[];
  /** RFC 3339 time of each client's latest accepted knock. */
  last_seen: Record<string, string>;
  /** Accepted knocks since start (openme extension). */
  accepted?: number;
  /** Dropped datagrams since start, by reason (openme extension). */
  drops?: Record<string, number>;
  /** Process id of the server that wrote it (openme extension). */
  pid?: number;
  /** Rules whose removal failed and is being retried (openme extension). */
  pending_closes?: StatePendingClose[];
}

/** Rules whose removal failed and is being retried (openme extension). */
export interface StatePendingClose extends StateRules {
  /** Why they are being removed. */
  reason: string;
  /** Failed attempts so far. */
  attempts: number;
  /** The latest failure. */
  last_error: string;
}

/** The state file's text for a state. */
export function renderStateFile(state: StateFile): string {
  return JSON.stringify(state, null, 2) + "\n";
}

/** Creates a file with a random name beside `path`, exclusively (never through a symlink or into an existing file). */
async function createBeside(
  path: string,
  mode: number,
): Promise<{ temp: string; file: Deno.FsFile }> {
  const slash = path.lastIndexOf("/") + 1;
  const random = crypto.getRandomValues(new Uint8Array(8)).toHex();
  const temp = `${path.slice(0, slash)}.${path.slice(slash)}.${random}.tmp`;
  const options = { write: true, createNew: true, mode };
  return { temp, file: await Deno.open(temp, options) };
}

/** Writes `data` to a new file beside `path`, renames it over `path` and returns it open for appending. */
async function replaceFile(
  path: string,
  data: Uint8Array,
  mode: number,
): Promise<Deno.FsFile> {
  const { temp, file } = await createBeside(path, mode);
  try {
    for (let at = 0; at < data.length;) {
      at += await file.write(data.subarray(at));
    }
    await Deno.rename(temp, path);
    return file;
  } catch (err) {
    file.close();
    await Deno.remove(temp).catch(() => {});
    throw err;
  }
}

/** Writes state file text atomically: a new file with a random name in the same directory, then rename. */
export async function writeStateText(
  path: string,
  text: string,
): Promise<void> {
  const data = new TextEncoder().encode(text);
  (await replaceFile(path, data, 0o644)).close();
}

/** The replay nonce file beside a state file: `sessions.json` -> `sessions.nonces`. */
export function nonceFilePath(stateFile: string): string {
  return stateFile.replace(/(\.json)?$/, ".nonces");
}

/** What an earlier run left in the nonce file (a record cut short by a crash is left out); nothing when there is no file. */
export async function readNonceFile(path: string): Promise<NonceSnapshot> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      return { horizonMs: -Infinity, records: new Uint8Array(0) };
    }
    throw err;
  }
  const magic = bytes.subarray(0, NONCE_FILE_MAGIC.length);
  if (
    bytes.length < NONCE_HEADER_BYTES ||
    magic.toHex() !== NONCE_FILE_MAGIC.toHex()
  ) {
    throw new Error(
      `replay nonce file ${path}: not written by openme serve (it starts with "${NONCE_FILE_MAGIC}"); move it away`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  const records = bytes.subarray(NONCE_HEADER_BYTES);
  const whole = records.length - records.length % NONCE_RECORD_BYTES;
  return {
    horizonMs: view.getFloat64(NONCE_FILE_MAGIC.length),
    records: records.subarray(0, whole),
  };
}

/** The replay nonce file of a running server: written anew from a snapshot, then appended to through the file it created (never opened again by path). */
export class NonceFile {
  /** Where the file is. */
  readonly path: string;
  #file: Deno.FsFile | null = null;
  /** Bytes appended since the file was last written anew. */
  appendedBytes = 0;

  /** A nonce file at `path`, not written yet. */
  constructor(path: string) {
    this.path = path;
  }

  /** Whether the file was written anew and appending to it has not failed since. */
  get open(): boolean {
    return this.#file !== null;
  }

  /** Replaces the file with the snapshot's horizon and records. */
  async rewrite(snapshot: NonceSnapshot): Promise<void> {
    this.close();
    const data = new Uint8Array(NONCE_HEADER_BYTES + snapshot.records.length);
    data.set(NONCE_FILE_MAGIC);
    new DataView(data.buffer).setFloat64(
      NONCE_FILE_MAGIC.length,
      snapshot.horizonMs,
    );
    data.set(snapshot.records, NONCE_HEADER_BYTES);
    this.#file = await replaceFile(this.path, data, 0o600);
    this.appendedBytes = 0;
  }

  /** Appends records; after a failure the file is closed and needs a {@linkcode rewrite}. */
  async append(records: Uint8Array): Promise<void> {
    try {
      for (let at = 0; at < records.length;) {
        at += await this.#file!.write(records.subarray(at));
      }
      this.appendedBytes += records.length;
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /** Closes the file. */
  close(): void {
    this.#file?.close();
    this.#file = null;
  }
}

/** The state file's parsed JSON, or undefined when the file does not exist; throws with the path when it is not JSON. */
async function readStateJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(
      `state file ${path}: not valid JSON: ${(err as Error).message}`,
    );
  }
}

/** Reads and checks the state file; throws with the path and what is wrong. */
export async function readStateFile(path: string): Promise<StateFile> {
  const data = await readStateJson(path);
  if (data === undefined) {
    throw new Error(
      `state file ${path} does not exist: is \`openme serve\` running? (use --state-file to read another)`,
    );
  }
  const state = data as StateFile;
  if (
    typeof data !== "object" || data === null ||
    !Array.isArray(state.active_sessions)
  ) {
    throw new Error(`state file ${path}: missing "active_sessions" list`);
  }
  if (typeof state.last_seen !== "object" || state.last_seen === null) {
    state.last_seen = {};
  }
  return state;
}
