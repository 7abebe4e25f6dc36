/**
 * Atomic file replacement (temporary file, fsync, rename) that keeps the
 * owner and sets the mode, and directory creation with a mode. Imports
 * nothing but `node:` modules.
 *
 * @module
 */

import { type FileHandle, open as openFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

const IS_WINDOWS = Deno.build.os === "windows";

/** Replaces a file's contents atomically with `mode` (default 0600), keeping its owner (a new file written by root takes its directory's), and throws a Deno error class such as PermissionDenied on failure. */
export async function atomicWriteFile(
  path: string,
  text: string,
  options: { mode?: number } = {},
): Promise<void> {
  const mode = options.mode ?? 0o600;
  let target = path;
  try {
    if ((await Deno.lstat(path)).isSymlink) target = await Deno.realPath(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  // The temporary file sits next to the real file (a symlink's target).
  const directory = dirname(target);
  // The file being replaced gives its owner; a new file its directory's.
  let owner: Deno.FileInfo;
  let replacing = true;
  try {
    owner = await Deno.stat(target);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    owner = await Deno.stat(directory);
    replacing = false;
  }
  const suffix = crypto.getRandomValues(new Uint8Array(6)).toHex();
  const tempPath = join(
    directory,
    `.${basename(target)}.${Deno.pid}.${suffix}.tmp`,
  );
  let file: FileHandle | undefined;
  try {
    // "wx" is O_CREAT|O_EXCL, which never follows a symlink planted at tempPath.
    file = await openFile(tempPath, "wx", mode);
    await file.writeFile(text);
    await file.sync();
    if (!IS_WINDOWS) {
      await giveOwner(file, owner, replacing);
      // After the owner: chown may clear mode bits, and open's mode went through the umask.
      await file.chmod(mode);
    }
    await file.close();
    file = undefined;
    await Deno.rename(tempPath, target);
  } catch (error) {
    await file?.close().catch(() => {});
    await Deno.remove(tempPath).catch(() => {});
    throw asDenoError(error);
  }
  await syncDirectory(directory);
}

/**
 * Gives the open temporary file the uid and gid of `owner` when they differ
 * from the ones it was created with, on its descriptor (never by path). Only
 * root changes owners; another user keeps a replaced file's group when it is
 * one of theirs. Whether we are root is read from the new file's owner, which
 * needs no `--allow-sys`.
 */
async function giveOwner(
  file: FileHandle,
  owner: Deno.FileInfo,
  replacing: boolean,
): Promise<void> {
  if (owner.uid === null || owner.gid === null) return;
  const created = await file.stat();
  if (created.uid === owner.uid && created.gid === owner.gid) return;
  if (created.uid === 0) {
    await file.chown(owner.uid, owner.gid);
    return;
  }
  // Not root: the owner cannot change, the group only to one of ours.
  if (!replacing || created.gid === owner.gid) return;
  try {
    await file.chown(created.uid, owner.gid);
  } catch {
    // Not a member of that group: the file keeps ours, as editors do.
  }
}

/** Turns a `node:fs` error into the Deno error class callers test for; others pass through. */
function asDenoError(error: unknown): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (!(error instanceof Error) || typeof code !== "string") return error;
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

/** Flushes the rename to disk where the platform allows it. */
async function syncDirectory(directory: string): Promise<void> {
  if (IS_WINDOWS) return;
  try {
    using handle = await Deno.open(directory, { read: true });
    await handle.sync();
  } catch {
    // Some file systems refuse fsync on directories; the rename is still atomic.
  }
}

/** Creates a directory and its parents with `mode` when missing, and throws when the path is not a directory. */
export async function ensureDir(path: string, mode: number): Promise<void> {
  try {
    if ((await Deno.stat(path)).isDirectory) return;
    throw new Error(`${path} exists and is not a directory`);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  await Deno.mkdir(path, { recursive: true, mode });
  if (!IS_WINDOWS) await Deno.chmod(path, mode);
}
