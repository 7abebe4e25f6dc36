/**
 * Runs a profile's `post_knock` command after a knock, with the platform
 * shell, the terminal inherited and the profile in its environment.
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

/** Runs the command and returns its exit code (127 when the shell cannot be started). */
export async function runPostKnock(
  command: string,
  options: PostKnockOptions,
): Promise<number> {
  const shell = shellCommand(command, { platform: options.platform });
  try {
    const child = new Deno.Command(shell.program, {
      args: shell.args,
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
      env: {
        OPENME_PROFILE: options.profile,
        OPENME_SERVER: options.server,
        OPENME_PORT: String(options.port),
      },
    }).spawn();
    const status = await child.status;
    return status.code;
  } catch (err) {
    throw new Error(
      `post_knock: cannot start ${shell.program}: ${(err as Error).message}`,
    );
  }
}
