/**
 * The UDP socket the load generator and the knock probe send from.
 *
 * @module
 */

import { createSocket, type Socket } from "node:dgram";

/** Binds a UDP socket to a local address (IPv4 or IPv6) on a free port; rejects when the bind fails. */
export function bindUdpSocket(address: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(address.includes(":") ? "udp6" : "udp4");
    socket.once("error", reject);
    socket.bind({ address, port: 0 }, () => {
      socket.removeAllListeners("error");
      resolve(socket);
    });
  });
}
