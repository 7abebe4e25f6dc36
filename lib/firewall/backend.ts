/**
 * The firewall backend interface shared by the nft, iptables and no-op
 * backends, the error they throw, and the validation every backend applies
 * before a value reaches a command line or an nft script.
 *
 * @module
 */

import { type IpAddress, parseIp } from "../ip.ts";
import type { ToolResult } from "./exec.ts";

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
}

/** The rules one knock opened; pass it back to `close()` unchanged. */
export interface OpenedRules {
  /** Source address the rules accept. */
  address: IpAddress;
  /** Ports the rules accept. */
  ports: FirewallRulePort[];
  /** Backend data: nft rule handles, iptables rule specs, no-op ids. */
  handles: string[];
}

/** What {@linkcode FirewallBackend.ensureBaseRules} found. */
export interface BaseRulesCheck {
  /** What was missing and has been put back, e.g. "chain inet filter openme", "knock rule (iptables)"; empty when everything was in place. */
  repaired: string[];
  /** The rule sets passed in of which at least one rule is gone; the backend no longer tracks their missing rules. */
  lost: OpenedRules[];
}

/** A firewall backend: adds and removes the rules openme manages. */
export interface FirewallBackend {
  /** Backend name: "nft", "iptables" or "noop". */
  readonly name: string;
  /** Prepares tables, chains and the jump, removes rules left by a run that died, adds knock and drop rules. */
  setup(options: BaseRulesOptions): Promise<void>;
  /** Replaces the knock and drop rules after a configuration reload. */
  updateBaseRules(options: BaseRulesOptions): Promise<void>;
  /** Opens the ports for one address, all or nothing; throws FirewallError. */
  open(address: IpAddress, ports: FirewallRulePort[]): Promise<OpenedRules>;
  /** Removes the rules of one knock; rules already gone are not an error. */
  close(rules: OpenedRules): Promise<void>;
  /**
   * Checks that the table, chain, jump, knock and drop rules still exist (an
   * operator may have reloaded the firewall) and puts back what is missing;
   * reports which of the given per-knock rule sets lost rules.
   */
  ensureBaseRules(open: OpenedRules[]): Promise<BaseRulesCheck>;
  /** Removes everything this backend added, in as few tool runs as possible. */
  teardown(): Promise<void>;
}

/** Options shared by the nft and iptables backends. */
export interface FirewallBackendOptions {
  /** Time limit for each subprocess in milliseconds (default 5000); the tool is killed after it. */
  timeoutMs?: number;
  /**
   * Runs every tool as `ip netns exec NETNS TOOL ...`. Used by the tests and
   * the demo to manage a network namespace without running openme inside it;
   * production leaves it unset.
   */
  netns?: string | null;
  /** Extra environment for the tools (tests put fake `nft`/`iptables` first in PATH). */
  env?: Record<string, string>;
  /** Most operations that may wait in the backend's queue (default 1024); more are rejected. */
  maxQueuedOperations?: number;
}

/** Comment on every per-knock accept rule. */
export const RULE_COMMENT = "openme";
/** Comment on the rule that lets knock packets in. */
export const KNOCK_RULE_COMMENT = "openme-knock";
/** Comment on the `drop_ports` rules. */
export const DROP_RULE_COMMENT = "openme-drop";
/** Comment on the nft `jump openme` rule openme adds to the input chain. */
export const JUMP_RULE_COMMENT = "openme-jump";

/** Longest interface name Linux accepts (IFNAMSIZ - 1). */
export const MAX_INTERFACE_NAME_LENGTH = 15;
/** Characters allowed in an interface name passed to the firewall. */
export const INTERFACE_NAME_PATTERN = /^[A-Za-z0-9_.:@-]{1,15}$/;
/** Characters allowed in a network namespace name. */
export const NETNS_NAME_PATTERN = /^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}$/;

/** Longest stderr excerpt a FirewallError message carries. */
export const MAX_ERROR_STDERR_CHARS = 400;

/** What a FirewallError records about the failed command. */
export interface FirewallErrorDetails {
  /** The program that ran (or would have run). */
  tool: string;
  /** Its arguments. */
  args: string[];
  /** Its standard error, trimmed; empty when it never ran. */
  stderr?: string;
  /** Its exit code; null when it never ran, was killed, or the error is a validation error. */
  exitCode?: number | null;
}

