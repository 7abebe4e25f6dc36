/**
 * `openme profiles [NAME]`: lists the client profiles, or shows one redacted.
 *
 * @module
 */

import { keyFingerprint } from "../../protocol/crypto.ts";
import {
  clientConfigPath,
  loadClientConfigOrExplain,
  profileNamed,
} from "../client_profile.ts";
import type { CliIo, ParsedCommand } from "../io.ts";

/** What stands in for a private key in any output. */
export const REDACTED = "<redacted>";

/** Runs `openme profiles`. */
export async function runProfilesCommand(
  parsed: ParsedCommand,
  io: CliIo,
): Promise<number> {
  const path = clientConfigPath(parsed);
  const config = await loadClientConfigOrExplain(path);
  const name = parsed.positionals[0];
  if (name === undefined) {
    if (config.profiles.size === 0) {
      io.out(`no profiles in ${path}`);
      return 0;
    }
    io.out(`profiles in ${path}:`);
    for (const p of config.profiles.values()) {
      io.out(`  ${p.name.padEnd(16)} ${p.serverHost}:${p.serverUdpPort}`);
    }
    return 0;
  }
  const p = profileNamed(config, name);
  io.out(`profile ${p.name} (${path})`);
  io.out(`  server_host:     ${p.serverHost}`);
  io.out(`  server_udp_port: ${p.serverUdpPort}`);
  io.out(`  server_pubkey:   ${p.serverPublicKey.toBase64()}`);
  io.out(`  private_key:     ${REDACTED}`);
  if (p.publicKey !== null) {
    io.out(`  public_key:      ${p.publicKey.toBase64()}`);
    io.out(`  fingerprint:     ${keyFingerprint(p.publicKey)}`);
  }
  if (p.postKnock !== null) io.out(`  post_knock:      ${p.postKnock}`);
  return 0;
}
