/**
 * Builds the release binaries (`deno task compile`): one `deno compile` per
 * target into `dist/openme-<target>[.exe]`, then `dist/SHA256SUMS` in
 * `sha256sum` format for the binaries built by this run.
 *
 * ```sh
 * deno task compile                                        # all targets
 * deno task compile --only x86_64-unknown-linux-gnu        # one target
 * deno task compile --dry-run                              # print commands
 * ```
 *
 * The compiled binary gets exactly {@linkcode PERMISSION_FLAGS}, never
 * `--allow-all`; the README's "Permissions" section explains each flag.
 *
 * @module
 */

/** Every target a release ships, in the order they are built. */
export const TARGETS: readonly string[] = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
];

/**
 * Environment variables the binary may read. `HOME` (Unix) and `USERPROFILE`,
 * or `HOMEDRIVE` + `HOMEPATH` (Windows) locate the client config, `PATH` is
 * named in "command not found" errors, `OPENME_DEBUG=1` prints stack traces.
 * Any other variable reads as unset (`--ignore-env`) instead of throwing:
 * npm:yaml probes `LOG_TOKENS` and `LOG_STREAM` on every parse. Child
 * processes (firewall tools, `post_knock`) still inherit the whole environment.
 */
export const ALLOWED_ENV: readonly string[] = [
  "HOME",
  "USERPROFILE",
  "HOMEDRIVE",
  "HOMEPATH",
  "PATH",
  "OPENME_DEBUG",
];

/**
 * Programs the binary may start: the Linux firewall tools for `serve` and
 * `cleanup` (`*-restore` removes many rules in one call at shutdown),
 * `timedatectl` for doctor's clock check, and the shell that runs a
 * profile's `post_knock` (`sh`, or `cmd.exe` on Windows).
 * Deno resolves each name on `PATH` at start-up and drops the names it cannot
 * find, so a tool that is not installed simply cannot be run.
 */
export const ALLOWED_RUN: readonly string[] = [
  "nft",
  "iptables",
  "ip6tables",
  "iptables-restore",
  "ip6tables-restore",
  "timedatectl",
  "sh",
  "cmd.exe",
];

/** The exact permission flags baked into every binary. */
export const PERMISSION_FLAGS: readonly string[] = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  `--allow-env=${ALLOWED_ENV.join(",")}`,
  "--ignore-env",
  `--allow-run=${ALLOWED_RUN.join(",")}`,
  "--no-prompt",
];

/**
 * Other `deno compile` flags: `--quiet` also sets the binary's own log level,
 * which silences Deno's "Failed to resolve 'nft' for allow-run" notice on
 * machines without that tool; `--frozen` fails the build instead of changing
 * deno.lock; `--v8-flags=--max-semi-space-size=2` keeps the server's memory
 * under 150 MB during floods at no measurable CPU cost (bench/RESULTS.md).
 */
export const BUILD_FLAGS: readonly string[] = [
  "--quiet",
  "--frozen",
  "--v8-flags=--max-semi-space-size=2",
];

/** The program's entry point, relative to the repository root. */
export const ENTRY_POINT = "main.ts";

/** Modules started as workers, which `deno compile` embeds only when named with `--include`. */
export const WORKER_MODULES: readonly string[] = ["lib/server/scan_worker.ts"];

/** Default output directory, relative to the repository root. */
export const DEFAULT_OUT_DIR = "dist";

/** Name of the checksum file written next to the binaries. */
export const CHECKSUM_FILE = "SHA256SUMS";

/** File name of the binary for a target: `openme-<target>`, `.exe` on Windows. */
export function assetName(target: string): string {
  return `openme-${target}${target.includes("windows") ? ".exe" : ""}`;
}

/** The `deno` arguments that build one target into `outDir`. */
export function compileArgs(target: string, outDir: string): string[] {
  return [
    "compile",
    ...BUILD_FLAGS,
    "--target",
    target,
    "--output",
    `${outDir}/${assetName(target)}`,
    ...PERMISSION_FLAGS,
    ...WORKER_MODULES.flatMap((module) => ["--include", module]),
    ENTRY_POINT,
  ];
}

/** Parsed command line of this script. */
export interface CompileOptions {
  /** Targets to build, in {@linkcode TARGETS} order. */
  targets: string[];
  /** Output directory, relative to the repository root unless absolute. */
  outDir: string;
  /** Print the commands instead of running them. */
  dryRun: boolean;
  /** Print usage and exit. */
  help: boolean;
}

