/**
 * The command line: parses global and command flags with `./args.ts` (which
 * imports no Node built-in, so the Node compatibility layer is not loaded),
 * then loads and runs the one command asked for. Server-side
 * modules are imported only by the commands that need them, so `knock` starts
 * fast.
 *
 * @module
 */

import denoConfig from "../../deno.json" with { type: "json" };
import { flushLog, isLogLevel, setLogLevel } from "../log.ts";
import { ArgsError, parseArgv, type ParsedArgs } from "./args.ts";
import { CommandError, UsageError } from "./errors.ts";
import type { CliIo, GlobalOptions, ParsedCommand } from "./io.ts";
import {
  commandHelp,
  COMMANDS,
  findCommand,
  GLOBAL_OPTIONS,
  topLevelHelp,
} from "./spec.ts";

/** The version from deno.json. */
export const VERSION: string = denoConfig.version;

/** Output to the process's stdout and stderr. */
export const CONSOLE_IO: CliIo = {
  out(text: string): void {
    flushLog();
    console.log(text);
  },
  err(text: string): void {
    flushLog();
    console.error(text);
  },
};

/** The version line: version and build target. */
export function versionLine(): string {
  return `openme ${VERSION} (${Deno.build.target})`;
}

function usageHint(command: string | null): string {
  if (command === null) {
    return "Usage: openme COMMAND [options]\nRun `openme --help` for the list of commands.";
  }
  const spec = findCommand(command);
  if (spec === undefined) return usageHint(null);
  return `Usage: openme ${spec.usage}\nRun \`openme ${spec.name} --help\` for options and examples.`;
}

/** Global flags that take a value. */
const GLOBAL_VALUE_FLAGS: readonly string[] = [
  "--config",
  "--client-config",
  "--log-level",
];

/** Global flags that take no value. */
const GLOBAL_SWITCHES: readonly string[] = ["-h", "--help", "-v", "--version"];

/** Why a command line without a command is wrong: an unknown flag, a global flag without its value, or no command at all. */
function noCommandProblem(argv: string[]): string {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const flag = arg.split("=")[0];
    if (GLOBAL_VALUE_FLAGS.includes(flag)) {
      if (!arg.includes("=") && i + 1 >= argv.length) {
        return `option ${flag} needs a value`;
      }
      if (!arg.includes("=")) i++;
      continue;
    }
    if (arg === "--") break;
    if (!GLOBAL_SWITCHES.includes(arg)) return `unknown option '${arg}'`;
  }
  return "no command given";
}

/** Parses argv into a command, or returns "help"/"version" for the top-level flags; throws UsageError. */
export function parseCommandLine(
  argv: string[],
): ParsedCommand | { topLevel: "help" | "version" } {
  // Global flags may stand before the command; find the command name by
  // skipping flags and the values of global flags that take one.
  let commandIndex = -1;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (GLOBAL_VALUE_FLAGS.includes(arg)) {
      i++;
      continue;
    }
    if (arg.startsWith("-")) continue;
    commandIndex = i;
    break;
  }
  if (commandIndex < 0) {
    if (argv.includes("-v") || argv.includes("--version")) {
      return { topLevel: "version" };
    }
    if (argv.length === 0 || argv.includes("-h") || argv.includes("--help")) {
      return { topLevel: "help" };
    }
    throw new UsageError(noCommandProblem(argv), null);
  }
  const name = argv[commandIndex];
  if (name === "help") {
    const target = argv[commandIndex + 1];
    if (target === undefined) return { topLevel: "help" };
    if (findCommand(target) === undefined) {
      const names = COMMANDS.map((c) => c.name).join(", ");
      throw new UsageError(
        `unknown command "${target}" (commands: ${names})`,
        null,
      );
    }
    return parseCommandLine([target, "--help"]);
  }
  const spec = findCommand(name);
  if (spec === undefined) {
    const names = COMMANDS.map((c) => c.name).join(", ");
    throw new UsageError(
      `unknown command "${name}" (commands: ${names})`,
      null,
    );
  }
  const rest = [
    ...argv.slice(0, commandIndex),
    ...argv.slice(commandIndex + 1),
  ];
  let parsed: ParsedArgs;
  try {
    parsed = parseArgv(rest, { ...GLOBAL_OPTIONS, ...spec.options });
  } catch (error) {
    if (error instanceof ArgsError) {
      throw new UsageError(error.message, spec.name);
    }
    throw error;
  }
  const values = parsed.values;
  if (values.help === true) {
    return { spec, values, positionals: [], globals: globalsOf(values) };
  }
  if (parsed.positionals.length > spec.positionals.length) {
    const extra = parsed.positionals.slice(spec.positionals.length).join(" ");
    throw new UsageError(`unexpected argument(s): ${extra}`, spec.name);
  }
  if (parsed.positionals.length < spec.requiredPositionals) {
    const missing = spec.positionals.slice(
      parsed.positionals.length,
      spec.requiredPositionals,
    );
    throw new UsageError(`missing ${missing.join(" ")}`, spec.name);
  }
  const level = values["log-level"];
  if (typeof level === "string" && !isLogLevel(level)) {
    throw new UsageError(
      `--log-level "${level}" is not a level (expected debug, info, warn or error)`,
      spec.name,
    );
  }
  return {
    spec,
    values,
    positionals: parsed.positionals,
    globals: globalsOf(values),
  };
}

