/**
 * File access shared by the config modules: reading a YAML file into a
 * Document with line numbers, atomic writes with a given mode, directory
 * creation, an exclusive lock around read-modify-write, and text splices that
 * add or remove one entry of a top-level map without touching any other byte.
 *
 * @module
 */

import { type FileHandle, open as openFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import {
  type Document,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Pair,
  parseDocument,
  type Scalar,
  visit,
  YAMLMap,
} from "yaml";
import {
  ConfigError,
  describeValue,
  formatKeyPath,
  type KeyPathSegment,
} from "./errors.ts";

import { MAX_CONFIG_FILE_BYTES } from "./value_checks.ts";

export { MAX_CONFIG_FILE_BYTES } from "./value_checks.ts";

/** Most alias expansions allowed when converting YAML to values (bounds "billion laughs" files). */
export const MAX_YAML_ALIAS_COUNT = 100;

/** How long {@linkcode withFileLock} waits for another process by default. */
export const DEFAULT_LOCK_TIMEOUT_MS = 10_000;

/** Suffix of the lock file that sits next to the file it protects. */
export const LOCK_FILE_SUFFIX = ".lock";

const IS_WINDOWS = Deno.build.os === "windows";

/** A parsed YAML file: its text, Document (with comments) and line counter. */
export interface YamlSource {
  /** Path used in messages. */
  path: string;
  /** The file's text as read. */
  text: string;
  /** The parsed Document; edits keep comments, key order and unknown keys. */
  doc: Document;
  /** Maps offsets in `text` to 1-based line numbers. */
  lineCounter: LineCounter;
  /** Non-fatal YAML warnings, already formatted as config messages. */
  warnings: string[];
  /** Permission bits of the file when read from disk (null for text or on Windows). */
  mode: number | null;
}

/** Options for {@linkcode parseYamlSource}. */
export interface ParseYamlOptions {
  /** Path used in messages. */
  path: string;
}

/** Parses YAML text into a {@linkcode YamlSource}; throws ConfigError with the line of the first syntax error. */
export function parseYamlSource(
  text: string,
  options: ParseYamlOptions,
): YamlSource {
  const lineCounter = new LineCounter();
  let doc: Document;
  try {
    // The yaml package's own duplicate-key check (uniqueKeys: true) compares
    // every key of a map with every other; checkUniqueKeys does it in one pass.
    doc = parseDocument(text, {
      lineCounter,
      prettyErrors: false,
      uniqueKeys: false,
      logLevel: "error",
    });
  } catch (error) {
    throw new ConfigError({
      file: options.path,
      problem: `invalid YAML: ${yamlMessage(errorText(error))}`,
      expected: "fix the YAML syntax",
      cause: error,
    });
  }
  if (doc.errors.length > 0) {
    const first = doc.errors[0];
    const multiple = first.code === "MULTIPLE_DOCS";
    throw new ConfigError({
      file: options.path,
      line: lineCounter.linePos(first.pos[0]).line,
      problem: multiple
        ? "invalid YAML: the file holds more than one YAML document"
        : `invalid YAML: ${yamlMessage(first.message)}`,
      expected: multiple
        ? "keep a single document: remove the --- line and what follows it, or merge them"
        : "fix the YAML syntax at that line",
      cause: first,
    });
  }
  checkUniqueKeys(doc, lineCounter, options.path);
  const warnings: string[] = [];
  for (const warning of doc.warnings) {
    const line = lineCounter.linePos(warning.pos[0]).line;
    warnings.push(
      `config ${options.path}:${line}: YAML warning: ${
        yamlMessage(warning.message)
      }`,
    );
  }
  return {
    path: options.path,
    text,
    doc,
    lineCounter,
    warnings,
    mode: null,
  };
}

/** A key that appears twice in one map, with the ancestors of that map. */
interface DuplicateKey {
  /** The second occurrence of the key. */
  key: Scalar;
  /** Its text as the key of a plain object. */
  name: string;
  /** Offset of the key in the text (Infinity when unknown). */
  offset: number;
  /** The map holding it. */
  map: YAMLMap;
  /** The map's ancestors, from the Document down, as `visit` reports them. */
  ancestors: readonly unknown[];
}

/**
 * Throws ConfigError for the first (in file order) key that appears twice in
 * one map. Keys are compared as the text they become in a plain object (so
 * `1` and `"1"` are the same key), with one Set per map: linear in the
 * number of keys. Aliases are not followed, so each map is checked once.
 */
function checkUniqueKeys(
  doc: Document,
  lineCounter: LineCounter,
  path: string,
): void {
  // At most one entry per map: its first duplicate key.
  const duplicates: DuplicateKey[] = [];
  visit(doc, {
    Map(_key, map, ancestors) {
      const seen = new Set<string>();
      for (const pair of map.items) {
        if (!isScalar(pair.key)) continue; // a collection or alias as key
        const name = yamlKeyText(pair.key) ?? "";
        if (!seen.has(name)) {
          seen.add(name);
          continue;
        }
        const offset = rangeOf(pair.key)?.[0] ?? Infinity;
        duplicates.push({ key: pair.key, name, offset, map, ancestors });
        return;
      }
    },
  });
  if (duplicates.length === 0) return;
  let first = duplicates[0];
  for (const duplicate of duplicates) {
    if (duplicate.offset < first.offset) first = duplicate;
  }
  const range = rangeOf(first.key);
  throw new ConfigError({
    file: path,
    line: range === null ? undefined : lineCounter.linePos(range[0]).line,
    keyPath: formatKeyPath([
      ...keyPathOfNode(first.ancestors, first.map),
      first.name,
    ]),
    problem: `invalid YAML: duplicate key ${describeValue(first.name)}`,
    expected: "map keys must be unique: remove or rename one of them",
  });
}

/**
 * The key path of `node` from the ancestors `visit` reported for it
 * (Document, then maps, pairs and sequences down to its parent).
 */
function keyPathOfNode(
  ancestors: readonly unknown[],
  node: unknown,
): KeyPathSegment[] {
  const segments: KeyPathSegment[] = [];
  for (let index = 0; index < ancestors.length; index++) {
    const ancestor = ancestors[index];
    const child = index + 1 < ancestors.length ? ancestors[index + 1] : node;
    if (isSeq(ancestor)) {
      segments.push(ancestor.items.indexOf(child));
    } else if (isPair(ancestor) && child === ancestor.value) {
      segments.push(yamlKeyText(ancestor.key) ?? "?");
    }
  }
  return segments;
}

/** Options for {@linkcode readYamlDocument}. */
export interface ReadYamlOptions {
  /** What to tell the user when the file does not exist. */
  missingHint?: string;
}

/** Reads and parses a YAML file; throws ConfigError when it is missing, unreadable, too large, not UTF-8 or not valid YAML. */
export async function readYamlDocument(
  path: string,
  options: ReadYamlOptions = {},
): Promise<YamlSource> {
  let info: Deno.FileInfo;
  let bytes: Uint8Array;
  try {
    info = await Deno.stat(path);
    if (info.isDirectory) {
      throw new ConfigError({
        file: path,
        problem: "is a directory, not a config file",
        expected: "pass the path of the YAML file",
      });
    }
    if (info.size > MAX_CONFIG_FILE_BYTES) {
      throw new ConfigError({
        file: path,
        problem:
          `file is ${info.size} bytes, larger than the ${MAX_CONFIG_FILE_BYTES} allowed`,
        expected: "a config file is a few kilobytes; check the path",
      });
    }
    bytes = await Deno.readFile(path);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw readError(path, error, options.missingHint);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (error) {
    throw new ConfigError({
      file: path,
      problem: "file is not UTF-8 text",
      expected: "save it as UTF-8",
      cause: error,
    });
  }
  const source = parseYamlSource(text, { path });
  source.mode = IS_WINDOWS || info.mode === null ? null : info.mode & 0o777;
  return source;
}

/** Turns a read failure into a ConfigError that says what to do. */
function readError(
  path: string,
  error: unknown,
  missingHint: string | undefined,
): ConfigError {
  if (error instanceof Deno.errors.NotFound) {
    return new ConfigError({
      file: path,
      problem: "file not found",
      expected: missingHint ?? "check the path",
      cause: error,
    });
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return new ConfigError({
      file: path,
      problem: "permission denied reading the file",
      expected:
        "run with sudo, or as the user that owns it (for the server config: root or the openme service user)",
      cause: error,
    });
  }
  return new ConfigError({
    file: path,
    problem: `cannot read the file: ${errorText(error)}`,
    expected: "check the path and permissions",
    cause: error,
  });
}

/**
 * Converts the Document to plain values (maps become objects), with alias
 * expansion bounded by {@linkcode MAX_YAML_ALIAS_COUNT}; throws ConfigError.
 */
export function yamlToValue(source: YamlSource): unknown {
  try {
    return source.doc.toJS({ maxAliasCount: MAX_YAML_ALIAS_COUNT });
  } catch (error) {
    const message = errorText(error);
    if (message.includes("Excessive alias count")) {
      throw new ConfigError({
        file: source.path,
        problem:
          `YAML aliases expand to more than ${MAX_YAML_ALIAS_COUNT} nodes, refused as a resource exhaustion attack`,
        expected: "write the values out instead of using *alias references",
        cause: error,
      });
    }
    throw new ConfigError({
      file: source.path,
      problem: `invalid YAML: ${yamlMessage(message)}`,
      expected: "fix the YAML",
      cause: error,
    });
  }
}

/**
 * Finds the 1-based line of a key path such as `["clients", "bob",
 * "allowed_ports", 1]`: the line of the deepest part of the path that exists
 * (a missing key reports its parent's line), or undefined.
 */
export function lineOfKeyPath(
  source: YamlSource,
  keyPath: readonly KeyPathSegment[],
): number | undefined {
  let node: unknown = source.doc.contents;
  let line: number | undefined = undefined;
  for (const segment of keyPath) {
    if (isAlias(node)) node = node.resolve(source.doc);
    if (isMap(node)) {
      const pair = findPair(node.items, String(segment));
      if (pair === undefined) return line;
      line = lineOfNode(source, pair.key) ?? line;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === "number") {
      const item = node.items[segment];
      if (item === undefined) return line;
      line = lineOfNode(source, item) ?? line;
      node = item;
    } else {
      return line;
    }
  }
  return line;
}

/** The text a map key becomes once converted to a value, as `toJS` does (null becomes ""). */
export function yamlKeyText(key: unknown): string | undefined {
  if (!isScalar(key)) return undefined;
  if (key.value === null || key.value === undefined) return "";
  return String(key.value);
}

/** Finds the pair whose key converts to `name`. */
function findPair(
  items: readonly Pair<unknown, unknown>[],
  name: string,
): Pair<unknown, unknown> | undefined {
  for (const pair of items) {
    if (yamlKeyText(pair.key) === name) return pair;
  }
  return undefined;
}

/** Line of a node's first character, when the node has a source range. */
function lineOfNode(source: YamlSource, node: unknown): number | undefined {
  if (node === null || typeof node !== "object") return undefined;
  const range = (node as { range?: [number, number, number] | null }).range;
  if (range === undefined || range === null) return undefined;
  return source.lineCounter.linePos(range[0]).line;
}

/** A node's `range`, if it has one. */
function rangeOf(node: unknown): [number, number, number] | null {
  if (node === null || typeof node !== "object") return null;
  const range = (node as { range?: [number, number, number] | null }).range;
  return range ?? null;
}

/**
 * Sets `key` to `node` in the top-level map `section` of `doc` with the
 * Document API (comments and unknown keys kept, spacing may be normalised):
 * a missing section, or one that is not a map, becomes a new map, and an
 * empty one is written in block style. The fallback when
 * {@linkcode spliceInsertMapEntry} cannot be used.
 */
export function setSectionEntry(
  doc: Document,
  section: string,
  key: string,
  node: unknown,
): void {
  const found = doc.get(section, true);
  let map: YAMLMap;
  if (isMap(found)) {
    map = found;
  } else {
    map = new YAMLMap();
    doc.set(section, map);
  }
  if (map.items.length === 0) map.flow = false;
  map.set(key, node);
}

/** What {@linkcode spliceInsertMapEntry} inserts where. */
export interface MapEntryInsert {
  /** Top-level key of the map to add to, e.g. `clients`. */
  section: string;
  /** The entry as YAML at indent 0: `name:\n  key: value\n`. */
  text: string;
}

/**
 * Adds an entry to the top-level block map `section` by inserting text,
 * leaving every other byte of the file as it was. The entry text is
 * re-indented to match the file.
 * Creates the section when missing and replaces an empty `{}` or null value.
 * Returns null when the layout is unusual (flow style, odd keys), so that the
 * caller falls back to the Document API; callers must re-parse and check the result.
 */
export function spliceInsertMapEntry(
  source: YamlSource,
  insert: MapEntryInsert,
): string | null {
  const sectionKey = insert.section;
  const entryText = insert.text;
  const text = source.text;
  const root = source.doc.contents;
  if (!isMap(root) || root.flow) return null;
  const newline = text.includes("\r\n") ? "\r\n" : "\n";
  const entryLines = entryText.replace(/\n+$/, "").split("\n");
  const pair = findPair(root.items, sectionKey);

  if (pair === undefined) {
    if (/(^|\n)\.\.\.\s*$/.test(text)) return null; // explicit document end marker
    const rootIndent = columnOf(source, root.items[0]?.key) ?? 0;
    let out = text;
    if (out !== "" && !out.endsWith("\n")) out += newline;
    out += `${" ".repeat(rootIndent)}${sectionKey}:${newline}`;
    out += indentLines(entryLines, rootIndent + 2, newline);
    return out;
  }

  const keyRange = rangeOf(pair.key);
  if (keyRange === null) return null;
  const value = pair.value;

  if (isMap(value) && !value.flow && value.items.length > 0) {
    const column = columnOf(source, value.items[0].key);
    if (column === undefined) return null;
    const last = value.items[value.items.length - 1];
    const end = endOfEntry(last);
    if (end === null) return null;
    const insertAt = startOfNextLine(text, end);
    let out = text.slice(0, insertAt);
    if (!out.endsWith("\n")) out += newline;
    out += indentLines(entryLines, column, newline);
    out += text.slice(insertAt);
    return out;
  }

  const isEmptyValue = value === null || value === undefined ||
    (isScalar(value) && value.value === null) ||
    (isMap(value) && value.flow && value.items.length === 0);
  if (!isEmptyValue) return null;
  const keyColumn = columnOf(source, pair.key);
  if (keyColumn === undefined) return null;

  let out = text;
  const valueRange = rangeOf(value);
  let keyLineSearchFrom = keyRange[1];
  if (valueRange !== null && valueRange[1] > valueRange[0]) {
    let start = valueRange[0];
    let end = valueRange[1];
    const lineEnd = endOfLine(out, end);
    if (out.slice(end, lineEnd).trim() === "") {
      // Nothing but spaces follows `{}`: also drop the spaces before it.
      while (start > 0 && out[start - 1] === " ") start--;
      end = lineEnd;
    }
    out = out.slice(0, start) + out.slice(end);
    keyLineSearchFrom = Math.min(keyLineSearchFrom, start);
  }
  const insertAt = startOfNextLine(out, keyLineSearchFrom);
  let result = out.slice(0, insertAt);
  if (!result.endsWith("\n")) result += newline;
  result += indentLines(entryLines, keyColumn + 2, newline);
  result += out.slice(insertAt);
  return result;
}

/** Which entry {@linkcode spliceRemoveMapEntry} removes. */
export interface MapEntryRemove {
  /** Top-level key of the map, e.g. `clients`. */
  section: string;
  /** Key of the entry to remove, e.g. `alice`. */
  key: string;
}

/**
 * Removes the entry `key` from the top-level block map `section` by
 * deleting its lines, leaving every other byte as it was (a section left
 * empty becomes `{}`). Returns null when the entry is absent or the layout is
 * unusual; callers must re-parse and check the result.
 */
export function spliceRemoveMapEntry(
  source: YamlSource,
  remove: MapEntryRemove,
): string | null {
  const sectionKey = remove.section;
  const entryKey = remove.key;
  const text = source.text;
  const root = source.doc.contents;
  if (!isMap(root) || root.flow) return null;
  const section = findPair(root.items, sectionKey);
  if (section === undefined) return null;
  const sectionKeyRange = rangeOf(section.key);
  const map = section.value;
  if (sectionKeyRange === null || !isMap(map) || map.flow) return null;
  const entry = findPair(map.items, entryKey);
  if (entry === undefined) return null;
  const keyRange = rangeOf(entry.key);
  if (keyRange === null) return null;

  const lineStart = text.lastIndexOf("\n", keyRange[0] - 1) + 1;
  if (text.slice(lineStart, keyRange[0]).trim() !== "") return null;
  const end = endOfEntry(entry);
  if (end === null) return null;
  const removeEnd = startOfNextLine(text, end);
  let out = text.slice(0, lineStart) + text.slice(removeEnd);

  if (map.items.length === 1) {
    const colon = out.indexOf(":", sectionKeyRange[1]);
    if (colon === -1 || colon >= lineStart) return null;
    out = `${out.slice(0, colon + 1)} {}${out.slice(colon + 1)}`;
  }
  return out;
}

/** Offset just past a map entry's value (or key, when the value is empty). */
function endOfEntry(pair: Pair<unknown, unknown>): number | null {
  const valueRange = rangeOf(pair.value);
  if (valueRange !== null && valueRange[1] > valueRange[0]) {
    return valueRange[1];
  }
  const keyRange = rangeOf(pair.key);
  return keyRange === null ? null : keyRange[1];
}

/** Offset of the start of the line after the one holding the character before `end`. */
function startOfNextLine(text: string, end: number): number {
  const newlineAt = text.indexOf("\n", Math.max(end - 1, 0));
  return newlineAt === -1 ? text.length : newlineAt + 1;
}

/** Offset of the line break (or `\r\n`) that ends the line containing `offset`. */
function endOfLine(text: string, offset: number): number {
  let newlineAt = text.indexOf("\n", offset);
  if (newlineAt === -1) return text.length;
  if (newlineAt > offset && text[newlineAt - 1] === "\r") newlineAt--;
  return newlineAt;
}

/** 0-based column of a node's first character. */
function columnOf(source: YamlSource, node: unknown): number | undefined {
  const range = rangeOf(node);
  if (range === null) return undefined;
  return source.lineCounter.linePos(range[0]).col - 1;
}

/** Prefixes each line with `indent` spaces and joins them, ending with a line break. */
function indentLines(
  lines: readonly string[],
  indent: number,
  newline: string,
): string {
  let out = "";
  for (const line of lines) {
    out += (line === "" ? "" : " ".repeat(indent) + line) + newline;
  }
  return out;
}

/** Options for {@linkcode atomicWriteFile}. */
export interface AtomicWriteOptions {
  /** Permission bits of the written file; default 0o600. */
  mode?: number;
}

/** Owner and group a written file should end up with. */
interface FileOwner {
  uid: number;
  gid: number;
  /** True when taken from the file being replaced, false when from its directory. */
  fromExistingFile: boolean;
}

/**
 * Replaces a file's contents atomically: writes a temporary file in the same
 * directory, syncs it, gives it the owner and mode, then renames it over the
 * target (a symlinked target is replaced at its real path). The temporary
 * file is removed on failure. Throws the underlying error as a Deno error
 * class (PermissionDenied, NotFound, ...) when there is one.
 *
 * Ownership, as editors do it: a replaced file keeps its owner and group; a
 * new file created by root in a directory owned by someone else gets the
 * directory's owner and group (so `sudo openme init` in an `/etc/openme`
 * owned by the service user writes a config the service can read). Only root
 * changes owners, and a failure to do so is an error; other users keep a
 * replaced file's group when they may and otherwise keep their own. The
 * owner is set on the open file descriptor, never by path, so nothing else
 * in the directory can redirect it.
 */
export async function atomicWriteFile(
  path: string,
  text: string,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const mode = options.mode ?? 0o600;
  let target = path;
  try {
    const info = await Deno.lstat(path);
    if (info.isSymlink) target = await Deno.realPath(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const directory = dirname(target);
  const owner = IS_WINDOWS ? null : await wantedOwner(target, directory);
  const tempPath = join(
    directory,
    `.${basename(target)}.${Deno.pid}.${randomSuffix()}.tmp`,
  );
  const bytes = new TextEncoder().encode(text);
  let file: FileHandle | null = null;
  try {
    // "wx": O_CREAT|O_EXCL, which never follows a symlink planted at tempPath.
    file = await openFile(tempPath, "wx", mode);
    let written = 0;
    while (written < bytes.length) {
      const result = await file.write(bytes, written, bytes.length - written);
      written += result.bytesWritten;
    }
    await file.sync();
    if (owner !== null) await giveOwner(file, owner);
    // After the owner: chown may clear mode bits, and open's mode went through the umask.
    if (!IS_WINDOWS) await file.chmod(mode);
    const handle = file;
    file = null;
    await handle.close();
    await Deno.rename(tempPath, target);
  } catch (error) {
    if (file !== null) await file.close().catch(() => {});
    try {
      await Deno.remove(tempPath);
    } catch {
      // The temporary file was never created or is already gone.
    }
    throw asDenoError(error);
  }
  await syncDirectory(directory);
}

/**
 * Turns a `node:fs` error (the temporary file is written through it, for
 * fchown) into the Deno error class callers test for; others pass through.
 */
function asDenoError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const code = (error as { code?: unknown }).code;
  if (code === "EACCES" || code === "EPERM") {
    return new Deno.errors.PermissionDenied(error.message, { cause: error });
  }
  if (code === "ENOENT") {
    return new Deno.errors.NotFound(error.message, { cause: error });
  }
  if (code === "EEXIST") {
    return new Deno.errors.AlreadyExists(error.message, { cause: error });
  }
  return error;
}

/**
 * The owner a write to `target` should keep: the existing file's, or, for a
 * new file, its directory's. Throws the underlying Deno error.
 */
async function wantedOwner(
  target: string,
  directory: string,
): Promise<FileOwner | null> {
  let info: Deno.FileInfo;
  let fromExistingFile = true;
  try {
    info = await Deno.stat(target);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    info = await Deno.stat(directory);
    fromExistingFile = false;
  }
  if (info.uid === null || info.gid === null) return null;
  return { uid: info.uid, gid: info.gid, fromExistingFile };
}

/**
 * Gives the open temporary file `owner`'s uid and gid when they differ from
 * the ones it was created with. Whether we are root is read from the new
 * file's owner (our effective uid), which needs no `--allow-sys`.
 */
async function giveOwner(file: FileHandle, owner: FileOwner): Promise<void> {
  const created = await file.stat();
  if (created.uid === owner.uid && created.gid === owner.gid) return;
  if (created.uid === 0) {
    await file.chown(owner.uid, owner.gid);
    return;
  }
  // Not root: the owner cannot change, the group only to one of ours.
  if (!owner.fromExistingFile || created.gid === owner.gid) return;
  try {
    await file.chown(created.uid, owner.gid);
  } catch {
    // Not a member of that group: the file keeps our group, as editors do.
  }
}

/** Flushes a directory entry change (the rename) to disk where the platform allows it. */
async function syncDirectory(directory: string): Promise<void> {
  if (IS_WINDOWS) return;
  try {
    const handle = await Deno.open(directory, { read: true });
    try {
      await handle.sync();
    } finally {
      handle.close();
    }
  } catch {
    // Some file systems refuse fsync on directories; the rename is still atomic.
  }
}

/** Random hex for temporary file names. */
function randomSuffix(): string {
  const bytes = new Uint8Array(6);
  crypto.getRandomValues(bytes);
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}

/** Options for {@linkcode ensureDir}. */
export interface EnsureDirOptions {
  /** Permission bits for a directory that has to be created (0o750 server, 0o700 client). */
  mode: number;
}

/**
 * Creates a directory (and its parents) when missing, giving the new
 * directory `mode`; an existing directory is left as it is. Throws the
 * underlying Deno error, or an Error when the path is not a directory.
 */
export async function ensureDir(
  path: string,
  options: EnsureDirOptions,
): Promise<void> {
  try {
    const info = await Deno.stat(path);
    if (!info.isDirectory) {
      throw new Error(`${path} exists and is not a directory`);
    }
    return;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  await Deno.mkdir(path, { recursive: true, mode: options.mode });
  if (!IS_WINDOWS) await Deno.chmod(path, options.mode);
}

/** Options for {@linkcode ensureConfigDir}. */
export interface EnsureConfigDirOptions extends EnsureDirOptions {
  /** What to tell the user when the directory cannot be created. */
  expected: string;
}

/**
 * Creates the directory that holds the config file `path` when missing (see
 * {@linkcode ensureDir}); throws a ConfigError naming the file when it cannot.
 */
export async function ensureConfigDir(
  path: string,
  options: EnsureConfigDirOptions,
): Promise<void> {
  const directory = dirname(path);
  try {
    await ensureDir(directory, { mode: options.mode });
  } catch (error) {
    throw new ConfigError({
      file: path,
      problem: `cannot create directory ${directory}: ${errorText(error)}`,
      expected: options.expected,
      cause: error,
    });
  }
}

/** Options for {@linkcode withFileLock}. */
export interface FileLockOptions {
  /** How long to wait for another holder before giving up; default {@linkcode DEFAULT_LOCK_TIMEOUT_MS}. */
  timeoutMs?: number;
}

/**
 * Runs `fn` while holding an exclusive lock on `<path>.lock` (an OS file lock,
 * released by the kernel if the holder dies, so a crashed process never
 * leaves a stale lock; the empty lock file itself stays). Waits with backoff
 * up to the timeout; throws ConfigError when the lock cannot be taken.
 */
export async function withFileLock<T>(
  path: string,
  fn: () => Promise<T>,
  options: FileLockOptions = {},
): Promise<T> {
  const lockPath = `${path}${LOCK_FILE_SUFFIX}`;
  const timeoutMs = options.timeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(lockPath, {
      read: true,
      write: true,
      create: true,
      mode: 0o600,
    });
  } catch (error) {
    throw new ConfigError({
      file: path,
      problem: `cannot open lock file ${lockPath}: ${errorText(error)}`,
      expected: "check that the directory exists and is writable by you",
      cause: error,
    });
  }
  try {
    const deadline = Date.now() + timeoutMs;
    let delayMs = 2;
    while (!(await file.tryLock(true))) {
      if (Date.now() >= deadline) {
        throw new ConfigError({
          file: path,
          problem: `another openme command held ${lockPath} for more than ${
            timeoutMs / 1000
          }s`,
          expected: "wait for it to finish and retry",
        });
      }
      await sleep(delayMs * (0.5 + Math.random()));
      delayMs = Math.min(delayMs * 2, 100);
    }
    try {
      return await fn();
    } finally {
      try {
        await file.unlock();
      } catch {
        // Closing the file below releases the lock as well.
      }
    }
  } finally {
    file.close();
  }
}

/** Resolves after `ms` milliseconds. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Options for {@linkcode writeConfigFile}. */
export interface WriteConfigOptions {
  /** Permission bits of the file (config files are 0o600). */
  mode: number;
}

/** Writes a config file atomically, turning a failure into a ConfigError that names the file. */
export async function writeConfigFile(
  path: string,
  text: string,
  options: WriteConfigOptions,
): Promise<void> {
  try {
    await atomicWriteFile(path, text, { mode: options.mode });
  } catch (error) {
    const permission = error instanceof Deno.errors.PermissionDenied;
    throw new ConfigError({
      file: path,
      problem: `cannot write the file: ${errorText(error)}`,
      expected: permission
        ? "run with sudo, or as a user that may write it"
        : "check the directory exists, is writable and the disk is not full",
      cause: error,
    });
  }
}

/** Tells whether something exists at the path; throws ConfigError when that cannot be checked (e.g. permission denied). */
export async function fileExists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw new ConfigError({
      file: path,
      problem: `cannot check the file: ${errorText(error)}`,
      expected: "check the path and permissions",
      cause: error,
    });
  }
}

/** The message of an unknown thrown value, on one line. */
export function errorText(error: unknown): string {
  if (error instanceof Error) return firstLine(error.message);
  return firstLine(String(error));
}

/** First line of a possibly multi-line message. */
function firstLine(text: string): string {
  const index = text.indexOf("\n");
  return (index === -1 ? text : text.slice(0, index)).trim();
}

/**
 * Longest yaml package message shown in a config message. Longer ones quote
 * something from the file (an alias, tag or version) and are cut.
 */
const MAX_YAML_MESSAGE_CHARS = 200;

/** The first line of a yaml package message, cut to {@linkcode MAX_YAML_MESSAGE_CHARS} with its length noted. */
function yamlMessage(message: string): string {
  const line = firstLine(message);
  if (line.length <= MAX_YAML_MESSAGE_CHARS) return line;
  let end = MAX_YAML_MESSAGE_CHARS;
  const last = line.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return `${line.slice(0, end)}\u2026(${line.length} characters)`;
}
