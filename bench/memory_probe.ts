/**
 * Memory of the server under many knocks, measured in-process:
 * `deno run -A --v8-flags=--expose-gc bench/memory_probe.ts idle|valid|junk [count]`.
 *
 * It starts the real `OpenmeServer` (config file, verifier, session manager,
 * stats, state file) with the no-op firewall backend on 127.0.0.1 and feeds
 * datagrams straight to `handleDatagram`, skipping only the UDP socket, so a
 * million datagrams take a minute instead of many. Prints one JSON line:
 * resident set size and V8 heap after a full GC, the peak RSS seen while
 * feeding, and how long it took.
 *
 * - `valid`: distinct valid knocks (default 100,000) from 1,000 IPv6 source
 *   addresses, each for its own source, by 200 clients with 5 addresses each
 *   (so 1,000 sessions stay open, each client under its limit of 8).
 * - `junk`: 165-byte datagrams with version 1 (default 1,000,000), each from a
 *   different IPv6 source address, so every one reaches the crypto and the
 *   per-source tables see a new address every time.
 *
 * @module
 */

import {
  generateEd25519KeyPair,
  generateX25519KeyPair,
} from "../lib/protocol/crypto.ts";
import { setLogLevel } from "../lib/log.ts";
import {
  buildKnock,
  KNOCK_PACKET_BYTES,
  PROTOCOL_VERSION,
} from "../lib/protocol/packet.ts";
import { startNoopServer } from "./noop_server.ts";

/**
 * Valid knocks handled between two yields to the event loop: below the
 * session manager's bound on firewall opens in flight (64), so that first
 * knocks from new sources are not dropped as busy.
 */
const VALID_BATCH = 50;
/** Junk datagrams handled between two yields to the event loop. */
const JUNK_BATCH = 1000;
/** Distinct source addresses of the valid knocks. */
const VALID_SOURCES = 1000;
/** Clients the valid knocks come from; source i belongs to client i % VALID_CLIENTS. */
const VALID_CLIENTS = 200;

/** What the probe prints. */
export interface MemoryReport {
  /** Mode run. */
  mode: string;
  /** Datagrams fed. */
  datagrams: number;
  /** RSS after a full GC, MiB. */
  rssMiB: number;
  /** V8 heap used after a full GC, MiB. */
  heapUsedMiB: number;
  /** Largest RSS sampled while feeding, MiB. */
  peakRssMiB: number;
  /** Wall time of the feeding, ms. */
  elapsedMs: number;
  /** Drops by reason, from the server's counters. */
  drops: Record<string, number>;
}

function mib(bytes: number): number {
  return Math.round((bytes / (1024 * 1024)) * 10) / 10;
}

function fullGc(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc !== undefined) gc();
}

function v6Source(n: number): string {
  return `2001:db8::${((n >>> 16) & 0xffff).toString(16)}:${
    (n & 0xffff).toString(16)
  }`;
}

async function main(): Promise<void> {
  const mode = Deno.args[0] ?? "idle";
  if (mode !== "idle" && mode !== "valid" && mode !== "junk") {
    throw new Error(
      `memory probe: mode must be idle, valid or junk, got ${mode}`,
    );
  }
  const defaultCount = mode === "valid"
    ? 100_000
    : mode === "junk"
    ? 1_000_000
    : 0;
  const count = Deno.args[1] !== undefined
    ? Number(Deno.args[1])
    : defaultCount;
  setLogLevel("error");
  const dir = await Deno.makeTempDir({ prefix: "openme-memory-" });
  const server = generateX25519KeyPair();
  // Idle and junk keep one client, so their figures stay comparable.
  const clients = Array.from(
    { length: mode === "valid" ? VALID_CLIENTS : 1 },
    () => generateEd25519KeyPair(),
  );
  const openme = await startNoopServer(
    dir,
    server,
    new Map(clients.map((client, index) => [
      `client${index}`,
      client.publicKey,
    ])),
  );
  let peak = Deno.memoryUsage().rss;
  const keys = clients.map((client) => ({
    serverPublicKey: server.publicKey,
    clientPrivateKey: client.privateKey,
  }));
  const junk = new Uint8Array(KNOCK_PACKET_BYTES);
  crypto.getRandomValues(junk);
  junk[0] = PROTOCOL_VERSION;
  const junkView = new DataView(junk.buffer);
  const start = performance.now();
  try {
    for (let i = 0; i < count; i++) {
      if (mode === "valid") {
        const source = i % VALID_SOURCES;
        openme.handleDatagram(
          buildKnock(keys[source % keys.length]),
          v6Source(source),
        );
      } else {
        // A different ephemeral key each time, from a different source.
        junkView.setUint32(1, i);
        openme.handleDatagram(junk, v6Source(i));
      }
      const batch = mode === "valid" ? VALID_BATCH : JUNK_BATCH;
      if (i % batch === batch - 1) {
        await new Promise((r) => setTimeout(r, 0));
        const rss = Deno.memoryUsage().rss;
        if (rss > peak) peak = rss;
      }
    }
    if (mode === "idle") await new Promise((r) => setTimeout(r, 1000));
    const elapsedMs = performance.now() - start;
    await new Promise((r) => setTimeout(r, 200));
    fullGc();
    const usage = Deno.memoryUsage();
    const report: MemoryReport = {
      mode,
      datagrams: count,
      rssMiB: mib(usage.rss),
      heapUsedMiB: mib(usage.heapUsed),
      peakRssMiB: mib(Math.max(peak, usage.rss)),
      elapsedMs: Math.round(elapsedMs),
      drops: openme.state().drops!,
    };
    console.log(JSON.stringify(report));
  } finally {
    await openme.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  await main();
}
