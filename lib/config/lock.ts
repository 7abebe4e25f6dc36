/**
 * An exclusive lock around a config file's read-modify-write.
 *
 * @module
 */

import { ConfigError, errorText } from "./errors.ts";

/** How long {@linkcode withFileLock} waits for another holder by default. */
const DEFAULT_LOCK_TIMEOUT_MS = 10_000;

/** Options for {@linkcode withFileLock}. */
export interface FileLockOptions {
  /** How long to wait for another holder; default {@linkcode DEFAULT_LOCK_TIMEOUT_MS}. */
  timeoutMs?: number;
}

/** Runs `fn` while holding the exclusive OS lock on `<path>.lock` (the kernel releases it when its holder dies), and throws ConfigError when it cannot be taken in time. */
export async function withFileLock<T>(
  path: string,
  fn: () => Promise<T>,
  options: FileLockOptions = {},
): Promise<T> {
  const lockPath = `${path}.lock`;
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
      await new Promise((resolve) =>
        setTimeout(resolve, delayMs * (0.5 + Math.random()))
      );
      delayMs = Math.min(delayMs * 2, 100);
    }
    return await fn();
  } finally {
    // Closing the file releases the lock; the empty lock file stays.
    file.close();
  }
}
