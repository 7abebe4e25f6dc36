/**
 * Everything that differs between Linux, macOS and Windows, in one place:
 * whether the server can run, the shell for `post_knock`, and the default
 * client config path. Each function takes the platform so tests can inject it.
 *
 * @module
 */

/** An operating system as Deno names it. */
export type Platform = typeof Deno.build.os;

/** Options naming the platform; default is the running one. */
export interface PlatformOptions {
  /** Platform to answer for; default `Deno.build.os`. */
  platform?: Platform;
}

/** Whether `openme serve` can run here, with the message to print when not. */
export function serverSupported(
  options: PlatformOptions = {},
): { ok: true } | { ok: false; message: string } {
  const platform = options.platform ?? Deno.build.os;
  if (platform === "linux") return { ok: true };
  return {
    ok: false,
    message:
      `the openme server needs Linux (nftables or iptables); this is ${platform}, where openme can knock but not serve. Run \`openme serve\` on the Linux host you want to protect.`,
  };
}

/** The shell command line that runs a `post_knock` command on this platform. */
export function shellCommand(
  command: string,
  options: PlatformOptions = {},
): { program: string; args: string[] } {
  const platform = options.platform ?? Deno.build.os;
  if (platform === "windows") {
    return { program: "cmd.exe", args: ["/c", command] };
  }
  return { program: "sh", args: ["-c", command] };
}
