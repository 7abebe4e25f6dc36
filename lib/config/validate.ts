/**
 * Validation helpers shared by the server and client config files: errors
 * located at a key path of the YAML, the value checks both files need
 * (base64 keys, ports, host and profile names), the loose file mode warning,
 * and the check an edited file must pass before it is written.
 *
 * @module
 */

import { decodeBase64Key } from "../encoding.ts";
import {
  ConfigError,
  describeValue,
  formatKeyPath,
  type KeyPathSegment,
} from "./errors.ts";
import { lineOfKeyPath, type YamlSource } from "./file_io.ts";

/** Host names and IP literals: no whitespace, quotes or control characters, at most 253 characters. */
// deno-lint-ignore no-control-regex
export const HOST_PATTERN = /^[^\s"'`\\\u0000-\u001f\u007f]{1,253}$/;
/** Client and profile names: a letter or digit, then letters, digits, '.', '_', '@' or '-'. */
export const NAME_PATTERN = /^[\p{L}\p{N}][\p{L}\p{N}._@-]*$/u;
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

/** Builds a ConfigError at a key path, with the line taken from the YAML. */
export function configErrorAt(source: YamlSource, at: ProblemAt): ConfigError {
  return new ConfigError({
    file: source.path,
    line: lineOfKeyPath(source, at.keyPath),
    keyPath: at.keyPath.length === 0 ? undefined : formatKeyPath(at.keyPath),
    problem: at.problem,
    expected: at.expected,
  });
}

/** True for a YAML map converted to an object. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null &&
    !Array.isArray(value) && !(value instanceof Uint8Array);
}

/** A required base64 key for {@linkcode requireKey}. */
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

/** Decodes a required base64 key of one of the accepted sizes; throws ConfigError at its key path. */
export function requireKey(source: YamlSource, field: KeyField): Uint8Array {
  const value = field.value;
  if (value !== undefined && value !== null && typeof value !== "string") {
    throw configErrorAt(source, {
      keyPath: field.keyPath,
      problem: `expected base64 text, got ${describeValue(value)}`,
      expected: field.hint,
    });
  }
  const decoded = decodeBase64Key(value ?? "", { sizes: [...field.sizes] });
  if (!decoded.ok) {
    throw configErrorAt(source, {
      keyPath: field.keyPath,
      problem: decoded.reason,
      expected: field.hint,
    });
  }
  return decoded.bytes;
}

/** An optional port for {@linkcode optionalPort}. */
export interface PortField {
  /** Where the port is. */
  keyPath: readonly KeyPathSegment[];
  /** The value found there (undefined or null when absent). */
  value: unknown;
  /** The port when the value is absent. */
  fallback: number;
}

/** Returns the port 1-65535, or the fallback when absent; throws ConfigError at its key path. */
export function optionalPort(source: YamlSource, field: PortField): number {
  const value = field.value;
  if (value === undefined || value === null) return field.fallback;
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw configErrorAt(source, {
      keyPath: field.keyPath,
      problem: `expected a port number, got ${describeValue(value)}`,
      expected: PORT_HINT,
    });
  }
  if (value < 1 || value > 65535) {
    throw configErrorAt(source, {
      keyPath: field.keyPath,
      problem: `port ${describeValue(value)} out of range 1-65535`,
      expected: PORT_HINT,
    });
  }
  return value;
}

/**
 * The warning for a config file read from disk that other users may read
 * (`secret` names what they could read), or null when its mode is fine or
 * unknown.
 */
export function looseModeWarning(
  source: YamlSource,
  secret: string,
): string | null {
  if (source.mode === null || (source.mode & 0o077) === 0) return null;
  return `config ${source.path}: file mode ${
    source.mode.toString(8).padStart(4, "0")
  } lets other users read ${secret} (run chmod 600 ${source.path})`;
}

/**
 * The same ConfigError for `file` without a line: for a problem found in
 * generated text, whose line numbers would point into the wrong file.
 */
export function withoutGeneratedLine(
  error: ConfigError,
  file: string,
): ConfigError {
  return new ConfigError({
    file,
    keyPath: error.keyPath,
    problem: error.problem,
    expected: error.expected,
  });
}

/** Runs a check of an edited file's text, treating a thrown error as a failed check. */
export function passesCheck(
  check: (text: string) => boolean,
  text: string,
): boolean {
  try {
    return check(text);
  } catch {
    return false;
  }
}
