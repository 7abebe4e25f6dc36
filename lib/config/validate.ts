/**
 * Config sections read from a table of fields (key, default, check), each problem a ConfigError at its key's line.
 *
 * @module
 */

import { decodeBase64Key } from "../encoding.ts";
import { describeValue, type KeyPathSegment } from "./errors.ts";
import { errorAt, type YamlFile } from "./yaml_file.ts";

/** Host names and IP literals: no whitespace, quotes or control characters, at most 253 characters. */
// deno-lint-ignore no-control-regex
const HOST_PATTERN = /^[^\s"'`\\\u0000-\u001f\u007f]{1,253}$/;
/** Client and profile names: a letter or digit, then letters, digits, '.', '_', '@' or '-'. */
const NAME_PATTERN = /^[\p{L}\p{N}][\p{L}\p{N}._@-]*$/u;
/** What a good client or profile name looks like, for messages. */
export const NAME_HINT =
  "letters, digits, '.', '_', '-' or '@', starting with a letter or digit";
/** Longest client or profile name. */
const MAX_NAME_LENGTH = 64;

/** True for a YAML map converted to an object. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null &&
    !Array.isArray(value) && !(value instanceof Uint8Array);
}

/** Throws the ConfigError for a problem with the value being checked, at list item `index` if given, suggesting `expected` (default the field's hint, "" for none). */
export type Fail = (
  problem: string,
  options?: { expected?: string; index?: number },
) => never;

/** One key of a config section: what a good value looks like, its value when absent, and its check. */
export interface Field<T> {
  /** What a good value looks like, for messages. */
  hint: string;
  /** The value when the key is absent or null; a field without one is checked even then. */
  default?: T;
  /** Turns the value found into a typed one, or calls `fail`. */
  check(value: unknown, fail: Fail): T;
}

/** The typed values a table of fields gives, by key. */
export type FieldValues<F> = {
  [K in keyof F]: F[K] extends Field<infer T> ? T : never;
};

/** A map of a config file and the fields it may hold. */
export interface Section<F> {
  /** Where the map is, e.g. `["server"]`. */
  keyPath: readonly KeyPathSegment[];
  /** The map's plain value. */
  map: Record<string, unknown>;
  /** Its fields by key, checked in this order. */
  fields: F;
}

/** Checks every field of a section in table order and returns their values; throws ConfigError at the first problem. */
export function readSection<F extends Record<string, Field<unknown>>>(
  file: YamlFile,
  section: Section<F>,
): FieldValues<F> {
  const values: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(section.fields)) {
    const keyPath = [...section.keyPath, key];
    const value = Object.hasOwn(section.map, key) ? section.map[key] : null;
    if (
      (value === undefined || value === null) && field.default !== undefined
    ) {
      values[key] = field.default;
      continue;
    }
    values[key] = field.check(value, (problem, options = {}) => {
      throw errorAt(file, {
        keyPath: options.index === undefined
          ? keyPath
          : [...keyPath, options.index],
        problem,
        expected: options.expected ?? field.hint,
      });
    });
  }
  return values as FieldValues<F>;
}

/** One warning for each key of a section that is not in its table (kept in the file, otherwise ignored). */
export function unknownKeyWarnings(
  file: YamlFile,
  section: Section<object>,
): string[] {
  const known = Object.keys(section.fields);
  const unknown = Object.keys(section.map).filter((key) =>
    !known.includes(key)
  );
  return unknown.map((key) =>
    errorAt(file, {
      keyPath: [...section.keyPath, key],
      problem: "unknown key, ignored",
      expected: `known keys: ${known.join(", ")}`,
    }).message
  );
}

/** Why a client or profile name is not allowed, or null when it is fine. */
export function nameProblem(
  name: string,
  what: "client" | "profile",
): string | null {
  if (typeof name !== "string" || name === "") return `empty ${what} name`;
  if (name.length > MAX_NAME_LENGTH) {
    return `${what} name is ${name.length} characters, longer than ${MAX_NAME_LENGTH}`;
  }
  if (!NAME_PATTERN.test(name)) {
    return `invalid ${what} name ${describeValue(name)}`;
  }
  return null;
}

/** A host name or IP address field that reports an absent value as `missing`. */
export function hostField(hint: string, missing: string): Field<string> {
  return {
    hint,
    check(value: unknown, fail: Fail): string {
      if (value === undefined || value === null || value === "") fail(missing);
      if (typeof value !== "string") {
        fail(`expected a host name, got ${describeValue(value)}`);
      }
      if (!HOST_PATTERN.test(value.trim())) {
        fail(`invalid host ${describeValue(value)}`);
      }
      return value.trim();
    },
  };
}

/** A port field, 1-65535, with its value when absent. */
export function portField<D extends number | null>(
  fallback: D,
): Field<number | D> {
  return {
    hint: "an integer 1-65535, e.g. 54154",
    default: fallback,
    check(value: unknown, fail: Fail): number {
      if (typeof value !== "number" || !Number.isInteger(value)) {
        fail(`expected a port number, got ${describeValue(value)}`);
      }
      if (value < 1 || value > 65535) {
        fail(`port ${describeValue(value)} out of range 1-65535`);
      }
      return value;
    },
  };
}

/** A required base64 key field of one of the accepted sizes in bytes. */
export function keyField(
  hint: string,
  sizes: readonly number[],
): Field<Uint8Array> {
  return {
    hint,
    check(value: unknown, fail: Fail): Uint8Array {
      if (value !== undefined && value !== null && typeof value !== "string") {
        fail(`expected base64 text, got ${describeValue(value)}`);
      }
      const decoded = decodeBase64Key(value ?? "", sizes);
      if (!decoded.ok) fail(decoded.reason);
      return decoded.bytes;
    },
  };
}

/** A true/false field with its value when absent. */
export function booleanField(fallback: boolean): Field<boolean> {
  return {
    hint: "true or false",
    default: fallback,
    check(value: unknown, fail: Fail): boolean {
      if (typeof value !== "boolean") {
        fail(`expected true or false, got ${describeValue(value)}`);
      }
      return value;
    },
  };
}