/** A firewall command failed or a value was refused before running one. */
export class FirewallError extends Error {
  /** The program that ran (or would have run). */
  tool: string;
  /** Its arguments. */
  args: string[];
  /** Its standard error, trimmed. */
  stderr: string;
  /** Its exit code, or null. */
  exitCode: number | null;

  /** Creates the error; the message should say what failed and what to do. */
  constructor(message: string, details: FirewallErrorDetails) {
    super(message);
    this.name = "FirewallError";
    this.tool = details.tool;
    this.args = [...details.args];
    this.stderr = (details.stderr ?? "").trim();
    this.exitCode = details.exitCode ?? null;
  }
}

/** Options for {@linkcode firewallErrorFromResult}. */
export interface FirewallErrorFromResultOptions {
  /** What to check, e.g. "is nftables installed and are you root (CAP_NET_ADMIN)?". */
  hint: string;
  /** What openme was doing, e.g. "opening 22/tcp for 192.0.2.2". */
  action?: string;
}

/** Collapses tool stderr to one line: no blank lines, no caret markers, bounded length. */
export function stderrOneLine(stderr: string): string {
  const lines = stderr.split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !/^[\^~ ]+$/.test(line));
  const joined = lines.join(" | ");
  if (joined.length <= MAX_ERROR_STDERR_CHARS) return joined;
  return joined.slice(0, MAX_ERROR_STDERR_CHARS) + "...";
}

/** Builds the FirewallError for a failed tool run (non-zero exit, timeout, missing binary). */
export function firewallErrorFromResult(
  result: ToolResult,
  options: FirewallErrorFromResultOptions,
): FirewallError {
  const commandLine = [result.command, ...result.args].join(" ");
  const prefix = options.action
    ? `firewall: ${options.action}: `
    : "firewall: ";
  let what: string;
  if (result.error !== null) {
    what = `${commandLine} could not run: ${result.error}`;
  } else if (result.timedOut) {
    what =
      `${commandLine} did not finish within ${result.timeoutMs} ms and was killed`;
  } else {
    const code = result.code === null
      ? "killed by a signal"
      : `exit ${result.code}`;
    const detail = stderrOneLine(result.stderr);
    what = `${commandLine} failed (${code})` + (detail ? `: ${detail}` : "");
  }
  return new FirewallError(`${prefix}${what}; ${options.hint}`, {
    tool: result.command,
    args: result.args,
    stderr: result.stderr,
    exitCode: result.code,
  });
}

/** Checks an interface name and returns it; throws FirewallError naming the value when it is unsafe. */
export function validateInterfaceName(name: string, tool: string): string {
  if (!INTERFACE_NAME_PATTERN.test(name)) {
    throw new FirewallError(
      `firewall: invalid interface name ${
        JSON.stringify(name)
      } (server.interface / --interface): ` +
        `use 1-${MAX_INTERFACE_NAME_LENGTH} characters from A-Z a-z 0-9 _ . : @ -`,
      { tool, args: [] },
    );
  }
  return name;
}

/** Checks a network namespace name and returns it; throws FirewallError when it is unsafe. */
export function validateNetnsName(name: string, tool: string): string {
  if (!NETNS_NAME_PATTERN.test(name)) {
    throw new FirewallError(
      `firewall: invalid network namespace name ${JSON.stringify(name)}: ` +
        "use 1-64 characters from A-Z a-z 0-9 _ . - (not starting with -)",
      { tool, args: [] },
    );
  }
  return name;
}

function isPortNumber(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 1 &&
    value <= 65535;
}

/** Checks a rule port (1-65535, endPort > port, tcp/udp) and returns a clean copy; throws FirewallError. */
export function validateRulePort(
  port: FirewallRulePort,
  tool: string,
): FirewallRulePort {
  const shown = JSON.stringify(port);
  if (!isPortNumber(port.port)) {
    throw new FirewallError(
      `firewall: invalid port ${shown}: port must be an integer 1-65535`,
      { tool, args: [] },
    );
  }
  if (port.proto !== "tcp" && port.proto !== "udp") {
    throw new FirewallError(
      `firewall: invalid port ${shown}: proto must be "tcp" or "udp"`,
      { tool, args: [] },
    );
  }
  if (port.endPort === undefined || port.endPort === port.port) {
    return { port: port.port, proto: port.proto };
  }
  if (!isPortNumber(port.endPort) || port.endPort < port.port) {
    throw new FirewallError(
      `firewall: invalid port range ${shown}: endPort must be an integer ${port.port}-65535`,
      { tool, args: [] },
    );
  }
  return { port: port.port, endPort: port.endPort, proto: port.proto };
}

