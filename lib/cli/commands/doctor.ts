/**
 * `openme doctor`: checks what openme needs from the host and prints one line
 * per finding, ✓, ⚠ or ✗, each problem with the command that fixes it.
 *
 * @module
 */

import {
  DEFAULT_FIREWALL,
  DEFAULT_REPLAY_WINDOW_MS,
  DEFAULT_SERVER_CONFIG_PATH,
  DEFAULT_UDP_PORT,
  loadServerConfig,
  type ServerConfig,
} from "../../config/server_config.ts";
import { formatDuration } from "../../config/duration.ts";
import {
  configChangeableByOthers,
  processUid,
} from "../../config/ownership.ts";
import { DEFAULT_KNOCK_RATE_LIMIT } from "../../firewall/backend.ts";
import {
  buildIptablesKnockRules,
  buildNftKnockRules,
  GATE_CHECKS,
  gateNeeds,
} from "../../firewall/gate.ts";
import {
  findSocketOwners,
  type GateFacts,
  hasNetAdminCapability,
  type InputChainFacts,
  inspectClockSync,
  inspectIptablesRuleset,
  inspectNftRuleset,
  isOpenmeServe,
  listSocketInodes,
  type NftRulesetFacts,
  type PortSpan,
  quoteIptablesArg,
  type SocketOwner,
  toolVersion,
} from "../../firewall/inspect.ts";
import { type Platform, serverSupported } from "../../platform.ts";
import { DEFAULT_STATE_FILE, readStateFile } from "../../server/state_file.ts";
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
  /** User id; default the owner of /proc/self (this process's). */
  uid?: number | null;
  /** Text of /proc/self/status (for CapEff); default read from /proc. */
  procStatus?: string;
  /** Extra environment for the tools (tests put fake tools first in PATH). */
  env?: Record<string, string>;
  /** The state file of openme serve, for its drop counters; default {@linkcode DEFAULT_STATE_FILE}. */
  stateFile?: string;
}

/** What the checks use from the config (defaults when it could not be loaded). */
type Settings = Pick<
  ServerConfig,
  | "path"
  | "firewall"
  | "udpPort"
  | "healthPort"
  | "openKnockPort"
  | "knockRateLimit"
  | "replayWindowMs"
  | "interface"
>;

/** The tool a chain belongs to, which names its fix commands. */
type Tool = "nft" | "iptables" | "ip6tables";

const IN = "inet filter input";
const ND_RULE =
  "'icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept'";
const IP6TABLES_ND_FIX =
  "ip6tables -I INPUT -p ipv6-icmp --icmpv6-type neighbour-solicitation -j ACCEPT && " +
  "ip6tables -I INPUT -p ipv6-icmp --icmpv6-type neighbour-advertisement -j ACCEPT";

