/**
 * The session state file (SPEC §7): what is open, until when, and when each
 * client was last seen, plus the server's drop counters. Written atomically
 * (temp file + rename) by the server; read by `openme sessions`.
 *
 * @module
 */

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
}

/** Writes the state file atomically: a temp file in the same directory, then rename. */
export async function writeStateFile(
  path: string,
  state: StateFile,
): Promise<void> {
  const text = JSON.stringify(state, null, 2) + "\n";
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

/** Reads and checks the state file; throws with the path and what is wrong. */
export async function readStateFile(path: string): Promise<StateFile> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Error(
        `state file ${path} does not exist: is \`openme serve\` running? (use --state-file to read another)`,
      );
    }
    throw err;
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new Error(
      `state file ${path}: not valid JSON: ${(err as Error).message}`,
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
