/**
 * The config file lock (lib/config/lock.ts): one holder at a time, a
 * ConfigError when another holds it too long, released after a throw.
 */
import assert from "node:assert/strict";
import { ConfigError } from "../../lib/config/errors.ts";
import { withFileLock } from "../../lib/config/lock.ts";
import { listDir, withTempDir } from "../support/files.ts";

/** Prefix of this file's temporary directories. */
const TEMP_PREFIX = "openme-lock-";

Deno.test("withFileLock runs holders one at a time and returns their result", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/config.yaml`;
    let inside = 0;
    let maxInside = 0;
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        withFileLock(path, async () => {
          inside++;
          maxInside = Math.max(maxInside, inside);
          await new Promise((resolve) => setTimeout(resolve, 15));
          inside--;
          return i;
        })),
    );
    assert.deepEqual(results, [0, 1, 2, 3, 4, 5]);
    assert.equal(maxInside, 1);
    assert.deepEqual(await listDir(dir), ["config.yaml.lock"]);
  });
});

Deno.test("withFileLock gives up with a ConfigError while another holds the lock, and releases after a throw", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/config.yaml`;
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    let entered = () => {};
    const holding = new Promise<void>((resolve) => (entered = resolve));
    const holder = withFileLock(path, () => {
      entered();
      return held;
    });
    await holding;
    let ran = false;
    await assert.rejects(
      withFileLock(path, () => {
        ran = true;
        return Promise.resolve(1);
      }, { timeoutMs: 200 }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message ===
          `config ${path}: another openme command held ${path}.lock for more than 0.2s (wait for it to finish and retry)`,
    );
    assert.equal(ran, false);
    release();
    await holder;
    await assert.rejects(
      withFileLock(path, () => Promise.reject(new Error("boom"))),
      /boom/,
    );
    assert.equal(
      await withFileLock(path, () => Promise.resolve("free"), {
        timeoutMs: 60_000,
      }),
      "free",
    );
  });
});

Deno.test("withFileLock names the file and the lock when the directory is missing", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/missing/config.yaml`;
    await assert.rejects(
      withFileLock(path, () => Promise.resolve()),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message.startsWith(
          `config ${path}: cannot open lock file ${path}.lock: `,
        ) &&
        error.message.endsWith(
          "(check that the directory exists and is writable by you)",
        ),
    );
  });
});
