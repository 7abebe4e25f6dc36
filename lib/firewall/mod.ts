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

export type {
  BaseRulesCheck,
  BaseRulesOptions,
  FirewallBackend,
  FirewallBackendOptions,
  FirewallRulePort,
  GateCounters,
  IpAddress,
  KnockRateLimit,
  OpenedRules,
} from "./backend.ts";
export { FirewallError } from "./backend.ts";
export { IptablesBackend } from "./iptables.ts";
export { NftBackend } from "./nft.ts";

/** Backend kinds: the two Linux backends. */
export type FirewallKind = "nft" | "iptables";

/** Creates the firewall backend of the given kind; throws FirewallError for an unknown kind. */
export function createFirewallBackend(
  kind: FirewallKind,
  options: FirewallBackendOptions = {},
): FirewallBackend {
  if (kind === "nft") return new NftBackend(options);
  if (kind === "iptables") return new IptablesBackend(options);
  throw new FirewallError(
    `firewall: unknown backend ${
      JSON.stringify(kind)
    } (server.firewall): use nft or iptables`,
    { tool: String(kind), args: [] },
  );
}

/** Removes every openme rule, set, jump and chain from nft and from iptables/ip6tables, whoever added them, without a config; skips a tool that is not installed; throws the first failure after trying both. */
export async function cleanupFirewall(
  options: FirewallBackendOptions = {},
): Promise<string[]> {
  const results = await Promise.allSettled([
    new NftBackend(options).cleanup(),
    new IptablesBackend(options).teardown(),
  ]);
  const report: string[] = [];
  for (const [i, result] of results.entries()) {
    const error = result.status === "rejected" ? result.reason as Error : null;
    if (error !== null && !/command not found/.test(error.message)) throw error;
    report.push(
      `${["nft", "iptables"][i]}: ${
        error === null
          ? "no openme rule left"
          : "not installed, nothing to remove"
      }`,
    );
  }
  return report;
}
