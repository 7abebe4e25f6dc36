/**
 * `openme revoke NAME`: removes the client from the server config and the
 * `clients_dir` files.
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
  if (removed.length === 0) {
    const config = await loadServerConfig(path);
    const names = [
      ...config.clients.map((c) => c.name),
      ...config.skippedClients,
    ];
    const refused = config.dropInErrors.length === 0
      ? ""
      : `; refused clients_dir files, whose clients a running server keeps, are listed by \`openme list\``;
    throw new CommandError(
      `no client "${name}" in ${path} or ${config.clientsDir} (clients: ${
        names.length > 0 ? names.join(", ") : "none"
      })${refused}`,
    );
  }
  const files = removed.map((r) => r.deleted ? `${r.file} (deleted)` : r.file);
  io.out(
    `revoked ${name}: removed from ${
      files.join(" and ")
    }; a running server applies it within 2 s`,
  );
  return 0;
}
