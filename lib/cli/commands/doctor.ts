/**
 * `openme doctor`: checks, on the server, everything openme needs from the
 * host and prints one line per finding, ✓ (fine), ⚠ (openme runs, but
 * something is unsafe or will bite later) or ✗ (openme cannot work), each
 * problem with the exact command that fixes it. Exits 1 on any ✗.
 *
 * Checks: platform; config valid; privilege to change the firewall (root or
 * CAP_NET_ADMIN); `nft` or `iptables`/`ip6tables` present with versions; the
 * base input chain drops by default; `jump openme` present and reachable
 * (nft; iptables rules go straight into INPUT); established/related traffic
 * accepted; ICMPv6 neighbour discovery accepted; the knock port accepted
 * when `open_knock_port: false`; knock (udp) and health (tcp) ports free or
 * held by openme; the configured interface exists; clock synchronised
 * (for `replay_window`). Inspection itself lives in lib/firewall/inspect.ts.
 *
 * @module
 */

import type { ServerConfig } from "../../config/server_config.ts";
import {
  DEFAULT_FIREWALL,
  DEFAULT_REPLAY_WINDOW_MS,
  DEFAULT_SERVER_CONFIG_PATH,
  DEFAULT_UDP_PORT,
  loadServerConfig,
} from "../../config/server_config.ts";
import { formatDuration } from "../../config/duration.ts";
import {
  acceptsNeighborDiscovery,
  acceptsUdpPort,
  type BoundSocket,
  findSocketOwners,
  hasNetAdminCapability,
  type InputChainFacts,
  inspectClockSync,
  inspectIptablesRuleset,
  inspectNftRuleset,
  isOpenmeServe,
  listBoundSockets,
  type SocketOwner,
  toolVersion,
} from "../../firewall/inspect.ts";
import { type Platform, serverSupported } from "../../platform.ts";
import type { CliIo, ParsedCommand } from "../io.ts";

/** How bad a finding is. */
export type FindingLevel = "ok" | "warn" | "fail";

/** One line of the doctor's report. */
export interface Finding {
  /** ok (✓), warn (⚠) or fail (✗). */
  level: FindingLevel;
  /** What was found. */
  text: string;
  /** The exact command (or edit) that fixes it; absent for ✓. */
  fix?: string;
}

/** Symbols for each level. */
export const FINDING_SYMBOLS: Record<FindingLevel, string> = {
  ok: "✓",
  warn: "⚠",
  fail: "✗",
};

/** Options for {@linkcode runDoctorChecks}; tests inject the namespace, platform and privilege. */
export interface DoctorOptions {
  /** Inspect the ruleset and sockets of this network namespace instead of the current one. */
  netns?: string | null;
  /** Platform to check for; default the running one. */
  platform?: Platform;
  /** User id; default `Deno.uid()`. */
  uid?: number | null;
  /** Text of /proc/self/status (for CapEff); default read from /proc. */
  procStatus?: string;
  /** Extra environment for the tools (tests put fake tools first in PATH). */
  env?: Record<string, string>;
}

/** What the checks use from the config (defaults when it could not be loaded). */
interface Settings {
  path: string;
  firewall: "nft" | "iptables";
  udpPort: number;
  healthPort: number;
  openKnockPort: boolean;
  replayWindowMs: number;
  interface: string | null;
}

/** Formats a finding as its report line. */
export function formatFinding(finding: Finding): string {
  const line = `${FINDING_SYMBOLS[finding.level]} ${finding.text}`;
  return finding.fix === undefined ? line : `${line} — fix: ${finding.fix}`;
}

