/**
 * Tests of scripts/compile.ts: the exact `deno compile` commands, a real build
 * of one target (offline, with the running deno standing in for the
 * downloaded runtime), and that the release permission flags are enough for
 * the CLI: main.ts run under exactly those flags must not hit a permission
 * error, and every environment variable it reads must be on the allow list.
 */

import assert from "node:assert/strict";
import { NETNS_PROGRAMS, TOOL_PROGRAMS } from "../lib/firewall/exec.ts";
import { shellCommand } from "../lib/platform.ts";
import {
  ALLOWED_ENV,
  ALLOWED_RUN,
  assetName,
  BUILD_FLAGS,
  CHECKSUM_FILE,
  compileArgs,
  PERMISSION_FLAGS,
  TARGETS,
  WORKER_MODULES,
} from "../scripts/compile.ts";

const REPO = new URL("..", import.meta.url);
const REPO_DIR = decodeURIComponent(REPO.pathname).replace(/\/$/, "");
const COMPILE_SCRIPT = `${REPO_DIR}/scripts/compile.ts`;
const TIMEOUT_MS = 120_000;
const decoder = new TextDecoder();

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; clearEnv?: boolean } =
    {},
): Promise<RunResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: options.cwd ?? REPO_DIR,
    env: options.env,
    clearEnv: options.clearEnv,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(TIMEOUT_MS),
  }).output();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

function compileScript(args: string[]): Promise<RunResult> {
  return run(["run", "-A", COMPILE_SCRIPT, ...args]);
}

/** Tries what the release permissions must refuse and prints what happened, as JSON. */
const PERMISSION_PROBE = `
function attempt(fn) {
  try {
    fn();
    return "allowed";
  } catch (err) {
    return err.name;
  }
}
console.log(JSON.stringify({
  run: attempt(() => new Deno.Command("ls").outputSync()),
  ffi: attempt(() => Deno.dlopen("libc.so.6", {})),
  sys: attempt(() => Deno.loadavg()),
  otherVariable: Deno.env.get("OPENME_TEST_SECRET") ?? null,
  home: Deno.env.get("HOME") ?? null,
}));
`;

