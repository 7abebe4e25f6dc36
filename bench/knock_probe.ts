/**
 * Knock-to-open probe for the latency benchmark and the flood test, run in
 * the client namespace: `deno run -A bench/knock_probe.ts '<ProbeSpec JSON>'`.
 *
 * For each target address: build a knock for it (before the clock starts),
 * send it from the `from` address, then start a TCP connect from the target
 * address to the protected port every millisecond until one succeeds or the
 * try times out. A SYN sent before the rule is in place is dropped and not
 * retried within the try, so the first connect that succeeds was started
 * just after the rule went in; the latency is the time from sending the knock
 * to that connect's completion. Prints one JSON line.
 *
 * @module
 */

import type { Socket } from "node:dgram";
import { connect, type Socket as TcpSocket } from "node:net";
import { loadClientConfig } from "../lib/config/client_config.ts";
import { parseIp } from "../lib/ip.ts";
import { buildKnock } from "../lib/protocol/packet.ts";
import type { ProbeResult, ProbeSpec } from "./harness.ts";
import { bindUdpSocket } from "./udp_socket.ts";

/** A new connect attempt starts this often. */
const ATTEMPT_INTERVAL_MS = 1;
/** Each attempt is abandoned after this long (a dropped SYN is retried only after ~1 s). */
const ATTEMPT_TIMEOUT_MS = 150;

/** Sends the knock and races connect attempts from the target address; resolves with the latency in ms or null. */
export function tryOnce(
  spec: ProbeSpec,
  socket: Socket,
  knock: Uint8Array,
  target: string,
): Promise<number | null> {
  const timeoutMs = spec.timeoutMs ?? 1000;
  return new Promise((resolve) => {
    const open = new Set<TcpSocket>();
    let finished = false;
    const timers: ReturnType<typeof setTimeout>[] = [];
    const finish = (value: number | null): void => {
      if (finished) return;
      finished = true;
      for (const timer of timers) clearTimeout(timer);
      for (const s of open) s.destroy();
      open.clear();
      resolve(value);
    };
    const attempt = (): void => {
      if (finished) return;
      const s = connect({
        host: spec.server,
        port: spec.tcpPort,
        localAddress: target,
      });
      open.add(s);
      const giveUp = setTimeout(() => {
        open.delete(s);
        s.destroy();
      }, ATTEMPT_TIMEOUT_MS);
      s.on("connect", () => {
        clearTimeout(giveUp);
        finish(performance.now() - start);
      });
      s.on("error", () => {
        clearTimeout(giveUp);
        open.delete(s);
        s.destroy();
      });
    };
    const start = performance.now();
    socket.send(knock, spec.port, spec.server);
    attempt();
    timers.push(setInterval(attempt, ATTEMPT_INTERVAL_MS));
    timers.push(setTimeout(() => finish(null), timeoutMs));
  });
}

async function main(): Promise<void> {
  const spec = JSON.parse(Deno.args[0]) as ProbeSpec;
  const config = await loadClientConfig(spec.clientConfig);
  const profile = config.profiles.get("default");
  if (profile === undefined) {
    throw new Error(
      `knock probe: no "default" profile in ${spec.clientConfig}`,
    );
  }
  const keys = {
    serverPublicKey: profile.serverPublicKey,
    clientPrivateKey: profile.privateKey,
  };
  const socket = await bindUdpSocket(spec.from);
  const latenciesMs: (number | null)[] = [];
  for (const target of spec.targets) {
    const address = parseIp(target);
    if (address === null) throw new Error(`knock probe: bad target ${target}`);
    const knock = buildKnock(keys, { target: address });
    latenciesMs.push(await tryOnce(spec, socket, knock, target));
    await new Promise((r) => setTimeout(r, spec.gapMs ?? 50));
  }
  socket.close();
  const result: ProbeResult = { latenciesMs };
  console.log(JSON.stringify(result));
  // Abandoned connects may still hold timers: do not wait for them.
  Deno.exit(0);
}

if (import.meta.main) {
  await main();
}
