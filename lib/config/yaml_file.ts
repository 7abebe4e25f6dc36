/**
 * Config files as YAML Documents that keep comments and positions: read, checked, changed and written.
 *
 * @module
 */

import { isDeepStrictEqual } from "node:util";
import { dirname } from "node:path";
import {
  type CST,
  Document,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  visit,
  type YAMLError,
  YAMLMap,
} from "yaml";
import { atomicWriteFile } from "./atomic_write.ts";
import {
  ConfigError,
  describeValue,
  errorText,
  formatKeyPath,
  type KeyPathSegment,
  shortenText,
} from "./errors.ts";

/** Config files larger than this are refused before parsing. */
export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

/** Most alias expansions allowed when converting YAML to values (bounds "billion laughs" files). */
const MAX_YAML_ALIAS_COUNT = 100;

/** Longest yaml package message shown; longer ones quote the file and are cut. */
const MAX_YAML_MESSAGE_CHARS = 200;

/** Permission bits that let other users read a config file. */
const LOOSE_MODE_BITS = 0o077;

const IS_WINDOWS = Deno.build.os === "windows";

/** How edited Documents are written: no line folding, `[a, b]` flow lists. */
const TO_STRING_OPTIONS = { lineWidth: 0, flowCollectionPadding: false };

/** A parsed YAML config file. */
export interface YamlFile {
  /** Path used in messages. */
  path: string;
  /** The file's text. */
  text: string;
  /** Non-fatal YAML warnings, formatted as config messages. */
  warnings: string[];
  /** Permission bits when read from disk; null for text or on Windows. */
  mode: number | null;
  /** Owner uid when read from disk; null on Windows. */
  uid?: number | null;
  /** Owner gid when read from disk; null on Windows. */
  gid?: number | null;
  /**
   * The Document, with comments and source ranges.
   * @ignore
   */
  doc: Document;
  /** The 1-based line of a text offset; undefined for generated text, whose lines mean nothing to the user. */
  lineAt(offset: number): number | undefined;
}

/** Parses YAML text (`generated` for text openme made and has not written, whose messages name no line); throws ConfigError at the first syntax error or duplicate key. */
export function parseYamlFile(
  text: string,
  options: { path: string; generated?: boolean },
): YamlFile {
  const path = options.path;
  const lineCounter = new LineCounter();
  function lineAt(offset: number): number | undefined {
    return options.generated ? undefined : lineCounter.linePos(offset).line;
  }
  // The yaml package reports even a stack overflow as an error of the
  // Document. Its own duplicate-key check compares each key with every
  // earlier one (3.7 s for 20,000 clients): ours below is linear.
  const doc = parseDocument(text, {
    lineCounter,
    prettyErrors: false,
    uniqueKeys: false,
    logLevel: "error",
    keepSourceTokens: true,
  });
  // A syntax error is reported before a duplicate key.
  const first = doc.errors[0];
  const key = first === undefined ? firstDuplicateKey(doc) : null;
  if (key !== null) {
    throw new ConfigError({
      file: path,
      line: lineAt(key.offset),
      keyPath: formatKeyPath(key.keyPath),
      problem: `invalid YAML: duplicate key ${
        describeValue(key.keyPath.at(-1))
      }`,
      expected: "map keys must be unique: remove or rename one of them",
    });
  }
  if (first !== undefined) {
    const multiple = first.code === "MULTIPLE_DOCS";
    const opened = unclosedAt(doc, first);
    throw new ConfigError({
      file: path,
      line: lineAt(opened?.offset ?? first.pos[0]),
      problem: multiple
        ? "invalid YAML: the file holds more than one YAML document"
        : opened !== undefined
        ? `invalid YAML: the ${opened.open} opened on this line is never closed`
        : `invalid YAML: ${yamlMessage(first.message)}`,
      expected: multiple
        ? "keep a single document: remove the --- line and what follows it, or merge them"
        : opened !== undefined
        ? `add the missing ${opened.close}; the parser noticed at line ${
          lineAt(first.pos[0])
        }`
        : "fix the YAML syntax at that line",
      cause: first,
    });
  }
  const warnings = doc.warnings.map((warning) =>
    `config ${path}:${lineAt(warning.pos[0])}: YAML warning: ${
      yamlMessage(warning.message)
    }`
  );
  return { path, text, warnings, mode: null, doc, lineAt };
}