/** Checks an address and returns it in canonical form; throws FirewallError when it is not an IP address. */
export function validateAddress(address: IpAddress, tool: string): IpAddress {
  const parsed = typeof address?.text === "string"
    ? parseIp(address.text)
    : null;
  if (parsed === null || parsed.family !== address.family) {
    throw new FirewallError(
      `firewall: invalid address ${
        JSON.stringify(address)
      }: expected a canonical IPv4 or IPv6 address`,
      { tool, args: [] },
    );
  }
  return parsed;
}

/** Checks base-rule options and returns a clean copy; throws FirewallError. */
export function validateBaseRulesOptions(
  options: BaseRulesOptions,
  tool: string,
): BaseRulesOptions {
  if (!isPortNumber(options.knockPort)) {
    throw new FirewallError(
      `firewall: invalid knock port ${
        JSON.stringify(options.knockPort)
      } (server.udp_port): use 1-65535`,
      { tool, args: [] },
    );
  }
  const iface = options.interface === null || options.interface === undefined ||
      options.interface === ""
    ? null
    : validateInterfaceName(options.interface, tool);
  const dropPorts: FirewallRulePort[] = [];
  for (const port of options.dropPorts) {
    dropPorts.push(validateRulePort(port, tool));
  }
  return {
    knockPort: options.knockPort,
    openKnockPort: options.openKnockPort === true,
    dropPorts,
    interface: iface,
  };
}

/** Formats a port for logs: "22/tcp", "8080-8090/tcp". */
export function describeRulePort(port: FirewallRulePort): string {
  const range = port.endPort !== undefined && port.endPort > port.port
    ? `${port.port}-${port.endPort}`
    : `${port.port}`;
  return `${range}/${port.proto}`;
}

/** Formats a port list for logs: "22/tcp, 8080-8090/tcp". */
export function describeRulePorts(ports: FirewallRulePort[]): string {
  return ports.map((port) => describeRulePort(port)).join(", ");
}

/** Summarises base rules for the "rules ready" log line, e.g. "knock port 54154/udp open, 2 drop rules, all interfaces". */
export function describeBaseRules(options: BaseRulesOptions): string {
  const parts = [
    options.openKnockPort
      ? `knock port ${options.knockPort}/udp open`
      : "knock port not managed",
    `${options.dropPorts.length} drop rules`,
    options.interface === null
      ? "all interfaces"
      : `interface ${options.interface}`,
  ];
  return parts.join(", ");
}

/** The address and ports of an open() call after {@linkcode validateOpenRequest}. */
export interface OpenRequest {
  /** Canonical address. */
  address: IpAddress;
  /** Clean copies of the ports. */
  ports: FirewallRulePort[];
}

/** Options for {@linkcode validateOpenRequest}. */
export interface ValidateOpenRequestOptions {
  /** Tool named in the FirewallError, e.g. "nft" or "ip6tables". */
  tool: string;
}

/** Checks the address, then each port, of an open() call and returns clean copies; throws FirewallError. */
export function validateOpenRequest(
  address: IpAddress,
  ports: FirewallRulePort[],
  options: ValidateOpenRequestOptions,
): OpenRequest {
  const cleanAddress = validateAddress(address, options.tool);
  const cleanPorts = ports.map((port) => validateRulePort(port, options.tool));
  return { address: cleanAddress, ports: cleanPorts };
}

/** Options for {@linkcode invalidRuleHandleError}. */
export interface InvalidRuleHandleErrorOptions {
  /** Backend whose handle it is, as in the message: "nft" or "iptables". */
  backend: string;
  /** Tool named in the error. */
  tool: string;
}

/** Builds the FirewallError close() throws for a handle that open() cannot have returned. */
export function invalidRuleHandleError(
  rules: OpenedRules,
  handle: string,
  options: InvalidRuleHandleErrorOptions,
): FirewallError {
  return new FirewallError(
    `firewall: invalid ${options.backend} rule handle ${
      JSON.stringify(handle)
    } for ${rules.address.text}: ` +
      "pass the OpenedRules that open() returned",
    { tool: options.tool, args: [] },
  );
}