/** Runs every check against the server config at `configPath` and returns the findings in order. */
export async function runDoctorChecks(
  configPath: string,
  options: DoctorOptions = {},
): Promise<Finding[]> {
  const findings: Finding[] = [];
  const support = serverSupported({ platform: options.platform });
  if (!support.ok) {
    findings.push({
      level: "fail",
      text: support.message,
      fix: "run openme doctor and openme serve on the Linux server",
    });
    return findings;
  }

  const settings = await checkConfig(configPath, findings);
  const privileged = await checkPrivilege(options, findings);
  const toolsOk = await checkTools(settings, options, findings);

  // Ports first, to know whether openme serve runs; reported after the ruleset.
  const portFindings: Finding[] = [];
  const serveOwner = await checkPorts(settings, options, portFindings);
  const serveRuns = serveOwner !== null;

  if (toolsOk) {
    if (settings.firewall === "nft") {
      await checkNftRuleset(settings, serveRuns, privileged, options, findings);
    } else {
      await checkIptablesRuleset(settings, privileged, options, findings);
    }
  }
  findings.push(...portFindings);
  if (settings.interface !== null && (options.netns ?? null) === null) {
    await checkInterface(settings, findings);
  }
  await checkClock(settings, options, findings);
  return findings;
}

async function checkConfig(
  path: string,
  findings: Finding[],
): Promise<Settings> {
  const defaults: Settings = {
    path,
    firewall: DEFAULT_FIREWALL,
    udpPort: DEFAULT_UDP_PORT,
    healthPort: DEFAULT_UDP_PORT,
    openKnockPort: true,
    replayWindowMs: DEFAULT_REPLAY_WINDOW_MS,
    interface: null,
  };
  let config: ServerConfig;
  try {
    config = await loadServerConfig(path);
  } catch (err) {
    const missing = (err as { cause?: unknown }).cause instanceof
      Deno.errors.NotFound;
    findings.push({
      level: "fail",
      text: (err as Error).message,
      fix: missing
        ? `openme init --server HOST${
          path === DEFAULT_SERVER_CONFIG_PATH ? "" : ` --config ${path}`
        }`
        : `edit ${path} (the message names the line and key)`,
    });
    return defaults;
  }
  findings.push({
    level: "ok",
    text:
      `config ${path} is valid: ${config.clients.length} client(s), firewall ${config.firewall}, knock port udp ${config.udpPort}, health port tcp ${config.healthPort}`,
  });
  for (const warning of config.warnings) {
    findings.push({ level: "warn", text: warning, fix: `edit ${path}` });
  }
  return {
    path,
    firewall: config.firewall,
    udpPort: config.udpPort,
    healthPort: config.healthPort,
    openKnockPort: config.openKnockPort,
    replayWindowMs: config.replayWindowMs,
    interface: config.interface,
  };
}

async function checkPrivilege(
  options: DoctorOptions,
  findings: Finding[],
): Promise<boolean> {
  const uid = options.uid !== undefined ? options.uid : Deno.uid();
  if (uid === 0) {
    findings.push({
      level: "ok",
      text: "running as root: openme serve may change the firewall",
    });
    return true;
  }
  let status = options.procStatus;
  if (status === undefined) {
    try {
      status = await Deno.readTextFile("/proc/self/status");
    } catch {
      status = "";
    }
  }
  if (hasNetAdminCapability(status)) {
    findings.push({
      level: "ok",
      text: "running with CAP_NET_ADMIN: openme serve may change the firewall",
    });
    return true;
  }
  findings.push({
    level: "fail",
    text:
      `running as uid ${uid} without CAP_NET_ADMIN: openme serve could not change the firewall, and the ruleset checks below may fail`,
    fix:
      "sudo openme doctor (and run openme serve as root, as the systemd unit does)",
  });
  return false;
}

async function checkTools(
  settings: Settings,
  options: DoctorOptions,
  findings: Finding[],
): Promise<boolean> {
  const tools = settings.firewall === "nft"
    ? ["nft"]
    : ["iptables", "ip6tables"];
  let ok = true;
  for (const tool of tools) {
    const version = await toolVersion(tool, { env: options.env });
    if (version.ok) {
      findings.push({
        level: "ok",
        text: `${tool} found: ${version.value.version}`,
      });
      continue;
    }
    ok = false;
    findings.push({
      level: "fail",
      text:
        `${tool} is missing or broken (${version.error}): server.firewall is ${settings.firewall}`,
      fix: settings.firewall === "nft"
        ? `apt install nftables (or dnf install nftables), or set server.firewall: iptables in ${settings.path}`
        : `apt install iptables (or dnf install iptables), or set server.firewall: nft in ${settings.path}`,
    });
  }
  return ok;
}

