/**
 * `openme cleanup`: removes every rule, set, jump and chain openme added to
 * nftables and iptables/ip6tables, without reading the config; the systemd
 * unit runs it as `ExecStopPost=`, so a crashed server leaves no port open.
 *
 * @module
 */

import { cleanupFirewall } from "../../firewall/mod.ts";
import { serverSupported } from "../../platform.ts";
import { type CliIo, CommandError, type ParsedCommand } from "../io.ts";

/** Runs `openme cleanup`. */
export async function runCleanupCommand(
  _parsed: ParsedCommand,
  io: CliIo,
): Promise<number> {
  const support = serverSupported();
  if (!support.ok) throw new CommandError(support.message);
  for (const line of await cleanupFirewall()) io.out(line);
  return 0;
}
