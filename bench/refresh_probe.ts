/**
 * In-process cost of the server's refresh path, per datagram:
 * `deno run -A bench/refresh_probe.ts [info|warn] [count] 2>/dev/null`.
 *
 * Starts the real `OpenmeServer` with the no-op firewall backend on
 * 127.0.0.1, opens one session, then feeds `count` distinct valid knocks for
 * that session's address from 200 IPv6 sources straight to `handleDatagram`
 * (the refresh path of `bench/server_load.ts cpu`, without the UDP socket).
 * Log lines go to the default sink (standard error). Alongside, the same
 * knocks through a bare `KnockVerifier` give the verifier's own share. Prints
 * one JSON line: median µs per datagram over rounds, for each.
 *
 * @module
 */

import {
  generateEd25519KeyPair,
  generateX25519KeyPair,
} from "../lib/protocol/crypto.ts";
import { parseIp } from "../lib/ip.ts";
import { isLogLevel, setLogLevel } from "../lib/log.ts";
import { buildKnock } from "../lib/protocol/packet.ts";
import { KnockVerifier } from "../lib/server/verifier.ts";
import { startNoopServer } from "./noop_server.ts";

/** Distinct source addresses, as in `bench/server_load.ts`. */
const SOURCES = 200;
/** Knocks per round. */
const ROUND = 500;
/** Target address of every knock. */
const TARGET = "192.0.2.10";

function v6Source(n: number): string {
  return `2001:db8::1:${n.toString(16)}`;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function main(): Promise<void> {
  const level = Deno.args[0] ?? "info";
  if (!isLogLevel(level)) throw new Error(`bad level ${level}`);
  const count = Number(Deno.args[1] ?? 5000);
  setLogLevel(level);
  const dir = await Deno.makeTempDir({ prefix: "openme-refresh-" });
  const server = generateX25519KeyPair();
  const client = generateEd25519KeyPair();
  const openme = await startNoopServer(
    dir,
    server,
    new Map([["alice", client.publicKey]]),
    { rateLimit: null },
  );
  const keys = {
    serverPublicKey: server.publicKey,
    clientPrivateKey: client.privateKey,
  };
  const target = parseIp(TARGET);
  const knocks: Uint8Array[] = [];
  for (let i = 0; i < count + 1; i++) knocks.push(buildKnock(keys, { target }));
  openme.handleDatagram(knocks[0], v6Source(0));
  await new Promise((r) => setTimeout(r, 50));
  const serverRounds: number[] = [];
  for (let r = 0; r * ROUND < count; r++) {
    const start = performance.now();
    for (let i = r * ROUND; i < Math.min(count, (r + 1) * ROUND); i++) {
      openme.handleDatagram(knocks[i + 1], v6Source(i % SOURCES));
    }
    // Let the promise chain and timers run, as the event loop would.
    await new Promise((res) => setTimeout(res, 0));
    serverRounds.push((performance.now() - start) * 1000 / ROUND);
  }
  const accepted = openme.state().accepted;
  await openme.stop();
  const verifier = new KnockVerifier({
    serverPrivateKey: server.privateKey,
    replayWindowMs: 60_000,
    clients: [{ name: "alice", publicKey: client.publicKey }],
  });
  const verifyRounds: number[] = [];
  for (let r = 0; r * ROUND < count; r++) {
    const start = performance.now();
    for (let i = r * ROUND; i < Math.min(count, (r + 1) * ROUND); i++) {
      const source = parseIp(v6Source(i % SOURCES));
      if (source === null) throw new Error("bad source");
      verifier.verify(knocks[i + 1], source);
    }
    verifyRounds.push((performance.now() - start) * 1000 / ROUND);
  }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  const serverUs = median(serverRounds);
  const verifyUs = median(verifyRounds);
  console.log(JSON.stringify({
    level,
    accepted,
    serverUs: Math.round(serverUs * 10) / 10,
    verifyUs: Math.round(verifyUs * 10) / 10,
    overheadUs: Math.round((serverUs - verifyUs) * 10) / 10,
  }));
}

if (import.meta.main) {
  await main();
}
