/**
 * `openme status`: whether the server's health port is reachable from here now.
 *
 * @module
 */

import { checkHealth, STATUS_TIMEOUT_MS } from "../../client/health_check.ts";
import {
  formatServerAddress,
  knockServer,
  resolveServer,
  type ServerAddress,
} from "../../client/knock.ts";
import { selectProfiles } from "../client_profile.ts";
import type { CliIo, ParsedCommand } from "../io.ts";

/** Runs `openme status`. */
export async function runStatusCommand(
  parsed: ParsedCommand,
  io: CliIo,
): Promise<number> {
  const { profiles } = await selectProfiles(parsed, parsed.positionals, false);
  const profile = profiles[0];
  const port = profile.serverUdpPort;
  const knock = parsed.values.knock === true;
  const show = (a: ServerAddress): string => formatServerAddress(a, port);
  let addresses: ServerAddress[];
  if (knock) {
    addresses = (await knockServer(profile)).sent.map((k) => k.to);
    io.out(`knocked ${addresses.map(show).join(", ")}`);
  } else {
    addresses = await resolveServer(profile.serverHost);
  }
  const result = await checkHealth(addresses, port, { poll: knock });
  if (result.ok) {
    io.out(
      `✓ ${profile.serverHost}: health port ${
        show(result.address)
      } reachable (${Math.round(result.elapsedMs)} ms) — your knock is open`,
    );
    return 0;
  }
  io.out(
    `✗ ${profile.serverHost}: health port tcp ${
      addresses.map(show).join(" and ")
    } not reachable within ${STATUS_TIMEOUT_MS / 1000} s (${result.reason})`,
  );
  io.out(
    knock
      ? "  try: check the server log (`journalctl -u openme -f`), that the server runs and UDP " +
        `${port} reaches it (router port forwarding, firewall), and that this profile's keys match the server`
      : `  try: openme status ${profile.name} --knock   (the port opens only after a knock)`,
  );
  return 1;
}
