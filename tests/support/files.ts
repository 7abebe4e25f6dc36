/**
 * File helpers the tests share: a temporary directory for one test, removed
 * afterwards, and the sorted names in a directory.
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

/** The names of the entries of a directory, sorted. */
export async function listDir(path: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(path)) names.push(entry.name);
  return names.sort();
}
