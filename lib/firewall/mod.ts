/**
 * Firewall backends: pick one with {@linkcode createFirewallBackend}. lib/firewall
 * is the only part of openme that runs subprocesses.
 *
 * @module
 */

import {
  type FirewallBackend,
  type FirewallBackendOptions,
  FirewallError,
} from "./backend.ts";
import { IptablesBackend } from "./iptables.ts";
import { NftBackend } from "./nft.ts";

/** Backend kinds: the two Linux backends. */
export type FirewallKind = "nft" | "iptables";

/** Creates the firewall backend of the given kind; throws FirewallError for an unknown kind. */
export function createFirewallBackend(
  kind: FirewallKind,
  options: FirewallBackendOptions = {},
): FirewallBackend {
  if (kind === "nft") return new NftBackend(options);
  if (kind === "iptables") return new IptablesBackend(options);
  const name = JSON.stringify(kind);
  throw new FirewallError(
    `firewall: unknown backend ${name} (server.firewall): use nft or iptables`,
  );
}

/** Removes every openme rule, set, jump and chain from nft and iptables/ip6tables, whoever added them, and says what it did per tool; throws the first failure after trying both. */
export async function cleanupFirewall(): Promise<string[]> {
  const results = await Promise.allSettled([
    new NftBackend().cleanup(),
    new IptablesBackend().teardown(),
  ]);
  return results.map((result, i) => {
    const error = result.status === "rejected" ? result.reason as Error : null;
    // A tool that is not installed has no rules to remove.
    if (error !== null && !/command not found/.test(error.message)) throw error;
    const done = error === null
      ? "no openme rule left"
      : "not installed, nothing to remove";
    return `${["nft", "iptables"][i]}: ${done}`;
  });
}