function ok(text: string): Finding {
  return { level: "ok", text };
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
  const support = serverSupported({ platform: options.platform });
  if (!support.ok) {
    return [{
      level: "fail",
      text: support.message,
      fix: "run openme doctor and openme serve on the Linux server",
    }];
  }
  const findings: Finding[] = [];
  const settings = await checkConfig(configPath, findings);
  const writable = await configChangeableByOthers(configPath);
  if (writable !== null) findings.push({ level: "warn", text: writable });
  const privileged = await checkPrivilege(options, findings);
  const tools = settings.firewall === "nft"
    ? ["nft"] as const
    : ["iptables", "ip6tables"] as const;
  let toolsOk = true;
  for (const tool of tools) {
    try {
      findings.push(ok(`${tool} found: ${await toolVersion(tool, options)}`));
    } catch (err) {
      toolsOk = false;
      const [other, pkg] = settings.firewall === "nft"
        ? ["iptables", "nftables"]
        : ["nft", "iptables"];
      const problem = (err as Error).message;
      findings.push({
        level: "fail",
        text:
          `${tool} is missing or broken (${problem}): server.firewall is ${settings.firewall}`,
        fix:
          `apt install ${pkg} (or dnf install ${pkg}), or set server.firewall: ${other} in ${settings.path}`,
      });
    }
  }
  // Ports first, to know whether openme serve runs; reported after the ruleset.
  const portFindings: Finding[] = [];
  const serveRuns = await checkPorts(settings, options, portFindings);
  if (toolsOk) {
    try {
      let gates: [Tool, GateFacts][];
      if (settings.firewall === "nft") {
        const facts = await inspectNftRuleset(options);
        findings.push(...nftFindings(facts, settings, serveRuns));
        gates = [["nft", facts.gate]];
      } else {
        const { v4, v6 } = await inspectIptablesRuleset(options);
        // Per-knock rules go straight into INPUT: its policy is the default deny.
        const extra = { afterDeny: [], udpPorts: [] };
        findings.push(
          ...chainFindings(v4, "iptables", settings, extra),
          ...chainFindings(v6, "ip6tables", settings, extra),
        );
        gates = [["iptables", v4.gate], ["ip6tables", v6.gate]];
      }
      if (serveRuns && settings.openKnockPort) {
        findings.push(...await ownGateFindings(gates, options));
      }
    } catch (err) {
      const [what, check] = settings.firewall === "nft"
        ? ["the nftables ruleset", "nftables works: nft list ruleset"]
        : ["the iptables INPUT chain", "iptables works: iptables -S INPUT"];
      findings.push({
        level: privileged ? "fail" : "warn",
        text: `cannot list ${what}: ${(err as Error).message}`,
        fix: privileged ? `check that ${check}` : "sudo openme doctor",
      });
    }
  }
  findings.push(...portFindings);
  if (settings.interface !== null && (options.netns ?? null) === null) {
    const name = settings.interface;
    const exists = await Deno.stat(`/sys/class/net/${name}`).then(
      () => true,
      () => false,
    );
    findings.push(
      exists ? ok(`interface ${name} exists`) : {
        level: "fail",
        text:
          `server.interface is ${name}, but there is no such interface: the rules would match no packet`,
        fix: `ip link show (then set server.interface in ${settings.path})`,
      },
    );
  }
  findings.push(await checkClock(settings, options));
  return findings;
}

async function checkConfig(
  path: string,
  findings: Finding[],
): Promise<Settings> {
  let config: ServerConfig;
  try {
    config = await loadServerConfig(path);
  } catch (err) {
    const missing = (err as { cause?: unknown }).cause instanceof
      Deno.errors.NotFound;
    const flag = path === DEFAULT_SERVER_CONFIG_PATH ? "" : ` --config ${path}`;
    findings.push({
      level: "fail",
      text: (err as Error).message,
      fix: missing
        ? `openme init --server HOST${flag}`
        : `edit ${path} (the message names the line and key)`,
    });
    return {
      path,
      firewall: DEFAULT_FIREWALL,
      udpPort: DEFAULT_UDP_PORT,
      healthPort: DEFAULT_UDP_PORT,
      openKnockPort: true,
      knockRateLimit: DEFAULT_KNOCK_RATE_LIMIT,
      replayWindowMs: DEFAULT_REPLAY_WINDOW_MS,
      interface: null,
    };
  }
  findings.push(
    ok(
      `config ${path} is valid: ${config.clients.length} client(s), firewall ${config.firewall}, knock port udp ${config.udpPort}, health port tcp ${config.healthPort}`,
    ),
  );
  for (const warning of config.warnings) {
    findings.push({ level: "warn", text: warning, fix: `edit ${path}` });
  }
  for (const error of config.dropInErrors) {
    findings.push({
      level: "fail",
      text: error,
      fix: "fix or delete that file",
    });
  }
  return { ...config, path };
}

