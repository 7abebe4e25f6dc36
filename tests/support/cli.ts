/**
 * Helpers the CLI tests share: running the CLI in-process with its output
 * captured, running main.ts in a subprocess, temporary directories, a fresh
 * `openme init` server config, and client profiles with fresh keys.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { CliIo } from "../../lib/cli/io.ts";
import { runCli } from "../../lib/cli/mod.ts";
import { upsertClientProfile } from "../../lib/config/client_config.ts";
import {
  type Ed25519KeyPair,
  generateEd25519KeyPair,
  generateX25519KeyPair,
} from "../../lib/protocol/crypto.ts";
import { setLogLevel } from "../../lib/log.ts";
import { MAIN_TS, run } from "../../scripts/testbed.ts";
import { withTempDir } from "./files.ts";

/** What a CLI run printed and returned. */
export interface Captured {
  /** Exit code. */
  code: number;
  /** Standard output, lines joined with "\n". */
  out: string;
  /** Standard error, lines joined with "\n". */
  err: string;
}

/**
 * Runs `openme ARGV` in-process (through runCli) and captures what it
 * prints; afterwards the log level is back at "info" whatever
 * `--log-level` the run set.
 */
export async function openme(argv: string[]): Promise<Captured> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = {
    out: (text: string) => out.push(text),
    err: (text: string) => err.push(text),
  };
  try {
    const code = await runCli(argv, io);
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    setLogLevel("info");
  }
}

/** Runs `openme ARGV` in-process, asserts that it exited 0 (its stderr is the message) and returns what it printed. */
export async function openmeOk(argv: string[]): Promise<Captured> {
  const result = await openme(argv);
  assert.equal(result.code, 0, result.err);
  return result;
}

/** Options for {@linkcode mainCommand}, {@linkcode spawnMain} and {@linkcode runMain}. */
export interface MainCommandOptions {
  /** Run it inside this network namespace (`ip netns exec`). */
  netns?: string;
}

/** The command line that runs main.ts from source with the given arguments, optionally in a network namespace. */
export function mainCommand(
  args: string[],
  options: MainCommandOptions = {},
): string[] {
  const deno = ["deno", "run", "-A", "--no-prompt", MAIN_TS, ...args];
  if (options.netns === undefined) return deno;
  return ["ip", "netns", "exec", options.netns, ...deno];
}

/** Starts main.ts in a subprocess (optionally in a namespace) with NO_COLOR set, standard input empty and standard output and error piped. */
export function spawnMain(
  args: string[],
  options: MainCommandOptions = {},
): Deno.ChildProcess {
  const command = mainCommand(args, options);
  return new Deno.Command(command[0], {
    args: command.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
}

/** Options for {@linkcode runMain}. */
export interface RunMainOptions extends MainCommandOptions {
  /** Text for standard input; without it standard input is empty. */
  stdin?: string;
}

/** Runs main.ts in a subprocess (NO_COLOR set, killed after 30 s) and collects its output. */
export async function runMain(
  args: string[],
  options: RunMainOptions = {},
): Promise<Captured> {
  const result = await run(mainCommand(args, options), {
    stdin: options.stdin,
  });
  return { code: result.code, out: result.stdout, err: result.stderr };
}

/** How {@linkcode withServerConfig} prepares the server config. */
export interface ServerConfigSetup {
  /** Prefix of the temporary directory's name. */
  prefix: string;
  /** Arguments after `init`, e.g. `["--server", "vpn.example.com"]`. */
  initArgs: string[];
  /** Path of the config inside the directory; default "config.yaml". */
  file?: string;
  /** Changes the text `openme init` wrote before fn runs. */
  edit?: (text: string) => string;
  /** Clients registered with `openme add NAME` before fn runs. */
  clients?: string[];
}

/**
 * Runs fn with a server config written by `openme init` in a temporary
 * directory, edited and with clients added as the setup says; removes the
 * directory afterwards.
 */
export async function withServerConfig(
  setup: ServerConfigSetup,
  fn: (path: string, dir: string) => Promise<void>,
): Promise<void> {
  await withTempDir(setup.prefix, async (dir) => {
    const path = `${dir}/${setup.file ?? "config.yaml"}`;
    await openmeOk(["--config", path, "init", ...setup.initArgs]);
    if (setup.edit !== undefined) {
      await Deno.writeTextFile(path, setup.edit(await Deno.readTextFile(path)));
    }
    for (const name of setup.clients ?? []) {
      await openmeOk(["--config", path, "add", name]);
    }
    await fn(path, dir);
  });
}

/** A client profile for {@linkcode writeTestProfile}. */
export interface TestProfile {
  /** Profile name; default "default". */
  name?: string;
  /** `server_host`. */
  host: string;
  /** `server_udp_port`. */
  port: number;
  /** `post_knock`, if any. */
  postKnock?: string;
}

/** Adds a profile with a fresh client key pair and a fresh server key to the client config at path; returns the client key pair. */
export async function writeTestProfile(
  path: string,
  profile: TestProfile,
): Promise<Ed25519KeyPair> {
  const client = generateEd25519KeyPair();
  await upsertClientProfile(path, {
    name: profile.name ?? "default",
    serverHost: profile.host,
    serverUdpPort: profile.port,
    serverPubkeyB64: generateX25519KeyPair().publicKey.toBase64(),
    privateKeyB64: client.privateKey.toBase64(),
    publicKeyB64: client.publicKey.toBase64(),
    postKnock: profile.postKnock,
  });
  return client;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freeTcpPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** A TCP listener on 127.0.0.1 that accepts and closes every connection, like the health port. */
export interface AcceptingListener {
  /** The port it listens on. */
  port: number;
  /** Stops listening and waits for the accept loop to end. */
  close(): Promise<void>;
}

/** Starts a TCP listener on 127.0.0.1 (any free port) that accepts and closes, like the health port. */
export function acceptingTcpListener(): AcceptingListener {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = (async () => {
    try {
      for await (const conn of listener) conn.close();
    } catch {
      // closed
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close: async () => {
      listener.close();
      await done;
    },
  };
}
