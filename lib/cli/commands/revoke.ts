/**
 * `openme revoke NAME`: removes the client from the server config; a running
 * server reloads within 2 s, refuses its knocks and closes its sessions.
 *
 * @module
 */

import { loadServerConfig } from "../../config/server_config.ts";
import { removeServerClient } from "../../config/server_config_edit.ts";
import { type CliIo, CommandError, type ParsedCommand } from "../io.ts";

/** Runs `openme revoke`. */
export async function runRevokeCommand(
  parsed: ParsedCommand,
  io: CliIo,
): Promise<number> {
  const name = parsed.positionals[0];
  const path = parsed.globals.config;
  const removed = await removeServerClient(path, name);
  if (!removed) {
    const config = await loadServerConfig(path);
    const names = [
      ...config.clients.map((c) => c.name),
      ...config.skippedClients,
    ];
    throw new CommandError(
      `no client "${name}" in ${path} (clients: ${
        names.length > 0 ? names.join(", ") : "none"
      })`,
    );
  }
  io.out(
    `revoked ${name}: removed from ${path}; a running server applies it within 2 s`,
  );
  return 0;
}
