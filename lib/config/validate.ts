/**
 * Validation helpers shared by the server and client config files: errors
 * located at a key path of the YAML, the value checks both files need
 * (base64 keys, ports, host and profile names), the loose file mode warning,
 * and the check an edited file must pass before it is written.
 *
 * @module
 */

import { ConfigError, formatKeyPath } from "./errors.ts";
import { lineOfKeyPath, type YamlSource } from "./file_io.ts";
import {
  checkKey,
  checkOptionalPort,
  type KeyField,
  LOOSE_MODE_BITS,
  type PortField,
  type ProblemAt,
  type ReportProblem,
} from "./value_checks.ts";

export {
  HOST_PATTERN,
  isRecord,
  type KeyField,
  NAME_HINT,
  NAME_PATTERN,
  PORT_HINT,
  type PortField,
  type ProblemAt,
} from "./value_checks.ts";

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

/** A {@linkcode ReportProblem} that throws a ConfigError placed at the line of the key path in the YAML. */
export function reportAt(source: YamlSource): ReportProblem {
  return function throwAt(at: ProblemAt): never {
    throw configErrorAt(source, at);
  };
}

/** Decodes a required base64 key of one of the accepted sizes; throws ConfigError at its key path. */
export function requireKey(source: YamlSource, field: KeyField): Uint8Array {
  return checkKey(field, reportAt(source));
}

/** Returns the port 1-65535, or the fallback when absent; throws ConfigError at its key path. */
export function optionalPort(source: YamlSource, field: PortField): number {
  return checkOptionalPort(field, reportAt(source));
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
  if (source.mode === null || (source.mode & LOOSE_MODE_BITS) === 0) {
    return null;
  }
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
