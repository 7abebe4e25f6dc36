/**
 * The server config the server_config tests share: random keys, a base
 * config whose line numbers the tests rely on, and a copy of a config text
 * in a temporary directory.
 *
 * @module
 */

import { formatPortRange } from "../../lib/config/ports.ts";
import { generateEd25519KeyPair } from "../../lib/protocol/crypto.ts";
import { encodeBase64 } from "../../lib/encoding.ts";
import { replaceLines } from "./config.ts";
import { withTempDir } from "./files.ts";

const IS_WINDOWS = Deno.build.os === "windows";

/** Base64 of random bytes (32 unless told), as a stand-in for a key. */
export function randomKey(length = 32): string {
  const bytes = new Uint8Array(length);
  crypto.getRandomValues(bytes);
  return encodeBase64(bytes);
}

/** Base64 of a fresh Ed25519 public key (a valid curve point, as a client key must be). */
export function randomClientKey(): string {
  return encodeBase64(generateEd25519KeyPair().publicKey);
}

/** `server.private_key` of the base config. */
export const SERVER_PRIVATE: string = randomKey();
/** `server.public_key` of the base config. */
export const SERVER_PUBLIC: string = randomKey();
/** `clients.alice.ed25519_pubkey` of the base config. */
export const ALICE_KEY: string = randomClientKey();
/** `clients.bob.ed25519_pubkey` of the base config. */
export const BOB_KEY: string = randomClientKey();
/** A key of the wrong size (16 bytes). */
export const SHORT_KEY: string = randomKey(16);

/** The base config; line numbers matter to the tests (see the comments). */
export function baseLines(): string[] {
  return [
    "# openme test config", //                         1
    "server:", //                                      2
    "  host: myserver.example.com", //                 3
    "  udp_port: 54154", //                            4
    "  health_port: 54155", //                         5
    "  firewall: nft", //                              6
    "  knock_timeout: 30s", //                         7
    "  replay_window: 60s", //                         8
    "  open_knock_port: true", //                      9
    "  drop_ports: false", //                         10
    "  default_profile: default", //                  11
    "  interface: eth0", //                           12
    `  private_key: ${SERVER_PRIVATE}`, //            13
    `  public_key: ${SERVER_PUBLIC}`, //              14
    "ports:", //                                      15
    "  default: [22/tcp]", //                         16
    "  devops: [22/tcp, 443/tcp, 8080-8090/tcp]", //  17
    "clients:", //                                    18
    "  alice:", //                                    19
    `    ed25519_pubkey: ${ALICE_KEY}`, //            20
    "    allowed_ports: [default, 2222/tcp]", //      21
    '    expires: "2099-12-31T23:59:59Z"', //         22
    "    disable_health_port: false", //              23
    "  bob:", //                                      24
    `    ed25519_pubkey: ${BOB_KEY}`, //              25
    "    allowed_ports: [devops, 53/udp]", //         26
  ];
}

/** The base config with some lines replaced (null blanks a line, keeping numbering). */
export function configText(
  replace: Record<number, string | null> = {},
): string {
  return replaceLines(baseLines(), replace);
}

/** Port ranges as specs such as "22/tcp" or "8080-8090/tcp". */
export function portsText(
  ports: { port: number; endPort?: number; proto: "tcp" | "udp" }[],
): string[] {
  return ports.map(formatPortRange);
}

/**
 * Runs fn with the text saved as config.yaml (mode 0644, so that a write
 * must set 0600) in a fresh temporary directory; removes it afterwards.
 */
export async function withTempConfig(
  text: string,
  fn: (path: string, dir: string) => Promise<void>,
): Promise<void> {
  await withTempDir("openme-server-config-", async (dir) => {
    const path = `${dir}/config.yaml`;
    await Deno.writeTextFile(path, text);
    if (!IS_WINDOWS) await Deno.chmod(path, 0o644);
    await fn(path, dir);
  });
}
