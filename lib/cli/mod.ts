/**
 * The command line: parses flags with `node:util` parseArgs against the
 * command table, runs the command and turns errors into exit codes.
 *
 * @module
 */

import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import denoConfig from "../../deno.json" with { type: "json" };
import { DEFAULT_SERVER_CONFIG_PATH } from "../config/server_config.ts";
import { flushLog, isLogLevel, setLogLevel } from "../log.ts";
import { runAddCommand } from "./commands/add.ts";
import { runCleanupCommand } from "./commands/cleanup.ts";
import {
  COMPLETE_COMMAND,
  runCompleteCommand,
  runCompletionCommand,
} from "./commands/completion.ts";
import { runDoctorCommand } from "./commands/doctor.ts";
import { runImportCommand } from "./commands/import.ts";
import { runInitCommand } from "./commands/init.ts";
import { runKnockCommand } from "./commands/knock.ts";
import { runListCommand } from "./commands/list.ts";
import { runManCommand } from "./commands/man.ts";
import { runProfilesCommand } from "./commands/profiles.ts";
import { runRevokeCommand } from "./commands/revoke.ts";
import { runServeCommand } from "./commands/serve.ts";
import { runSessionsCommand } from "./commands/sessions.ts";
import { runStatusCommand } from "./commands/status.ts";
import {
  type CliIo,
  CommandError,
  type ParsedCommand,
  UsageError,
} from "./io.ts";
import {
  commandHelp,
  COMMANDS,
  findCommand,
  flagLabel,
  type FlagSpec,
  GLOBAL_FLAGS,
  topLevelHelp,
} from "./spec.ts";

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
  outFile(): { path: string; mode: number } | null {
    try {
      const info = Deno.statSync("/dev/stdout");
      if (!info.isFile || info.mode === null) return null;
      const path = Deno.readLinkSync("/proc/self/fd/1");
      return { path, mode: info.mode & 0o777 };
    } catch {
      return null; // not Linux, or not a file
    }
  },
};

/** What runs each command. */
const RUNNERS: Record<
  string,
  (parsed: ParsedCommand, io: CliIo) => Promise<number>
> = {
  init: runInitCommand,
  serve: runServeCommand,
  sessions: runSessionsCommand,
  add: runAddCommand,
  list: runListCommand,
  revoke: runRevokeCommand,
  knock: runKnockCommand,
  status: runStatusCommand,
  profiles: runProfilesCommand,
  import: runImportCommand,
  doctor: runDoctorCommand,
  cleanup: runCleanupCommand,
  completion: runCompletionCommand,
  man: runManCommand,
};

/** What `--version` prints: the version and build target. */
const VERSION_LINE = `openme ${denoConfig.version} (${Deno.build.target})`;

function usageHint(command: string | null): string {
  const spec = command === null ? undefined : findCommand(command);
  if (spec === undefined) {
    return "Usage: openme COMMAND [options]\nRun `openme --help` for the list of commands.";
  }
  return `Usage: openme ${spec.usage}\nRun \`openme ${spec.name} --help\` for options and examples.`;
}

function unknownCommand(name: string): UsageError {
  const names = COMMANDS.map((c) => c.name).join(", ");
  return new UsageError(`unknown command "${name}" (commands: ${names})`);
}

/** A command line split by parseArgs, with the first problem found in it. */
interface ScannedArgs {
  values: ParsedCommand["values"];
  /** Arguments that are not flags, with their index in the command line. */
  words: { value: string; index: number }[];
  /** Why the flags are wrong (unknown flag, missing or unwanted value), or null. */
  problem: string | null;
}

/** Splits args with parseArgs against the flags and finds the first problem with them. */
function scanArgs(args: string[], flags: FlagSpec[]): ScannedArgs {
  const options: ParseArgsOptionsConfig = {};
  for (const f of flags) {
    const type = f.value === undefined ? "boolean" : "string";
    options[f.name] = f.short === undefined
      ? { type }
      : { type, short: f.short };
  }
  const { values, tokens } = parseArgs({
    args,
    options,
    strict: false,
    tokens: true,
  });
  const words: ScannedArgs["words"] = [];
  let problem: string | null = null;
  for (const token of tokens) {
    if (token.kind === "positional") words.push(token);
    if (token.kind !== "option" || problem !== null) continue;
    const flag = flags.find((f) => f.name === token.name);
    const raw = token.rawName;
    const value = token.value ?? "";
    if (flag === undefined) {
      problem = `unknown option '${raw}'`;
    } else if (flag.value === undefined && token.value !== undefined) {
      problem = `option '${flagLabel(flag)}' does not take an argument`;
    } else if (flag.value !== undefined && token.value === undefined) {
      problem = `option ${raw} needs a value`;
    } else if (!token.inlineValue && value.length > 1 && value[0] === "-") {
      problem = `option '${raw}' argument is ambiguous.\n` +
        `Did you forget to specify the option argument for '${raw}'?\n` +
        `To specify an option argument starting with a dash use '--${flag.name}=-XYZ'.`;
    }
  }
  return { values, words, problem };
}

