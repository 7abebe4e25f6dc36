/**
 * Running this checkout's CLI the way an installed binary runs: copies of the
 * sources and of Deno's npm cache that every user can read (the checkout may
 * lie in a private folder), a stand-in for the compiled binary (a launcher
 * script running the copy with Deno), and .deb/.rpm packages built from it
 * with scripts/package.sh.
 *
 * @module
 */

import assert from "node:assert/strict";
import { REPO_DIR, run } from "../../scripts/testbed.ts";

/** Time limit of each command here. */
const TIMEOUT_MS = 120_000;

/** What `deno run main.ts` reads from the checkout. */
const SOURCES = ["main.ts", "deno.json", "deno.lock", "lib"];

/** Copies the sources to `into` (a new directory), readable by every user. */
export async function copySources(into: string): Promise<void> {
  await Deno.mkdir(into, { mode: 0o755 });
  const copied = await run(
    ["cp", "-R", ...SOURCES.map((name) => `${REPO_DIR}/${name}`), into],
    { timeoutMs: TIMEOUT_MS },
  );
  assert.equal(copied.code, 0, copied.stderr);
  const opened = await run(["chmod", "-R", "a+rX", into], {
    timeoutMs: TIMEOUT_MS,
  });
  assert.equal(opened.code, 0, opened.stderr);
}

/** Copies the npm packages of this Deno's cache to `into/npm`, readable by every user (root's cache is not). */
export async function copyNpmCache(into: string): Promise<void> {
  const info = await run([Deno.execPath(), "info", "--json"], {
    timeoutMs: TIMEOUT_MS,
  });
  const denoDir = JSON.parse(info.stdout).denoDir;
  assert.equal(typeof denoDir, "string", "deno info --json gave no denoDir");
  await Deno.mkdir(into, { recursive: true, mode: 0o755 });
  const copied = await run(["cp", "-a", `${denoDir}/npm`, `${into}/npm`], {
    timeoutMs: TIMEOUT_MS,
  });
  assert.equal(copied.code, 0, `cannot copy ${denoDir}/npm: ${copied.stderr}`);
  const opened = await run(["chmod", "-R", "a+rX", into], {
    timeoutMs: TIMEOUT_MS,
  });
  assert.equal(opened.code, 0, opened.stderr);
}

/** A stand-in binary and where it records its calls. */
export interface StandIn {
  /** The launcher script, to pass as `package.sh --binary`. */
  binary: string;
  /** Every run appends its arguments here, one line per run (root's runs). */
  calls: string;
}

/**
 * Writes `dir/openme-VERSION`: a launcher that runs a copy of this checkout's
 * main.ts, its deno.json saying `version`, with Deno, for any user. `dir`
 * must be a directory every user can enter.
 */
export async function standInBinary(
  dir: string,
  version: string,
): Promise<StandIn> {
  const denoDir = `${dir}/deno`;
  try {
    await Deno.stat(denoDir);
  } catch {
    await copyNpmCache(denoDir);
  }
  const src = `${dir}/src-${version}`;
  await copySources(src);
  const config = JSON.parse(await Deno.readTextFile(`${src}/deno.json`));
  config.version = version;
  await Deno.writeTextFile(`${src}/deno.json`, JSON.stringify(config));
  const calls = `${dir}/calls.log`;
  const binary = `${dir}/openme-${version}`;
  await Deno.writeTextFile(
    binary,
    [
      "#!/bin/sh",
      `[ -w '${calls}' ] && printf '%s\\n' "$*" >>'${calls}'`,
      `DENO_DIR='${denoDir}' NO_COLOR=1 exec '${Deno.execPath()}' run -A --no-prompt --cached-only --config '${src}/deno.json' '${src}/main.ts' "$@"`,
      "",
    ].join("\n"),
    { mode: 0o755 },
  );
  await Deno.chmod(binary, 0o755);
  await Deno.writeTextFile(calls, "", { append: true });
  return { binary, calls };
}

/** The two packages package.sh wrote. */
export interface Packages {
  /** Path of the .deb. */
  deb: string;
  /** Path of the .rpm. */
  rpm: string;
}

/** Runs `bash scripts/package.sh ARGS`; returns its output. */
export function packageScript(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(["bash", `${REPO_DIR}/scripts/package.sh`, ...args], {
    timeoutMs: TIMEOUT_MS,
  });
}

/** Builds both packages of `binary` (amd64) into `out`; asserts success and returns the paths it printed. */
export async function buildPackages(
  binary: string,
  version: string,
  out: string,
): Promise<Packages> {
  const result = await packageScript([
    "--binary",
    binary,
    "--version",
    version,
    "--arch",
    "amd64",
    "--out",
    out,
  ]);
  assert.equal(result.code, 0, result.stderr);
  const [deb, rpm] = result.stdout.trim().split("\n");
  assert.equal(deb, `${out}/openme_${version}_amd64.deb`);
  assert.equal(rpm, `${out}/openme-${version}-1.x86_64.rpm`);
  return { deb, rpm };
}