/** The `[`, `{` or quote a "never closed" syntax error is about: the last one before the error without its closing character. */
function unclosedAt(
  doc: Document,
  error: YAMLError,
): { offset: number; open: string; close: string } | undefined {
  const match = /end with an? ([\]}])|Missing closing (["'])quote/.exec(
    error.message,
  );
  const close = match?.[1] ?? match?.[2];
  if (close === undefined) return undefined;
  const open = close === "]" ? "[" : close === "}" ? "{" : close;
  let offset: number | undefined;
  visit(doc, (_, node) => {
    const token = (node as { srcToken?: CST.Token } | null)?.srcToken;
    if (token === undefined || token.offset >= error.pos[0]) return;
    const unclosed = token.type === "flow-collection"
      ? token.start.source === open &&
        !token.end.some((t) => t.source === close)
      : "source" in token && token.source[0] === open &&
        (token.source.length === 1 || !token.source.endsWith(close));
    if (unclosed) offset = token.offset;
  });
  return offset === undefined ? undefined : { offset, open, close };
}

/** The text a map key becomes once converted to a value, as `toJS` does. */
function keyText(key: unknown): string {
  if (!isScalar(key)) return "?";
  return key.value === null || key.value === undefined ? "" : String(key.value);
}

/**
 * The key path and offset of the first scalar map key, in text order, that
 * repeats an earlier key of its map as a plain object would (`1` and `"1"`,
 * null and `""`), or null when there is none.
 */
function firstDuplicateKey(
  doc: Document,
): { keyPath: KeyPathSegment[]; offset: number } | null {
  let found: { keyPath: KeyPathSegment[]; offset: number } | null = null;
  visit(doc, {
    Map(_, map, ancestors) {
      const seen = new Set<string>();
      for (const pair of map.items) {
        const start = isScalar(pair.key) ? pair.key.range?.[0] : undefined;
        if (start === undefined) continue;
        const text = keyText(pair.key);
        if (!seen.has(text)) {
          seen.add(text);
          continue;
        }
        if (found !== null && found.offset <= start) return;
        const chain = [...ancestors, map];
        const keyPath: KeyPathSegment[] = [];
        for (const [index, ancestor] of ancestors.entries()) {
          const child = chain[index + 1];
          if (isSeq(ancestor)) keyPath.push(ancestor.items.indexOf(child));
          if (isPair(ancestor) && child === ancestor.value) {
            keyPath.push(keyText(ancestor.key));
          }
        }
        found = { keyPath: [...keyPath, text], offset: start };
        return;
      }
    },
  });
  return found;
}

