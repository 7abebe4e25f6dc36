/**
 * Everything that differs between Linux, macOS and Windows.
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

/** Options naming the platform and the environment to read. */
export interface PlatformEnvOptions extends PlatformOptions {
  /** Environment lookup; default `Deno.env.get`. */
  env?: (name: string) => string | undefined;
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

/** The program and arguments that run a command line with the platform shell. */
export interface ShellCommand {
  /** Program to start: `sh` or `cmd.exe`. */
  program: string;
  /** Its arguments, ending with the command line. */
  args: string[];
  /** Pass the arguments to Windows as written: cmd.exe does not parse the C runtime's quoting. */
  windowsRawArguments: boolean;
}

/** The shell command line that runs a `post_knock` command on this platform: `sh -c` or `cmd.exe /d /s /c "..."` (no AutoRun, quotes kept). */
export function shellCommand(
  command: string,
  options: PlatformOptions = {},
): ShellCommand {
  const platform = options.platform ?? Deno.build.os;
  if (platform === "windows") {
    return {
      program: "cmd.exe",
      args: ["/d", "/s", "/c", `"${command}"`],
      windowsRawArguments: true,
    };
  }
  return { program: "sh", args: ["-c", command], windowsRawArguments: false };
}

/** The default client config path as documentation writes it for the platform. */
export function clientConfigPathDisplay(options: PlatformOptions = {}): string {
  const platform = options.platform ?? Deno.build.os;
  return platform === "windows"
    ? "%USERPROFILE%\\.openme\\config.yaml"
    : "~/.openme/config.yaml";
}

/** The default client config path, or why it is unknown. */
export type ClientConfigPathResult =
  | { ok: true; path: string }
  | { ok: false; variable: string; display: string };

/** The default client config path (SPEC §5), or which variable is missing to know it. */
export function defaultClientConfigPathFor(
  options: PlatformEnvOptions = {},
): ClientConfigPathResult {
  const platform = options.platform ?? Deno.build.os;
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  const display = clientConfigPathDisplay({ platform });
  if (platform === "windows") {
    const drive = env("HOMEDRIVE");
    const homePath = env("HOMEPATH");
    const home = env("USERPROFILE") ||
      (drive && homePath ? `${drive}${homePath}` : "");
    if (home === "") return { ok: false, variable: "USERPROFILE", display };
    return {
      ok: true,
      path: `${home.replace(/[\\/]+$/, "")}\\.openme\\config.yaml`,
    };
  }
  const home = env("HOME");
  if (!home) return { ok: false, variable: "HOME", display };
  const trimmed = home === "/" ? "" : home.replace(/\/+$/, "");
  return { ok: true, path: `${trimmed}/.openme/config.yaml` };
}