Deno.test("compile: under the release permissions a program cannot start other programs, load native code, read system information or other variables", async () => {
  const dir = await Deno.makeTempDir({ prefix: "openme-perm-probe-" });
  try {
    await Deno.writeTextFile(`${dir}/probe.js`, PERMISSION_PROBE);
    const result = await run(
      ["run", "--quiet", ...PERMISSION_FLAGS, `${dir}/probe.js`],
      {
        cwd: dir,
        env: {
          PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
          HOME: dir,
          OPENME_TEST_SECRET: "secret",
        },
        clearEnv: true,
      },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), {
      run: "NotCapable",
      ffi: "NotCapable",
      sys: "NotCapable",
      otherVariable: null,
      home: dir,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Every .ts file under a directory of the repository, as paths relative to it. */
async function sourceFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(`${REPO_DIR}/${dir}`)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) files.push(...await sourceFiles(path));
    else if (path.endsWith(".ts")) files.push(path);
  }
  return files.sort();
}

Deno.test("compile: the code calls no API that needs --allow-sys, which the release does not grant", async () => {
  assert.ok(!PERMISSION_FLAGS.some((flag) => flag.startsWith("--allow-sys")));
  // Deno's own system-information calls, and node:os (which needs it too).
  const needsSys =
    /Deno\.(uid|gid|hostname|osRelease|osUptime|loadavg|networkInterfaces|systemMemoryInfo)\(|from "node:os"/;
  const found: string[] = [];
  for (const file of await sourceFiles("lib")) {
    const lines = (await Deno.readTextFile(`${REPO_DIR}/${file}`)).split("\n");
    lines.forEach((line, i) => {
      if (needsSys.test(line)) found.push(`${file}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(found, []);
});

Deno.test("compile: every program the code can start is on the --allow-run list", async () => {
  const starts: string[] = [];
  const literals: string[] = [];
  for (const file of await sourceFiles("lib")) {
    const text = await Deno.readTextFile(`${REPO_DIR}/${file}`);
    if (text.includes("new Deno.Command(")) starts.push(file);
    for (const m of text.matchAll(/runTool\(\s*"([^"]+)"/g)) {
      literals.push(m[1]);
    }
  }
  // Processes start in two places: runTool, and post_knock's shell.
  assert.deepEqual(starts, [
    "lib/client/post_knock.ts",
    "lib/firewall/exec.ts",
  ]);
  // runTool takes only the programs of its list (the type checker holds
  // every call to it), and its literal calls name them.
  const exec = await Deno.readTextFile(`${REPO_DIR}/lib/firewall/exec.ts`);
  assert.match(exec, /export async function runTool\(\s*command: ToolProgram,/);
  const known: readonly string[] = [...TOOL_PROGRAMS, ...NETNS_PROGRAMS];
  assert.ok(literals.length > 0 && literals.every((p) => known.includes(p)));
  const shells = (["linux", "darwin", "windows"] as const).map((platform) =>
    shellCommand("true", { platform }).program
  );
  // NETNS_PROGRAMS run only inside a test's network namespace.
  for (const program of [...TOOL_PROGRAMS, ...shells]) {
    assert.ok(
      ALLOWED_RUN.includes(program),
      `the code starts ${program}, which scripts/compile.ts ALLOWED_RUN does not list`,
    );
  }
});

Deno.test("compile --dry-run: one deno compile per target with the exact flags", async () => {
  const result = await compileScript(["--dry-run"]);
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stdout.trim().split("\n");
  assert.equal(lines.length, TARGETS.length);
  lines.forEach((line, i) => {
    const target = TARGETS[i];
    const output = `dist/openme-${target}${
      target.includes("windows") ? ".exe" : ""
    }`;
    assert.deepEqual(line.split(" "), [
      "deno",
      "compile",
      ...BUILD_FLAGS,
      "--target",
      target,
      "--output",
      output,
      ...PERMISSION_FLAGS,
      ...WORKER_MODULES.flatMap((module) => ["--include", module]),
      "main.ts",
    ]);
    assert.equal(`dist/${assetName(target)}`, output);
    for (const word of line.split(" ")) {
      assert.ok(
        !["-A", "--allow-all", "--allow-ffi", "--allow-sys"].includes(word),
        word,
      );
      // Never an unrestricted --allow-env or --allow-run.
      assert.ok(word !== "--allow-env" && word !== "--allow-run", word);
    }
  });
});

Deno.test("compile --dry-run: --only / --target select targets; bad arguments are usage errors", async () => {
  const one = await compileScript([
    "--dry-run",
    "--only",
    "aarch64-apple-darwin",
  ]);
  assert.equal(one.code, 0, one.stderr);
  assert.equal(one.stdout.trim().split("\n").length, 1);
  assert.match(
    one.stdout,
    /--target aarch64-apple-darwin --output dist\/openme-aarch64-apple-darwin /,
  );

  const two = await compileScript([
    "--dry-run",
    "--target=x86_64-pc-windows-msvc",
    "--target",
    "x86_64-unknown-linux-gnu",
    "--out-dir",
    "out",
  ]);
  assert.equal(two.code, 0, two.stderr);
  const outputs = two.stdout.trim().split("\n").map((l) =>
    l.split(" ")[l.split(" ").indexOf("--output") + 1]
  );
  assert.deepEqual(outputs, [
    "out/openme-x86_64-unknown-linux-gnu",
    "out/openme-x86_64-pc-windows-msvc.exe",
  ]);

  for (
    const args of [["--only", "mips-unknown-linux-gnu"], ["--bogus"], [
      "--only",
    ]]
  ) {
    const bad = await compileScript(["--dry-run", ...args]);
    assert.equal(bad.code, 2, `${args.join(" ")}: ${bad.stdout}`);
    assert.match(bad.stderr, /Usage: deno task compile/);
  }
});

const hostTarget = TARGETS.includes(Deno.build.target)
  ? Deno.build.target
  : null;
if (hostTarget === null) {
  console.warn(
    `SKIP compile build: ${Deno.build.target} is not a release target`,
  );
}

Deno.test({
  name:
    "compile: builds a binary and a matching SHA256SUMS (offline, deno as the runtime)",
  ignore: hostTarget === null,
  fn: async () => {
    const target = hostTarget!;
    // A copy of the project's build setup around a small entry point, so the
    // build does not depend on the state of lib/.
    const dir = await Deno.makeTempDir({ prefix: "openme-compile-test-" });
    try {
      await Deno.mkdir(`${dir}/scripts`);
      await Deno.copyFile(COMPILE_SCRIPT, `${dir}/scripts/compile.ts`);
      await Deno.copyFile(`${REPO_DIR}/deno.json`, `${dir}/deno.json`);
      await Deno.copyFile(`${REPO_DIR}/deno.lock`, `${dir}/deno.lock`);
      await Deno.writeTextFile(
        `${dir}/main.ts`,
        `import YAML from "yaml";\nconsole.log(YAML.stringify({ ok: true }));\n`,
      );
      for (const module of WORKER_MODULES) {
        const folder = module.slice(0, module.lastIndexOf("/"));
        await Deno.mkdir(`${dir}/${folder}`, { recursive: true });
        await Deno.writeTextFile(`${dir}/${module}`, "self.close();\n");
      }
      // deno compile downloads its runtime unless DENORT_BIN names one; the
      // deno binary serves for checking what the build produces.
      const result = await run([
        "run",
        "-A",
        "scripts/compile.ts",
        "--only",
        target,
        "--out-dir",
        "out",
      ], {
        cwd: dir,
        env: { DENORT_BIN: Deno.execPath() },
      });
      assert.equal(result.code, 0, result.stdout + result.stderr);
      const name = assetName(target);
      const binary = await Deno.readFile(`${dir}/out/${name}`);
      assert.ok(binary.length > 1_000_000, "a whole runtime, not a stub");
      const digest = new Uint8Array(
        await crypto.subtle.digest("SHA-256", binary),
      );
      const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0"))
        .join("");
      assert.equal(
        await Deno.readTextFile(`${dir}/out/${CHECKSUM_FILE}`),
        `${hex}  ${name}\n`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** main.ts and every .ts file under lib/, as [path, text]. */
async function sources(): Promise<[string, string][]> {
  const files: [string, string][] = [];
  const pending = [`${REPO_DIR}/lib`];
  // Bounded by the size of the tree: each directory is visited once.
  while (pending.length > 0) {
    const dir = pending.pop()!;
    try {
      for await (const entry of Deno.readDir(dir)) {
        const path = `${dir}/${entry.name}`;
        if (entry.isDirectory) pending.push(path);
        else if (entry.name.endsWith(".ts")) {
          files.push([path, await Deno.readTextFile(path)]);
        }
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  try {
    files.push([
      `${REPO_DIR}/main.ts`,
      await Deno.readTextFile(`${REPO_DIR}/main.ts`),
    ]);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return files;
}

Deno.test("compile: the binary needs no files beyond the module graph", async () => {
  // deno compile embeds what it can see statically: a dynamic import of a
  // computed specifier, or a source file read next to the module, would need
  // --include and is missing from the binary otherwise.
  for (const [path, text] of await sources()) {
    for (const match of text.matchAll(/\bimport\(\s*([^)\s][^)]*)\)/g)) {
      assert.match(
        match[1].trim(),
        /^(["'])[^"'`$]+\1$/,
        `${path}: import(${match[1]}) is not a string literal`,
      );
    }
    assert.doesNotMatch(
      text,
      /import\.meta\.(dirname|filename)/,
      `${path} locates files next to its source`,
    );
    // A worker's module is the one file allowed next to a source: deno
    // compile embeds it only when it is passed with --include.
    const workers =
      /new Worker\(\s*new URL\(\s*"([^"]+)",\s*import\.meta\.url\)/g;
    for (const [, module] of text.matchAll(workers)) {
      const relative = new URL(module, `file://${path}`).pathname
        .slice(REPO_DIR.length + 1);
      const args = compileArgs(TARGETS[0], "dist");
      assert.ok(
        args.some((arg, i) => arg === relative && args[i - 1] === "--include"),
        `${path} starts a worker from ${relative}: scripts/compile.ts must pass --include ${relative} to deno compile`,
      );
    }
    assert.doesNotMatch(
      text.replaceAll(workers, ""),
      /new URL\([^)]*import\.meta\.url/,
      `${path} locates files next to its source`,
    );
  }
});

/** The flags `deno run` needs to behave like the compiled binary. */
function runFlags(): string[] {
  // --quiet is embedded in the binary too; --cached-only keeps the test offline.
  return ["run", "--quiet", "--cached-only", ...PERMISSION_FLAGS];
}

const PERMISSION_ERROR =
  /NotCapable|Requires \w+ access|run again with the --allow|lacks permission/;
/** Variables that dependencies probe and that are meant to read as unset. */
const IGNORED_ENV = ["LOG_STREAM", "LOG_TOKENS"];
const CLI_MODULES = [
  "init",
  "add",
  "list",
  "profiles",
  "knock",
  "status",
  "sessions",
]
  .map((c) => `lib/cli/commands/${c}.ts`);
const missingModules = CLI_MODULES.filter((m) => {
  try {
    Deno.statSync(`${REPO_DIR}/${m}`);
    return false;
  } catch {
    return true;
  }
});
if (missingModules.length > 0) {
  console.warn(
    `SKIP CLI under release permissions: missing ${missingModules.join(", ")}`,
  );
}

Deno.test({
  name: "compile: the CLI runs under exactly the release permissions",
  ignore: missingModules.length > 0,
  fn: async () => {
    const denoDir = JSON.parse((await run(["info", "--json"])).stdout)
      .denoDir as string;
    const dir = await Deno.makeTempDir({ prefix: "openme-perm-test-" });
    try {
      await Deno.mkdir(`${dir}/home`);
      const audit = `${dir}/audit.jsonl`;
      const env = {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        HOME: `${dir}/home`,
        DENO_DIR: denoDir,
        DENO_AUDIT_PERMISSIONS: audit,
      };
      const config = `${dir}/etc/openme/config.yaml`;
      const cli = async (
        args: string[],
        mustSucceed: boolean,
      ): Promise<RunResult> => {
        const result = await run([
          ...runFlags(),
          `${REPO_DIR}/main.ts`,
          ...args,
        ], { env, clearEnv: true });
        const output = result.stdout + result.stderr;
        assert.doesNotMatch(
          output,
          PERMISSION_ERROR,
          `openme ${args.join(" ")}:\n${output}`,
        );
        if (mustSucceed) {
          assert.equal(result.code, 0, `openme ${args.join(" ")}:\n${output}`);
        }
        return result;
      };

      assert.match(
        (await cli(["--version"], true)).stdout,
        /^openme \d+\.\d+\.\d+/,
      );
      await cli(["init", "--server", "127.0.0.1", "--config", config], true);
      const added = await cli(["add", "alice", "--config", config], true);
      // add prints a complete client config (a profiles: block).
      await Deno.mkdir(`${dir}/home/.openme`, { mode: 0o700 });
      await Deno.writeTextFile(
        `${dir}/home/.openme/config.yaml`,
        added.stdout,
        { mode: 0o600 },
      );
      await cli(["list", "--config", config], true);
      await cli(["profiles"], true);
      // Nothing listens on 127.0.0.1: these only have to get as far as the network.
      await cli(["knock"], false);
      await cli(["status"], false);
      await cli(["sessions", "--state-file", `${dir}/sessions.json`], false);

      const read = new Set<string | null>();
      for (const line of (await Deno.readTextFile(audit)).split("\n")) {
        if (line === "") continue;
        const entry = JSON.parse(line) as {
          permission: string;
          value: string | null;
        };
        if (entry.permission === "env") read.add(entry.value);
      }
      for (const name of read) {
        assert.ok(
          name !== null &&
            (ALLOWED_ENV.includes(name) || IGNORED_ENV.includes(name)),
          `the CLI reads ${
            name === null ? "the whole environment" : `$${name}`
          }, which the ` +
            "release binary cannot see: add it to ALLOWED_ENV in scripts/compile.ts",
        );
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("compile bakes in the V8 young-generation cap that keeps flood memory under 150 MB", () => {
  assert.ok(BUILD_FLAGS.includes("--v8-flags=--max-semi-space-size=2"));
});
