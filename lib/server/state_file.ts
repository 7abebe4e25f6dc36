/**
 * The session state file (SPEC §7): what is open, until when, and when each
 * client was last seen, plus the server's drop counters. Written atomically
 * (temp file + rename) by the server; read by `openme sessions`.
 *
 * @module
 */

import {
  REPLAY_CACHE_NONCE_BYTES,
  type ReplayCacheEntry,
} from "./replay_cache.ts";

/** Default state file path. */
export const DEFAULT_STATE_FILE = "/run/openme/sessions.json";

/** A port in the state file (`end_port` only for ranges). */
export interface StatePort {
  /** First port. */
  port: number;
  /** `tcp` or `udp`. */
  proto: "tcp" | "udp";
  /** Last port of a range. */
  end_port?: number;
}

/** One open session in the state file. */
export interface StateSession {
  /** Client name. */
  client_name: string;
  /** Address the rules admit. */
  ip: string;
  /** Ports open for it. */
  ports: StatePort[];
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
  /**
   * Replay nonces accepted within the last 2 × replay_window, hex → accepted
   * at (ms since the epoch), so a restarted server still refuses their
   * knocks as replays (openme extension).
   */
  replay_nonces?: Record<string, number>;
}

/** Rules whose removal failed and is being retried (openme extension). */
export interface StatePendingClose {
  /** Client name. */
  client_name: string;
  /** Address the rules admit. */
  ip: string;
  /** Ports the rules open. */
  ports: StatePort[];
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

/** Writes the state file atomically: a temp file in the same directory, then rename. */
export async function writeStateFile(
  path: string,
  state: StateFile,
): Promise<void> {
  await writeStateText(path, renderStateFile(state));
}

/** Writes state file text (from {@linkcode renderStateFile}) atomically: a temp file in the same directory, then rename. */
export async function writeStateText(
  path: string,
  text: string,
): Promise<void> {
  const dir = path.includes("/")
    ? path.slice(0, path.lastIndexOf("/")) || "/"
    : ".";
  const temp = `${dir}/.${
    path.slice(path.lastIndexOf("/") + 1)
  }.${Deno.pid}.tmp`;
  try {
    await Deno.writeTextFile(temp, text, { mode: 0o644 });
    await Deno.rename(temp, path);
  } catch (err) {
    await Deno.remove(temp).catch(() => {});
    throw err;
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
  if (
    typeof data !== "object" || data === null ||
    !Array.isArray((data as StateFile).active_sessions)
  ) {
    throw new Error(`state file ${path}: missing "active_sessions" list`);
  }
  const state = data as StateFile;
  if (typeof state.last_seen !== "object" || state.last_seen === null) {
    state.last_seen = {};
  }
  return state;
}

/**
 * Reads the `replay_nonces` an earlier run wrote to the state file; [] when
 * the file does not exist. Malformed entries are skipped; throws with the
 * path when the file is not JSON.
 */
export async function readStateReplayNonces(
  path: string,
): Promise<ReplayCacheEntry[]> {
  const data = await readStateJson(path);
  const nonces = (data as StateFile | null)?.replay_nonces;
  if (typeof nonces !== "object" || nonces === null) return [];
  const entries: ReplayCacheEntry[] = [];
  for (const [hex, addedMs] of Object.entries(nonces)) {
    let nonce: Uint8Array;
    try {
      nonce = Uint8Array.fromHex(hex);
    } catch {
      continue; // not hex
    }
    if (nonce.length !== REPLAY_CACHE_NONCE_BYTES) continue;
    if (typeof addedMs !== "number" || !Number.isFinite(addedMs)) continue;
    entries.push({ nonce, addedMs });
  }
  return entries;
}
