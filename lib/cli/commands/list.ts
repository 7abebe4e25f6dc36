/**
 * `openme list`: every client with its key fingerprint, effective ports,
 * expiry and the file that defines it.
 *
 * @module
 */

import { dirname, relative } from "node:path";

import { loadServerConfig } from "../../config/server_config.ts";
import { formatPortRange } from "../../config/ports.ts";
import { keyFingerprint } from "../../protocol/crypto.ts";
import { type CliIo, formatTable, type ParsedCommand } from "../io.ts";
import { formatRfc3339 } from "../../time.ts";

/** Runs `openme list`. */
export async function runListCommand(
  parsed: ParsedCommand,
  io: CliIo,
): Promise<number> {
  const path = parsed.globals.config;
  const config = await loadServerConfig(path);
  for (const e of config.dropInErrors) io.err(`error: ${e}`);
  if (config.clients.length === 0 && config.skippedClients.length === 0) {
    io.out(`no clients in ${path}; add one with \`openme add NAME\``);
    return 0;
  }
  const rows = [["NAME", "FINGERPRINT", "PORTS", "EXPIRES", "FILE"]];
  const now = Date.now();
  for (const c of config.clients) {
    const ports = c.ports.map(formatPortRange);
    if (!c.disableHealthPort) ports.push(`${config.healthPort}/tcp (health)`);
    const expires = c.expires === null
      ? "never"
      : formatRfc3339(c.expires.getTime()) +
        (c.expires.getTime() <= now ? " (expired)" : "");
    // Relative to the config's directory, e.g. clients.d/bob.yaml:2.
    const file = relative(dirname(path), c.file);
    rows.push([
      c.name,
      keyFingerprint(c.ed25519PublicKey),
      ports.join(",") || "-",
      expires,
      `${file.startsWith("..") ? c.file : file}:${c.line}`,
    ]);
  }
  for (const line of formatTable(rows)) io.out(line);
  for (const name of config.skippedClients) {
    io.out(
      `${name}  (invalid entry: skipped by the server; see the warning below)`,
    );
  }
  for (const w of config.warnings) io.err(`warning: ${w}`);
  return 0;
}
