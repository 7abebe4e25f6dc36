/**
 * The floors of the server's CPU per datagram: a dual-stack `node:dgram`
 * socket (as `openme serve` binds) whose message handler does nothing
 * (`bare`), or only the crypto a datagram costs at least, through the same
 * library calls the server makes: `aead`, the key agreement, HKDF and
 * ChaCha20-Poly1305 open every 165-byte datagram with version 1 costs, and
 * `crypto`, that plus one Ed25519 verify with the first client's key, what
 * every valid knock costs. Run in the server namespace:
 * `deno run -A bench/udp_sink.ts PORT [bare|aead|crypto CONFIG]`; prints
 * `ready` once bound and runs until killed (at most 10 minutes).
 *
 * @module
 */

import { createSocket } from "node:dgram";
import { loadServerConfig } from "../lib/config/server_config.ts";
import {
  prepareEd25519VerifyKey,
  prepareX25519PrivateKey,
} from "../lib/protocol/crypto.ts";
import {
  openKnockPacket,
  parseKnockPacket,
  verifyKnockSignature,
} from "../lib/protocol/packet.ts";

/** The sink exits by itself after this long. */
const MAX_LIFETIME_MS = 600_000;

/** What the sink does with each datagram. */
export type SinkMode = "bare" | "aead" | "crypto";

async function handlerFor(
  mode: string,
  configPath: string | undefined,
): Promise<(msg: Uint8Array) => unknown> {
  if (mode === "bare") return () => {};
  if ((mode !== "aead" && mode !== "crypto") || configPath === undefined) {
    throw new Error(`usage: udp_sink.ts PORT [bare|aead|crypto CONFIG]`);
  }
  const config = await loadServerConfig(configPath);
  const serverKey = prepareX25519PrivateKey(config.privateKey);
  const verifyKey = prepareEd25519VerifyKey(config.clients[0].ed25519PublicKey);
  return (msg) => {
    const packet = parseKnockPacket(msg);
    if (packet === null || openKnockPacket(packet, serverKey) === null) return;
    if (mode === "crypto") verifyKnockSignature(packet, verifyKey);
  };
}

if (import.meta.main) {
  const port = Number(Deno.args[0] ?? "54155");
  const handle = await handlerFor(Deno.args[1] ?? "bare", Deno.args[2]);
  let received = 0;
  const socket = createSocket({ type: "udp6", ipv6Only: false });
  socket.on("message", (msg) => {
    received++;
    handle(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength));
  });
  socket.bind({ port, address: "::" }, () => console.log("ready"));
  setTimeout(() => {
    console.log(`received ${received}`);
    Deno.exit(0);
  }, MAX_LIFETIME_MS);
}
