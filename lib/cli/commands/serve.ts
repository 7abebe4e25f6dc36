/**
 * `openme serve`: runs the knock server until SIGINT/SIGTERM, reloading on SIGHUP.
 *
 * @module
 */

import { dirname } from "node:path";
import { INTERFACE_NAME_PATTERN } from "../../firewall/backend.ts";
import { enableLogBatching, error, info, warn } from "../../log.ts";
import { serverSupported } from "../../platform.ts";
import { OpenmeServer } from "../../server/daemon.ts";
import { DEFAULT_STATE_FILE } from "../../server/state_file.ts";
import {
  type CliIo,
  CommandError,
  type ParsedCommand,
  UsageError,
} from "../io.ts";

/** How long shutdown should take; past it a warning is logged, and shutdown goes on until the rules are removed. */
const SHUTDOWN_DEADLINE_MS = 2000;

/** Options for {@linkcode runServeCommand}. */
export interface ServeCommandOptions {
  /** Operating system as `Deno.build.os` names it; default the current one (tests pass another). */
  platform?: typeof Deno.build.os;
}

/** Runs `openme serve`. */
export async function runServeCommand(
  parsed: ParsedCommand,
  _io: CliIo,
  options: ServeCommandOptions = {},
): Promise<number> {
  const support = serverSupported({ platform: options.platform });
  if (!support.ok) throw new CommandError(support.message);
  const configPath = parsed.globals.config;
  const stateFile = typeof parsed.values["state-file"] === "string"
    ? parsed.values["state-file"]
    : DEFAULT_STATE_FILE;
  const iface = typeof parsed.values.interface === "string"
    ? parsed.values.interface
    : null;
  if (iface !== null && !INTERFACE_NAME_PATTERN.test(iface)) {
    throw new UsageError(
      `--interface "${iface}" is not an interface name (e.g. eth0; letters, digits, "_.:@-", at most 15)`,
    );
  }
  if (stateFile === DEFAULT_STATE_FILE) {
    await Deno.mkdir(dirname(stateFile), { recursive: true, mode: 0o755 })
      .catch(() => {});
  }
  const server = await OpenmeServer.start(configPath, {
    stateFile,
    interfaceOverride: iface,
  });
  const { promise: stopped, resolve } = Promise.withResolvers<string>();
  const onTerm = (): void => resolve("SIGTERM");
  const onInt = (): void => resolve("SIGINT");
  const onHup = (): void => {
    server.reload("SIGHUP").catch((err) => error(`reload failed: ${err}`));
    server.checkFirewall("SIGHUP").catch((err) =>
      error(`firewall check failed: ${err}`)
    );
  };
  Deno.addSignalListener("SIGTERM", onTerm);
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGHUP", onHup);
  // Signals now end the program through stop() and a normal exit, which
  // writes held lines: knocks may be logged in batches from here on.
  enableLogBatching();
  const signal = await stopped;
  info(`${signal} received: removing openme's rules and stopping`);
  // Never exit before the teardown ran: each firewall tool run has its own
  // time limit, so a slow firewall delays the exit but leaves no rule behind.
  const deadline = setTimeout(() => {
    warn(
      `shutdown is taking longer than ${SHUTDOWN_DEADLINE_MS} ms (slow firewall?); still removing openme's rules`,
    );
  }, SHUTDOWN_DEADLINE_MS);
  await server.stop();
  clearTimeout(deadline);
  Deno.removeSignalListener("SIGTERM", onTerm);
  Deno.removeSignalListener("SIGINT", onInt);
  Deno.removeSignalListener("SIGHUP", onHup);
  return 0;
}
