/**
 * The clients directory (`clients.d`): its `*.yaml` files, and a stamp that changes whenever they or the config file do.
 *
 * @module
 */

import { join } from "node:path";
import { ConfigError, errorText } from "./errors.ts";
import { processUid, unsafeOwnership } from "./ownership.ts";
import { readYamlFile, type YamlFile } from "./yaml_file.ts";

/** A file of the clients directory, parsed; or a file (or the directory itself) refused, with why. */
export type DropIn =
  | { path: string; file: YamlFile }
  | { path: string; error: ConfigError };

/** The names of the `*.yaml` files in a directory (not hidden ones), sorted; throws what reading it throws. */
async function dropInNames(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const name = entry.name;
    if (name.endsWith(".yaml") && !name.startsWith(".")) names.push(name);
  }
  return names.sort();
}

/** Reads the clients directory's files in name order (root, this process's user and the service account, given by uid, may own them); a missing directory has none, an unsafe or unreadable one is refused as a whole. */
export async function readClientsDir(
  dir: string,
  service: number | null,
): Promise<DropIn[]> {
  const owners = { owners: [0, processUid(), service], fixOwner: "root" };
  let names: string[];
  try {
    const info = await Deno.stat(dir);
    const problem = info.isDirectory
      ? unsafeOwnership(dir, info, owners)
      : "it is not a directory (set server.clients_dir to a directory)";
    if (problem !== null) {
      return [{ path: dir, error: new ConfigError({ file: dir, problem }) }];
    }
    names = await dropInNames(dir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    const problem = `cannot read the clients directory: ${errorText(error)}`;
    return [{ path: dir, error: new ConfigError({ file: dir, problem }) }];
  }
  const dropIns: DropIn[] = [];
  for (const name of names) {
    const path = join(dir, name);
    try {
      const file = await readYamlFile(path);
      const problem = unsafeOwnership(path, file, owners);
      if (problem !== null) throw new ConfigError({ file: path, problem });
      dropIns.push({ path, file });
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      dropIns.push({ path, error });
    }
  }
  return dropIns;
}

/** What identifies one version of the config file and the clients directory (names, times, sizes, inodes, modes), or null when the config file is gone. */
export async function configStamp(
  path: string,
  clientsDir: string,
): Promise<string | null> {
  async function stamp(file: string): Promise<string> {
    const st = await Deno.stat(file).catch(() => null);
    // A rename over the file changes its inode, chmod and chown its ctime.
    return JSON.stringify(st && [st.mtime, st.ctime, st.size, st.ino, st.mode]);
  }
  const config = await stamp(path);
  if (config === "null") return null;
  const parts = [config, await stamp(clientsDir)];
  const names = await dropInNames(clientsDir).catch(() => []);
  for (const name of names) {
    parts.push(name, await stamp(join(clientsDir, name)));
  }
  return parts.join("|");
}
