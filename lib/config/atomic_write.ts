/**
 * Atomic file replacement (temporary file, fsync, rename) that keeps the owner and sets the mode.
 *
 * @module
 */

import { type FileHandle, open as openFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

const IS_WINDOWS = Deno.build.os === "windows";

/** A uid and gid to give a file. */
type Owner = Pick<Deno.FileInfo, "uid" | "gid">;

/** Replaces a file's contents atomically with `mode` (default 0600) and `owner` (default: the file's; a new file written by root takes its directory's), and throws a Deno error class such as PermissionDenied on failure. */
export async function atomicWriteFile(
  path: string,
  text: string,
  options: { mode?: number; owner?: Pick<Deno.FileInfo, "uid" | "gid"> } = {},
): Promise<void> {
  // Through a symlink, the file it names is replaced.
  const target = await Deno.realPath(path).catch(() => path);
  const existing = await Deno.stat(target).catch((error) => {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  });
  await replaceFile(target, text, {
    mode: options.mode ?? 0o600,
    // The file being replaced gives its owner; a new file its directory's.
    owner: options.owner ?? existing ?? await Deno.stat(dirname(target)),
    replacing: existing !== null,
  });
}

/** Writes a file (mode 0600 unless given) never through a symlink: to a random temporary name, then linked to `path` (AlreadyExists when something is there) or, with `force`, renamed over it. */
export async function writeFileNoFollow(
  path: string,
  data: string | Uint8Array,
  options: { force?: boolean; mode?: number } = {},
): Promise<void> {
  const noClobber = options.force !== true;
  const mode = options.mode ?? 0o600;
  await replaceFile(path, data, { mode, owner: null, noClobber });
}

/** Writes `data` to a random temporary name next to `target` (created exclusively), gives it the mode and owner (null: ours), and renames it over `target` (or links it there, with `noClobber`). */
async function replaceFile(
  target: string,
  data: string | Uint8Array,
  options: {
    mode: number;
    owner: Owner | null;
    replacing?: boolean;
    noClobber?: boolean;
  },
): Promise<void> {
  const directory = dirname(target);
  const suffix = crypto.getRandomValues(new Uint8Array(6)).toHex();
  const tempPath = join(
    directory,
    `.${basename(target)}.${Deno.pid}.${suffix}.tmp`,
  );
  let file: FileHandle | undefined;
  try {
    // "wx" is O_CREAT|O_EXCL, which never follows a symlink planted at tempPath.
    file = await openFile(tempPath, "wx", options.mode);
    await file.writeFile(data);
    await file.sync();
    if (!IS_WINDOWS) {
      if (options.owner !== null) {
        await giveOwner(file, options.owner, options.replacing === true);
      }
      // After the owner: chown may clear mode bits, and open's mode went through the umask.
      await file.chmod(options.mode);
    }
    await file.close();
    file = undefined;
    // link() fails on any existing name, a symlink included, and follows none.
    if (options.noClobber === true) await Deno.link(tempPath, target);
    else await Deno.rename(tempPath, target);
  } catch (error) {
    await file?.close().catch(() => {});
    await Deno.remove(tempPath).catch(() => {});
    throw asDenoError(error);
  }
  if (options.noClobber === true) await Deno.remove(tempPath);
  if (IS_WINDOWS) return;
  try {
    // Flushes the rename to disk.
    using handle = await Deno.open(directory, { read: true });
    await handle.sync();
  } catch {
    // Some file systems refuse fsync on directories; the rename is still atomic.
  }
}

/** Gives the open temporary file, on its descriptor, the uid and gid of `owner`, as far as we may. */
async function giveOwner(
  file: FileHandle,
  owner: Owner,
  replacing: boolean,
): Promise<void> {
  if (owner.uid === null || owner.gid === null) return;
  const created = await file.stat();
  if (created.uid === owner.uid && created.gid === owner.gid) return;
  // Its owner tells whether we are root, which needs no --allow-sys.
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
