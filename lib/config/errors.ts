/**
 * The one-line error every config module throws, and the helpers that describe values in it.
 *
 * @module
 */

/** One segment of a key path: a map key or a list index. */
export type KeyPathSegment = string | number;

/** The parts of a {@linkcode ConfigError}'s message, `config <file>:<line>: <key.path>: <problem> (<expected>)`, which warnings share. */
export interface ConfigErrorOptions {
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
  /** The underlying error, if any (kept for debugging, not shown). */
  cause?: unknown;
}

/** Line breaks and other control characters, which would split a message. */
// deno-lint-ignore no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]+/g;

/** A config file could not be read, parsed, validated or written. */
export class ConfigError extends Error {
  /** Builds the one-line message from its parts. */
  constructor(options: ConfigErrorOptions) {
    let message = `config ${options.file}`;
    if (options.line !== undefined) message += `:${options.line}`;
    message += ": ";
    if (options.keyPath) message += `${options.keyPath}: `;
    message += options.problem;
    if (options.expected) message += ` (${options.expected})`;
    super(
      message.replace(CONTROL_CHARACTERS, " "),
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "ConfigError";
  }
}

/** Strings longer than this (the longest client or profile name) are shortened in messages. */
const MAX_SHOWN_STRING = 64;

const PLAIN_KEY_PATTERN = /^[\p{L}\p{N}_-]+$/u;

/** Formats key path segments as `clients.bob.allowed_ports[1]`, quoting odd keys: `clients["a.b"]`. */
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

/** Quotes text as JSON does; longer than 64 code units, cut as {@linkcode shortenText} cuts. */
function describeText(text: string): string {
  if (text.length <= MAX_SHOWN_STRING) return JSON.stringify(text);
  return `${JSON.stringify(cutText(text, MAX_SHOWN_STRING))}\u2026(${
    [...text].length
  } characters)`;
}

/** Text longer than `maxLength` code units cut to them (never inside a surrogate pair) and followed by its length: `xx…(70000 characters)`. */
export function shortenText(text: string, maxLength: number): string {
  if (text.length <= maxLength) return text;
  return `${cutText(text, maxLength)}\u2026(${[...text].length} characters)`;
}

/** The first `maxLength` code units of `text`, one fewer when the last would be half a surrogate pair. */
function cutText(text: string, maxLength: number): string {
  const last = text.charCodeAt(maxLength - 1);
  const end = last >= 0xd800 && last <= 0xdbff ? maxLength - 1 : maxLength;
  return text.slice(0, end);
}

/** The first line of an unknown thrown value's message. */
export function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n", 1)[0].trim();
}
