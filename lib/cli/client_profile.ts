/**
 * Picks the client profile a command works with: the one named, else
 * `default`, else the only one; errors list the profiles that exist.
 *
 * @module
 */

import {
  type ClientProfile,
  defaultClientConfigPath,
  loadClientConfig,
} from "../config/client_config.ts";
import { CommandError } from "./errors.ts";
import type { ParsedCommand } from "./mod.ts";

/** The client config path a command uses: `--client-config` or the platform default. */
export function clientConfigPath(parsed: ParsedCommand): string {
  return parsed.globals.clientConfig ?? defaultClientConfigPath();
}

/** Loads the client config and returns the profile the command names (or the default one). */
export async function selectProfile(
  parsed: ParsedCommand,
  name: string | undefined,
): Promise<ClientProfile> {
  const path = clientConfigPath(parsed);
  let config;
  try {
    config = await loadClientConfig(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new CommandError(
        `no client config at ${path}: import one with \`openme import FILE\` (from what \`openme add\` printed on the server) or pass --client-config PATH`,
      );
    }
    throw err;
  }
  const names = [...config.profiles.keys()];
  if (names.length === 0) {
    throw new CommandError(
      `client config ${path} has no profiles: add one with \`openme import FILE\``,
    );
  }
  if (name !== undefined) {
    const profile = config.profiles.get(name);
    if (profile === undefined) {
      throw new CommandError(
        `no profile "${name}" in ${path} (profiles: ${names.join(", ")})`,
      );
    }
    return profile;
  }
  const fallback = config.profiles.get("default") ??
    (names.length === 1 ? config.profiles.get(names[0]) : undefined);
  if (fallback === undefined) {
    throw new CommandError(
      `${path} has several profiles and none is called "default": name one (profiles: ${
        names.join(", ")
      })`,
    );
  }
  return fallback;
}
