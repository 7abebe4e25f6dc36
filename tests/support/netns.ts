/**
 * Helpers the network namespace tests share: whether they can run here, a
 * namespace of the test's own that is always deleted afterwards, and
 * commands run inside it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { runTool, type ToolProgram } from "../../lib/firewall/exec.ts";

/** A tool a namespace test needs and the flag that makes it print its version, e.g. `["nft", "--version"]`. */
export type RequiredTool = readonly [tool: ToolProgram, versionFlag: string];

/** `ip` (iproute2), which every namespace test needs. */
export const IP_TOOL: RequiredTool = ["ip", "-V"];
/** `nft` (nftables). */
export const NFT_TOOL: RequiredTool = ["nft", "--version"];
/** `iptables` and `ip6tables`. */
export const IPTABLES_TOOLS: readonly RequiredTool[] = [
  ["iptables", "--version"],
  ["ip6tables", "--version"],
];

/** What namespace tests need besides Linux. */
export interface NetnsRequirements {
  /** What root is needed for, e.g. "ip netns add, nft"; shown when not root. */
  rootFor: string;
  /** Tools that must answer their version flag. */
  tools: readonly RequiredTool[];
}

/**
 * Why namespace tests cannot run here, or null when they can: they need
 * Linux, root and every tool answering its version flag.
 */
export async function netnsSkipReason(
  needs: NetnsRequirements,
): Promise<string | null> {
  if (Deno.build.os !== "linux") return "needs Linux";
  if (Deno.uid() !== 0) return `needs root (${needs.rootFor})`;
  for (const [tool, flag] of needs.tools) {
    const result = await runTool(tool, [flag]);
    if (!result.success) {
      return `${tool} is not usable: ${result.error ?? result.stderr.trim()}`;
    }
  }
  return null;
}

/**
 * Whether namespace tests can run here; when they cannot, prints
 * `SKIP <what>: <why>`. Call it once, at module load.
 */
export async function canRunNetnsTests(
  what: string,
  needs: NetnsRequirements,
): Promise<boolean> {
  const reason = await netnsSkipReason(needs);
  if (reason !== null) console.warn(`SKIP ${what}: ${reason}`);
  return reason === null;
}

/** Options for {@linkcode withNamespace}. */
export interface NamespaceOptions {
  /** Bring the loopback interface up before fn runs. */
  loopbackUp?: boolean;
}

let namespaceCounter = 0;

/**
 * Runs fn with a fresh network namespace named `om-<tag>-<pid>-<n>` (tag
 * unique per test file) and deletes it afterwards, whatever fn did.
 */
export async function withNamespace(
  tag: string,
  fn: (ns: string) => Promise<void>,
  options: NamespaceOptions = {},
): Promise<void> {
  const ns = `om-${tag}-${Deno.pid}-${++namespaceCounter}`;
  const added = await runTool("ip", ["netns", "add", ns]);
  assert.ok(added.success, `ip netns add ${ns}: ${added.stderr}`);
  try {
    if (options.loopbackUp === true) {
      const up = await runTool("ip", ["-n", ns, "link", "set", "lo", "up"]);
      assert.ok(up.success, up.stderr);
    }
    await fn(ns);
  } finally {
    const deleted = await runTool("ip", ["netns", "del", ns]);
    if (!deleted.success) {
      console.error(`could not delete namespace ${ns}: ${deleted.stderr}`);
    }
  }
}

/** Options for {@linkcode nsExec}. */
export interface NsExecOptions {
  /** Text for the command's standard input. */
  stdin?: string;
}

/** Runs a command inside the namespace (`ip netns exec`), asserts that it succeeded and returns its standard output. */
export async function nsExec(
  ns: string,
  command: string[],
  options: NsExecOptions = {},
): Promise<string> {
  const result = await runTool("ip", ["netns", "exec", ns, ...command], {
    stdin: options.stdin,
  });
  assert.ok(
    result.success,
    `${command.join(" ")} in ${ns} failed: ${result.stderr}`,
  );
  return result.stdout;
}
