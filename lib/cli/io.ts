/**
 * The types every command shares: where output goes and the parsed command
 * line. Commands import these from here, never from the dispatcher.
 *
 * @module
 */

import type { CommandSpec } from "./spec.ts";

/** Where command output goes; tests pass their own to capture it. */
export interface CliIo {
  /** Writes one chunk of normal output (a newline is added). */
  out(text: string): void;
  /** Writes one chunk of error output (a newline is added). */
  err(text: string): void;
}

/** Global options after parsing. */
export interface GlobalOptions {
  /** Server config path, when given. */
  config: string | null;
  /** Client config path, when given. */
  clientConfig: string | null;
}

/** A parsed command line, handed to the command that runs it. */
export interface ParsedCommand {
  /** The command's table entry. */
  spec: CommandSpec;
  /** Flag values by long name. */
  values: Record<string, string | boolean | undefined>;
  /** Positional arguments after the command name. */
  positionals: string[];
  /** Global options. */
  globals: GlobalOptions;
}
