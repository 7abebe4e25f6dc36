/**
 * The client side of a knock: resolve the server name (at every knock, for
 * dynamic DNS), build one fresh packet per address family and send it with
 * `node:dgram`. One datagram, no reply expected.
 *
 * @module
 */

import { createSocket } from "node:dgram";
import { lookup } from "node:dns/promises";
import { type IpAddress, parseIp } from "../ip.ts";
import { buildKnock } from "../protocol/packet.ts";
import { type ServerAddress, tryConnect } from "./health_check.ts";

export type { ServerAddress } from "./health_check.ts";

/** An address and port as text, IPv6 in brackets: `192.0.2.1:54154`, `[2001:db8::1]:54154`. */
export function formatServerAddress(to: ServerAddress, port: number): string {
  return to.family === 6 ? `[${to.address}]:${port}` : `${to.address}:${port}`;
}

/** What a profile needs for knocking. */
export interface KnockProfile {
  /** Server name or address. */
  serverHost: string;
  /** Server UDP knock port. */
  serverUdpPort: number;
  /** Server X25519 public key (32 bytes). */
  serverPublicKey: Uint8Array;
  /** Client Ed25519 private key (64 bytes, or a 32-byte seed). */
  privateKey: Uint8Array;
}

/** One address a name resolved to, as `node:dns` lookup returns it. */
export interface LookupAddress {
  /** Address text. */
  address: string;
  /** 4 or 6. */
  family: number;
}

/** Resolves a host name to every address it has; throws an error with a `code` (e.g. ENOTFOUND) when it cannot. */
export type HostLookup = (host: string) => Promise<LookupAddress[]>;

/** Options for {@linkcode resolveServer}. */
export interface ResolveOptions {
  /** Only this family; default both. */
  family?: 4 | 6 | null;
  /** Resolver to use; default the system resolver (tests inject their own). */
  lookup?: HostLookup;
}

/** A knock that went out. */
export interface SentKnock {
  /** Where it went. */
  to: ServerAddress;
  /** UDP port. */
  port: number;
  /** The address the server was asked to open for (null: the packet's source). */
  target: IpAddress | null;
}

/** A name that could not be resolved or a send that failed, with what to do. */
export class KnockError extends Error {
  /** Creates a knock error. */
  constructor(message: string) {
    super(message);
    this.name = "KnockError";
  }
}

/** Resolves the server name to at most one address per family (IPv4 first). */
export async function resolveServer(
  host: string,
  options: ResolveOptions = {},
): Promise<ServerAddress[]> {
  const literal = parseIp(host.replace(/^\[|\]$/g, ""));
  let results: LookupAddress[];
  if (literal !== null) {
    results = [{ address: literal.text, family: literal.family }];
  } else {
    try {
      // By default the system resolver (getaddrinfo: /etc/hosts applies).
      results = options.lookup
        ? await options.lookup(host)
        : await lookup(host, { all: true, verbatim: true });
    } catch (err) {
      const code = (err as { code?: string }).code ?? "";
      throw new KnockError(
        `cannot resolve server host "${host}"${
          code ? ` (${code})` : ""
        }: check the name in your profile (server_host) and your DNS/network`,
      );
    }
  }
  const found: ServerAddress[] = [];
  for (const result of results) {
    const ip = parseIp(result.address);
    if (ip === null || found.some((f) => f.family === ip.family)) continue;
    found.push({ address: ip.text, family: ip.family });
  }
  found.sort((a, b) => a.family - b.family);
  const wanted = options.family ?? null;
  const chosen = wanted === null
    ? found
    : found.filter((f) => f.family === wanted);
  if (chosen.length === 0) {
    throw new KnockError(
      wanted === null
        ? `server host "${host}" has no address`
        : `server host "${host}" has no IPv${wanted} address (drop -${wanted} to use ${
          found.map((f) => `IPv${f.family}`).join(" or ")
        })`,
    );
  }
  return chosen;
}

/** How long the local route check after a failed send may take. */
const ROUTE_PROBE_TIMEOUT_MS = 500;

/** Error codes that tell the network, not the server, refused. */
const LOCAL_NETWORK_ERROR =
  /^E(NETUNREACH|HOSTUNREACH|ADDRNOTAVAIL|AFNOSUPPORT|PERM|ACCES|NETDOWN)$/;

/**
 * Finds out why the system refused a datagram when the UDP error carries no
 * code (Deno's node:dgram reports "UNKNOWN"): a TCP connect to the same
 * address fails at once with the routing error; null when it tells nothing.
 */
async function probeRoute(
  to: ServerAddress,
  port: number,
): Promise<string | null> {
  const reason = await tryConnect(to, port, {
    timeoutMs: ROUTE_PROBE_TIMEOUT_MS,
  });
  return reason !== null && LOCAL_NETWORK_ERROR.test(reason) ? reason : null;
}

/** Sends one datagram to an address; rejects with a clear message when the network refuses. */
export function sendDatagram(
  to: ServerAddress,
  port: number,
  datagram: Uint8Array,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const socket = createSocket(to.family === 6 ? "udp6" : "udp4");
    const fail = async (err: Error): Promise<void> => {
      socket.close();
      let code = (err as { code?: string }).code ?? err.message;
      if (code === "UNKNOWN") code = (await probeRoute(to, port)) ?? code;
      reject(
        new KnockError(
          `sending the knock to ${to.address} port ${port} failed (${code}): is the network up and the address reachable?`,
        ),
      );
    };
    socket.once("error", (err) => void fail(err));
    try {
      socket.send(datagram, port, to.address, (err) => {
        if (err) {
          void fail(err);
          return;
        }
        socket.close();
        resolve();
      });
    } catch (err) {
      // node:dgram throws at once for a port or address it refuses to try.
      void fail(err as Error);
    }
  });
}

/** Options for {@linkcode knockServer}. */
export interface KnockOptions {
  /** Address to open for; default the packet's source address. */
  target?: IpAddress | null;
  /** Only this address family; default one knock per family the name has. */
  family?: 4 | 6 | null;
  /** Resolver to use; default the system resolver (tests inject their own). */
  lookup?: HostLookup;
}

/** What {@linkcode knockServer} did: knocks sent, and sends that failed while another worked. */
export interface KnockReport {
  /** Knocks that went out. */
  sent: SentKnock[];
  /** Messages for families whose send failed. */
  failures: string[];
}

/** Resolves the server and sends a fresh knock to each address family; throws when none went out. */
export async function knockServer(
  profile: KnockProfile,
  options: KnockOptions = {},
): Promise<KnockReport> {
  let addresses = await resolveServer(profile.serverHost, {
    family: options.family ?? null,
    lookup: options.lookup,
  });
  const target = options.target ?? null;
  if (target !== null && addresses.length > 1) {
    // An explicit target needs one knock only; prefer the target's own family.
    const same = addresses.find((a) => a.family === target.family);
    addresses = [same ?? addresses[0]];
  }
  const sent: SentKnock[] = [];
  const failures: string[] = [];
  for (const to of addresses) {
    const packet = buildKnock({
      serverPublicKey: profile.serverPublicKey,
      clientPrivateKey: profile.privateKey,
    }, { target });
    try {
      await sendDatagram(to, profile.serverUdpPort, packet);
      sent.push({ to, port: profile.serverUdpPort, target });
    } catch (err) {
      failures.push((err as Error).message);
    }
  }
  if (sent.length === 0) throw new KnockError(failures.join("; "));
  return { sent, failures };
}
