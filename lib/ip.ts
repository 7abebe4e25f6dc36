/**
 * IP addresses in canonical text and in the 16-byte form of the knock packet.
 *
 * @module
 */

import { isIPv4, isIPv6 } from "node:net";

/** Size of an address in the knock plaintext. */
export const IP_BYTES = 16;

const IPV6_GROUPS = 8;
/** The 12 bytes before an IPv4 address mapped into IPv6. */
const V4_MAPPED_PREFIX = Uint8Array.fromHex("00000000000000000000ffff");

/** A parsed IP address in canonical text form. */
export interface IpAddress {
  /** 4 for IPv4 (including IPv4-mapped IPv6), 6 for IPv6. */
  family: 4 | 6;
  /** Canonical text: dotted quad for IPv4, RFC 5952 for IPv6. */
  text: string;
}

/** RFC 5952 text of valid IPv6 text without a zone id, by the URL parser's IPv6 serializer. */
function canonicalIpv6(text: string): string {
  return new URL(`http://[${text}]/`).hostname.slice(1, -1);
}

/** The 16 bytes of valid IPv6 text without a zone id. */
function ipv6Bytes(text: string): Uint8Array {
  // Canonical text has hex groups only, and at most one "::".
  const [head, tail] = canonicalIpv6(text).split("::");
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === undefined || tail === "" ? [] : tail.split(":");
  const zeros = IPV6_GROUPS - headGroups.length - tailGroups.length;
  const groups = [...headGroups, ...Array(zeros).fill("0"), ...tailGroups];
  return Uint8Array.fromHex(groups.map((g) => g.padStart(4, "0")).join(""));
}

/** Parses a trimmed IPv4 or IPv6 address (IPv4-mapped becomes IPv4, a zone id is dropped), or returns null. */
export function parseIp(text: string): IpAddress | null {
  const trimmed = text.trim();
  if (isIPv4(trimmed)) return { family: 4, text: trimmed };
  if (!isIPv6(trimmed)) return null;
  return ipFromBytes(ipv6Bytes(trimmed.split("%")[0]));
}

/** Turns 16 address bytes into an address; IPv4-mapped bytes become IPv4. */
export function ipFromBytes(bytes: Uint8Array): IpAddress {
  if (bytes.length !== IP_BYTES) {
    throw new RangeError(`ipFromBytes: expected 16 bytes, got ${bytes.length}`);
  }
  const hex = bytes.toHex();
  if (hex.startsWith(V4_MAPPED_PREFIX.toHex())) {
    return {
      family: 4,
      text: bytes.subarray(V4_MAPPED_PREFIX.length).join("."),
    };
  }
  const groups = [];
  for (let i = 0; i < hex.length; i += 4) groups.push(hex.slice(i, i + 4));
  return { family: 6, text: canonicalIpv6(groups.join(":")) };
}

/** Encodes an address as the 16 bytes of the knock plaintext (IPv4 as `::ffff:a.b.c.d`). */
export function ipToBytes(address: IpAddress): Uint8Array {
  if (address.family === 4) {
    if (!isIPv4(address.text)) {
      throw new RangeError(`not an IPv4 address: ${address.text}`);
    }
    const v4 = address.text.split(".").map(Number);
    return new Uint8Array([...V4_MAPPED_PREFIX, ...v4]);
  }
  if (!isIPv6(address.text)) {
    throw new RangeError(`not an IPv6 address: ${address.text}`);
  }
  return ipv6Bytes(address.text.split("%")[0]);
}
