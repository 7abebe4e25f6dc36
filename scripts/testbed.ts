/**
 * A two-host test network for the demo, the end-to-end tests and the
 * benchmarks: a server and a client network namespace joined by a veth pair,
 * documentation addresses only (192.0.2.0/24, 2001:db8::/64), the README's
 * default-deny ruleset in the server namespace, and helpers to run the real
 * CLI on either side. Everything it creates is removed by `destroy()`.
 *
 * @module
 */

/** Server address on the test link. */
export const SERVER_V4 = "192.0.2.1";
/** Client address on the test link. */
export const CLIENT_V4 = "192.0.2.2";
/** A second client address (for `--ip` and noisy-neighbour tests). */
export const CLIENT_V4_ALT = "192.0.2.3";
/** Server IPv6 address on the test link. */
export const SERVER_V6 = "2001:db8::1";
/** Client IPv6 address on the test link. */
export const CLIENT_V6 = "2001:db8::2";

/** Absolute path of main.ts in this checkout. */
export const MAIN_TS: string = new URL("../main.ts", import.meta.url).pathname;

/** `deno run` with every permission and no prompts: how the testbed runs scripts from source. */
export const DENO_RUN: readonly string[] = [
  "deno",
  "run",
  "--allow-all",
  "--no-prompt",
];

/** The command line that runs the openme CLI with the given arguments: the binary OPENME_BIN names (a release build under test), else main.ts from source. */
export function openmeCommand(args: string[]): string[] {
  const binary = Deno.env.get("OPENME_BIN");
  if (binary !== undefined && binary !== "") return [binary, ...args];
  return [...DENO_RUN, MAIN_TS, ...args];
}

/** Absolute path of the checkout. */
export const REPO_DIR: string = new URL("..", import.meta.url).pathname.replace(
  /\/$/,
  "",
);

/** Which firewall the testbed's base ruleset and the server use. */
export type TestbedBackend = "nft" | "iptables";

/** The README's default-deny ruleset for nftables (with ICMPv6 neighbour discovery). */
const NFT_DEFAULT_DENY = `table inet filter {
  chain input {
    type filter hook input priority 0; policy drop;
    ct state established,related accept
    iifname "lo" accept
    meta l4proto ipv6-icmp icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept
  }
  chain forward {
    type filter hook forward priority 0; policy drop;
  }
  chain output {
    type filter hook output priority 0; policy accept;
  }
}
`;

/** One iptables or ip6tables command of a ruleset. */
interface IptablesCommand {
  /** `iptables` or `ip6tables`. */
  tool: string;
  /** Its arguments. */
  args: string[];
}

/** The part of the README's default-deny ruleset that iptables and ip6tables share. */
function sharedDefaultDeny(tool: string): IptablesCommand[] {
  const rules = [
    ["-P", "INPUT", "DROP"],
    ["-P", "FORWARD", "DROP"],
    [
      "-A",
      "INPUT",
      "-m",
      "conntrack",
      "--ctstate",
      "ESTABLISHED,RELATED",
      "-j",
      "ACCEPT",
    ],
    ["-A", "INPUT", "-i", "lo", "-j", "ACCEPT"],
  ];
  return rules.map((rule) => ({ tool, args: ["-w", ...rule] }));
}

/** ICMPv6 neighbour discovery, which ip6tables must accept for IPv6 to work on the link. */
function neighbourDiscovery(type: string): IptablesCommand {
  return {
    tool: "ip6tables",
    args: [
      "-w",
      "-A",
      "INPUT",
      "-p",
      "ipv6-icmp",
      "--icmpv6-type",
      type,
      "-j",
      "ACCEPT",
    ],
  };
}

/** The README's default-deny ruleset for iptables and ip6tables, one argument list per command. */
const IPTABLES_DEFAULT_DENY: IptablesCommand[] = [
  ...sharedDefaultDeny("iptables"),
  ...sharedDefaultDeny("ip6tables"),
  neighbourDiscovery("neighbour-solicitation"),
  neighbourDiscovery("neighbour-advertisement"),
];

