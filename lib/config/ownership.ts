/**
 * Who may change openme's files: root, the user running openme and the
 * `openme` service account (from /etc/passwd and /etc/group); a file or
 * directory anyone else can write is unsafe.
 *
 * @module
 */

import { dirname } from "node:path";

/** The system account the systemd unit runs `openme serve` as. */
export const SERVICE_ACCOUNT = "openme";

/** Write permission for group and others. */
const GROUP_OTHER_WRITE = 0o022;

/** The uid and gid of a file or account; null where unknown. */
export interface Ids {
  /** User id. */
  uid: number | null;
  /** Group id. */
  gid: number | null;
}

/** The effective uid of this process (the owner of /proc/self, which needs no `--allow-sys`), or null where unknown. */
export function processUid(): number | null {
  try {
    return Deno.statSync("/proc/self").uid;
  } catch {
    return null;
  }
}

/** The uid of a user (from `<etc>/passwd`) and the gid of the group of the same name (from `<etc>/group`), null when missing. */
export async function accountIds(name: string, etc = "/etc"): Promise<Ids> {
  async function idIn(file: string): Promise<number | null> {
    const text = await Deno.readTextFile(`${etc}/${file}`).catch(() => "");
    const fields = text.split("\n").map((line) => line.split(":"))
      .find((f) => f[0] === name && /^[0-9]+$/.test(f[2] ?? ""));
    return fields === undefined ? null : Number(fields[2]);
  }
  return { uid: await idIn("passwd"), gid: await idIn("group") };
}

/** The uids that may own openme's server files: root, this process's user and the service account. */
export async function trustedOwners(): Promise<number[]> {
  const owners = [0, processUid(), (await accountIds(SERVICE_ACCOUNT)).uid];
  return owners.filter((uid) => uid !== null);
}

/** Why other users could change a file or directory (a group/world write bit, or an owner not in `owners`; a null mode or uid is not checked) with the chmod/chown (to `fixOwner`) that fixes it, or null when they cannot. */
export function unsafeOwnership(
  path: string,
  info: { mode: number | null; uid: number | null },
  options: { owners: readonly number[]; fixOwner: string },
): string | null {
  if (info.mode !== null && (info.mode & GROUP_OTHER_WRITE) !== 0) {
    const mode = (info.mode & 0o777).toString(8).padStart(4, "0");
    return `mode ${mode} lets other users change it (run chmod go-w ${path})`;
  }
  if (info.uid !== null && !options.owners.includes(info.uid)) {
    return `it is owned by uid ${info.uid}, another user (run chown ${options.fixOwner} ${path})`;
  }
  return null;
}

/** What lets the service account change the server config (it may write the file or its directory) and the fix, or null when it cannot or does not exist; `etc` holds passwd and group. */
export async function serviceCanWrite(
  path: string,
  etc = "/etc",
): Promise<{ text: string; fix: string } | null> {
  const account = await accountIds(SERVICE_ACCOUNT, etc);
  if (account.uid === null) return null;
  const dir = dirname(path);
  for (const target of [path, dir]) {
    const info = await Deno.stat(target).catch(() => null);
    if (info === null || info.mode === null) continue;
    // The owner's, the group's or the others' write bit.
    const shift = info.uid === account.uid
      ? 6
      : info.gid === account.gid
      ? 3
      : 0;
    if (((info.mode >> shift) & 0o2) === 0) continue;
    return {
      text:
        `the ${SERVICE_ACCOUNT} service user may write ${target}: a compromised daemon could change its own config`,
      fix:
        `chown root:${SERVICE_ACCOUNT} ${dir} ${path} && chmod 0750 ${dir} && chmod 0640 ${path}`,
    };
  }
  return null;
}
