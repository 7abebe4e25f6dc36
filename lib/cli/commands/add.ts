/**
 * `openme add NAME`: a new Ed25519 key pair for a client, registered in the
 * server config; prints the client config block (first line `profiles:`),
 * then the key fingerprint, and optionally a QR code for the mobile apps.
 *
 * @module
 */

import {
  renderClientConfig,
  validateProfileName,
} from "../../config/client_config.ts";
import {
  DEFAULT_SERVER_CONFIG_PATH,
  loadServerConfig,
  parseRfc3339Timestamp,
  type ServerConfig,
  validateClientName,
} from "../../config/server_config.ts";
import { addServerClient } from "../../config/server_config_edit.ts";
import { isGroupName, parsePortSpec } from "../../config/ports.ts";
import {
  generateEd25519KeyPair,
  keyFingerprint,
} from "../../protocol/crypto.ts";
import { qrPngFile, qrTerminal } from "../../qr.ts";
import { CommandError, UsageError } from "../errors.ts";
import type { CliIo, ParsedCommand } from "../io.ts";

/** The QR provisioning payload (SPEC §6), with keys in the order the apps expect. */
export interface QrPayload {
  /** Profile name. */
  profile: string;
  /** Server host. */
  host: string;
  /** Server UDP port. */
  udp_port: number;
  /** Server X25519 public key, base64. */
  server_pubkey: string;
  /** Client Ed25519 private key, base64. */
  client_privkey: string;
  /** Client Ed25519 public key, base64. */
  client_pubkey: string;
}

function parsePortsFlag(text: string): string[] {
  const entries = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (entries.length === 0) {
    throw new UsageError(`--ports "${text}" names no ports or groups`, "add");
  }
  for (const entry of entries) {
    if (isGroupName(entry)) continue;
    const parsed = parsePortSpec(entry);
    if (typeof parsed === "string") {
      throw new UsageError(`--ports: ${parsed}`, "add");
    }
  }
  return entries;
}

function parseExpires(text: string, nowMs: number): string {
  const expires = parseRfc3339Timestamp(text);
  if (expires === null) {
    throw new UsageError(
      `--expires "${text}" is not an RFC 3339 time with a time zone (e.g. 2026-12-31T23:59:59Z)`,
      "add",
    );
  }
  if (expires.getTime() <= nowMs) {
    throw new UsageError(
      `--expires "${text}" is in the past (give a future time, or leave --expires out for no expiry)`,
      "add",
    );
  }
  return text.trim();
}

/** Throws a usage error when a --ports entry names a group the config does not define. */
function checkGroupsExist(entries: string[], config: ServerConfig): void {
  for (const entry of entries) {
    if (!isGroupName(entry) || config.portGroups.has(entry)) continue;
    const defined = [...config.portGroups.keys()].sort();
    throw new UsageError(
      `--ports: unknown port group "${entry}" (${
        defined.length > 0
          ? `defined: ${defined.join(", ")}`
          : "no groups are defined"
      }; define it under ports: in ${config.path}, or give a port spec such as 2222/tcp)`,
      "add",
    );
  }
}

/** Runs `openme add`. */
export async function runAddCommand(
  parsed: ParsedCommand,
  io: CliIo,
): Promise<number> {
  const name = parsed.positionals[0];
  const nameProblem = validateClientName(name);
  if (nameProblem !== null) {
    throw new UsageError(
      `${nameProblem} (use letters, digits, ".", "_", "-" or "@", starting with a letter or digit, at most 64; e.g. alice-laptop)`,
      "add",
    );
  }
  const v = parsed.values;
  const ports = typeof v.ports === "string" ? parsePortsFlag(v.ports) : [];
  const expires = typeof v.expires === "string"
    ? parseExpires(v.expires, Date.now())
    : null;
  if (typeof v.profile === "string") {
    const profileProblem = validateProfileName(v.profile);
    if (profileProblem !== null) {
      throw new UsageError(
        `--profile: ${profileProblem} (use letters, digits, ".", "_", "-" or "@", e.g. work)`,
        "add",
      );
    }
  }
  const path = parsed.globals.config ?? DEFAULT_SERVER_CONFIG_PATH;
  const config = await loadServerConfig(path);
  checkGroupsExist(ports, config);
  const keys = generateEd25519KeyPair();
  const publicB64 = keys.publicKey.toBase64();
  await addServerClient(path, {
    name,
    ed25519PublicKeyB64: publicB64,
    allowedPorts: ports,
    expires,
  });
  const profile = typeof v.profile === "string"
    ? v.profile
    : config.defaultProfile;
  const payload: QrPayload = {
    profile,
    host: config.host,
    udp_port: config.udpPort,
    server_pubkey: config.publicKey.toBase64(),
    client_privkey: keys.privateKey.toBase64(),
    client_pubkey: publicB64,
  };
  io.err(
    `added client ${name} to ${path}; save this as the client's ~/.openme/config.yaml (or \`openme import\` it):`,
  );
  io.out(
    renderClientConfig([{
      name: profile,
      serverHost: payload.host,
      serverUdpPort: payload.udp_port,
      serverPubkeyB64: payload.server_pubkey,
      privateKeyB64: payload.client_privkey,
      publicKeyB64: payload.client_pubkey,
    }]).trimEnd(),
  );
  io.out(`# fingerprint: ${keyFingerprint(keys.publicKey)}`);
  const wantQr = v.qr === true;
  const qrOut = typeof v["qr-out"] === "string" ? v["qr-out"] : null;
  if (wantQr || qrOut !== null) {
    const text = JSON.stringify(payload);
    if (wantQr) io.out(await qrTerminal(text));
    if (qrOut !== null) {
      try {
        await qrPngFile(text, qrOut);
      } catch (err) {
        throw new CommandError(
          `writing QR code to ${qrOut} failed: ${
            (err as Error).message
          } (the client was added)`,
        );
      }
      io.err(
        `wrote QR code to ${qrOut} (it holds the client's private key: delete it once scanned)`,
      );
    }
  }
  return 0;
}
