/**
 * The cheapest possible UDP server in Deno, as a baseline for the server's
 * CPU per datagram: a dual-stack `node:dgram` socket (as `openme serve`
 * binds) whose message handler does nothing. Run in the server namespace:
 * `deno run -A bench/udp_sink.ts PORT`; prints `ready` once bound and runs
 * until killed (at most 10 minutes).
 *
 * @module
 */

import { createSocket } from "node:dgram";

/** The sink exits by itself after this long. */
const MAX_LIFETIME_MS = 600_000;

if (import.meta.main) {
  const port = Number(Deno.args[0] ?? "54155");
  let received = 0;
  const socket = createSocket({ type: "udp6", ipv6Only: false });
  socket.on("message", () => {
    received++;
  });
  socket.bind({ port, address: "::" }, () => console.log("ready"));
  setTimeout(() => {
    console.log(`received ${received}`);
    Deno.exit(0);
  }, MAX_LIFETIME_MS);
}
