/**
 * The interface every firewall backend implements, the error they throw, and
 * the checks a value passes before it reaches a command line or an nft script.
 *
 * @module
 */

import { type IpAddress, parseIp } from "../ip.ts";

export type { IpAddress } from "../ip.ts";

/** One port or port range a rule matches; same shape as `PortRange` from the config. */
export interface FirewallRulePort {
  /** First (or only) port, 1-65535. */
  port: number;
  /** Last port of a range; present only when greater than `port`. */
  endPort?: number;
  /** Transport protocol. */
  proto: "tcp" | "udp";
}

/** The rules that exist for the whole life of the server: the knock port and the drop rules. */
export interface BaseRulesOptions {
  /** UDP port the knock packets arrive on. */
  knockPort: number;
  /** Whether the backend adds the rule that lets knock packets in. */
  openKnockPort: boolean;
  /** Ports that get a DROP rule after the per-knock accepts (empty when `drop_ports` is off). */
  dropPorts: FirewallRulePort[];
  /** Input interface every rule matches, or null for all interfaces. */
  interface: string | null;
  /** Per-source budget of the knock gate (default {@linkcode DEFAULT_KNOCK_RATE_LIMIT}). */
  knockRateLimit?: KnockRateLimit;
}

/** A per-source datagram budget: `count` per `unit`, in bursts of at most `burst`. */
export interface KnockRateLimit {
  /** Datagrams per unit, 1 to {@linkcode MAX_KNOCK_RATE}. */
  count: number;
  /** The unit of `count`. */
  unit: "second" | "minute" | "hour";
  /** Most datagrams a quiet source may send at once, 1 to {@linkcode MAX_KNOCK_RATE}. */
  burst: number;
}

/** The `knock_rate_limit` and `knock_burst` defaults: 20/s, bursts of 40. */
export const DEFAULT_KNOCK_RATE_LIMIT: KnockRateLimit = {
  count: 20,
  unit: "second",
  burst: 40,
};
/** Largest rate count and burst: the iptables hashlimit name that holds both stays within 15 characters. */
export const MAX_KNOCK_RATE = 999;
/** Seconds in each rate unit. */
export const RATE_UNIT_SECONDS = { second: 1, minute: 60, hour: 3600 } as const;

/** Datagrams the knock gate dropped in the kernel, by reason. */
export interface GateCounters {
  /** UDP length other than a knock's. */
  size: number;
  /** First payload byte other than the protocol version. */
  version: number;
  /** Over the per-source rate. */
  rate: number;
}

/** The rules one knock opened; pass it back to `close()` unchanged. */
export interface OpenedRules {
  /** Source address the rules accept. */
  address: IpAddress;
  /** Ports the rules accept. */
  ports: FirewallRulePort[];
  /** Backend data: nft rule handles or iptables rule specs. */
  handles: string[];
}

/** What {@linkcode FirewallBackend.ensureBaseRules} found. */
export interface BaseRulesCheck {
  /** What was missing and has been put back, e.g. "table inet filter"; empty when everything was in place. */
  repaired: string[];
  /** The rule sets passed in of which at least one rule is gone; the backend no longer tracks their missing rules. */
  lost: OpenedRules[];
}

/** A firewall backend: adds and removes the rules openme manages. */
export interface FirewallBackend {
  /** Backend name: "nft" or "iptables". */
  readonly name: string;
  /** Prepares tables, chains and the jump, removes rules left by a run that died, adds the base rules. */
  setup(options: BaseRulesOptions): Promise<void>;
  /** Replaces the base rules after a configuration reload. */
  updateBaseRules(options: BaseRulesOptions): Promise<void>;
  /** Opens the ports for one address, all or nothing; throws FirewallError. */
  open(address: IpAddress, ports: FirewallRulePort[]): Promise<OpenedRules>;
  /** Removes the rules of one knock; rules already gone are not an error. */
  close(rules: OpenedRules): Promise<void>;
  /** Puts back base rules an operator's reload removed and reports which of the given rule sets lost rules. */
  ensureBaseRules(open: OpenedRules[]): Promise<BaseRulesCheck>;
  /** Removes everything this backend added, in as few tool runs as possible. */
  teardown(): Promise<void>;
  /** Reads the knock gate's drop counters now; null when there is no gate. */
  gateCounters(): Promise<GateCounters | null>;
}

/** Where the firewall tools run, for the backends and the read-only inspection. */
export interface FirewallBackendOptions {
  /** Time limit for each subprocess in milliseconds (default 5000); the tool is killed after it. */
  timeoutMs?: number;
  /** Runs every tool as `ip netns exec NETNS TOOL ...` (tests and the demo); production leaves it unset. */
  netns?: string | null;
  /** Extra environment for the tools (tests put fake `nft`/`iptables` first in PATH). */
  env?: Record<string, string>;
}

