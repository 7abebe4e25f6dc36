/**
 * IP address parsing and the 16-byte form the knock packet carries.
 * IPv4 travels as IPv4-mapped IPv6 (`::ffff:a.b.c.d`); all zero bytes, or
 * `::ffff:0.0.0.0`, mean "the packet's source address".
 *
 * @module
 */

import { isIP } from "node:net";

/** Size of an address in the knock plaintext. */
export const IP_BYTES = 16;

/** A parsed IP address in canonical text form. */
export interface IpAddress {
  /** 4 for IPv4 (including IPv4-mapped IPv6), 6 for IPv6. */
  family: 4 | 6;
  /** Canonical text: dotted quad for IPv4, compressed lowercase for IPv6. */
  text: string;
}

function parseIpv4Bytes(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(parts[i])) return null;
    const n = Number(parts[i]);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

function parseIpv6Bytes(text: string): Uint8Array | null {
  if (isIP(text) !== 6) return null;
  let head = text;
  const tail: number[] = [];
  // An embedded dotted quad at the end (e.g. ::ffff:1.2.3.4).
  const lastColon = head.lastIndexOf(":");
  const last = head.slice(lastColon + 1);
  if (last.includes(".")) {
    const v4 = parseIpv4Bytes(last);
    if (v4 === null) return null;
    tail.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    head = head.slice(0, lastColon + 1);
    if (head.endsWith(":") && !head.endsWith("::")) head = head.slice(0, -1);
  }
  const halves = head.split("::");
  const toGroups = (part: string): number[] =>
    part === "" ? [] : part.split(":").map((g) => parseInt(g, 16));
  const left = toGroups(halves[0]);
  const right = halves.length > 1 ? toGroups(halves[1]) : [];
  const groups = halves.length > 1
    ? [
      ...left,
      ...new Array(8 - left.length - right.length - tail.length).fill(0),
      ...right,
      ...tail,
    ]
    : [...left, ...tail];
  if (groups.length !== 8) return null;
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[i * 2] = groups[i] >> 8;
    out[i * 2 + 1] = groups[i] & 0xff;
  }
  return out;
}

function isV4Mapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) {
    groups.push((bytes[i * 2] << 8) | bytes[i * 2 + 1]);
  }
  // Longest run of two or more zero groups is compressed (RFC 5952).
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  const left = hex.slice(0, bestStart).join(":");
  const right = hex.slice(bestStart + bestLen).join(":");
  return `${left}::${right}`;
}

/** Parses an IPv4 or IPv6 address; IPv4-mapped IPv6 becomes IPv4. Returns null when invalid. */
export function parseIp(text: string): IpAddress | null {
  const trimmed = text.trim();
  const v4 = parseIpv4Bytes(trimmed);
  if (v4 !== null) return { family: 4, text: Array.from(v4).join(".") };
  const zone = trimmed.indexOf("%");
  if (zone === trimmed.length - 1) return null; // "%" with no zone name
  const bare = zone >= 0 ? trimmed.slice(0, zone) : trimmed;
  const v6 = parseIpv6Bytes(bare);
  if (v6 === null) return null;
  return ipFromBytes(v6);
}

/** Turns 16 address bytes into an address; IPv4-mapped bytes become IPv4. */
export function ipFromBytes(bytes: Uint8Array): IpAddress {
  if (bytes.length !== IP_BYTES) {
    throw new RangeError(`ipFromBytes: expected 16 bytes, got ${bytes.length}`);
  }
  if (isV4Mapped(bytes)) {
    return { family: 4, text: Array.from(bytes.subarray(12)).join(".") };
  }
  return { family: 6, text: formatIpv6(bytes) };
}

/** Encodes an address as the 16 bytes of the knock plaintext (IPv4 as `::ffff:a.b.c.d`). */
export function ipToBytes(address: IpAddress): Uint8Array {
  const out = new Uint8Array(IP_BYTES);
  if (address.family === 4) {
    const v4 = parseIpv4Bytes(address.text);
    if (v4 === null) {
      throw new RangeError(`not an IPv4 address: ${address.text}`);
    }
    out[10] = 0xff;
    out[11] = 0xff;
    out.set(v4, 12);
    return out;
  }
  const v6 = parseIpv6Bytes(address.text);
  if (v6 === null) throw new RangeError(`not an IPv6 address: ${address.text}`);
  return v6;
}

/** Whether 16 target bytes mean "use the packet's source address" (all zero, or `::ffff:0.0.0.0`). */
export function isWildcardTarget(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  const mapped = bytes[10] === 0xff && bytes[11] === 0xff;
  const zero = bytes[10] === 0 && bytes[11] === 0;
  if (!mapped && !zero) return false;
  for (let i = 12; i < 16; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** Normalises a socket peer address: `::ffff:a.b.c.d` from a dual-stack socket becomes `a.b.c.d`. */
export function normalizePeerAddress(text: string): IpAddress | null {
  return parseIp(text);
}