/** Reads and parses a YAML file; throws ConfigError (with `missingHint` for a missing file) when it is missing, unreadable, too large, not UTF-8 or not valid YAML. */
export async function readYamlFile(
  path: string,
  options: { missingHint?: string } = {},
): Promise<YamlFile> {
  let info: Deno.FileInfo;
  let bytes: Uint8Array;
  try {
    info = await Deno.stat(path);
    if (info.isDirectory) {
      throw fileError(path, "is a directory, not a config file", {
        expected: "pass the path of the YAML file",
      });
    }
    if (info.size > MAX_CONFIG_FILE_BYTES) {
      throw fileError(
        path,
        `file is ${info.size} bytes, larger than the ${MAX_CONFIG_FILE_BYTES} allowed`,
        { expected: "a config file is a few kilobytes; check the path" },
      );
    }
    bytes = await Deno.readFile(path);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    if (error instanceof Deno.errors.NotFound) {
      throw fileError(path, "file not found", {
        expected: options.missingHint ?? "check the path",
        cause: error,
      });
    }
    throw fileError(
      path,
      error instanceof Deno.errors.PermissionDenied
        ? "permission denied reading the file"
        : `cannot read the file: ${errorText(error)}`,
      {
        expected: error instanceof Deno.errors.PermissionDenied
          ? "run with sudo, or as the user that owns it (for the server config: root or the openme service user)"
          : "check the path and permissions",
        cause: error,
      },
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (error) {
    throw fileError(path, "file is not UTF-8 text", {
      expected: "save it as UTF-8",
      cause: error,
    });
  }
  // Mode, uid and gid are null on Windows.
  const file = parseYamlFile(text, { path });
  const mode = info.mode === null ? null : info.mode & 0o777;
  return { ...file, mode, uid: info.uid, gid: info.gid };
}

/** A ConfigError about a whole file. */
function fileError(
  path: string,
  problem: string,
  options: { expected: string; cause?: unknown },
): ConfigError {
  return new ConfigError({ file: path, problem, ...options });
}

/** The file's content as plain values (maps become objects), with bounded alias expansion; throws ConfigError. */
export function yamlValue(file: YamlFile): unknown {
  try {
    return file.doc.toJS({ maxAliasCount: MAX_YAML_ALIAS_COUNT });
  } catch (error) {
    if (errorText(error).includes("Excessive alias count")) {
      throw fileError(
        file.path,
        `YAML aliases expand to more than ${MAX_YAML_ALIAS_COUNT} nodes, refused as a resource exhaustion attack`,
        {
          expected: "write the values out instead of using *alias references",
          cause: error,
        },
      );
    }
    throw fileError(
      file.path,
      `invalid YAML: ${yamlMessage(errorText(error))}`,
      { expected: "fix the YAML", cause: error },
    );
  }
}

/** The first line of a yaml package message, shortened. */
function yamlMessage(message: string): string {
  return shortenText(errorText(message), MAX_YAML_MESSAGE_CHARS);
}

/** The 1-based line of each key of the map under a top-level key, by key text, found in one pass (a client list can hold thousands). */
export function keyLinesOf(file: YamlFile, key: string): Map<string, number> {
  const lines = new Map<string, number>();
  let root: unknown = file.doc.contents;
  if (isAlias(root)) root = root.resolve(file.doc);
  if (!isMap(root)) return lines;
  let map = root.items.find((item) => keyText(item.key) === key)?.value;
  if (isAlias(map)) map = map.resolve(file.doc);
  if (!isMap(map)) return lines;
  for (const item of map.items) {
    const text = keyText(item.key);
    const range = (item.key as { range?: [number, number, number] } | null)
      ?.range;
    const line = range === undefined ? undefined : file.lineAt(range[0]);
    if (line !== undefined && !lines.has(text)) lines.set(text, line);
  }
  return lines;
}

/** The 1-based line of the deepest part of a key path the file has (a missing key gives its parent's line). */
export function lineOf(
  file: YamlFile,
  keyPath: readonly KeyPathSegment[],
): number | undefined {
  let node: unknown = file.doc.contents;
  let line: number | undefined = undefined;
  for (const segment of keyPath) {
    if (isAlias(node)) node = node.resolve(file.doc);
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find((item) =>
        keyText(item.key) === `${segment}`
      );
      if (pair === undefined) return line;
      next = pair.key;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === "number") {
      next = node = node.items[segment];
    } else {
      return line;
    }
    const range = (next as { range?: [number, number, number] } | null)?.range;
    if (range !== undefined) line = file.lineAt(range[0]) ?? line;
  }
  return line;
}

/** A problem at a key path of a config file. */
export interface ProblemAt {
  /** Where the problem is, e.g. `["clients", "bob", "expires"]`; empty for the whole file. */
  keyPath: readonly KeyPathSegment[];
  /** What failed, including the offending value. */
  problem: string;
  /** What a good value looks like, or what to do. */
  expected?: string;
}

/** The ConfigError for a problem at a key path, on the line the file has for it. */
export function errorAt(file: YamlFile, at: ProblemAt): ConfigError {
  return new ConfigError({
    file: file.path,
    line: lineOf(file, at.keyPath),
    keyPath: at.keyPath.length === 0 ? undefined : formatKeyPath(at.keyPath),
    problem: at.problem,
    expected: at.expected,
  });
}

/** The warning for a file other users (but group `readerGroup`) may read (`secret` names what they could read), or null. */
export function looseModeWarning(
  file: YamlFile,
  secret: string,
  readerGroup: number | null = null,
): string | null {
  const loose = file.gid !== undefined && file.gid === readerGroup
    ? LOOSE_MODE_BITS & ~0o040
    : LOOSE_MODE_BITS;
  if (file.mode === null || (file.mode & loose) === 0) return null;
  return `config ${file.path}: file mode ${
    file.mode.toString(8).padStart(4, "0")
  } lets other users read ${secret} (run chmod 600 ${file.path})`;
}

/** One change to a config file: the value to set at a key path (plain, or a yaml node for its style), or a deletion. */
export interface YamlChange {
  /** Where, e.g. `["clients", "carol"]`. */
  keyPath: readonly KeyPathSegment[];
  /** The new value; absent to delete the key. */
  value?: unknown;
}

/** Changes to make to a config file and what they must give. */
export interface FileChanges {
  /** The changes, made in order. */
  edits: readonly YamlChange[];
  /** The file's whole value after the changes. */
  expected: unknown;
  /** The problem to report when the changed file does not hold exactly `expected`. */
  failure: ProblemAt;
}

/** Makes changes to a copy of the file's Document and parses the result as generated text; throws `failure` as a ConfigError unless it holds exactly `expected`. */
export function changedFile(file: YamlFile, changes: FileChanges): YamlFile {
  const doc = file.doc.clone();
  try {
    for (const edit of changes.edits) {
      if (!("value" in edit)) {
        doc.deleteIn(edit.keyPath);
        continue;
      }
      // A missing or empty parent becomes a block map.
      const parentPath = edit.keyPath.slice(0, -1);
      const parent = doc.getIn(parentPath, true);
      if (parentPath.length > 0 && !isMap(parent)) {
        doc.setIn(parentPath, new YAMLMap());
      } else if (isMap(parent) && parent.items.length === 0) {
        parent.flow = false;
      }
      doc.setIn(edit.keyPath, edit.value);
    }
    let text = doc.toString(TO_STRING_OPTIONS);
    if (file.text.includes("\r\n")) text = text.replaceAll("\n", "\r\n");
    const after = parseYamlFile(text, { path: file.path, generated: true });
    if (isDeepStrictEqual(yamlValue(after), changes.expected)) return after;
  } catch {
    // An alias left without its anchor, or text that does not parse back.
  }
  throw errorAt(file, changes.failure);
}

/** Renders a value as YAML the way edited files are written: no line folding, `[a, b]` flow lists. */
export function yamlText(value: unknown): string {
  return new Document(value).toString(TO_STRING_OPTIONS);
}

/** Tells whether something exists at the path; throws ConfigError when that cannot be checked. */
export async function fileExists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw fileError(path, `cannot check the file: ${errorText(error)}`, {
      expected: "check the path and permissions",
      cause: error,
    });
  }
}

