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
  IpAddress,
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
