/**
 * A reader for the plain shape of YAML that config files are written in:
 * nested maps of `key: value` lines indented with spaces, comments, blank
 * lines, quoted strings without escapes and decimal integers. Anything else
 * (sequences, flow collections, anchors, tags, escapes, multi-line values,
 * tabs, duplicate keys, values YAML would read as null, booleans or floats)
 * is "unsupported", and the caller reads the file with the full YAML
 * package instead. Whatever this reader accepts, the `yaml` package reads
 * to the same values (tests/config/plain_yaml_test.ts compares the two).
 *
 * It exists so that `openme knock` can read the client config without
 * loading the YAML package, which costs more start-up time than the knock.
 *
 * @module
 */

/** A value read from plain YAML: a string, a decimal integer, null, or a map. */
export type PlainValue = string | number | null | PlainMap;

/** A map read from plain YAML, keys in file order. */
export interface PlainMap {
  /** Value of each key. */
  [key: string]: PlainValue;
}

/** What {@linkcode readPlainYaml} found: the document's value, or why the full YAML reader is needed. */
export type PlainYamlResult =
  | { ok: true; value: PlainMap | null }
  | { ok: false; reason: string };

/** Longest decimal integer read as a number (15 digits stay exact in a double). */
export const MAX_INTEGER_DIGITS = 15;

/** Keys that YAML or JavaScript objects treat specially, in lower case. */
const SPECIAL_KEYS: ReadonlySet<string> = new Set([
  "true",
  "false",
  "null",
  "yes",
  "no",
  "on",
  "off",
  "y",
  "n",
  "__proto__",
]);

/** Characters that start something other than a plain string (YAML indicators). */
const INDICATORS = "-?:,[]{}#&*!|>'\"%@`";

/** Every character any scalar in {@linkcode NON_STRING_SCALARS} can hold; a value with another character is a string. */
const NON_STRING_CHARACTERS = "-+.0123456789abcdefABCDEFinINlLoOrRsStTuUxX~";

/** Plain scalars the YAML 1.2 core schema reads as something other than a string (as the yaml package tests them). */
const NON_STRING_SCALARS: readonly RegExp[] = [
  /^(?:~|[Nn]ull|NULL)?$/,
  /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/,
  /^0o[0-7]+$/,
  /^[-+]?[0-9]+$/,
  /^0x[0-9a-fA-F]+$/,
  /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/,
  /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/,
  /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/,
];

// The checks below are loops over characters rather than regular
// expressions: `openme knock` runs each once, and compiling a dozen
// expressions took longer than reading the file.

const CODE_LF = 0x0a;
const CODE_CR = 0x0d;
const CODE_SPACE = 0x20;
const CODE_DEL = 0x7f;
const CODE_LAST_C1 = 0x9f;
const CODE_LINE_SEPARATOR = 0x2028;
const CODE_PARAGRAPH_SEPARATOR = 0x2029;
const CODE_BYTE_ORDER_MARK = 0xfeff;

/** Whether the text holds a character the full reader treats specially or rejects: a tab or other control character (a carriage return outside CRLF), a line or paragraph separator, a byte order mark. */
function hasAwkwardCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < CODE_SPACE) {
      if (code === CODE_LF) continue;
      // A carriage return only as part of CRLF: YAML reads a lone one as
      // content, which this reader would not.
      if (code === CODE_CR && text.charCodeAt(i + 1) === CODE_LF) continue;
      return true;
    }
    if (code >= CODE_DEL && code <= CODE_LAST_C1) return true;
    if (
      code === CODE_LINE_SEPARATOR || code === CODE_PARAGRAPH_SEPARATOR ||
      code === CODE_BYTE_ORDER_MARK
    ) {
      return true;
    }
  }
  return false;
}

function isAsciiLetter(char: string): boolean {
  return (char >= "a" && char <= "z") || (char >= "A" && char <= "Z");
}

function isDigit(char: string): boolean {
  return char >= "0" && char <= "9";
}

/** A key may start with an ASCII letter or `_` (other keys go to the full reader). */
function isKeyStart(char: string): boolean {
  return isAsciiLetter(char) || char === "_";
}

/** After its first character a key may hold ASCII letters, digits, `.`, `_`, `@` and `-`. */
function isKeyCharacter(char: string): boolean {
  return isAsciiLetter(char) || isDigit(char) || char === "." ||
    char === "_" || char === "@" || char === "-";
}

/** How many U+0020 spaces stand in `text` from `start` on. */
function countSpaces(text: string, start: number): number {
  let end = start;
  while (end < text.length && text[end] === " ") end++;
  return end - start;
}

/** The text without the U+0020 spaces at its end (other white space stays: YAML reads it as content). */
function trimTrailingSpaces(text: string): string {
  let end = text.length;
  while (end > 0 && text[end - 1] === " ") end--;
  return text.slice(0, end);
}

/** A `key: value` line split in two, or null when it is not one (the value is "" for `key:`). */
function splitKeyLine(line: string): { key: string; value: string } | null {
  if (line.length === 0 || !isKeyStart(line[0])) return null;
  let end = 1;
  while (end < line.length && isKeyCharacter(line[end])) end++;
  if (line[end] !== ":") return null;
  const key = line.slice(0, end);
  if (end + 1 === line.length) return { key, value: "" };
  if (line[end + 1] !== " ") return null;
  const start = end + 1 + countSpaces(line, end + 1);
  return { key, value: line.slice(start) };
}

