/**
 * The session state file (SPEC §7): what is open, until when, and when each
 * client was last seen, plus openme's counters, failed closes and replay
 * nonces. Written atomically by the server; read by `openme sessions`.
 *
 * @module
 */

import type { GateCounters } from "../firewall/backend.ts";

/** Default state file path. */
export const DEFAULT_STATE_FILE = "/var/lib/openme/sessions.json";

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
  /** Datagrams the kernel knock gate dropped, by reason, as of the latest firewall check (openme extension). */
  kernel_drops?: GateCounters;
  /** Process id of the server that wrote it (openme extension). */
  pid?: number;
  /** Rules whose removal failed and is being retried (openme extension). */
  pending_closes?: StatePendingClose[];
  /** Replay nonces accepted within 2 × replay_window, hex → ms accepted, which a restarted server still refuses (openme extension). */
  replay_nonces?: Record<string, number>;
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

/** Writes state file text atomically: a temp file in the same directory, then rename. */
export async function writeStateText(
  path: string,
  text: string,
): Promise<void> {
  const slash = path.lastIndexOf("/") + 1;
  const temp = `${path.slice(0, slash)}.${path.slice(slash)}.${Deno.pid}.tmp`;
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

/** The `replay_nonces` an earlier run wrote to the state file, unchecked; empty when there are none. */
export async function readStateNonces(
  path: string,
): Promise<Record<string, unknown>> {
  const nonces = ((await readStateJson(path)) as StateFile | null)
    ?.replay_nonces;
  return typeof nonces === "object" && nonces !== null ? nonces : {};
}
