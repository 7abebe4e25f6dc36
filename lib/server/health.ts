/**
 * The health port: a TCP listener that accepts and closes at once. Only the
 * per-knock rules make it reachable, so a successful connect tells a client
 * that its knock opened its ports.
 *
 * @module
 */

import { createServer, type Server } from "node:net";

/** A running health listener. */
export interface HealthListener {
  /** The TCP port it listens on. */
  port: number;
  /** Stops listening. */
  close(): Promise<void>;
}

/** Options for {@linkcode startHealthListener}. */
export interface HealthListenerOptions {
  /** Address to bind; default `::` (dual-stack), falling back to `0.0.0.0`. */
  hostname?: string;
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off("listening", onListening);
      reject(err);
    };
    const onListening = (): void => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen({ port, host, ipv6Only: false });
  });
}

/** Starts a TCP listener that closes every connection as soon as it is accepted. */
export async function startHealthListener(
  port: number,
  options: HealthListenerOptions = {},
): Promise<HealthListener> {
  const server = createServer((socket) => {
    socket.on("error", () => {});
    socket.destroy();
  });
  server.on("error", () => {});
  if (options.hostname !== undefined) {
    await listen(server, port, options.hostname);
  } else {
    try {
      await listen(server, port, "::");
    } catch {
      await listen(server, port, "0.0.0.0");
    }
  }
  const address = server.address();
  const bound = typeof address === "object" && address !== null
    ? address.port
    : port;
  return {
    port: bound,
    close(): Promise<void> {
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