/** Table (family and name) of openme's nft rules. */
export const NFT_TABLE = "inet filter";
/** nft chain that holds openme's rules. */
export const NFT_CHAIN = "openme";
/** nft base chain that jumps to {@linkcode NFT_CHAIN}. */
export const NFT_INPUT_CHAIN = "input";
/** iptables chain openme's rules go in. */
export const IPTABLES_CHAIN = "INPUT";
/** Comment on every per-knock accept rule. */
export const RULE_COMMENT = "openme";
/** Comment on the rule that lets knock packets in. */
export const KNOCK_RULE_COMMENT = "openme-knock";
/** Comment on the `drop_ports` rules. */
export const DROP_RULE_COMMENT = "openme-drop";
/** Comment on the knock gate's rules, ahead of the knock rule. */
export const GATE_RULE_COMMENT = "openme-gate";
/** Comment on the nft `jump openme` rule openme adds to the input chain. */
export const JUMP_RULE_COMMENT = "openme-jump";
/** Comments of the base rules, which setup and a reload replace. */
export const BASE_RULE_COMMENTS: readonly string[] = [
  GATE_RULE_COMMENT,
  KNOCK_RULE_COMMENT,
  DROP_RULE_COMMENT,
];
/** Comments of every rule openme adds to a chain. */
export const OPENME_RULE_COMMENTS: readonly string[] = [
  RULE_COMMENT,
  ...BASE_RULE_COMMENTS,
];

/** Characters allowed in an interface name passed to the firewall (at most IFNAMSIZ - 1). */
export const INTERFACE_NAME_PATTERN = /^[A-Za-z0-9_.:@-]{1,15}$/;

/** A firewall command failed or a value was refused before running one. */
export class FirewallError extends Error {
  /** Always "FirewallError". */
  override name = "FirewallError";
}

function refuse(message: string): FirewallError {
  return new FirewallError(`firewall: ${message}`);
}

function isPortNumber(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 1 &&
    (value as number) <= 65535;
}

function validateRulePort(port: FirewallRulePort): FirewallRulePort {
  const end = port.endPort === port.port ? undefined : port.endPort;
  const badEnd = end !== undefined && (!isPortNumber(end) || end < port.port);
  if (
    !isPortNumber(port.port) || !["tcp", "udp"].includes(port.proto) || badEnd
  ) {
    const text = JSON.stringify(port);
    throw refuse(
      `invalid port ${text}: use port 1-65535, endPort port-65535 (or none), proto "tcp" or "udp"`,
    );
  }
  const { proto } = port;
  return end === undefined
    ? { port: port.port, proto }
    : { port: port.port, endPort: end, proto };
}

/** Checks base-rule options (knock port, interface name, drop ports) and returns a clean copy; throws FirewallError. */
export function validateBaseRulesOptions(
  options: BaseRulesOptions,
): BaseRulesOptions {
  const port = JSON.stringify(options.knockPort);
  if (!isPortNumber(options.knockPort)) {
    throw refuse(`invalid knock port ${port} (server.udp_port): use 1-65535`);
  }
  const iface = options.interface || null;
  if (iface !== null && !INTERFACE_NAME_PATTERN.test(iface)) {
    const name = JSON.stringify(iface);
    throw refuse(
      `invalid interface name ${name} (server.interface / --interface): use 1-15 characters from A-Z a-z 0-9 _ . : @ -`,
    );
  }
  const limit = options.knockRateLimit ?? DEFAULT_KNOCK_RATE_LIMIT;
  const inRange = (n: number) =>
    Number.isInteger(n) && n >= 1 && n <= MAX_KNOCK_RATE;
  if (
    !inRange(limit.count) || !inRange(limit.burst) ||
    !Object.hasOwn(RATE_UNIT_SECONDS, limit.unit)
  ) {
    const text = JSON.stringify(limit);
    throw refuse(
      `invalid knock rate limit ${text} (server.knock_rate_limit, server.knock_burst): use 1-${MAX_KNOCK_RATE} per second, minute or hour, burst 1-${MAX_KNOCK_RATE}`,
    );
  }
  return {
    knockPort: options.knockPort,
    openKnockPort: options.openKnockPort === true,
    dropPorts: options.dropPorts.map(validateRulePort),
    interface: iface,
    knockRateLimit: { ...limit },
  };
}

/** Checks the address, then each port, of an open() call and returns clean copies; throws FirewallError. */
export function validateOpenRequest(
  address: IpAddress,
  ports: FirewallRulePort[],
): { address: IpAddress; ports: FirewallRulePort[] } {
  const parsed = typeof address?.text === "string"
    ? parseIp(address.text)
    : null;
  if (parsed === null || parsed.family !== address.family) {
    const text = JSON.stringify(address);
    throw refuse(
      `invalid address ${text}: expected a canonical IPv4 or IPv6 address`,
    );
  }
  return { address: parsed, ports: ports.map(validateRulePort) };
}

/** Formats a port's number or range with the given separator: "22", "8080-8090", "8080:8090". */
export function portRangeText(
  port: FirewallRulePort,
  separator: string,
): string {
  return port.endPort !== undefined && port.endPort > port.port
    ? `${port.port}${separator}${port.endPort}`
    : `${port.port}`;
}

/** Formats the ports and address of one knock's rules for logs: "22/tcp, 8080-8090/tcp for 192.0.2.2". */
export function describeRules(
  rules: { address: IpAddress; ports: FirewallRulePort[] },
): string {
  const ports = rules.ports.map((port) =>
    `${portRangeText(port, "-")}/${port.proto}`
  );
  return `${ports.join(", ")} for ${rules.address.text}`;
}

/** Summarises base rules for the "rules ready" log line, e.g. "knock port 54154/udp open, 2 drop rules, all interfaces". */
export function describeBaseRules(options: BaseRulesOptions): string {
  return [
    options.openKnockPort
      ? `knock port ${options.knockPort}/udp open`
      : "knock port not managed",
    `${options.dropPorts.length} drop rules`,
    options.interface === null
      ? "all interfaces"
      : `interface ${options.interface}`,
  ].join(", ");
}
