/**
 * The client side of a knock: resolve the server name (at every knock, for
 * dynamic DNS), build one fresh packet per address family and send it. One
 * datagram, no reply expected.
 *
 * Start-up time matters here more than anywhere: nothing on this path
 * imports a `node:` module up front. The packet is built with WebCrypto
 * (lib/client/web_seal.ts) and sent with `Deno.listenDatagram` when the
 * runtime has it (`--unstable-net`, set in deno.json and in release
 * builds); `node:dgram`, `node:dns` and `node:net` are loaded only when
 * needed: a host name to resolve, a runtime without `Deno.listenDatagram`,
 * a failed send to explain.
 *
 * @module
 */

import { type IpAddress, parseIp } from "../ip.ts";
import { buildKnockWeb } from "./web_seal.ts";

/** One resolved server address. */
export interface ServerAddress {
  /** Address text. */
  address: string;
  /** 4 or 6. */
  family: 4 | 6;
}

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

/** The system resolver (getaddrinfo through `node:dns`, loaded on first use), every address in the resolver's order. */
export async function systemLookup(host: string): Promise<LookupAddress[]> {
  const { lookup } = await import("node:dns/promises");
  return await lookup(host, { all: true, verbatim: true });
}

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
  let found: ServerAddress[];
  if (literal !== null) {
    found = [{ address: literal.text, family: literal.family }];
  } else {
    let results: LookupAddress[];
    const resolve = options.lookup ?? systemLookup;
    try {
      results = await resolve(host);
    } catch (err) {
      const code = (err as { code?: string }).code ?? "";
      throw new KnockError(
        `cannot resolve server host "${host}"${
          code ? ` (${code})` : ""
        }: check the name in your profile (server_host) and your DNS/network`,
      );
    }
    found = [];
    for (const r of results) {
      const ip = parseIp(r.address);
      if (ip === null) continue;
      if (found.some((f) => f.family === ip.family)) continue;
      found.push({ address: ip.text, family: ip.family });
    }
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
export const ROUTE_PROBE_TIMEOUT_MS = 500;

/** Error codes that tell the network, not the server, refused. */
const LOCAL_NETWORK_ERRORS: readonly string[] = [
  "ENETUNREACH",
  "EHOSTUNREACH",
  "EADDRNOTAVAIL",
  "EAFNOSUPPORT",
  "EPERM",
  "EACCES",
  "ENETDOWN",
];

/**
 * Finds out why the system refused a datagram when the UDP error carries no
 * code (Deno's node:dgram reports "UNKNOWN"): a TCP connect to the same
 * address fails at once with the routing error (ENETUNREACH, ...). Runs only
 * after a send already failed locally; null when it tells nothing.
 */
async function probeRoute(
  to: ServerAddress,
  port: number,
): Promise<string | null> {
  const { tryConnect } = await import("./health_check.ts");
  const reason = await tryConnect(to, port, {
    timeoutMs: ROUTE_PROBE_TIMEOUT_MS,
  });
  return reason !== null && LOCAL_NETWORK_ERRORS.includes(reason)
    ? reason
    : null;
}

/** The error for a send the system refused, with the system's code. */
function sendError(to: ServerAddress, port: number, code: string): KnockError {
  return new KnockError(
    `sending the knock to ${to.address} port ${port} failed (${code}): is the network up and the address reachable?`,
  );
}

/** `Deno.listenDatagram`, or null when this runtime runs without `--unstable-net`. */
function nativeListenDatagram(): typeof Deno.listenDatagram | null {
  const listen = (Deno as { listenDatagram?: typeof Deno.listenDatagram })
    .listenDatagram;
  return typeof listen === "function" ? listen : null;
}

/** Options for {@linkcode sendDatagram}. */
export interface SendDatagramOptions {
  /** Send through `node:dgram` even when `Deno.listenDatagram` is there (tests). */
  forceNodeDgram?: boolean;
}

/** Sends one datagram to an address; rejects with a clear message when the network refuses. */
export async function sendDatagram(
  to: ServerAddress,
  port: number,
  datagram: Uint8Array,
  options: SendDatagramOptions = {},
): Promise<void> {
  const listen = options.forceNodeDgram === true
    ? null
    : nativeListenDatagram();
  if (listen === null) {
    await sendWithNodeDgram(to, port, datagram);
    return;
  }
  let socket: Deno.DatagramConn | null = null;
  try {
    socket = listen({
      transport: "udp",
      hostname: to.family === 6 ? "::" : "0.0.0.0",
      port: 0,
    });
    await socket.send(datagram, {
      transport: "udp",
      hostname: to.address,
      port,
    });
  } catch (err) {
    const code = (err as { code?: string }).code ?? (err as Error).message;
    throw sendError(to, port, code);
  } finally {
    socket?.close();
  }
}

/** Sends one datagram with `node:dgram` (runtimes without `Deno.listenDatagram`). */
async function sendWithNodeDgram(
  to: ServerAddress,
  port: number,
  datagram: Uint8Array,
): Promise<void> {
  const { createSocket } = await import("node:dgram");
  await new Promise<void>((resolve, reject) => {
    const socket = createSocket(to.family === 6 ? "udp6" : "udp4");
    const fail = async (err: Error): Promise<void> => {
      socket.close();
      let code = (err as { code?: string }).code ?? err.message;
      if (code === "UNKNOWN") code = (await probeRoute(to, port)) ?? code;
      reject(sendError(to, port, code));
    };
    socket.once("error", (err) => void fail(err));
    socket.send(datagram, port, to.address, (err) => {
      if (err) {
        void fail(err);
        return;
      }
      socket.close();
      resolve();
    });
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
    const packet = await buildKnockWeb(
      {
        serverPublicKey: profile.serverPublicKey,
        clientPrivateKey: profile.privateKey,
      },
      { target },
    );
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
