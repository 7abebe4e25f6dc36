/**
 * The health port: a TCP listener that accepts and closes at once. Only the
 * per-knock rules make it reachable, so a successful connect tells a client
 * that its knock opened its ports.
 *
 * @module
 */

import { createServer } from "node:net";

/** A running health listener. */
export interface HealthListener {
  /** The TCP port it listens on. */
  port: number;
  /** Stops listening. */
  close(): Promise<void>;
}

/** Starts a TCP listener on `hostname` (default dual-stack `::`, else `0.0.0.0`) that closes every connection as soon as it is accepted. */
export async function startHealthListener(
  port: number,
  hostname?: string,
): Promise<HealthListener> {
  const server = createServer((socket) => {
    socket.on("error", () => {});
    socket.destroy();
  });
  const listen = (host: string): Promise<void> =>
    new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen({ port, host, ipv6Only: false }, () => {
        server.off("error", reject);
        resolve();
      });
    });
  await (hostname !== undefined
    ? listen(hostname)
    : listen("::").catch(() => listen("0.0.0.0")));
  server.on("error", () => {});
  return {
    port: (server.address() as { port: number }).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
