/**
 * Port specs (`22`, `22/tcp`, `22/udp`, `80-82`, `80-82/tcp`) as written in
 * `ports:` groups and `allowed_ports:`, parsed into typed port ranges.
 *
 * @module
 */

import { describeValue } from "./errors.ts";

/** Lowest valid port number. */
export const MIN_PORT = 1;
/** Highest valid port number. */
export const MAX_PORT = 65535;

/** A transport protocol a port rule applies to. */
export type PortProtocol = "tcp" | "udp";

/** One port or an inclusive port range for one protocol. */
export interface PortRange {
  /** First (or only) port, 1-65535. */
  port: number;
  /** Last port of the range; present only when greater than `port`. */
  endPort?: number;
  /** Protocol the range applies to. */
  proto: PortProtocol;
}

/** What a good port spec looks like, appended to every error reason. */
const PORT_SPEC_HINT = "expected e.g. 22/tcp or 8080-8090/tcp";

const DIGITS_PATTERN = /^[0-9]+$/;
/** Longer digit strings cannot be valid ports; checked before converting to a number. */
const MAX_PORT_DIGITS = 5;

/**
 * Parses one port spec into its ranges (a spec without protocol gives a tcp
 * and a udp range), or returns the reason it is invalid, ending with an
 * example of a good spec.
 */
export function parsePortSpec(text: string): PortRange[] | string {
  if (typeof text !== "string") {
    return `port spec must be text (${PORT_SPEC_HINT})`;
  }
  const spec = text.trim();
  if (spec === "") return `empty port spec (${PORT_SPEC_HINT})`;

  const parts = spec.split("/");
  if (parts.length > 2) {
    return `port spec ${
      describeValue(spec)
    } has more than one "/" (${PORT_SPEC_HINT})`;
  }
  const portPart = parts[0].trim();
  let protocols: PortProtocol[];
  if (parts.length === 2) {
    const protocolText = parts[1].trim().toLowerCase();
    if (protocolText === "tcp" || protocolText === "udp") {
      protocols = [protocolText];
    } else {
      return `unknown protocol ${describeValue(parts[1].trim())} in port spec ${
        describeValue(spec)
      } (expected tcp or udp, e.g. 22/tcp)`;
    }
  } else {
    protocols = ["tcp", "udp"];
  }

  const bounds = portPart.split("-");
  if (bounds.length > 2) {
    return `port spec ${
      describeValue(spec)
    } has more than one "-" (${PORT_SPEC_HINT})`;
  }
  const lowText = bounds[0].trim();
  const highText = bounds.length === 2 ? bounds[1].trim() : lowText;
  const low = parsePortNumber(lowText);
  if (typeof low === "string") return low;
  const high = parsePortNumber(highText);
  if (typeof high === "string") return high;
  if (low > high) {
    return `port range ${low}-${high} has its low end above its high end (${PORT_SPEC_HINT})`;
  }

  const ranges: PortRange[] = [];
  for (const proto of protocols) {
    ranges.push(makeRange(low, high, proto));
  }
  return ranges;
}

/** Parses one port number 1-65535, or returns the reason it is invalid. */
function parsePortNumber(text: string): number | string {
  if (!DIGITS_PATTERN.test(text)) {
    return `${
      describeValue(text)
    } is not a port number or range (${PORT_SPEC_HINT})`;
  }
  const digits = text.replace(/^0+(?=[0-9])/, "");
  if (digits.length > MAX_PORT_DIGITS) {
    return `port ${digits} out of range ${MIN_PORT}-${MAX_PORT} (${PORT_SPEC_HINT})`;
  }
  const port = Number(digits);
  if (port < MIN_PORT || port > MAX_PORT) {
    return `port ${port} out of range ${MIN_PORT}-${MAX_PORT} (${PORT_SPEC_HINT})`;
  }
  return port;
}

/** Builds a range, leaving out `endPort` for a single port. */
function makeRange(low: number, high: number, proto: PortProtocol): PortRange {
  if (high > low) return { port: low, endPort: high, proto };
  return { port: low, proto };
}

/** Formats a range as a port spec: `22/tcp`, `8080-8090/tcp`. */
export function formatPortRange(range: PortRange): string {
  if (range.endPort !== undefined && range.endPort > range.port) {
    return `${range.port}-${range.endPort}/${range.proto}`;
  }
  return `${range.port}/${range.proto}`;
}

/**
 * Tells whether an `allowed_ports` entry names a port group rather than a
 * port spec: it has no `/`, no `-` and is not all digits.
 */
export function isGroupName(entry: string): boolean {
  if (typeof entry !== "string") return false;
  const text = entry.trim();
  if (text === "") return false;
  if (text.includes("/") || text.includes("-")) return false;
  if (DIGITS_PATTERN.test(text)) return false;
  return true;
}

/**
 * Sorts ranges (tcp before udp, then by port) and merges duplicates,
 * overlapping and adjacent ranges of the same protocol, so that each port
 * appears once.
 */
export function mergePortRanges(ranges: readonly PortRange[]): PortRange[] {
  const sorted = ranges.map((range) => ({
    proto: range.proto,
    low: range.port,
    high: range.endPort !== undefined && range.endPort > range.port
      ? range.endPort
      : range.port,
  }));
  sorted.sort((a, b) => {
    if (a.proto !== b.proto) return a.proto === "tcp" ? -1 : 1;
    if (a.low !== b.low) return a.low - b.low;
    return a.high - b.high;
  });

  const merged: PortRange[] = [];
  let current: { proto: PortProtocol; low: number; high: number } | null = null;
  for (const item of sorted) {
    if (
      current !== null && current.proto === item.proto &&
      item.low <= current.high + 1
    ) {
      if (item.high > current.high) current.high = item.high;
      continue;
    }
    if (current !== null) {
      merged.push(makeRange(current.low, current.high, current.proto));
    }
    current = { proto: item.proto, low: item.low, high: item.high };
  }
  if (current !== null) {
    merged.push(makeRange(current.low, current.high, current.proto));
  }
  return merged;
}

/** Tells whether two range lists cover exactly the same ports. */
export function samePortRanges(
  a: readonly PortRange[],
  b: readonly PortRange[],
): boolean {
  const left = mergePortRanges(a).map(formatPortRange);
  const right = mergePortRanges(b).map(formatPortRange);
  if (left.length !== right.length) return false;
  for (let i = 0; i < left.length; i++) {
    if (left[i] !== right[i]) return false;
  }
  return true;
}
