/**
 * `openme add NAME`: registers a new client key pair and hands out its client
 * config (printed, or written with `--out`) and optionally a QR code.
 *
 * @module
 */

import { renderClientConfig } from "../../config/client_config.ts";
import {
  loadServerConfig,
  parseRfc3339Timestamp,
  type ServerConfig,
} from "../../config/server_config.ts";
import { addServerClient } from "../../config/server_config_edit.ts";
import { writeFileNoFollow } from "../../config/atomic_write.ts";
import { fileExists } from "../../config/yaml_file.ts";
import { isGroupName, parsePortSpec } from "../../config/ports.ts";
import { NAME_HINT, nameProblem } from "../../config/validate.ts";
import {
  generateEd25519KeyPair,
  keyFingerprint,
} from "../../protocol/crypto.ts";
import { qrPng, qrTerminal } from "../../qr.ts";
import {
  type CliIo,
  CommandError,
  type ParsedCommand,
  UsageError,
} from "../io.ts";

function parsePortsFlag(text: string): string[] {
  const entries = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (entries.length === 0) {
    throw new UsageError(`--ports "${text}" names no ports or groups`);
  }
  for (const entry of entries) {
    if (isGroupName(entry)) continue;
    const parsed = parsePortSpec(entry);
    if (typeof parsed === "string") throw new UsageError(`--ports: ${parsed}`);
  }
  return entries;
}

function parseExpires(text: string): string {
  const expires = parseRfc3339Timestamp(text);
  if (expires === null) {
    throw new UsageError(
      `--expires "${text}" is not an RFC 3339 time with a time zone (e.g. 2026-12-31T23:59:59Z)`,
    );
  }
  if (expires.getTime() <= Date.now()) {
    throw new UsageError(
      `--expires "${text}" is in the past (give a future time, or leave --expires out for no expiry)`,
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
    );
  }
}

/** Runs `openme add`. */
export async function runAddCommand(
  parsed: ParsedCommand,
  io: CliIo,
): Promise<number> {
  const name = parsed.positionals[0];
  const v = parsed.values;
  const clientProblem = nameProblem(name, "client");
  if (clientProblem !== null) {
    throw new UsageError(
      `${clientProblem} (use ${NAME_HINT}, at most 64; e.g. alice-laptop)`,
    );
  }
  const ports = typeof v.ports === "string" ? parsePortsFlag(v.ports) : [];
  const expires = typeof v.expires === "string"
    ? parseExpires(v.expires)
    : null;
  const profileProblem = typeof v.profile === "string"
    ? nameProblem(v.profile, "profile")
    : null;
  if (profileProblem !== null) {
    throw new UsageError(
      `--profile: ${profileProblem} (use ${NAME_HINT}, e.g. work)`,
    );
  }
  const path = parsed.globals.config;
  const config = await loadServerConfig(path);
  checkGroupsExist(ports, config);
  // A name a clients_dir file defines (config.yaml's addServerClient refuses).
  const other = config.clients.find((c) => c.name === name && c.file !== path);
  if (other !== undefined) {
    throw new CommandError(
      `client "${name}" already exists in ${other.file}:${other.line} (revoke it first with "openme revoke ${name}", or pick another name)`,
    );
  }
  const force = v.force === true;
  for (const out of [v.out, v["qr-out"]]) {
    if (typeof out === "string" && !force && await fileExists(out)) {
      throw new CommandError(
        `${out} already exists; nothing was added (pass --force to replace it, or pick another file)`,
      );
    }
  }
  const keys = generateEd25519KeyPair();
  await addServerClient(path, {
    name,
    ed25519PublicKeyB64: keys.publicKey.toBase64(),
    allowedPorts: ports,
    expires,
  });
  // The QR payload (SPEC §6), keys in the order the apps expect.
  const payload = {
    profile: typeof v.profile === "string" ? v.profile : config.defaultProfile,
    host: config.host,
    udp_port: config.udpPort,
    server_pubkey: config.publicKey.toBase64(),
    client_privkey: keys.privateKey.toBase64(),
    client_pubkey: keys.publicKey.toBase64(),
  };
  const profile = {
    name: payload.profile,
    serverHost: payload.host,
    serverUdpPort: payload.udp_port,
    serverPubkeyB64: payload.server_pubkey,
    privateKeyB64: payload.client_privkey,
    publicKeyB64: payload.client_pubkey,
  };
  const block = `${renderClientConfig([profile])}# fingerprint: ${
    keyFingerprint(keys.publicKey)
  }`;
  if (typeof v.out === "string") {
    await writeSecret(v.out, `${block}\n`, force);
    io.err(
      `added client ${name} to ${path}; wrote its client config to ${v.out} (mode 0600): hand it over privately, then \`openme import ${v.out}\` on the client and delete it`,
    );
    io.out(block.slice(block.lastIndexOf("\n") + 1));
  } else {
    io.err(
      `added client ${name} to ${path}; save this as the client's ~/.openme/config.yaml (or \`openme import\` it):`,
    );
    io.out(block);
    const file = io.outFile?.();
    if (file && (file.mode & 0o044) !== 0) {
      const mode = file.mode.toString(8).padStart(4, "0");
      io.err(
        `openme: warning: standard output is a file other users can read (mode ${mode}) and now holds the client's private key: run chmod 600 ${file.path} (or use --out FILE)`,
      );
    }
  }
  if (v.qr === true) io.out(await qrTerminal(JSON.stringify(payload)));
  const qrOut = v["qr-out"];
  if (typeof qrOut !== "string") return 0;
  await writeSecret(qrOut, await qrPng(JSON.stringify(payload)), force);
  io.err(
    `wrote QR code to ${qrOut} (it holds the client's private key: delete it once scanned)`,
  );
  return 0;
}

/** Writes the client's private key to a file of mode 0600; throws a CommandError saying the client was added. */
async function writeSecret(
  path: string,
  data: string | Uint8Array,
  force: boolean,
): Promise<void> {
  await writeFileNoFollow(path, data, { force }).catch((err) => {
    const why = (err as Error).message;
    throw new CommandError(
      `writing ${path} failed: ${why} (the client was added: revoke it, or add it again under another name)`,
    );
  });
}