const NFT_INPUT = "inet filter input";
const ND_RULE =
  "'icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept'";

async function checkNftRuleset(
  settings: Settings,
  serveRuns: boolean,
  privileged: boolean,
  options: DoctorOptions,
  findings: Finding[],
): Promise<void> {
  const listed = await inspectNftRuleset({
    netns: options.netns,
    env: options.env,
  });
  if (!listed.ok) {
    findings.push({
      level: privileged ? "fail" : "warn",
      text: `cannot list the nftables ruleset: ${listed.error}`,
      fix: privileged
        ? "check that nftables works: nft list ruleset"
        : "sudo openme doctor",
    });
    return;
  }
  const facts = listed.value;
  const input = facts.input;

  // Default deny.
  if (!input.exists) {
    findings.push({
      level: "warn",
      text:
        `there is no table inet filter chain input: openme serve creates one with policy accept, so every port stays reachable without a knock (openme protects nothing)`,
      fix:
        `nft add table inet filter && nft add chain inet filter input '{ type filter hook input priority 0; policy accept; }' && ${
          nftDenyFix(input)
        }`,
    });
  } else if (!input.defaultDeny) {
    findings.push({
      level: "warn",
      text:
        `${input.where} has policy ${input.policy} and no final drop: every port is reachable without a knock, so openme protects nothing (keep a console open, or allow ssh first)`,
      fix: nftDenyFix(input),
    });
  } else {
    findings.push({
      level: "ok",
      text: `${input.where} drops by default (${
        input.policy === "drop" ? "policy drop" : "a final drop rule"
      })`,
    });
  }

  // The jump to the openme chain.
  if (input.exists) {
    const addJump = input.catchAllHandle === null
      ? `nft add rule ${NFT_INPUT} jump openme`
      : `nft insert rule ${NFT_INPUT} position ${input.catchAllHandle} jump openme`;
    const makeChain = facts.openmeChainExists
      ? ""
      : "nft add chain inet filter openme && ";
    if (input.jumpsToOpenme && input.jumpUnreachable) {
      findings.push({
        level: "fail",
        text:
          `the jump to chain openme in ${input.where} comes after a rule that drops everything: no knock can open a port`,
        fix:
          `nft delete rule ${NFT_INPUT} handle ${input.jumpHandle} && nft insert rule ${NFT_INPUT} position ${input.catchAllHandle} jump openme`,
      });
    } else if (input.jumpsToOpenme) {
      findings.push({
        level: "ok",
        text: `${input.where} jumps to chain openme`,
      });
    } else if (serveRuns) {
      findings.push({
        level: "fail",
        text:
          `openme serve runs but ${input.where} has no jump to chain openme (was the ruleset reloaded?): knocks cannot open ports`,
        fix:
          `${makeChain}${addJump} (or restart openme: systemctl restart openme)`,
      });
    } else {
      findings.push({
        level: "warn",
        text:
          `${input.where} has no jump to chain openme yet: openme serve adds it when it starts; add it to /etc/nftables.conf too, so a firewall reload does not drop it`,
        fix: `${makeChain}${addJump}`,
      });
    }
  }

  // Established connections.
  if (input.exists) {
    if (input.acceptsEstablished) {
      findings.push({
        level: "ok",
        text: `${input.where} accepts established,related connections`,
      });
    } else {
      findings.push({
        level: "warn",
        text:
          `${input.where} has no ct state established,related accept: open connections (e.g. ssh) drop when their knock expires`,
        fix: `nft insert rule ${NFT_INPUT} ct state established,related accept`,
      });
    }
  }

  // ICMPv6 neighbour discovery: only a default-deny chain can drop it.
  if (input.exists && input.defaultDeny) {
    if (acceptsNeighborDiscovery(input)) {
      findings.push({
        level: "ok",
        text: `${input.where} accepts ICMPv6 neighbour discovery`,
      });
    } else {
      findings.push({
        level: "warn",
        text:
          `${input.where} drops ICMPv6 neighbour discovery: IPv6 to this host does not work at all (neighbours cannot resolve its address)`,
        fix: `nft insert rule ${NFT_INPUT} ${ND_RULE}`,
      });
    }
  }

  // The knock port, when openme does not open it itself.
  if (!settings.openKnockPort && input.defaultDeny) {
    const accepted = acceptsUdpPort(
      [...input.acceptedUdpPorts, ...facts.openmeChainUdpPorts],
      settings.udpPort,
    );
    findings.push(
      accepted
        ? {
          level: "ok",
          text:
            `open_knock_port is false and ${input.where} accepts udp ${settings.udpPort}`,
        }
        : {
          level: "fail",
          text:
            `open_knock_port is false and no rule accepts udp ${settings.udpPort}: knocks never reach openme`,
          fix:
            `nft insert rule ${NFT_INPUT} udp dport ${settings.udpPort} accept (or set open_knock_port: true in ${settings.path})`,
        },
    );
  }

  // Other base chains on the input hook see every packet too.
  for (const other of facts.otherInputChains) {
    if (!other.defaultDeny) continue;
    const table = other.where.replace(/ chain .*$/, "");
    findings.push({
      level: "warn",
      text:
        `${other.where} also filters incoming packets and drops by default: what openme accepts in table inet filter is still dropped there (iptables-nft, docker or ufw rules?)`,
      fix:
        `accept openme's ports there as well, or move those rules into table inet filter and remove it: nft delete ${table}`,
    });
  }
}