async function checkPrivilege(
  options: DoctorOptions,
  findings: Finding[],
): Promise<boolean> {
  const uid = options.uid !== undefined ? options.uid : processUid();
  if (uid === 0) {
    findings.push(
      ok("running as root: openme serve may change the firewall"),
    );
    return true;
  }
  const status = options.procStatus ??
    await Deno.readTextFile("/proc/self/status").catch(() => "");
  if (hasNetAdminCapability(status)) {
    findings.push(
      ok("running with CAP_NET_ADMIN: openme serve may change the firewall"),
    );
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

function establishedFix(tool: Tool): string {
  return tool === "nft"
    ? `nft insert rule ${IN} ct state established,related accept`
    : `${tool} -I INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`;
}

/** The commands that make a chain default-deny without cutting what must stay reachable. */
function denyFix(chain: InputChainFacts, tool: Tool): string {
  const nft = tool === "nft";
  const steps: string[] = [];
  if (!chain.acceptsEstablished) {
    steps.push(
      nft
        ? `nft add rule ${IN} ct state established,related accept`
        : establishedFix(tool),
    );
  }
  if (!chain.acceptsLoopback) {
    steps.push(
      nft
        ? `nft add rule ${IN} iifname lo accept`
        : `${tool} -I INPUT -i lo -j ACCEPT`,
    );
  }
  if (tool !== "iptables" && !chain.acceptsNeighborDiscovery) {
    steps.push(nft ? `nft add rule ${IN} ${ND_RULE}` : IP6TABLES_ND_FIX);
  }
  steps.push(
    nft ? `nft chain ${IN} '{ policy drop; }'` : `${tool} -P INPUT DROP`,
  );
  return steps.join(" && ");
}

/** Default deny, then `afterDeny`, established connections, ICMPv6 neighbour discovery and the knock port, for one input chain. */
function chainFindings(
  chain: InputChainFacts,
  tool: Tool,
  settings: Settings,
  extra: { afterDeny: Finding[]; udpPorts: PortSpan[] },
): Finding[] {
  const nft = tool === "nft";
  const where = chain.where;
  const family = tool === "iptables" ? "IPv4" : "IPv6";
  const findings: Finding[] = [];
  const deny = denyFix(chain, tool);
  if (chain.policy === null) {
    findings.push({
      level: "warn",
      text:
        `there is no ${where}: openme serve creates one with policy accept, so every port stays reachable without a knock (openme protects nothing)`,
      fix:
        `nft add table inet filter && nft add chain ${IN} '{ type filter hook input priority 0; policy accept; }' && ${deny}`,
    });
    return findings;
  }
  if (chain.defaultDeny) {
    const how = chain.policy === "drop"
      ? `policy ${nft ? "drop" : "DROP"}`
      : `a final ${nft ? "drop rule" : "DROP/REJECT rule"}`;
    findings.push(ok(`${where} drops by default (${how})`));
  } else {
    findings.push({
      level: "warn",
      text: (nft
        ? `${where} has policy ${chain.policy} and no final drop: every port is reachable without a knock, so openme protects nothing`
        : `${where} has policy ${chain.policy?.toUpperCase()}: every ${family} port is reachable without a knock, so openme protects nothing over ${family}`) +
        " (keep a console open, or allow ssh first)",
      fix: deny,
    });
  }
  findings.push(...extra.afterDeny);
  findings.push(
    chain.acceptsEstablished
      ? ok(`${where} accepts established,related connections`)
      : {
        level: "warn",
        text: nft
          ? `${where} has no ct state established,related accept: open connections (e.g. ssh) drop when their knock expires`
          : `${where} has no ESTABLISHED,RELATED accept: open ${family} connections drop when their knock expires`,
        fix: establishedFix(tool),
      },
  );
  // Only a default-deny chain can drop neighbour discovery.
  if (tool !== "iptables" && chain.defaultDeny) {
    findings.push(
      chain.acceptsNeighborDiscovery
        ? ok(`${where} accepts ICMPv6 neighbour discovery`)
        : {
          level: "warn",
          text:
            `${where} drops ICMPv6 neighbour discovery: IPv6 to this host does not work at all (neighbours cannot resolve its address)`,
          fix: nft ? `nft insert rule ${IN} ${ND_RULE}` : IP6TABLES_ND_FIX,
        },
    );
  }
  findings.push(...knockPortFindings(chain, tool, settings, extra.udpPorts));
  return findings;
}

/** No accept of the knock port ahead of its gate; with open_knock_port false, an accept of it behind a gate. */
function knockPortFindings(
  chain: InputChainFacts,
  tool: Tool,
  settings: Settings,
  openmeUdpPorts: PortSpan[],
): Finding[] {
  const port = settings.udpPort;
  const covers = (ports: PortSpan[]) =>
    ports.some((span) => span.from <= port && port <= span.to);
  const rules = chain.udpRules;
  const accept = rules.findIndex((r) =>
    r.verdict === "accept" && covers(r.ports)
  );
  const gate = rules.findIndex((r) =>
    (r.verdict === "jump" && settings.openKnockPort) ||
    (r.verdict === "drop" && covers(r.ports))
  );
  const where = chain.where;
  if (accept >= 0 && gate >= 0 && accept < gate) {
    const remove = rules[accept].remove;
    return [{
      level: "warn",
      text:
        `a rule of ${where} accepts udp ${port} ahead of the knock gate: junk and floods reach openme`,
      fix: tool === "nft"
        ? `nft delete rule ${IN} ${remove}`
        : `${tool} -D INPUT ${remove}`,
    }];
  }
  if (settings.openKnockPort || !chain.defaultDeny) return [];
  const paste = gatePaste(tool, settings);
  if (accept < 0 && !covers(openmeUdpPorts)) {
    return [{
      level: "fail",
      text:
        `open_knock_port is false and no rule of ${where} accepts udp ${port}: knocks never reach openme`,
      fix: `${paste} (or set open_knock_port: true in ${settings.path})`,
    }];
  }
  return [
    gate >= 0
      ? ok(
        `open_knock_port is false and ${where} accepts udp ${port} behind a knock gate`,
      )
      : {
        level: "warn",
        text:
          `open_knock_port is false and ${where} accepts udp ${port} without a knock gate: every datagram wakes openme`,
        fix: paste,
      },
  ];
}

/** The commands that put the knock gate and an accept of the knock port at the top of an input chain. */
function gatePaste(tool: Tool, settings: Settings): string {
  const options = {
    knockPort: settings.udpPort,
    openKnockPort: true,
    dropPorts: [],
    interface: settings.interface,
    knockRateLimit: settings.knockRateLimit,
  };
  const knock = { checks: GATE_CHECKS, tagged: false };
  if (tool === "nft") {
    const { sets, rules } = buildNftKnockRules(options, knock);
    // Each insert goes to the top: the last rule first.
    return [
      ...sets.map((set) => `nft 'add ${set}'`),
      ...rules.reverse().map((rule) => `nft 'insert rule ${IN} ${rule}'`),
    ].join(" && ");
  }
  const family = tool === "iptables" ? 4 : 6;
  return buildIptablesKnockRules(options, { ...knock, family }).map((spec, i) =>
    `${tool} -I INPUT ${i + 1} ${spec.map(quoteIptablesArg).join(" ")}`
  ).join(" && ");
}

/** What openme's gate lacks and how to get it, or what it dropped next to openme's own drops. */
async function ownGateFindings(
  gates: [Tool, GateFacts][],
  options: DoctorOptions,
): Promise<Finding[]> {
  const state = await readStateFile(options.stateFile ?? DEFAULT_STATE_FILE)
    .catch(() => null);
  const own = Object.values(state?.drops ?? {}).reduce((a, b) => a + b, 0);
  return gates.flatMap(([tool, gate]) => {
    const missing = GATE_CHECKS.filter((check) => !gate.checks.includes(check));
    if (missing.length === 0) {
      const { size, version, rate } = gate.counters;
      return [ok(
        `openme's knock gate (${tool}) dropped ${size} size, ${version} version, ${rate} rate in the kernel` +
          (state === null ? "" : `; openme itself dropped ${own}`),
      )];
    }
    return missing.map((check): Finding => {
      const { need, fix } = gateNeeds(
        tool === "nft" ? "nft" : "iptables",
        check,
      );
      return {
        level: "warn",
        text:
          `openme's knock gate (${tool}) has no ${check} check: ${tool} lacks ${need}`,
        fix: `${fix}, then systemctl restart openme`,
      };
    });
  });
}

/** The jump from the input chain to chain openme: present, reachable, or how to add it. */
function jumpFindings(facts: NftRulesetFacts, serveRuns: boolean): Finding[] {
  const input = facts.input;
  const addJump = input.catchAllHandle === null
    ? `nft add rule ${IN} jump openme`
    : `nft insert rule ${IN} position ${input.catchAllHandle} jump openme`;
  const makeChain = facts.openmeChainExists
    ? ""
    : "nft add chain inet filter openme && ";
  if (input.jumpHandle !== null && input.jumpUnreachable) {
    return [{
      level: "fail",
      text:
        `the jump to chain openme in ${input.where} comes after a rule that drops everything: no knock can open a port`,
      fix:
        `nft delete rule ${IN} handle ${input.jumpHandle} && nft insert rule ${IN} position ${input.catchAllHandle} jump openme`,
    }];
  }
  if (input.jumpHandle !== null) {
    return [ok(`${input.where} jumps to chain openme`)];
  }
  if (serveRuns) {
    return [{
      level: "fail",
      text:
        `openme serve runs but ${input.where} has no jump to chain openme (was the ruleset reloaded?): knocks cannot open ports`,
      fix:
        `${makeChain}${addJump} (or restart openme: systemctl restart openme)`,
    }];
  }
  return [{
    level: "warn",
    text:
      `${input.where} has no jump to chain openme yet: openme serve adds it when it starts; add it to /etc/nftables.conf too, so a firewall reload does not drop it`,
    fix: `${makeChain}${addJump}`,
  }];
}

function nftFindings(
  facts: NftRulesetFacts,
  settings: Settings,
  serveRuns: boolean,
): Finding[] {
  const findings = chainFindings(facts.input, "nft", settings, {
    afterDeny: jumpFindings(facts, serveRuns),
    udpPorts: facts.openmeChainUdpPorts,
  });
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
  return findings;
}

function describeOwner(owner: SocketOwner): string {
  const command = owner.argv.join(" ");
  const shown = command.length > 80 ? `${command.slice(0, 77)}...` : command;
  return `${shown || "a process"} (pid ${owner.pid})`;
}

/** Checks that the knock and health ports are free or held by openme serve; returns whether serve holds the knock port. */
async function checkPorts(
  settings: Settings,
  options: DoctorOptions,
  findings: Finding[],
): Promise<boolean> {
  const ports = [
    { proto: "udp", port: settings.udpPort, role: "knock port" },
    { proto: "tcp", port: settings.healthPort, role: "health port" },
  ] as const;
  let serveRuns = false;
  for (const { proto, port, role } of ports) {
    const label = `${role} ${proto} ${port}`;
    const inodes = await listSocketInodes(proto, port, options)
      .catch((err: Error) => err);
    if (inodes instanceof Error) {
      findings.push({
        level: "warn",
        text: `cannot tell which ports are in use: ${inodes.message}`,
        fix:
          `ss -ulpn sport = :${settings.udpPort}; ss -tlpn sport = :${settings.healthPort}`,
      });
      return false;
    }
    const owners = [...(await findSocketOwners(inodes)).values()];
    const openme = owners.find((o) => isOpenmeServe(o.argv));
    const other = owners.find((o) => !isOpenmeServe(o.argv));
    if (inodes.length === 0) {
      findings.push(ok(`${label} is free for openme serve`));
    } else if (other !== undefined) {
      const key = proto === "udp" ? "udp_port" : "health_port";
      findings.push({
        level: "fail",
        text: `${label} is in use by ${
          describeOwner(other)
        }: openme serve cannot listen there`,
        fix:
          `stop that program (kill ${other.pid}), or choose another port in ${settings.path} (server.${key}; clients need the new knock port in their profiles)`,
      });
    } else if (openme !== undefined) {
      serveRuns ||= proto === "udp";
      findings.push(
        ok(`${label} is held by openme serve (pid ${openme.pid})`),
      );
    } else {
      findings.push({
        level: "warn",
        text:
          `${label} is in use by a process doctor cannot identify: openme serve cannot listen there unless it is openme itself`,
        fix: `sudo ss -${proto[0]}lpn 'sport = :${port}'`,
      });
    }
  }
  return serveRuns;
}

async function checkClock(
  settings: Settings,
  options: DoctorOptions,
): Promise<Finding> {
  const clock = await inspectClockSync(options);
  const window = formatDuration(settings.replayWindowMs);
  const stale =
    `knocks from clients whose clock differs by more than replay_window (${window}) are dropped as stale`;
  if (clock.synchronized === true) {
    return ok(`clock is NTP-synchronised (${clock.source})`);
  }
  if (clock.synchronized === false) {
    return {
      level: "warn",
      text: `clock is not NTP-synchronised: ${stale}`,
      fix: "timedatectl set-ntp true",
    };
  }
  return {
    level: "warn",
    text:
      `cannot tell whether the clock is synchronised (${clock.source}): ${stale}`,
    fix:
      "make sure an NTP client runs: timedatectl set-ntp true, or install chrony",
  };
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
  const blocked = fails > 0
    ? ": openme will not work until the ✗ lines are fixed"
    : "";
  io.out(
    `${fails} problem(s), ${count("warn")} warning(s), ${
      count("ok")
    } fine${blocked}`,
  );
  return fails > 0 ? 1 : 0;
}
