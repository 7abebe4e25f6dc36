/**
 * Runs a profile's `post_knock` command after a knock with the platform shell.
 *
 * @module
 */

import { type Platform, shellCommand } from "../platform.ts";

/** Options for {@linkcode runPostKnock}. */
export interface PostKnockOptions {
  /** Profile name, exported as OPENME_PROFILE. */
  profile: string;
  /** Server host, exported as OPENME_SERVER. */
  server: string;
  /** Server knock port, exported as OPENME_PORT. */
  port: number;
  /** Platform whose shell to use; default the running one. */
  platform?: Platform;
}

/** Runs the command, ignoring Ctrl-C (the command's business) meanwhile, and returns its exit code (128 + signal number when a signal ended it). */
export async function runPostKnock(
  command: string,
  options: PostKnockOptions,
): Promise<number> {
  const shell = shellCommand(command, { platform: options.platform });
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(shell.program, {
      args: shell.args,
      windowsRawArguments: shell.windowsRawArguments,
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
      env: {
        OPENME_PROFILE: options.profile,
        OPENME_SERVER: options.server,
        OPENME_PORT: String(options.port),
      },
    }).spawn();
  } catch (err) {
    throw new Error(
      `post_knock: cannot start ${shell.program}: ${(err as Error).message}`,
    );
  }
  // The terminal sends these to the whole foreground group: they are the
  // command's business, as with system(3).
  const ignore = (): void => {};
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT"]
    : ["SIGINT", "SIGQUIT"];
  for (const signal of signals) Deno.addSignalListener(signal, ignore);
  try {
    const status = await child.status;
    return status.code;
  } finally {
    for (const signal of signals) Deno.removeSignalListener(signal, ignore);
  }
}