function nftDenyFix(input: InputChainFacts): string {
  const steps: string[] = [];
  if (!input.acceptsEstablished) {
    steps.push(`nft add rule ${NFT_INPUT} ct state established,related accept`);
  }
  if (!input.acceptsLoopback) {
    steps.push(`nft add rule ${NFT_INPUT} iifname lo accept`);
  }
  if (!acceptsNeighborDiscovery(input)) {
    steps.push(`nft add rule ${NFT_INPUT} ${ND_RULE}`);
  }
  steps.push(`nft chain ${NFT_INPUT} '{ policy drop; }'`);
  return steps.join(" && ");
}

function iptablesDenyFix(tool: string, chain: InputChainFacts): string {
  const steps: string[] = [];
  if (!chain.acceptsEstablished) {
    steps.push(
      `${tool} -I INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`,
    );
  }
  if (!chain.acceptsLoopback) steps.push(`${tool} -I INPUT -i lo -j ACCEPT`);
  if (tool === "ip6tables" && !acceptsNeighborDiscovery(chain)) {
    steps.push(...IP6TABLES_ND_FIX);
  }
  steps.push(`${tool} -P INPUT DROP`);
  return steps.join(" && ");
}

const IP6TABLES_ND_FIX = [
  "ip6tables -I INPUT -p ipv6-icmp --icmpv6-type neighbour-solicitation -j ACCEPT",
  "ip6tables -I INPUT -p ipv6-icmp --icmpv6-type neighbour-advertisement -j ACCEPT",
];

