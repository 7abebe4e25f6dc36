/**
 * The real `OpenmeServer` with the no-op firewall backend, as the in-process
 * probes (bench/memory_probe.ts, bench/refresh_probe.ts) start it: a config
 * written from `openme init`'s template naming the given clients, sockets on
 * free ports of 127.0.0.1.
 *
 * @module
 */

import { renderInitialServerConfig } from "../lib/config/server_config.ts";
import type { X25519KeyPair } from "../lib/protocol/crypto.ts";
import { encodeBase64 } from "../lib/encoding.ts";
import type {
  BaseRulesCheck,
  FirewallBackend,
  IpAddress,
  OpenedRules,
} from "../lib/firewall/backend.ts";
import { OpenmeServer, type ServerOptions } from "../lib/server/daemon.ts";

/** A firewall backend that changes nothing: the probes measure the server, not the firewall. */
class NoopBackend implements FirewallBackend {
  readonly name = "noop";
  setup(): Promise<void> {
    return Promise.resolve();
  }
  updateBaseRules(): Promise<void> {
    return Promise.resolve();
  }
  open(
    address: IpAddress,
    ports: OpenedRules["ports"],
  ): Promise<OpenedRules> {
    return Promise.resolve({ address, ports, handles: [] });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  ensureBaseRules(): Promise<BaseRulesCheck> {
    return Promise.resolve({ repaired: [], lost: [] });
  }
  teardown(): Promise<void> {
    return Promise.resolve();
  }
  gateCounters(): Promise<null> {
    return Promise.resolve(null);
  }
}

/** Options for {@linkcode startNoopServer}. */
export interface NoopServerOptions {
  /** Per-source rate limit (default: the server's; null disables it). */
  rateLimit?: ServerOptions["rateLimit"];
}

/**
 * Writes config.yaml and state.json paths into dir, with one client per
 * entry of clients (name to Ed25519 public key, each allowed the default
 * ports), and starts the server on them.
 */
export async function startNoopServer(
  dir: string,
  server: X25519KeyPair,
  clients: Map<string, Uint8Array>,
  options: NoopServerOptions = {},
): Promise<OpenmeServer> {
  const configPath = `${dir}/config.yaml`;
  const clientLines = [...clients].map(([name, publicKey]) =>
    `  ${name}:\n    ed25519_pubkey: ${
      encodeBase64(publicKey)
    }\n    allowed_ports: [default]`
  );
  const text = renderInitialServerConfig({
    host: "192.0.2.1",
    privateKeyB64: encodeBase64(server.privateKey),
    publicKeyB64: encodeBase64(server.publicKey),
  }).replace(/^clients: \{\}$/m, `clients:\n${clientLines.join("\n")}`);
  await Deno.writeTextFile(configPath, text, { mode: 0o600 });
  const serverOptions: ServerOptions = {
    stateFile: `${dir}/state.json`,
    backend: new NoopBackend(),
    hostname: "127.0.0.1",
    udpPort: 0,
    healthPort: 0,
  };
  if (options.rateLimit !== undefined) {
    serverOptions.rateLimit = options.rateLimit;
  }
  return await OpenmeServer.start(configPath, serverOptions);
}