/** Output of a finished command. */
export interface RunResult {
  /** Exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
}

/** Options for {@linkcode run}. */
export interface RunOptions {
  /** Text for standard input. */
  stdin?: string;
  /** Kill after this many ms (default 30 s). */
  timeoutMs?: number;
  /** Extra environment. */
  env?: Record<string, string>;
  /** Working directory (default this process's). */
  cwd?: string;
}

/** Runs a command (argument array, no shell) and collects its output; kills it at the timeout. */
export async function run(
  command: string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const child = new Deno.Command(command[0], {
    args: command.slice(1),
    cwd: options.cwd,
    stdin: options.stdin !== undefined ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...options.env },
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, options.timeoutMs ?? 30_000);
  try {
    const out = await child.output();
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs a command and throws with its output when it fails. */
export async function runOk(
  command: string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const result = await run(command, options);
  if (result.code !== 0) {
    throw new Error(
      `${command.join(" ")} exited ${result.code}: ${result.stderr.trim()}`,
    );
  }
  return result;
}

/** Whether this process can build a testbed (root, and `ip`, `nft`/`iptables` on PATH); null when it can, else why not. */
export function testbedUnavailable(
  backend: TestbedBackend = "nft",
): string | null {
  if (Deno.build.os !== "linux") return "needs Linux";
  if (Deno.uid() !== 0) {
    return "needs root (network namespaces and firewall rules)";
  }
  const tools = ["ip", backend === "nft" ? "nft" : "iptables"];
  if (backend === "iptables") tools.push("ip6tables");
  for (const tool of tools) {
    if (findOnPath(tool) === null) return `needs ${tool} on PATH`;
  }
  return null;
}

/** The path of the first executable file of that name in the directories of PATH, or null. */
export function findOnPath(tool: string): string | null {
  const path = Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin";
  for (const dir of path.split(":")) {
    if (dir === "") continue;
    try {
      const info = Deno.statSync(`${dir}/${tool}`);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) {
        return `${dir}/${tool}`;
      }
    } catch {
      // not in this directory
    }
  }
  return null;
}

/** Applies the README's default-deny ruleset in a namespace. */
export async function applyDefaultDeny(
  ns: string,
  backend: TestbedBackend,
): Promise<void> {
  if (backend === "nft") {
    await runOk(["ip", "netns", "exec", ns, "nft", "-f", "-"], {
      stdin: NFT_DEFAULT_DENY,
    });
    return;
  }
  for (const rule of IPTABLES_DEFAULT_DENY) {
    await runOk(["ip", "netns", "exec", ns, rule.tool, ...rule.args]);
  }
}

/** Options for {@linkcode Testbed.create}. */
export interface TestbedOptions {
  /** Namespace name prefix, unique per test file (e.g. `om-e2e`). */
  prefix: string;
  /** Firewall for the base ruleset (default nft). */
  backend?: TestbedBackend;
  /** Apply the default-deny base ruleset (default true). */
  defaultDeny?: boolean;
  /** Start a TCP listener on port 22 in the server namespace (default true). */
  sshListener?: boolean;
}

/** A running process started in a namespace. */
export interface NsProcess {
  /** The child process. */
  child: Deno.ChildProcess;
  /** Everything it wrote to stderr and stdout so far. */
  output(): string;
  /** Sends a signal and waits for it to exit (SIGKILL after the timeout); returns the exit code. */
  stop(signal?: Deno.Signal, timeoutMs?: number): Promise<number>;
}

/** Two namespaces joined by a veth pair, with helpers for the real CLI. */
export class Testbed {
  /** Server namespace name. */
  readonly serverNs: string;
  /** Client namespace name. */
  readonly clientNs: string;
  /** Firewall of the base ruleset. */
  readonly backend: TestbedBackend;
  /** Temporary directory for configs and state. */
  readonly dir: string;
  #processes: NsProcess[] = [];

  private constructor(prefix: string, backend: TestbedBackend, dir: string) {
    const tag = `${prefix}-${Deno.pid % 100000}-${
      Math.floor(Math.random() * 1e6)
    }`;
    this.serverNs = `${tag}-s`.slice(-40);
    this.clientNs = `${tag}-c`.slice(-40);
    this.backend = backend;
    this.dir = dir;
  }

  /** Builds the namespaces, link, addresses, base ruleset and TCP listener; cleans up if any step fails. */
  static async create(options: TestbedOptions): Promise<Testbed> {
    const dir = await Deno.makeTempDir({ prefix: "openme-testbed-" });
    const bed = new Testbed(options.prefix, options.backend ?? "nft", dir);
    try {
      await bed.#build(options);
    } catch (err) {
      await bed.destroy();
      throw err;
    }
    return bed;
  }

  async #build(options: TestbedOptions): Promise<void> {
    const s = this.serverNs;
    const c = this.clientNs;
    const vs = `oms${Deno.pid % 100000}${Math.floor(Math.random() * 100)}`
      .slice(0, 15);
    const vc = `omc${Deno.pid % 100000}${Math.floor(Math.random() * 100)}`
      .slice(0, 15);
    await runOk(["ip", "netns", "add", s]);
    await runOk(["ip", "netns", "add", c]);
    await runOk([
      "ip",
      "link",
      "add",
      vs,
      "netns",
      s,
      "type",
      "veth",
      "peer",
      "name",
      vc,
      "netns",
      c,
    ]);
    await runOk(["ip", "-n", s, "link", "set", "lo", "up"]);
    await runOk(["ip", "-n", c, "link", "set", "lo", "up"]);
    await runOk(["ip", "-n", s, "addr", "add", `${SERVER_V4}/24`, "dev", vs]);
    await runOk(["ip", "-n", c, "addr", "add", `${CLIENT_V4}/24`, "dev", vc]);
    await runOk([
      "ip",
      "-n",
      c,
      "addr",
      "add",
      `${CLIENT_V4_ALT}/24`,
      "dev",
      vc,
    ]);
    await runOk([
      "ip",
      "-n",
      s,
      "addr",
      "add",
      `${SERVER_V6}/64`,
      "dev",
      vs,
      "nodad",
    ]);
    await runOk([
      "ip",
      "-n",
      c,
      "addr",
      "add",
      `${CLIENT_V6}/64`,
      "dev",
      vc,
      "nodad",
    ]);
    await runOk(["ip", "-n", s, "link", "set", vs, "up"]);
    await runOk(["ip", "-n", c, "link", "set", vc, "up"]);
    if (options.defaultDeny !== false) await this.applyDefaultDeny();
    if (options.sshListener !== false) await this.startTcpListener(22);
  }

  /** Applies the README's default-deny ruleset in the server namespace. */
  applyDefaultDeny(): Promise<void> {
    return applyDefaultDeny(this.serverNs, this.backend);
  }

  /** Starts a TCP listener that accepts and closes connections on a port in the server namespace. */
  async startTcpListener(port: number): Promise<NsProcess> {
    const code =
      `const l = Deno.listen({ hostname: "::", port: ${port} }); console.log("ready"); for await (const c of l) c.close();`;
    const proc = this.spawn(this.serverNs, [
      "deno",
      "eval",
      "--no-config",
      code,
    ]);
    await waitFor(() => proc.output().includes("ready"), {
      timeoutMs: 15_000,
      what: `TCP listener on ${port}`,
    });
    return proc;
  }

  /** Starts a command in a namespace and keeps it for {@linkcode destroy}. */
  spawn(
    ns: string,
    command: string[],
    env: Record<string, string> = {},
  ): NsProcess {
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", ns, ...command],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", ...env },
    }).spawn();
    let text = "";
    const decoder = new TextDecoder();
    const pump = async (stream: ReadableStream<Uint8Array>): Promise<void> => {
      for await (const chunk of stream) {
        text += decoder.decode(chunk, { stream: true });
      }
    };
    const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]).catch(
      () => {},
    );
    const proc: NsProcess = {
      child,
      output: () => text,
      stop: async (
        signal: Deno.Signal = "SIGTERM",
        timeoutMs = 5000,
      ): Promise<number> => {
        try {
          child.kill(signal);
        } catch {
          // already gone
        }
        const timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch {
            // already gone
          }
        }, timeoutMs);
        const status = await child.status;
        clearTimeout(timer);
        await pumps;
        return status.code;
      },
    };
    this.#processes.push(proc);
    return proc;
  }

  /** Runs the openme CLI (see {@linkcode openmeCommand}) in a namespace. */
  openme(
    ns: string,
    args: string[],
    options: RunOptions = {},
  ): Promise<RunResult> {
    return this.exec(ns, openmeCommand(args), options);
  }

  /** Runs a command in a namespace. */
  exec(
    ns: string,
    command: string[],
    options: RunOptions = {},
  ): Promise<RunResult> {
    return run(["ip", "netns", "exec", ns, ...command], options);
  }

  /** Runs a command in a namespace and throws with its output when it fails. */
  execOk(
    ns: string,
    command: string[],
    options: RunOptions = {},
  ): Promise<RunResult> {
    return runOk(["ip", "netns", "exec", ns, ...command], options);
  }

  /** Tries a TCP connect from the client namespace (optionally from a given source address); true when it connects in time. */
  async tcpOpen(
    address: string,
    port: number,
    options: { timeoutMs?: number; from?: string } = {},
  ): Promise<boolean> {
    const timeoutMs = options.timeoutMs ?? 1000;
    if (options.from === undefined) {
      const result = await this.exec(this.clientNs, [
        "timeout",
        (timeoutMs / 1000).toFixed(2),
        "bash",
        "-c",
        `exec 3<>/dev/tcp/${address}/${port}`,
      ], { timeoutMs: timeoutMs + 5000 });
      return result.code === 0;
    }
    const code = `import { connect } from "node:net";
const s = connect({ host: ${
      JSON.stringify(address)
    }, port: ${port}, localAddress: ${JSON.stringify(options.from)} });
const t = setTimeout(() => Deno.exit(1), ${timeoutMs});
s.on("connect", () => { clearTimeout(t); s.destroy(); Deno.exit(0); });
s.on("error", () => Deno.exit(1));`;
    const result = await this.exec(this.clientNs, [
      "deno",
      "eval",
      "--no-config",
      code,
    ], {
      timeoutMs: timeoutMs + 10_000,
    });
    return result.code === 0;
  }

  /** The server namespace's ruleset as text (`nft list ruleset` or `iptables-save`/`ip6tables-save`). */
  async serverRules(): Promise<string> {
    if (this.backend === "nft") {
      return (await this.execOk(this.serverNs, ["nft", "list", "ruleset"]))
        .stdout;
    }
    const v4 = await this.execOk(this.serverNs, ["iptables", "-w", "-S"]);
    const v6 = await this.execOk(this.serverNs, ["ip6tables", "-w", "-S"]);
    return `${v4.stdout}${v6.stdout}`;
  }

  /** Stops every process it started and deletes both namespaces and the temp directory. */
  async destroy(): Promise<void> {
    for (const proc of this.#processes) {
      await proc.stop("SIGKILL", 2000).catch(() => {});
    }
    this.#processes = [];
    await run(["ip", "netns", "del", this.serverNs]).catch(() => {});
    await run(["ip", "netns", "del", this.clientNs]).catch(() => {});
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/** Options for {@linkcode waitFor}. */
export interface WaitOptions {
  /** Give up after this many ms. */
  timeoutMs: number;
  /** Poll interval (default 50 ms). */
  intervalMs?: number;
  /** What is awaited, for the error message. */
  what: string;
}

/** Polls a condition until it holds; throws after the timeout. Bounded in time and count. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  options: WaitOptions,
): Promise<void> {
  const interval = options.intervalMs ?? 50;
  const rounds = Math.ceil(options.timeoutMs / interval) + 1;
  for (let i = 0; i < rounds; i++) {
    if (await condition()) return;
    await new Promise((r) => setTimeout(r, interval));
  }
  throw new Error(
    `timed out after ${options.timeoutMs} ms waiting for ${options.what}`,
  );
}
