/**
 * Port specs (`22`, `22/tcp`, `80-82`, `80-82/udp`) parsed into typed port ranges.
 *
 * @module
 */

import { describeValue } from "./errors.ts";

/** One port or an inclusive port range for one protocol. */
export interface PortRange {
  /** First (or only) port, 1-65535. */
  port: number;
  /** Last port of the range; present only when greater than `port`. */
  endPort?: number;
  /** Protocol the range applies to. */
  proto: "tcp" | "udp";
}

/** What a good port spec looks like, appended to every error reason. */
const PORT_SPEC_HINT = "expected e.g. 22/tcp or 8080-8090/tcp";

/** Parses a port spec into its ranges (tcp and udp without a protocol), or returns why it is invalid. */
export function parsePortSpec(text: string): PortRange[] | string {
  const spec = text.trim();
  if (spec === "") return `empty port spec (${PORT_SPEC_HINT})`;
  const parts = spec.split("/");
  if (parts.length > 2) {
    return `port spec ${
      describeValue(spec)
    } has more than one "/" (${PORT_SPEC_HINT})`;
  }
  const protocol = parts.length === 2 ? parts[1].trim() : "";
  const protocols: PortRange["proto"][] = [];
  if (parts.length === 1) protocols.push("tcp", "udp");
  if (protocol.toLowerCase() === "tcp") protocols.push("tcp");
  if (protocol.toLowerCase() === "udp") protocols.push("udp");
  if (protocols.length === 0) {
    return `unknown protocol ${describeValue(protocol)} in port spec ${
      describeValue(spec)
    } (expected tcp or udp, e.g. 22/tcp)`;
  }
  const bounds = parts[0].split("-");
  if (bounds.length > 2) {
    return `port spec ${
      describeValue(spec)
    } has more than one "-" (${PORT_SPEC_HINT})`;
  }
  const low = parsePortNumber(bounds[0].trim());
  if (typeof low === "string") return low;
  const high = bounds.length === 2 ? parsePortNumber(bounds[1].trim()) : low;
  if (typeof high === "string") return high;
  if (low > high) {
    return `port range ${low}-${high} has its low end above its high end (${PORT_SPEC_HINT})`;
  }
  return protocols.map((proto) => makeRange(low, high, proto));
}

/** Parses one port number 1-65535, or returns why it is invalid. */
function parsePortNumber(text: string): number | string {
  if (!/^[0-9]+$/.test(text)) {
    return `${
      describeValue(text)
    } is not a port number or range (${PORT_SPEC_HINT})`;
  }
  const digits = text.replace(/^0+(?=[0-9])/, "");
  if (digits.length > 5 || Number(digits) < 1 || Number(digits) > 65535) {
    return `port ${digits} out of range 1-65535 (${PORT_SPEC_HINT})`;
  }
  return Number(digits);
}

/** A range, without `endPort` for a single port. */
function makeRange(
  low: number,
  high: number,
  proto: PortRange["proto"],
): PortRange {
  return high > low
    ? { port: low, endPort: high, proto }
    : { port: low, proto };
}

/** Formats a range as a port spec: `22/tcp`, `8080-8090/tcp`. */
export function formatPortRange(range: PortRange): string {
  if (range.endPort !== undefined && range.endPort > range.port) {
    return `${range.port}-${range.endPort}/${range.proto}`;
  }
  return `${range.port}/${range.proto}`;
}

/** Tells whether an `allowed_ports` entry names a port group: no `/`, no `-`, not all digits. */
export function isGroupName(entry: string): boolean {
  const text = entry.trim();
  return text !== "" && !/[/-]/.test(text) && !/^[0-9]+$/.test(text);
}

/** Sorts ranges (tcp first, then by port) and merges overlapping and adjacent ones, so that each port appears once. */
export function mergePortRanges(ranges: readonly PortRange[]): PortRange[] {
  const sorted = ranges.map((range) => ({
    proto: range.proto,
    low: range.port,
    high: Math.max(range.port, range.endPort ?? range.port),
  })).sort((a, b) =>
    a.proto !== b.proto
      ? (a.proto === "tcp" ? -1 : 1)
      : a.low - b.low || a.high - b.high
  );
  const merged: typeof sorted = [];
  for (const item of sorted) {
    const last = merged.at(-1);
    if (last?.proto === item.proto && item.low <= last.high + 1) {
      last.high = Math.max(last.high, item.high);
    } else {
      merged.push(item);
    }
  }
  return merged.map((item) => makeRange(item.low, item.high, item.proto));
}
