/**
 * The session state file (SPEC §7), written by the server and read by
 * `openme sessions`, and the replay nonce file beside it.
 *
 * @module
 */

import type { GateCounters } from "../firewall/backend.ts";
import { writeFileNoFollow } from "../config/atomic_write.ts";

/** Default state file path: kept across reboots, as it lists the rules to remove after a crash and the nonces beside it. */
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

/** Writes the state file atomically as indented JSON. */
export function writeStateFile(path: string, state: StateFile): Promise<void> {
  const text = JSON.stringify(state, null, 2) + "\n";
  return writeFileNoFollow(path, text, { force: true, mode: 0o644 });
}

/** The replay nonce file beside a state file: `sessions.json` -> `sessions.nonces`. */
export function nonceFilePath(stateFile: string): string {
  return stateFile.replace(/(\.json)?$/, ".nonces");
}

/** Writes the nonce file (a replay cache's snapshot) atomically, readable by the owner only. */
export function writeNonceFile(path: string, bytes: Uint8Array): Promise<void> {
  return writeFileNoFollow(path, bytes, { force: true });
}

/** The bytes of the state file or the nonce file, or null when it does not exist. */
export async function readStateBytes(path: string): Promise<Uint8Array | null> {
  try {
    return await Deno.readFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

/** Reads and checks the state file; throws with the path and what is wrong. */
export async function readStateFile(path: string): Promise<StateFile> {
  const bytes = await readStateBytes(path);
  if (bytes === null) {
    throw new Error(
      `state file ${path} does not exist: is \`openme serve\` running? (use --state-file to read another)`,
    );
  }
  let data: unknown;
  try {
    data = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new Error(
      `state file ${path}: not valid JSON: ${(err as Error).message}`,
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
