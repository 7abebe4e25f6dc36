/**
 * Knocks from fresh source addresses for the client-count benchmark
 * (bench/signer_scale.ts), run in the client namespace:
 * `deno run -A bench/scale_probe.ts '<ScaleProbeSpec JSON>'`.
 *
 * Every knock is built before the clock starts, by the client its entry
 * names, with our client's key hint or with a random replay nonce as other
 * v1 clients build it, for "the packet's source address". Knocks go out on a
 * fixed schedule (one every `intervalMs`, whether or not earlier ones have
 * opened); after each, TCP connects from its source address to the protected
 * port measure when its rule went in (see bench/knock_probe.ts). Prints one
 * JSON line with one latency (or null) per knock.
 *
 * @module
 */

import type { Socket } from "node:dgram";
import { randomBytes } from "../lib/protocol/crypto.ts";
import { buildKnock, sealKnock } from "../lib/protocol/packet.ts";
import type { ProbeResult } from "./harness.ts";
import { tryOnce } from "./knock_probe.ts";
import { bindUdpSocket } from "./udp_socket.ts";

/** One knock of the probe. */
export interface ScaleKnock {
  /** Source address (on the client's interface); the knock opens for it. */
  from: string;
  /** The knocking client's Ed25519 private key, base64. */
  privateKey: string;
  /** With our client's key hint; false: a random replay nonce. */
  hinted: boolean;
}

/** The probe's instructions. */
export interface ScaleProbeSpec {
  /** Server address. */
  server: string;
  /** Server UDP port. */
  port: number;
  /** Protected TCP port to connect to. */
  tcpPort: number;
  /** Server X25519 public key, base64. */
  serverPublicKey: string;
  /** The knocks, in sending order. */
  knocks: ScaleKnock[];
  /** Time between two knocks. */
  intervalMs: number;
  /** Give up on a knock's port after this long. */
  timeoutMs: number;
}

async function main(): Promise<void> {
  const spec = JSON.parse(Deno.args[0]) as ScaleProbeSpec;
  const serverPublicKey = Uint8Array.fromBase64(spec.serverPublicKey);
  const prepared: { socket: Socket; knock: Uint8Array; from: string }[] = [];
  for (const entry of spec.knocks) {
    const keys = {
      serverPublicKey,
      clientPrivateKey: Uint8Array.fromBase64(entry.privateKey),
    };
    const knock = entry.hinted ? buildKnock(keys) : sealKnock(keys, {
      timestampNs: BigInt(Date.now()) * 1_000_000n,
      replayNonce: randomBytes(16),
      target: null,
    });
    prepared.push({
      socket: await bindUdpSocket(entry.from),
      knock,
      from: entry.from,
    });
  }
  const probeSpec = {
    server: spec.server,
    port: spec.port,
    tcpPort: spec.tcpPort,
    clientConfig: "",
    from: "",
    targets: [],
    timeoutMs: spec.timeoutMs,
  };
  const tries: Promise<number | null>[] = [];
  for (const [index, { socket, knock, from }] of prepared.entries()) {
    if (index > 0) await new Promise((r) => setTimeout(r, spec.intervalMs));
    tries.push(tryOnce(probeSpec, socket, knock, from));
  }
  const result: ProbeResult = { latenciesMs: await Promise.all(tries) };
  for (const { socket } of prepared) socket.close();
  console.log(JSON.stringify(result));
  // Abandoned connects may still hold timers: do not wait for them.
  Deno.exit(0);
}

if (import.meta.main) {
  await main();
}