async function checkIptablesRuleset(
  settings: Settings,
  privileged: boolean,
  options: DoctorOptions,
  findings: Finding[],
): Promise<void> {
  const listed = await inspectIptablesRuleset({
    netns: options.netns,
    env: options.env,
  });
  if (!listed.ok) {
    findings.push({
      level: privileged ? "fail" : "warn",
      text: `cannot list the iptables INPUT chain: ${listed.error}`,
      fix: privileged
        ? "check that iptables works: iptables -S INPUT"
        : "sudo openme doctor",
    });
    return;
  }
  const chains: { tool: string; chain: InputChainFacts }[] = [
    { tool: "iptables", chain: listed.value.v4 },
    { tool: "ip6tables", chain: listed.value.v6 },
  ];
  for (const { tool, chain } of chains) {
    const family = tool === "iptables" ? "IPv4" : "IPv6";
    // openme's per-knock rules go straight into INPUT: its policy is the default deny.
    if (chain.defaultDeny) {
      findings.push({
        level: "ok",
        text: `${tool} INPUT drops by default (${
          chain.policy === "drop" ? "policy DROP" : "a final DROP/REJECT rule"
        })`,
      });
    } else {
      findings.push({
        level: "warn",
        text: `${tool} INPUT has policy ${
          chain.policy?.toUpperCase() ?? "ACCEPT"
        }: every ${family} port is reachable without a knock, so openme protects nothing over ${family} (keep a console open, or allow ssh first)`,
        fix: iptablesDenyFix(tool, chain),
      });
    }
    if (chain.acceptsEstablished) {
      findings.push({
        level: "ok",
        text: `${tool} INPUT accepts established,related connections`,
      });
    } else {
      findings.push({
        level: "warn",
        text:
          `${tool} INPUT has no ESTABLISHED,RELATED accept: open ${family} connections drop when their knock expires`,
        fix:
          `${tool} -I INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`,
      });
    }
    if (tool === "ip6tables" && chain.defaultDeny) {
      if (acceptsNeighborDiscovery(chain)) {
        findings.push({
          level: "ok",
          text: "ip6tables INPUT accepts ICMPv6 neighbour discovery",
        });
      } else {
        findings.push({
          level: "warn",
          text:
            "ip6tables INPUT drops ICMPv6 neighbour discovery: IPv6 to this host does not work at all (neighbours cannot resolve its address)",
          fix: IP6TABLES_ND_FIX.join(" && "),
        });
      }
    }
    if (!settings.openKnockPort && chain.defaultDeny) {
      if (acceptsUdpPort(chain.acceptedUdpPorts, settings.udpPort)) {
        findings.push({
          level: "ok",
          text:
            `open_knock_port is false and ${tool} INPUT accepts udp ${settings.udpPort}`,
        });
      } else {
        findings.push({
          level: "fail",
          text:
            `open_knock_port is false and no ${tool} INPUT rule accepts udp ${settings.udpPort}: ${family} knocks never reach openme`,
          fix:
            `${tool} -I INPUT -p udp --dport ${settings.udpPort} -j ACCEPT (or set open_knock_port: true in ${settings.path})`,
        });
      }
    }
  }
}

function describeOwner(owner: SocketOwner): string {
  const command = owner.argv.join(" ");
  const shown = command.length > 80 ? `${command.slice(0, 77)}...` : command;
  return `${shown === "" ? "a process" : shown} (pid ${owner.pid})`;
}

