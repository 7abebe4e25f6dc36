/**
 * Errors the command line turns into exit codes: usage errors exit 2, command
 * failures exit 1, and neither prints a stack trace.
 *
 * @module
 */

/** A wrong command line: the CLI prints the message, the usage line and a hint, then exits 2. */
export class UsageError extends Error {
  /** The command whose usage is shown, or null for the top level. */
  command: string | null;

  /** Creates a usage error for a command (or the top level when null). */
  constructor(message: string, command: string | null) {
    super(message);
    this.name = "UsageError";
    this.command = command;
  }
}

/** A command that failed for a reason the user can act on: the CLI prints the message and exits 1. */
export class CommandError extends Error {
  /** Exit code to use; 1 unless a command says otherwise. */
  exitCode: number;

  /** Creates a command failure with an exit code (default 1). */
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = "CommandError";
    this.exitCode = exitCode;
  }
}
