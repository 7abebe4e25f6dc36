/**
 * IP address parsing and the 16-byte form the knock packet carries.
 * IPv4 travels as IPv4-mapped IPv6 (`::ffff:a.b.c.d`); all zero bytes, or
 * `::ffff:0.0.0.0`, mean "the packet's source address".
 *
 * The text grammar is the one node's `net.isIP` accepts, written out here so
 * that the client does not load Deno's Node compatibility layer at start-up:
 * IPv4 is a dotted quad without leading zeros; IPv6 is eight groups of one to
 * four hex digits, where the last two groups may be written as a dotted quad
 * and one `::` may stand for one or more zero groups.
 *
 * @module
 */

/** Size of an address in the knock plaintext. */
export const IP_BYTES = 16;

const IPV4_BYTES = 4;
const IPV6_GROUPS = 8;
/** Bytes of zero before the `ffff` marker of an IPv4-mapped IPv6 address. */
const V4_MAPPED_ZERO_BYTES = 10;
const V4_MAPPED_OFFSET = 12;
const MAX_OCTET = 255;

/** One IPv4 octet: 0-999 without leading zeros (range is checked apart). */
const OCTET_PATTERN = /^(?:0|[1-9][0-9]{0,2})$/;
/** One IPv6 group: one to four hex digits. */
const GROUP_PATTERN = /^[0-9A-Fa-f]{1,4}$/;
/**
 * Zone ids that {@linkcode ipToBytes} ignores, as it always did. A zone after
 * an embedded IPv4 tail, or one holding `.` or `:`, is refused.
 */
const IGNORED_ZONE_PATTERN = /^[0-9A-Za-z-]+$/;

/** A parsed IP address in canonical text form. */
export interface IpAddress {
  /** 4 for IPv4 (including IPv4-mapped IPv6), 6 for IPv6. */
  family: 4 | 6;
  /** Canonical text: dotted quad for IPv4, compressed lowercase for IPv6. */
  text: string;
}

function parseIpv4Bytes(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== IPV4_BYTES) return null;
  const out = new Uint8Array(IPV4_BYTES);
  for (let i = 0; i < IPV4_BYTES; i++) {
    if (!OCTET_PATTERN.test(parts[i])) return null;
    const octet = Number(parts[i]);
    if (octet > MAX_OCTET) return null;
    out[i] = octet;
  }
  return out;
}

function formatIpv4(bytes: Uint8Array): string {
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

/**
 * Parses colon-separated IPv6 groups (one side of a `::`, or a whole address
 * without one). When `mayEndInIpv4` is set, the last piece may be a dotted
 * quad, which yields two groups. Empty text yields no groups.
 */
function parseGroups(text: string, mayEndInIpv4: boolean): number[] | null {
  if (text === "") return [];
  const pieces = text.split(":");
  const groups: number[] = [];
  for (let i = 0; i < pieces.length; i++) {
    const piece = pieces[i];
    const isLast = i === pieces.length - 1;
    if (isLast && mayEndInIpv4 && piece.includes(".")) {
      const v4 = parseIpv4Bytes(piece);
      if (v4 === null) return null;
      groups.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    } else {
      if (!GROUP_PATTERN.test(piece)) return null;
      groups.push(parseInt(piece, 16));
    }
  }
  return groups;
}

/** Parses IPv6 text without a zone id into 16 bytes, or null when invalid. */
function parseIpv6Bytes(text: string): Uint8Array | null {
  const gap = text.indexOf("::");
  let groups: number[];
  if (gap < 0) {
    const all = parseGroups(text, true);
    if (all === null || all.length !== IPV6_GROUPS) return null;
    groups = all;
  } else {
    // A second "::" leaves an empty piece in the tail, which parseGroups refuses.
    const head = parseGroups(text.slice(0, gap), false);
    const tail = parseGroups(text.slice(gap + 2), true);
    if (head === null || tail === null) return null;
    const zeros = IPV6_GROUPS - head.length - tail.length;
    if (zeros < 1) return null; // "::" stands for at least one zero group
    groups = [...head, ...new Array<number>(zeros).fill(0), ...tail];
  }
  const out = new Uint8Array(IP_BYTES);
  for (let i = 0; i < IPV6_GROUPS; i++) {
    out[i * 2] = groups[i] >> 8;
    out[i * 2 + 1] = groups[i] & 0xff;
  }
  return out;
}

function isV4Mapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < V4_MAPPED_ZERO_BYTES; i++) {
    if (bytes[i] !== 0) return false;
  }
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < IPV6_GROUPS; i++) {
    groups.push((bytes[i * 2] << 8) | bytes[i * 2 + 1]);
  }
  // Longest run of two or more zero groups is compressed (RFC 5952).
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < IPV6_GROUPS;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < IPV6_GROUPS && groups[j] === 0) j++;
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

/**
 * Parses an IPv4 or IPv6 address; IPv4-mapped IPv6 becomes IPv4. Surrounding
 * whitespace is trimmed and an IPv6 zone id (`fe80::1%eth0`) is dropped.
 * Returns null when invalid.
 */
export function parseIp(text: string): IpAddress | null {
  const trimmed = text.trim();
  const v4 = parseIpv4Bytes(trimmed);
  if (v4 !== null) return { family: 4, text: formatIpv4(v4) };
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
    return { family: 4, text: formatIpv4(bytes.subarray(V4_MAPPED_OFFSET)) };
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
    out.set(v4, V4_MAPPED_OFFSET);
    return out;
  }
  const zone = address.text.indexOf("%");
  const bare = zone >= 0 ? address.text.slice(0, zone) : address.text;
  const zoneOk = zone < 0 ||
    (IGNORED_ZONE_PATTERN.test(address.text.slice(zone + 1)) &&
      !bare.includes("."));
  const v6 = zoneOk ? parseIpv6Bytes(bare) : null;
  if (v6 === null) throw new RangeError(`not an IPv6 address: ${address.text}`);
  return v6;
}

/** Whether 16 target bytes mean "use the packet's source address" (all zero, or `::ffff:0.0.0.0`). */
export function isWildcardTarget(bytes: Uint8Array): boolean {
  for (let i = 0; i < V4_MAPPED_ZERO_BYTES; i++) {
    if (bytes[i] !== 0) return false;
  }
  const mapped = bytes[10] === 0xff && bytes[11] === 0xff;
  const zero = bytes[10] === 0 && bytes[11] === 0;
  if (!mapped && !zero) return false;
  for (let i = V4_MAPPED_OFFSET; i < IP_BYTES; i++) {
    if (bytes[i] !== 0) return false;
  }
  return true;
}

/** Normalises a socket peer address: `::ffff:a.b.c.d` from a dual-stack socket becomes `a.b.c.d`. */
export function normalizePeerAddress(text: string): IpAddress | null {
  return parseIp(text);
}