/** Parses argv into a command, or returns "help"/"version" for the top-level flags; throws UsageError. */
export function parseCommandLine(
  argv: string[],
): ParsedCommand | { topLevel: "help" | "version" } {
  // Global flags may stand before the command: the first word that is no
  // flag and no global flag's value names the command.
  const top = scanArgs(argv, GLOBAL_FLAGS);
  if (top.words.length === 0) {
    if (top.values.version === true) return { topLevel: "version" };
    if (argv.length === 0 || top.values.help === true) {
      return { topLevel: "help" };
    }
    throw new UsageError(top.problem ?? "no command given");
  }
  const name = top.words[0].value;
  if (name === "help") {
    const target = top.words[1]?.value;
    if (target === undefined) return { topLevel: "help" };
    if (findCommand(target) === undefined) throw unknownCommand(target);
    return parseCommandLine([target, "--help"]);
  }
  const spec = findCommand(name);
  if (spec === undefined) throw unknownCommand(name);
  const rest = argv.filter((_, i) => i !== top.words[0].index);
  const { values, words, problem } = scanArgs(rest, [
    ...GLOBAL_FLAGS,
    ...spec.flags,
  ]);
  if (problem !== null) throw new UsageError(problem, spec.name);
  const positionals = words.map((w) => w.value);
  const globals = {
    config: typeof values.config === "string"
      ? values.config
      : DEFAULT_SERVER_CONFIG_PATH,
    clientConfig: typeof values["client-config"] === "string"
      ? values["client-config"]
      : null,
  };
  if (values.help === true) return { spec, values, positionals: [], globals };
  if (positionals.length > spec.positionals.length && !spec.repeatLast) {
    const extra = positionals.slice(spec.positionals.length).join(" ");
    throw new UsageError(`unexpected argument(s): ${extra}`, spec.name);
  }
  if (positionals.length < spec.requiredPositionals) {
    const missing = spec.positionals.slice(
      positionals.length,
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
  return { spec, values, positionals, globals };
}

/** Runs the CLI with the given arguments and returns the exit code (0 ok, 1 failure, 2 usage). */
export async function runCli(
  argv: string[],
  io: CliIo = CONSOLE_IO,
): Promise<number> {
  try {
    if (argv[0] === COMPLETE_COMMAND) {
      return await runCompleteCommand(argv.slice(1), io);
    }
    const parsed = parseCommandLine(argv);
    if ("topLevel" in parsed) {
      io.out(parsed.topLevel === "version" ? VERSION_LINE : topLevelHelp());
      return 0;
    }
    if (parsed.values.help === true) {
      io.out(commandHelp(parsed.spec));
      return 0;
    }
    if (parsed.values.version === true) {
      io.out(VERSION_LINE);
      return 0;
    }
    const level = parsed.values["log-level"];
    if (typeof level === "string" && isLogLevel(level)) setLogLevel(level);
    try {
      return await RUNNERS[parsed.spec.name](parsed, io);
    } catch (error) {
      if (error instanceof UsageError) error.command ??= parsed.spec.name;
      throw error;
    }
  } catch (error) {
    return reportError(error, io);
  }
}

/** Prints an error the way the CLI does and returns its exit code. */
export function reportError(error: unknown, io: CliIo): number {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof UsageError) {
    io.err(`openme: ${message}`);
    io.err(usageHint(error.command));
    return 2;
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    io.err(`openme: permission denied: ${message} (run as root, or with sudo)`);
  } else if (error instanceof Deno.errors.NotFound) {
    io.err(`openme: not found: ${message}`);
  } else {
    io.err(`openme: ${message}`);
  }
  // A CommandError or ConfigError says all there is; others give their stack
  // on request.
  const explained = error instanceof CommandError ||
    (error instanceof Error && error.name === "ConfigError");
  if (
    !explained && error instanceof Error &&
    Deno.env.get("OPENME_DEBUG") === "1"
  ) {
    io.err(error.stack ?? "");
  }
  return 1;
}