/** A decimal integer without sign or leading zero, of at most {@linkcode MAX_INTEGER_DIGITS} digits. */
function isPlainInteger(text: string): boolean {
  if (text.length === 0 || text.length > MAX_INTEGER_DIGITS) return false;
  if (text[0] === "0") return text.length === 1;
  for (const char of text) {
    if (!isDigit(char)) return false;
  }
  return true;
}

/** Whether YAML's core schema could read the plain scalar as null, a boolean or a number. */
function mayNotBeString(text: string): boolean {
  for (const char of text) {
    if (!NON_STRING_CHARACTERS.includes(char)) return false;
  }
  return NON_STRING_SCALARS.some((pattern) => pattern.test(text));
}

/** What may follow a quoted string on its line: spaces, or spaces and a comment. */
function isQuotedStringEnd(rest: string): boolean {
  const spaces = countSpaces(rest, 0);
  return spaces === rest.length || (spaces > 0 && rest[spaces] === "#");
}

/** A scalar read from a value, the marker for "no value" (a map may follow), or why it is unsupported. */
type ScalarResult =
  | { kind: "value"; value: string | number }
  | { kind: "empty" }
  | { kind: "unsupported"; reason: string };

/** One open map while reading: its indentation and the map. */
interface OpenMap {
  indent: number;
  map: PlainMap;
}

/** A key whose value is empty so far: a more indented map may follow. */
interface PendingKey {
  indent: number;
  map: PlainMap;
  key: string;
}

/** Reads plain YAML text; returns the value, or why the full YAML reader is needed. */
export function readPlainYaml(text: string): PlainYamlResult {
  if (hasAwkwardCharacter(text)) {
    return unsupported("a control or special character");
  }
  const root: PlainMap = {};
  const open: OpenMap[] = [{ indent: 0, map: root }];
  let pending: PendingKey | null = null;
  let sawKey = false;
  const lines = text.split("\n");
  for (let index = 0; index < lines.length; index++) {
    let line = lines[index];
    if (line.endsWith("\r")) line = line.slice(0, -1);
    // Only U+0020 indents or ends a line in YAML; other white space (tab,
    // no-break space, ...) is content or an error, and goes to the full reader.
    const indent = countSpaces(line, 0);
    const rest = line.slice(indent);
    if (rest === "" || rest.startsWith("#")) continue;
    const where = `line ${index + 1}`;
    const split = splitKeyLine(rest);
    if (split === null) return unsupported(`${where} is not a plain key`);
    const key = split.key;
    if (SPECIAL_KEYS.has(key.toLowerCase())) {
      return unsupported(`${where}: key ${key}`);
    }

    if (pending !== null) {
      if (indent > pending.indent) {
        const child: PlainMap = {};
        pending.map[pending.key] = child;
        open.push({ indent, map: child });
      }
      pending = null;
    }
    while (open[open.length - 1].indent > indent) open.pop();
    const current = open[open.length - 1];
    if (current.indent !== indent) {
      return unsupported(`${where}: indentation`);
    }
    if (Object.hasOwn(current.map, key)) {
      return unsupported(`${where}: duplicate key ${key}`);
    }
    const scalar = readScalar(split.value);
    if (scalar.kind === "unsupported") {
      return unsupported(`${where}: ${scalar.reason}`);
    }
    sawKey = true;
    if (scalar.kind === "empty") {
      current.map[key] = null;
      pending = { indent, map: current.map, key };
    } else {
      current.map[key] = scalar.value;
    }
  }
  return { ok: true, value: sawKey ? root : null };
}

function unsupported(reason: string): PlainYamlResult {
  return { ok: false, reason };
}

/** Reads the value part of a `key: value` line. */
function readScalar(text: string): ScalarResult {
  if (text === "" || text.startsWith("#")) return { kind: "empty" };
  if (text.startsWith('"')) return readDoubleQuoted(text);
  if (text.startsWith("'")) return readSingleQuoted(text);
  const comment = text.indexOf(" #");
  const value = trimTrailingSpaces(comment < 0 ? text : text.slice(0, comment));
  if (isPlainInteger(value)) return { kind: "value", value: Number(value) };
  if (value.length > 0 && INDICATORS.includes(value[0])) {
    return {
      kind: "unsupported",
      reason: "a value starting with an indicator",
    };
  }
  if (mayNotBeString(value)) {
    return { kind: "unsupported", reason: "a value that is not a string" };
  }
  if (value.includes(": ") || value.endsWith(":")) {
    return { kind: "unsupported", reason: "a colon in a plain value" };
  }
  return { kind: "value", value };
}

/** A double-quoted string on one line, without escapes. */
function readDoubleQuoted(text: string): ScalarResult {
  const end = text.indexOf('"', 1);
  if (end < 0) return { kind: "unsupported", reason: "an unclosed string" };
  const value = text.slice(1, end);
  if (value.includes("\\")) {
    return { kind: "unsupported", reason: "an escape in a string" };
  }
  if (!isQuotedStringEnd(text.slice(end + 1))) {
    return { kind: "unsupported", reason: "text after a string" };
  }
  return { kind: "value", value };
}

/** A single-quoted string on one line (`''` is one quote). */
function readSingleQuoted(text: string): ScalarResult {
  let value = "";
  let index = 1;
  while (index < text.length) {
    const char = text[index];
    if (char !== "'") {
      value += char;
      index++;
      continue;
    }
    if (text[index + 1] === "'") {
      value += "'";
      index += 2;
      continue;
    }
    if (!isQuotedStringEnd(text.slice(index + 1))) {
      return { kind: "unsupported", reason: "text after a string" };
    }
    return { kind: "value", value };
  }
  return { kind: "unsupported", reason: "an unclosed string" };
}
