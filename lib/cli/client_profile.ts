/**
 * Picks the client profiles a command works with from the client config.
 *
 * @module
 */

import {
  type ClientConfig,
  type ClientProfile,
  defaultClientConfigPath,
  loadClientConfig,
} from "../config/client_config.ts";
import { warn } from "../log.ts";
import { CommandError, type ParsedCommand } from "./io.ts";

// The functions below return these.
export type { ClientConfig, ClientProfile };

/** The client config path a command uses: `--client-config` or the platform default. */
export function clientConfigPath(parsed: ParsedCommand): string {
  return parsed.globals.clientConfig ?? defaultClientConfigPath();
}

/** Whether loading a config failed because the file does not exist (a ConfigError caused by NotFound, or NotFound itself). */
export function isMissingConfigFile(err: unknown): boolean {
  if (err instanceof Deno.errors.NotFound) return true;
  if (!(err instanceof Error) || err.name !== "ConfigError") return false;
  return (err as Error & { cause?: unknown }).cause instanceof
    Deno.errors.NotFound;
}

/** Loads the client config and logs its warnings; a missing file is a CommandError that says how to create one. */
export async function loadClientConfigOrExplain(
  path: string,
): Promise<ClientConfig> {
  let config: ClientConfig;
  try {
    config = await loadClientConfig(path);
  } catch (err) {
    if (isMissingConfigFile(err)) {
      throw new CommandError(
        `no client config at ${path}: import one with \`openme import FILE\` (from what \`openme add\` printed on the server) or pass --client-config PATH`,
      );
    }
    throw err;
  }
  for (const warning of config.warnings) warn(warning);
  return config;
}

/** Loads the client config and returns it with the profiles named (each once), every profile with `all`, or else the default one. */
export async function selectProfiles(
  parsed: ParsedCommand,
  names: readonly string[],
  all: boolean,
): Promise<{ config: ClientConfig; profiles: ClientProfile[] }> {
  const path = clientConfigPath(parsed);
  const config = await loadClientConfigOrExplain(path);
  const existing = [...config.profiles.values()];
  if (existing.length === 0) {
    throw new CommandError(
      `client config ${path} has no profiles: add one with \`openme import FILE\``,
    );
  }
  if (all) return { config, profiles: existing };
  if (names.length > 0) {
    const profiles = [...new Set(names)].map((n) => profileNamed(config, n));
    return { config, profiles };
  }
  const fallback = config.profiles.get("default") ??
    (existing.length === 1 ? existing[0] : undefined);
  if (fallback === undefined) {
    throw new CommandError(
      `${path} has several profiles and none is called "default": name one (profiles: ${
        [...config.profiles.keys()].join(", ")
      })`,
    );
  }
  return { config, profiles: [fallback] };
}

/** The profile called `name` in the config; throws a CommandError that lists the profiles there. */
export function profileNamed(
  config: ClientConfig,
  name: string,
): ClientProfile {
  const profile = config.profiles.get(name);
  if (profile !== undefined) return profile;
  throw new CommandError(
    `no profile "${name}" in ${config.path} (profiles: ${
      [...config.profiles.keys()].join(", ")
    })`,
  );
}