/** Checks the knock and health ports; returns the openme serve process holding the knock port, if any. */
async function checkPorts(
  settings: Settings,
  options: DoctorOptions,
  findings: Finding[],
): Promise<SocketOwner | null> {
  const listed = await listBoundSockets({
    netns: options.netns,
    env: options.env,
  });
  if (!listed.ok) {
    findings.push({
      level: "warn",
      text: `cannot tell which ports are in use: ${listed.error}`,
      fix:
        `ss -ulpn sport = :${settings.udpPort}; ss -tlpn sport = :${settings.healthPort}`,
    });
    return null;
  }
  const wanted: { proto: "udp" | "tcp"; port: number; role: string }[] = [
    { proto: "udp", port: settings.udpPort, role: "knock port" },
    { proto: "tcp", port: settings.healthPort, role: "health port" },
  ];
  const matching = (w: { proto: string; port: number }): BoundSocket[] =>
    listed.value.filter((s) => s.proto === w.proto && s.port === w.port);
  const owners = await findSocketOwners(
    wanted.flatMap((w) => matching(w).map((s) => s.inode)),
  );
  let serve: SocketOwner | null = null;
  for (const w of wanted) {
    const sockets = matching(w);
    const label = `${w.role} ${w.proto} ${w.port}`;
    if (sockets.length === 0) {
      findings.push({
        level: "ok",
        text: `${label} is free for openme serve`,
      });
      continue;
    }
    const found = sockets.map((s) => owners.get(s.inode)).filter((
      o,
    ): o is SocketOwner => o !== undefined);
    const openme = found.find((o) => isOpenmeServe(o.argv));
    const other = found.find((o) => !isOpenmeServe(o.argv));
    if (other !== undefined) {
      findings.push({
        level: "fail",
        text: `${label} is in use by ${
          describeOwner(other)
        }: openme serve cannot listen there`,
        fix:
          `stop that program (kill ${other.pid}), or choose another port in ${settings.path} (server.${
            w.proto === "udp" ? "udp_port" : "health_port"
          }; clients need the new knock port in their profiles)`,
      });
    } else if (openme !== undefined) {
      if (w.proto === "udp") serve = openme;
      findings.push({
        level: "ok",
        text: `${label} is held by openme serve (pid ${openme.pid})`,
      });
    } else {
      findings.push({
        level: "warn",
        text:
          `${label} is in use by a process doctor cannot identify: openme serve cannot listen there unless it is openme itself`,
        fix: `sudo ss -${
          w.proto === "udp" ? "u" : "t"
        }lpn 'sport = :${w.port}'`,
      });
    }
  }
  return serve;
}

async function checkInterface(
  settings: Settings,
  findings: Finding[],
): Promise<void> {
  const name = settings.interface as string;
  try {
    await Deno.stat(`/sys/class/net/${name}`);
    findings.push({ level: "ok", text: `interface ${name} exists` });
  } catch {
    findings.push({
      level: "fail",
      text:
        `server.interface is ${name}, but there is no such interface: the rules would match no packet`,
      fix: `ip link show (then set server.interface in ${settings.path})`,
    });
  }
}

async function checkClock(
  settings: Settings,
  options: DoctorOptions,
  findings: Finding[],
): Promise<void> {
  const clock = await inspectClockSync({ env: options.env });
  const window = formatDuration(settings.replayWindowMs);
  if (clock.synchronized === true) {
    findings.push({
      level: "ok",
      text: `clock is NTP-synchronised (${clock.source})`,
    });
  } else if (clock.synchronized === false) {
    findings.push({
      level: "warn",
      text:
        `clock is not NTP-synchronised: knocks from clients whose clock differs by more than replay_window (${window}) are dropped as stale`,
      fix: "timedatectl set-ntp true",
    });
  } else {
    findings.push({
      level: "warn",
      text:
        `cannot tell whether the clock is synchronised (${clock.source}): knocks from clients whose clock differs by more than replay_window (${window}) are dropped as stale`,
      fix:
        "make sure an NTP client runs: timedatectl set-ntp true, or install chrony",
    });
  }
}

/** Runs `openme doctor`. */
export async function runDoctorCommand(
  parsed: ParsedCommand,
  io: CliIo,
): Promise<number> {
  const path = parsed.globals.config ?? DEFAULT_SERVER_CONFIG_PATH;
  const findings = await runDoctorChecks(path);
  for (const finding of findings) io.out(formatFinding(finding));
  const count = (level: FindingLevel): number =>
    findings.filter((f) => f.level === level).length;
  const fails = count("fail");
  const warns = count("warn");
  io.out(
    `${fails} problem(s), ${warns} warning(s), ${count("ok")} fine${
      fails > 0 ? ": openme will not work until the ✗ lines are fixed" : ""
    }`,
  );
  return fails > 0 ? 1 : 0;
}
