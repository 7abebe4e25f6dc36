/**
 * The floors of the server, run in the server namespace:
 * `deno run -A bench/udp_sink.ts PORT [bare|x25519|crypto|nft|iptables CONFIG]`.
 * It binds the knock socket as `openme serve` does and, for each datagram,
 * does nothing (`bare`: the runtime's cost of a datagram), only the X25519
 * key agreement of a 165-byte datagram with version 1 (`x25519`), or only
 * the crypto a datagram costs at least, through the library calls the
 * server makes (`crypto`: the key agreement, HKDF and AEAD open of any
 * 165-byte datagram
 * with version 1, and for one that opens, one Ed25519 verify with the first
 * client's key), or that and then, for a valid knock, one bare
 * `nft insert rule` / `iptables -I` admitting its target to tcp/22, printing
 * `tool MS` for each run (the floor of knock-to-open). Prints `ready` once
 * bound and runs until killed (at most 10 minutes).
 *
 * @module
 */

import { loadServerConfig } from "../lib/config/server_config.ts";
import {
  prepareEd25519VerifyKey,
  prepareX25519PrivateKey,
  x25519SharedSecret,
} from "../lib/protocol/crypto.ts";
import {
  openKnockPacket,
  parseKnockPacket,
  verifyKnockSignature,
} from "../lib/protocol/packet.ts";
import { bindKnockSocket } from "../lib/server/daemon.ts";

/** The sink exits by itself after this long. */
const MAX_LIFETIME_MS = 600_000;

/** What the sink does with each datagram. */
export type SinkMode = "bare" | "x25519" | "crypto" | "nft" | "iptables";

function insertRuleArgs(tool: string, address: string): string[] {
  return tool === "nft"
    ? ["insert", "rule", "inet", "filter", "input", "ip", "saddr", address]
      .concat(["tcp", "dport", "22", "accept"])
    : ["-w", "-I", "INPUT", "-s", address, "-p", "tcp", "--dport", "22"]
      .concat(["-j", "ACCEPT"]);
}

async function handlerFor(
  mode: string,
  configPath: string | undefined,
): Promise<(msg: Uint8Array) => unknown> {
  if (mode === "bare") return () => {};
  if (!["x25519", "crypto", "nft", "iptables"].includes(mode) || !configPath) {
    throw new Error(
      "usage: udp_sink.ts PORT [bare|x25519|crypto|nft|iptables CONFIG]",
    );
  }
  const config = await loadServerConfig(configPath);
  const serverKey = prepareX25519PrivateKey(config.privateKey);
  const verifyKey = prepareEd25519VerifyKey(config.clients[0].ed25519PublicKey);
  return async (msg) => {
    const packet = parseKnockPacket(msg);
    if (packet !== null && mode === "x25519") {
      try {
        x25519SharedSecret(serverKey, packet.ephemeralPublicKey);
      } catch {
        // a low-order key: refused as the server would
      }
      return;
    }
    const plaintext = packet && openKnockPacket(packet, serverKey);
    if (!plaintext || !verifyKnockSignature(packet!, verifyKey)) return;
    if (mode === "crypto" || plaintext.target === null) return;
    const t0 = performance.now();
    await new Deno.Command(mode, {
      args: insertRuleArgs(mode, plaintext.target.text),
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    console.log(`tool ${performance.now() - t0}`);
  };
}

if (import.meta.main) {
  const port = Number(Deno.args[0] ?? "54155");
  const handle = await handlerFor(Deno.args[1] ?? "bare", Deno.args[2]);
  let received = 0;
  const socket = await bindKnockSocket(port);
  socket.on("message", (msg) => {
    received++;
    handle(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength));
  });
  console.log("ready");
  setTimeout(() => {
    console.log(`received ${received}`);
    Deno.exit(0);
  }, MAX_LIFETIME_MS);
}
