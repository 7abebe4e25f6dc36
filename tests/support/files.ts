/**
 * File helpers the tests share: a temporary directory for one test, removed
 * afterwards (also one that other users can read, for tests that run a
 * command as another user), and the sorted names in a directory.
 *
 * @module
 */

/** Runs fn with a fresh temporary directory whose name starts with prefix; removes it afterwards. */
export async function withTempDir(
  prefix: string,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Runs fn with a fresh temporary directory that every user can enter and
 * read (mode 0755), for what a test runs as another user: that user cannot
 * read the checkout when it lies in a private folder. Throws, naming the
 * folder, when a parent of the temporary directory shuts other users out.
 */
export async function withSharedTempDir(
  prefix: string,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  await withTempDir(prefix, async (dir) => {
    await Deno.chmod(dir, 0o755);
    for (
      let parent = dir.slice(0, dir.lastIndexOf("/"));
      parent !== "";
      parent = parent.slice(0, parent.lastIndexOf("/"))
    ) {
      const mode = (await Deno.stat(parent)).mode ?? 0;
      if ((mode & 0o001) === 0) {
        throw new Error(
          `${parent} (mode ${
            (mode & 0o777).toString(8)
          }) shuts other users out of the temporary directory ${dir}: set TMPDIR to a folder every user can enter`,
        );
      }
    }
    await fn(dir);
  });
}

/** The names of the entries of a directory, sorted. */
export async function listDir(path: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(path)) names.push(entry.name);
  return names.sort();
}
