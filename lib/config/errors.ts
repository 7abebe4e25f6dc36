/**
 * The error every config module throws, and the one-line message format shared
 * by errors and warnings:
 * `config <file>:<line>: <key.path>: <what failed> (<what a good value looks like>)`.
 *
 * @module
 */

/** One segment of a key path: a map key or a list index. */
export type KeyPathSegment = string | number;

/** Parts of a config message; see {@linkcode formatConfigMessage}. */
export interface ConfigMessageParts {
  /** The config file the message is about. */
  file: string;
  /** 1-based line in the file, when known. */
  line?: number;
  /** Dotted key path such as `clients.bob.allowed_ports[1]`, when known. */
  keyPath?: string;
  /** What failed, including the offending value. */
  problem: string;
  /** What a good value looks like, or what to do; shown in parentheses. */
  expected?: string;
}

/** Options for the {@linkcode ConfigError} constructor. */
export interface ConfigErrorOptions extends ConfigMessageParts {
  /** The underlying error, if any (kept for debugging, not shown). */
  cause?: unknown;
}

/** A config file could not be read, parsed, validated or written. */
export class ConfigError extends Error {
  /** The config file the error is about. */
  readonly file: string;
  /** 1-based line in the file, when known. */
  readonly line?: number;
  /** Dotted key path such as `clients.bob.allowed_ports[1]`, when known. */
  readonly keyPath?: string;
  /** What failed, without file, line or key path. */
  readonly problem: string;
  /** What a good value looks like, or what to do. */
  readonly expected?: string;

  /** Builds the error and its one-line message from its parts. */
  constructor(options: ConfigErrorOptions) {
    super(
      formatConfigMessage(options),
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "ConfigError";
    this.file = options.file;
    this.line = options.line;
    this.keyPath = options.keyPath;
    this.problem = options.problem;
    this.expected = options.expected;
  }
}

/** Formats `config <file>:<line>: <key.path>: <problem> (<expected>)`, leaving out unknown parts. */
export function formatConfigMessage(parts: ConfigMessageParts): string {
  let message = `config ${parts.file}`;
  if (parts.line !== undefined) message += `:${parts.line}`;
  message += ": ";
  if (parts.keyPath !== undefined && parts.keyPath !== "") {
    message += `${parts.keyPath}: `;
  }
  message += parts.problem;
  if (parts.expected !== undefined && parts.expected !== "") {
    message += ` (${parts.expected})`;
  }
  return oneLine(message);
}

/**
 * Strings longer than this many UTF-16 code units are shortened in messages;
 * as long as the longest client or profile name, so that names are shown whole.
 */
const MAX_SHOWN_STRING = 64;

const PLAIN_KEY_PATTERN = /^[\p{L}\p{N}_-]+$/u;

/** Formats key path segments as `clients.bob.allowed_ports[1]`; odd or long keys are quoted (and shortened): `clients["a.b"]`. */
export function formatKeyPath(segments: readonly KeyPathSegment[]): string {
  let out = "";
  for (const segment of segments) {
    if (typeof segment === "number") {
      out += `[${segment}]`;
    } else if (
      segment.length <= MAX_SHOWN_STRING && PLAIN_KEY_PATTERN.test(segment)
    ) {
      out += out === "" ? segment : `.${segment}`;
    } else {
      out += `[${describeText(segment)}]`;
    }
  }
  return out;
}

/** Describes a parsed YAML value for a message, on one line and shortened: `"dev0ps"`, `70000`, `a list`. */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return "nothing";
  if (typeof value === "string") return describeText(value);
  if (typeof value === "number") {
    if (Number.isNaN(value)) return "NaN";
    if (!Number.isFinite(value)) return value > 0 ? "infinity" : "-infinity";
    return String(value);
  }
  if (typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return "a list";
  if (value instanceof Uint8Array) return "binary data";
  if (typeof value === "object") return "a map";
  return typeof value;
}

/**
 * Quotes text for a message as JSON does; text longer than 64 code units is
 * cut to its first 64 (never inside a surrogate pair) and followed by its
 * length: `"xxxx"…(70000 characters)`.
 */
function describeText(text: string): string {
  if (text.length <= MAX_SHOWN_STRING) return JSON.stringify(text);
  let end = MAX_SHOWN_STRING;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return `${JSON.stringify(text.slice(0, end))}\u2026(${
    countCharacters(text)
  } characters)`;
}

/** Number of Unicode code points in `text`. */
function countCharacters(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

/** Replaces line breaks and other control characters so that a message stays on one line. */
function oneLine(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\u0000-\u001f\u007f]+/g, " ");
}