/** Usage text. */
export const USAGE: string = `Usage: deno task compile [options]

Builds ${DEFAULT_OUT_DIR}/openme-<target>[.exe] for each target and ${DEFAULT_OUT_DIR}/${CHECKSUM_FILE}.

Options:
  --target T, --only T  build only target T (repeatable); default all of:
                        ${TARGETS.join(", ")}
  --out-dir DIR         output directory (default ${DEFAULT_OUT_DIR})
  --dry-run             print the deno compile commands, build nothing
  -h, --help            show this help`;

/** Parses this script's arguments; throws an Error with a message on misuse. */
export function parseCompileArgs(args: readonly string[]): CompileOptions {
  const wanted = new Set<string>();
  let outDir = DEFAULT_OUT_DIR;
  let dryRun = false;
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const eq = arg.indexOf("=");
    const name = arg.startsWith("--") && eq > 0 ? arg.slice(0, eq) : arg;
    const inline = arg.startsWith("--") && eq > 0 ? arg.slice(eq + 1) : null;
    const value = (): string => {
      if (inline !== null) return inline;
      const next = args[i + 1];
      if (next === undefined || next.startsWith("-")) {
        throw new Error(`${name} needs a value`);
      }
      i++;
      return next;
    };
    switch (name) {
      case "--target":
      case "--only": {
        const target = value();
        if (!TARGETS.includes(target)) {
          throw new Error(
            `unknown target ${target}; known: ${TARGETS.join(", ")}`,
          );
        }
        wanted.add(target);
        break;
      }
      case "--out-dir":
        outDir = value().replace(/\/+$/, "") || "/";
        break;
      case "--dry-run":
        dryRun = true;
        break;
      case "-h":
      case "--help":
        help = true;
        break;
      default:
        throw new Error(`unknown argument ${arg}`);
    }
  }
  const targets = wanted.size === 0
    ? [...TARGETS]
    : TARGETS.filter((t) => wanted.has(t));
  return { targets, outDir, dryRun, help };
}

/** Quotes one word for display in a POSIX shell command line. */
function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)
    ? word
    : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** A command line as it would be typed into a shell. */
export function formatCommand(
  program: string,
  args: readonly string[],
): string {
  return [program, ...args].map(shellQuote).join(" ");
}

/** Lowercase hex SHA-256 of a file. */
export async function sha256File(path: string | URL): Promise<string> {
  const data = await Deno.readFile(path);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** `SHA256SUMS` text: one `<hex>  <name>` line per entry, as `sha256sum` writes. */
export function checksumText(
  entries: readonly { name: string; sha256: string }[],
): string {
  return entries.map((e) => `${e.sha256}  ${e.name}\n`).join("");
}

/** Runs the script; returns the process exit code. */
export async function main(args: readonly string[]): Promise<number> {
  let options: CompileOptions;
  try {
    options = parseCompileArgs(args);
  } catch (err) {
    console.error(`compile: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    console.log(USAGE);
    return 0;
  }
  if (options.dryRun) {
    for (const target of options.targets) {
      console.log(formatCommand("deno", compileArgs(target, options.outDir)));
    }
    return 0;
  }

  const root = new URL("..", import.meta.url);
  const outDir = new URL(`${options.outDir}/`, root);
  await Deno.mkdir(outDir, { recursive: true });
  const entries: { name: string; sha256: string }[] = [];
  for (const target of options.targets) {
    const args = compileArgs(target, options.outDir);
    console.log(`==> ${formatCommand("deno", args)}`);
    const status = await new Deno.Command(Deno.execPath(), {
      args,
      cwd: root,
      stdin: "null",
    }).spawn().status;
    if (!status.success) {
      console.error(`compile: building ${target} failed (exit ${status.code})`);
      return 1;
    }
    const name = assetName(target);
    entries.push({ name, sha256: await sha256File(new URL(name, outDir)) });
  }
  const sums = new URL(CHECKSUM_FILE, outDir);
  await Deno.writeTextFile(sums, checksumText(entries));
  console.log(`==> wrote ${options.outDir}/${CHECKSUM_FILE}:`);
  console.log(checksumText(entries).trimEnd());
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
