/**
 * Who may change openme's files: a file or directory that users other than root, ours and the service account can write is unsafe.
 *
 * @module
 */

import { dirname } from "node:path";

/** The system account the systemd unit runs `openme serve` as. */
export const SERVICE_ACCOUNT = "openme";

/** The effective uid of this process (the owner of /proc/self, which needs no `--allow-sys`), or null where unknown. */
export function processUid(): number | null {
  try {
    return Deno.statSync("/proc/self").uid;
  } catch {
    return null;
  }
}

/** The uid of a user (from `<etc>/passwd`) and the gid of the group of the same name (from `<etc>/group`), null when missing. */
export async function accountIds(
  name: string,
  etc = "/etc",
): Promise<{ uid: number | null; gid: number | null }> {
  async function idIn(file: string): Promise<number | null> {
    const text = await Deno.readTextFile(`${etc}/${file}`).catch(() => "");
    const fields = text.split("\n").map((line) => line.split(":"))
      .find((f) => f[0] === name && /^[0-9]+$/.test(f[2] ?? ""));
    return fields === undefined ? null : Number(fields[2]);
  }
  return { uid: await idIn("passwd"), gid: await idIn("group") };
}

/** Why other users could change a file or directory (a group/world write bit, or an owner not in `owners`; a null mode or uid is not checked) with the chmod/chown (to `fixOwner`) that fixes it, or null when they cannot. */
export function unsafeOwnership(
  path: string,
  info: { mode: number | null; uid?: number | null },
  options: { owners: readonly (number | null)[]; fixOwner: string },
): string | null {
  if (info.mode !== null && (info.mode & 0o022) !== 0) {
    const mode = (info.mode & 0o777).toString(8).padStart(4, "0");
    return `mode ${mode} lets other users change it (run chmod go-w ${path})`;
  }
  if (typeof info.uid === "number" && !options.owners.includes(info.uid)) {
    return `it is owned by uid ${info.uid}, another user (run chown ${options.fixOwner} ${path})`;
  }
  return null;
}

/** Why users other than root and this one (the service user among them) could change the server config or its directory, with the fix, or null. */
export async function configChangeableByOthers(
  path: string,
): Promise<string | null> {
  const owners = [0, processUid()];
  for (const target of [path, dirname(path)]) {
    const info = await Deno.stat(target).catch(() => null);
    const problem = info &&
      unsafeOwnership(target, info, { owners, fixOwner: "root" });
    if (problem) {
      return `config ${target}: ${problem}; only root should change the server config, the ${SERVICE_ACCOUNT} service just reads it`;
    }
  }
  return null;
}
