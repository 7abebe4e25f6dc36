/**
 * Load generator for the server benchmarks and the flood test, run in the
 * client namespace: `deno run -A bench/load_generator.ts '<LoadSpec JSON>'`.
 *
 * It builds every datagram first (valid knocks are distinct packets), opens
 * one UDP socket per source address, prints `ready`, waits for a line on
 * standard input, then sends at a steady rate for the given time (bounded in
 * count and time: it stops by itself) and prints one JSON line with what it
 * sent.
 *
 * @module
 */

import type { Socket } from "node:dgram";
import { decodeBase64 } from "../lib/encoding.ts";
import { parseIp } from "../lib/ip.ts";
import {
  buildKnock,
  KNOCK_PACKET_BYTES,
  PROTOCOL_VERSION,
} from "../lib/protocol/packet.ts";
import type { LoadResult, LoadSpec } from "./harness.ts";
import { bindUdpSocket } from "./udp_socket.ts";

/** Size of a short junk datagram. */
const SHORT_JUNK_BYTES = 40;
/** Send in ticks of this many ms (the count due is computed from the clock). */
const TICK_MS = 2;
/** Most datagrams one run may send, whatever the spec says. */
const MAX_DATAGRAMS = 2_000_000;
/** Most distinct valid knocks built up front (they are reused round robin beyond that). */
const MAX_VALID_PACKETS = 20_000;
/** Distinct junk datagrams built up front. */
const JUNK_POOL = 4096;

function keyOf(text: string, what: string): Uint8Array {
  const bytes = decodeBase64(text);
  if (bytes === null) throw new Error(`load generator: ${what} is not base64`);
  return bytes;
}

function buildDatagrams(spec: LoadSpec, count: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  if (spec.kind === "valid") {
    const target = spec.target === null ? null : parseIp(spec.target);
    if (spec.target !== null && target === null) {
      throw new Error(`load generator: bad target ${spec.target}`);
    }
    const keys = {
      serverPublicKey: keyOf(spec.serverPublicKey, "serverPublicKey"),
      clientPrivateKey: keyOf(spec.clientPrivateKey, "clientPrivateKey"),
    };
    const distinct = Math.min(count, MAX_VALID_PACKETS);
    for (let i = 0; i < distinct; i++) out.push(buildKnock(keys, { target }));
    return out;
  }
  const size = spec.kind === "short" ? SHORT_JUNK_BYTES : KNOCK_PACKET_BYTES;
  for (let i = 0; i < Math.min(count, JUNK_POOL); i++) {
    const datagram = new Uint8Array(size);
    crypto.getRandomValues(datagram);
    if (spec.kind === "junk165") datagram[0] = PROTOCOL_VERSION;
    if (spec.kind === "version2") datagram[0] = PROTOCOL_VERSION + 1;
    out.push(datagram);
  }
  return out;
}

async function readGo(): Promise<void> {
  const buffer = new Uint8Array(16);
  await Deno.stdin.read(buffer);
}

async function main(): Promise<void> {
  const spec = JSON.parse(Deno.args[0]) as LoadSpec;
  if (!(spec.rate > 0) || !(spec.durationMs > 0) || spec.sources.length === 0) {
    throw new Error(
      "load generator: rate, durationMs and sources are required",
    );
  }
  const total = Math.min(
    MAX_DATAGRAMS,
    Math.round((spec.rate * spec.durationMs) / 1000),
  );
  const datagrams = buildDatagrams(spec, total);
  const sockets: Socket[] = [];
  for (const source of spec.sources) sockets.push(await bindUdpSocket(source));

  if (spec.prime) {
    const keys = {
      serverPublicKey: keyOf(spec.serverPublicKey, "serverPublicKey"),
      clientPrivateKey: keyOf(spec.clientPrivateKey, "clientPrivateKey"),
    };
    const target = spec.target === null ? null : parseIp(spec.target);
    const knock = buildKnock(keys, { target });
    await new Promise<void>((resolve) =>
      sockets[0].send(knock, spec.port, spec.server, () => resolve())
    );
  }

  // SIGTERM ends the run early, still reporting what was sent.
  let stopRequested = false;
  Deno.addSignalListener("SIGTERM", () => {
    stopRequested = true;
  });

  console.log("ready");
  await readGo();

  let sent = 0;
  let errors = 0;
  let done = 0;
  const start = performance.now();
  let last = start;
  const onSent = (err: Error | null): void => {
    done++;
    if (err) errors++;
  };
  const hardStop = start + spec.durationMs + 5000;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now();
      const due = Math.min(
        total,
        Math.floor((spec.rate * (now - start)) / 1000),
      );
      while (sent < due) {
        const socket = sockets[sent % sockets.length];
        const datagram = datagrams[sent % datagrams.length];
        socket.send(datagram, spec.port, spec.server, onSent);
        sent++;
        last = performance.now();
      }
      if (sent >= total || now > hardStop || stopRequested) {
        clearInterval(timer);
        resolve();
      }
    }, TICK_MS);
  });
  // Let the sends complete (bounded).
  for (let i = 0; i < 200 && done < sent; i++) {
    await new Promise((r) => setTimeout(r, 5));
  }
  for (const socket of sockets) socket.close();
  const result: LoadResult = { sent, errors, elapsedMs: last - start };
  console.log(JSON.stringify(result));
  Deno.exit(0);
}

if (import.meta.main) {
  await main();
}