function globalsOf(
  values: Record<string, string | boolean | undefined>,
): GlobalOptions {
  const config = values.config;
  const clientConfig = values["client-config"];
  return {
    config: typeof config === "string" ? config : null,
    clientConfig: typeof clientConfig === "string" ? clientConfig : null,
  };
}

async function dispatch(parsed: ParsedCommand, io: CliIo): Promise<number> {
  switch (parsed.spec.name) {
    case "init": {
      const m = await import("./commands/init.ts");
      return await m.runInitCommand(parsed, io);
    }
    case "serve": {
      const m = await import("./commands/serve.ts");
      return await m.runServeCommand(parsed, io);
    }
    case "sessions": {
      const m = await import("./commands/sessions.ts");
      return await m.runSessionsCommand(parsed, io);
    }
    case "add": {
      const m = await import("./commands/add.ts");
      return await m.runAddCommand(parsed, io);
    }
    case "list": {
      const m = await import("./commands/list.ts");
      return await m.runListCommand(parsed, io);
    }
    case "revoke": {
      const m = await import("./commands/revoke.ts");
      return await m.runRevokeCommand(parsed, io);
    }
    case "knock": {
      const m = await import("./commands/knock.ts");
      return await m.runKnockCommand(parsed, io);
    }
    case "status": {
      const m = await import("./commands/status.ts");
      return await m.runStatusCommand(parsed, io);
    }
    case "profiles": {
      const m = await import("./commands/profiles.ts");
      return await m.runProfilesCommand(parsed, io);
    }
    case "import": {
      const m = await import("./commands/import.ts");
      return await m.runImportCommand(parsed, io);
    }
    case "doctor": {
      const m = await import("./commands/doctor.ts");
      return await m.runDoctorCommand(parsed, io);
    }
    case "completion": {
      const m = await import("./commands/completion.ts");
      return await m.runCompletionCommand(parsed, io);
    }
  }
  throw new UsageError(`unknown command "${parsed.spec.name}"`, null);
}

/** Runs the CLI with the given arguments and returns the exit code (0 ok, 1 failure, 2 usage). */
export async function runCli(
  argv: string[],
  io: CliIo = CONSOLE_IO,
): Promise<number> {
  try {
    const parsed = parseCommandLine(argv);
    if ("topLevel" in parsed) {
      io.out(parsed.topLevel === "version" ? versionLine() : topLevelHelp());
      return 0;
    }
    if (parsed.values.help === true) {
      io.out(commandHelp(parsed.spec));
      return 0;
    }
    if (parsed.values.version === true) {
      io.out(versionLine());
      return 0;
    }
    const level = parsed.values["log-level"];
    if (typeof level === "string" && isLogLevel(level)) setLogLevel(level);
    return await dispatch(parsed, io);
  } catch (error) {
    return reportError(error, io);
  }
}

/** Prints an error the way the CLI does and returns its exit code. */
export function reportError(error: unknown, io: CliIo): number {
  if (error instanceof UsageError) {
    io.err(`openme: ${error.message}`);
    io.err(usageHint(error.command));
    return 2;
  }
  if (error instanceof CommandError) {
    io.err(`openme: ${error.message}`);
    return error.exitCode;
  }
  if (error instanceof Error && error.name === "ConfigError") {
    io.err(`openme: ${error.message}`);
    return 1;
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    io.err(
      `openme: permission denied: ${error.message} (run as root, or with sudo)`,
    );
    return 1;
  }
  if (error instanceof Deno.errors.NotFound) {
    io.err(`openme: not found: ${error.message}`);
    return 1;
  }
  const message = error instanceof Error ? error.message : String(error);
  io.err(`openme: ${message}`);
  if (Deno.env.get("OPENME_DEBUG") === "1" && error instanceof Error) {
    io.err(error.stack ?? "");
  }
  return 1;
}
