/**
 * Literal values for tests: addresses and byte strings written as text,
 * failing loudly when the text itself is wrong.
 *
 * @module
 */

import { type IpAddress, parseIp } from "../../lib/ip.ts";

/** Parses an address written in a test; throws when it is not one. */
export function ip(text: string): IpAddress {
  const parsed = parseIp(text);
  if (parsed === null) throw new Error(`bad address in test: ${text}`);
  return parsed;
}

/** Decodes hex written in a test, ignoring whitespace and `:` separators; throws when it is not hex. */
export function hex(text: string): Uint8Array {
  return Uint8Array.fromHex(text.replace(/[\s:]/g, ""));
}
