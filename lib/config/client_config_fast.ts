/**
 * The client config read without the YAML package, for commands that only
 * read it (`knock`, `status`, `profiles`): a file in the plain shape that
 * `openme add` and `openme import` write, with a private mode and valid
 * profiles, is read here; for anything else this returns null and the
 * caller uses {@linkcode loadClientConfig} from lib/config/client_config.ts,
 * which gives the same result or the error and warnings with their lines.
 *
 * @module
 */

import { checkClientProfiles, type ClientConfig } from "./client_profiles.ts";
import { readPlainYaml } from "./plain_yaml.ts";
import {
  LOOSE_MODE_BITS,
  MAX_CONFIG_FILE_BYTES,
  type ProblemAt,
} from "./value_checks.ts";

const IS_WINDOWS = Deno.build.os === "windows";

/** Thrown by the fast path's problem report: the full loader must explain. */
class NeedsFullLoader extends Error {
  constructor(at: ProblemAt) {
    super(at.problem);
    this.name = "NeedsFullLoader";
  }
}

function needFullLoader(at: ProblemAt): never {
  throw new NeedsFullLoader(at);
}

/**
 * Reads a valid client config in the plain shape with no warning to give;
 * returns null for anything else (missing or unreadable file, other YAML,
 * a problem, a loose file mode), for the full loader to handle.
 */
export async function loadClientConfigFast(
  path: string,
): Promise<ClientConfig | null> {
  let bytes: Uint8Array;
  try {
    const info = await Deno.stat(path);
    if (!info.isFile || info.size > MAX_CONFIG_FILE_BYTES) return null;
    if (
      !IS_WINDOWS && info.mode !== null && (info.mode & LOOSE_MODE_BITS) !== 0
    ) {
      return null;
    }
    bytes = await Deno.readFile(path);
  } catch {
    return null;
  }
  if (bytes.length > MAX_CONFIG_FILE_BYTES) return null;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
  const read = readPlainYaml(text);
  if (!read.ok) return null;
  try {
    const profiles = checkClientProfiles(read.value, needFullLoader);
    return { path, profiles, warnings: [] };
  } catch (error) {
    if (error instanceof NeedsFullLoader) return null;
    throw error;
  }
}
