/**
 * What every command shares: where output goes, the parsed command line, the
 * errors the CLI turns into exit codes, and plain-text tables.
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
  /** The regular file normal output goes to, or null; absent when output is captured. */
  outFile?(): { path: string; mode: number } | null;
}

/** A parsed command line, handed to the command that runs it. */
export interface ParsedCommand {
  /** The command's table entry. */
  spec: CommandSpec;
  /** Flag values by long name. */
  values: Record<string, string | boolean | undefined>;
  /** Positional arguments after the command name. */
  positionals: string[];
  /** The server config path (`--config` or the default) and `--client-config` (null when not given). */
  globals: { config: string; clientConfig: string | null };
}

/** A wrong command line: the CLI prints the message, the usage line and a hint, then exits 2. */
export class UsageError extends Error {
  /** The command whose usage is shown; null for the top level or, thrown by a running command, that command. */
  command: string | null;

  /** Creates a usage error for a command (or the top level, or the running command, when null). */
  constructor(message: string, command: string | null = null) {
    super(message);
    this.name = "UsageError";
    this.command = command;
  }
}

/** A command that failed for a reason the user can act on: the CLI prints the message and exits 1. */
export class CommandError extends Error {
  /** Creates a command failure. */
  constructor(message: string) {
    super(message);
    this.name = "CommandError";
  }
}

/** Lays out rows in columns padded to the widest cell (the last column is not padded), one line per row. */
export function formatTable(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0]?.map((_, i) =>
    Math.max(...rows.map((row) => row[i].length))
  );
  return rows.map((row) =>
    row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(widths[i]))
      .join("  ")
  );
}
