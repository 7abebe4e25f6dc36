/**
 * A throwaway system for tests that install packages: a process in new mount,
 * network and PID namespaces whose /etc, /usr, /var, /root (HOME: Debian's
 * rpm keeps its database there) and /tmp are overlays with upper layers on a
 * private tmpfs, and whose /run is an empty tmpfs. Commands
 * run inside it with nsenter. What they install, create, enable or start
 * (files, users, units, firewall rules, processes) exists only in there and
 * is gone once {@linkcode PrivateRoot.close} ends the namespaces.
 *
 * @module
 */

import assert from "node:assert/strict";
import { findOnPath, type RunResult } from "../../scripts/testbed.ts";

/** Time limit of each command run inside. */
const TIMEOUT_MS = 120_000;

/** Why private roots cannot be made here, or null when they can. */
export function privateRootUnavailable(): string | null {
  if (Deno.build.os !== "linux") return "needs Linux";
  if (Deno.uid() !== 0) return "needs root (mount namespaces and overlays)";
  for (const tool of ["unshare", "nsenter", "mount"]) {
    if (findOnPath(tool) === null) return `needs ${tool} on PATH`;
  }
  return null;
}

/** A running private root. */
export class PrivateRoot {
  readonly #holder: Deno.ChildProcess;
  readonly #pid: number;
  readonly #dir: string;

  private constructor(holder: Deno.ChildProcess, pid: number, dir: string) {
    this.#holder = holder;
    this.#pid = pid;
    this.#dir = dir;
  }

  /** Starts a private root; close it in a finally. */
  static async create(): Promise<PrivateRoot> {
    const dir = await Deno.makeTempDir({ prefix: "openme-private-root-" });
    const setup = [
      "set -e",
      `mount -t tmpfs -o mode=0700 tmpfs '${dir}'`,
      "for d in etc usr var root tmp; do",
      `  mkdir '${dir}'/$d.upper '${dir}'/$d.work`,
      `  mount -t overlay overlay -o "lowerdir=/$d,upperdir=${dir}/$d.upper,workdir=${dir}/$d.work" /$d`,
      "done",
      "mount -t tmpfs -o mode=0755 tmpfs /run",
      "mkdir /run/lock",
      "echo ready",
      "exec sleep infinity",
    ].join("\n");
    const holder = new Deno.Command("unshare", {
      args: [
        "--mount",
        "--net",
        "--pid",
        "--fork",
        "--mount-proc",
        "--propagation",
        "private",
        "sh",
        "-c",
        setup,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = holder.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), TIMEOUT_MS);
    });
    const first = await Promise.race([reader.read(), timeout]);
    clearTimeout(timer);
    if (first === null || first.value?.trim() !== "ready") {
      holder.kill("SIGKILL");
      await reader.cancel();
      const why = await new Response(holder.stderr).text();
      await holder.status;
      await Deno.remove(dir, { recursive: true });
      throw new Error(`cannot set up the private root: ${why}`);
    }
    await reader.cancel();
    await holder.stderr.cancel();
    // The namespaces' first process: unshare's only child.
    const children = await Deno.readTextFile(
      `/proc/${holder.pid}/task/${holder.pid}/children`,
    );
    const pid = Number(children.trim().split(/\s+/)[0]);
    assert.ok(pid > 0, `no child of unshare ${holder.pid}`);
    return new PrivateRoot(holder, pid, dir);
  }

  /** Runs `sh -c script` inside as root, with a plain environment plus `env`. */
  async run(
    script: string,
    env: Record<string, string> = {},
  ): Promise<RunResult> {
    const out = await new Deno.Command("nsenter", {
      args: [
        "--target",
        String(this.#pid),
        "--mount",
        "--net",
        "--pid",
        "--",
        "sh",
        "-c",
        script,
      ],
      env: {
        PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        HOME: "/root",
        LC_ALL: "C",
        DEBIAN_FRONTEND: "noninteractive",
        ...env,
      },
      clearEnv: true,
      cwd: "/",
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(TIMEOUT_MS),
    }).output();
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
  }

  /** Runs `sh -c script` inside, asserts that it exits 0 and returns its standard output. */
  async ok(script: string, env: Record<string, string> = {}): Promise<string> {
    const result = await this.run(script, env);
    assert.equal(
      result.code,
      0,
      `${script}\nexited ${result.code}:\n${result.stdout}${result.stderr}`,
    );
    return result.stdout;
  }

  /** Ends the namespaces (every process in them, every mount) and removes the temporary directory. */
  async close(): Promise<void> {
    try {
      Deno.kill(this.#pid, "SIGKILL");
    } catch {
      // Already gone.
    }
    await this.#holder.status;
    await Deno.remove(this.#dir, { recursive: true });
  }
}
