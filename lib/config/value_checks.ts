/**
 * Value checks shared by the config files that need no YAML: a problem at a
 * key path, maps, host and profile names, base64 keys and ports. Each check
 * hands its problem to a {@linkcode ReportProblem} callback, so the full
 * loader can place it at a line of the YAML and the fast client loader can
 * fall back to the full one.
 *
 * @module
 */

import { decodeBase64Key } from "../encoding.ts";
import { describeValue, type KeyPathSegment } from "./errors.ts";

/** Config files larger than this are refused before parsing. */
export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

/** Permission bits that let other users read a config file, which holds a private key. */
export const LOOSE_MODE_BITS = 0o077;

/** Host names and IP literals: no whitespace, quotes or control characters, at most 253 characters. */
// deno-lint-ignore no-control-regex
export const HOST_PATTERN = /^[^\s"'`\\\u0000-\u001f\u007f]{1,253}$/;
/** Client and profile names: a letter or digit, then letters, digits, '.', '_', '@' or '-'. */
export const NAME_PATTERN = /^[\p{L}\p{N}][\p{L}\p{N}._@-]*$/u;
/** The ASCII names {@linkcode NAME_PATTERN} accepts, tested first: it compiles in a fraction of the time, which `openme knock` start-up notices. */
export const ASCII_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@-]*$/;
/** What a good client or profile name looks like, for messages. */
export const NAME_HINT =
  "letters, digits, '.', '_', '-' or '@', starting with a letter or digit";
/** What a good port value looks like, for messages. */
export const PORT_HINT = "an integer 1-65535, e.g. 54154";

/** A problem at a key path of a config file. */
export interface ProblemAt {
  /** Where the problem is, e.g. `["clients", "bob", "expires"]`; empty for the whole file. */
  keyPath: readonly KeyPathSegment[];
  /** What failed, including the offending value. */
  problem: string;
  /** What a good value looks like, or what to do. */
  expected?: string;
}

/** Receives a problem found by a check and throws. */
export type ReportProblem = (at: ProblemAt) => never;

/** True for a YAML map converted to an object. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null &&
    !Array.isArray(value) && !(value instanceof Uint8Array);
}

/** A required base64 key for {@linkcode checkKey}. */
export interface KeyField {
  /** Where the key is. */
  keyPath: readonly KeyPathSegment[];
  /** The value found there. */
  value: unknown;
  /** Accepted decoded sizes in bytes. */
  sizes: readonly number[];
  /** What the key is, for messages. */
  hint: string;
}

/** Decodes a required base64 key of one of the accepted sizes; reports a problem at its key path. */
export function checkKey(field: KeyField, report: ReportProblem): Uint8Array {
  const value = field.value;
  if (value !== undefined && value !== null && typeof value !== "string") {
    report({
      keyPath: field.keyPath,
      problem: `expected base64 text, got ${describeValue(value)}`,
      expected: field.hint,
    });
  }
  const decoded = decodeBase64Key(value ?? "", { sizes: [...field.sizes] });
  if (!decoded.ok) {
    report({
      keyPath: field.keyPath,
      problem: decoded.reason,
      expected: field.hint,
    });
  }
  return decoded.bytes;
}

/** An optional port for {@linkcode checkOptionalPort}. */
export interface PortField {
  /** Where the port is. */
  keyPath: readonly KeyPathSegment[];
  /** The value found there (undefined or null when absent). */
  value: unknown;
  /** The port when the value is absent. */
  fallback: number;
}

/** Returns the port 1-65535, or the fallback when absent; reports a problem at its key path. */
export function checkOptionalPort(
  field: PortField,
  report: ReportProblem,
): number {
  const value = field.value;
  if (value === undefined || value === null) return field.fallback;
  if (typeof value !== "number" || !Number.isInteger(value)) {
    report({
      keyPath: field.keyPath,
      problem: `expected a port number, got ${describeValue(value)}`,
      expected: PORT_HINT,
    });
  }
  if (value < 1 || value > 65535) {
    report({
      keyPath: field.keyPath,
      problem: `port ${describeValue(value)} out of range 1-65535`,
      expected: PORT_HINT,
    });
  }
  return value;
}
