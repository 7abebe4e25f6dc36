/**
 * `openme init`: a fresh X25519 key pair and an annotated server config.
 *
 * @module
 */

import { INTERFACE_NAME_PATTERN } from "../../firewall/backend.ts";
import {
  DEFAULT_FIREWALL,
  DEFAULT_UDP_PORT,
} from "../../config/server_config.ts";
import { initServerConfig } from "../../config/server_config_edit.ts";
import { generateX25519KeyPair } from "../../protocol/crypto.ts";
import { type CliIo, type ParsedCommand, UsageError } from "../io.ts";

/** Runs `openme init`. */
export async function runInitCommand(
  parsed: ParsedCommand,
  io: CliIo,
): Promise<number> {
  const v = parsed.values;
  if (typeof v.server !== "string" || v.server.trim() === "") {
    throw new UsageError(
      "--server HOST is required (the public name or IP clients knock at)",
    );
  }
  const port = typeof v.port === "string" ? Number(v.port) : DEFAULT_UDP_PORT;
  const digits = typeof v.port !== "string" || /^[0-9]{1,5}$/.test(v.port);
  if (!digits || port < 1 || port > 65535) {
    throw new UsageError(
      `--port "${v.port}" is not a port (expected 1-65535)`,
    );
  }
  const firewall = typeof v.firewall === "string"
    ? v.firewall
    : DEFAULT_FIREWALL;
  if (firewall !== "nft" && firewall !== "iptables") {
    throw new UsageError(
      `--firewall "${firewall}" is not a backend (expected nft or iptables)`,
    );
  }
  const iface = typeof v.interface === "string" ? v.interface : null;
  if (iface !== null && !INTERFACE_NAME_PATTERN.test(iface)) {
    throw new UsageError(
      `--interface "${iface}" is not an interface name (e.g. eth0)`,
    );
  }
  const path = parsed.globals.config;
  const keys = generateX25519KeyPair();
  const { mode } = await initServerConfig(path, {
    host: v.server.trim(),
    udpPort: port,
    firewall,
    interface: iface,
    privateKeyB64: keys.privateKey.toBase64(),
    publicKeyB64: keys.publicKey.toBase64(),
    force: v.force === true,
  });
  const octal = mode.toString(8).padStart(4, "0");
  io.out(`wrote ${path} (mode ${octal}) with a new server key pair`);
  io.out(`server public key: ${keys.publicKey.toBase64()}`);
  // The next commands repeat the global options given, so they can be copied.
  const globals = ["config", "client-config", "log-level"]
    .filter((name) => typeof v[name] === "string")
    .map((name) => ` --${name} ${shellWord(v[name] as string)}`).join("");
  io.out("next:");
  io.out(
    `  sudo openme${globals} add alice --out alice.yaml   # register a client; its config goes to alice.yaml`,
  );
  io.out(
    `  sudo openme${globals} serve${
      typeof v.config === "string"
        ? ""
        : "                   # or: sudo systemctl enable --now openme"
    }`,
  );
  return 0;
}

/** A word as a POSIX shell reads it back: as is when safe, else in single quotes. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word)
    ? word
    : `'${word.replaceAll("'", `'\\''`)}'`;
}