/** Creates the directory of the config file `path` and its parents with `options.mode` when missing, telling whether it did; throws ConfigError saying `options.expected`. */
export async function ensureConfigDir(
  path: string,
  options: { mode: number; expected: string },
): Promise<boolean> {
  const directory = dirname(path);
  try {
    const info = await Deno.stat(directory).catch(() => null);
    if (info?.isDirectory) return false;
    if (info !== null) {
      throw new Error(`${directory} exists and is not a directory`);
    }
    await Deno.mkdir(directory, { recursive: true, mode: options.mode });
    if (!IS_WINDOWS) await Deno.chmod(directory, options.mode);
    return true;
  } catch (error) {
    throw fileError(
      path,
      `cannot create directory ${directory}: ${errorText(error)}`,
      { expected: options.expected, cause: error },
    );
  }
}

/** Writes a config file atomically with `options.mode` (and `owner`, default the file's); throws ConfigError naming the file. */
export async function writeConfigFile(
  path: string,
  text: string,
  options: { mode: number; owner?: { uid: number; gid: number } },
): Promise<void> {
  try {
    await atomicWriteFile(path, text, options);
  } catch (error) {
    throw fileError(path, `cannot write the file: ${errorText(error)}`, {
      expected: error instanceof Deno.errors.PermissionDenied
        ? "run with sudo, or as a user that may write it"
        : "check the directory exists, is writable and the disk is not full",
      cause: error,
    });
  }
}
