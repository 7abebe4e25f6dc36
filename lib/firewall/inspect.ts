/**
 * Read-only inspection of the host for `openme doctor`: firewall tool
 * versions, the base ruleset (nft JSON listing or `iptables -S INPUT`),
 * sockets bound to the knock and health ports and who holds them, the
 * process's capabilities and clock synchronisation. Nothing here changes
 * anything. Like the backends, every function takes a `netns` option that
 * runs the tools inside a network namespace (`ip netns exec`), so tests can
 * inspect a ruleset they built in a namespace of their own.
 *
 * @module
 */

import { validateNetnsName } from "./backend.ts";
import { runTool, type ToolResult } from "./exec.ts";
import { IPTABLES_CHAIN, splitIptablesLine } from "./iptables.ts";
import {
  asRecord,
  NFT_CHAIN,
  NFT_FAMILY,
  NFT_INPUT_CHAIN,
  NFT_TABLE,
} from "./nft.ts";

/** Time limit for one inspection tool run. */
export const INSPECT_TIMEOUT_MS = 5000;

/** CAP_NET_ADMIN's bit in the capability sets of /proc/PID/status. */
export const CAP_NET_ADMIN_BIT = 12;

/** Most processes scanned when looking for a socket's owner. */
export const MAX_SCANNED_PROCESSES = 65_536;

/** Most file descriptors scanned per process when looking for a socket's owner. */
export const MAX_SCANNED_FDS_PER_PROCESS = 65_536;

/** ICMPv6 types neighbour discovery needs: neighbour solicitation (135) and advertisement (136). */
export const ND_ICMPV6_TYPES: readonly number[] = [135, 136];

/** Options shared by the inspection functions. */
export interface InspectOptions {
  /** Run the tools in this network namespace (`ip netns exec NETNS ...`); default the current one. */
  netns?: string | null;
  /** Extra environment for the tools (tests put fake tools first in PATH). */
  env?: Record<string, string>;
  /** Time limit per tool run (default 5000 ms). */
  timeoutMs?: number;
}

/** Result of an inspection that can fail, e.g. for lack of privilege or a missing tool. */
export type Inspected<T> = { ok: true; value: T } | {
  ok: false;
  error: string;
};

async function inspectTool(
  tool: string,
  args: string[],
  options: InspectOptions,
): Promise<ToolResult> {
  const netns = options.netns ?? null;
  const command = netns === null ? tool : "ip";
  const fullArgs = netns === null
    ? args
    : ["netns", "exec", validateNetnsName(netns, tool), tool, ...args];
  return await runTool(command, fullArgs, {
    env: options.env,
    timeoutMs: options.timeoutMs ?? INSPECT_TIMEOUT_MS,
  });
}

function failureText(result: ToolResult): string {
  if (result.error !== null) return result.error;
  if (result.timedOut) {
    return `${result.command} timed out after ${result.timeoutMs} ms`;
  }
  const stderr = result.stderr.trim().split("\n").filter((l) => l !== "")
    .slice(0, 2).join("; ");
  return `${result.command} ${result.args.join(" ")} exited ${result.code}${
    stderr === "" ? "" : `: ${stderr}`
  }`;
}

// ---------------------------------------------------------------- versions

/** A firewall tool and its version. */
export interface ToolVersion {
  /** The tool, e.g. "nft". */
  tool: string;
  /** The first line of `TOOL --version`, e.g. "nftables v1.0.6 (Lester Gooch #5)". */
  version: string;
}

/** Runs `TOOL --version`; not ok when the tool is missing or fails. */
export async function toolVersion(
  tool: string,
  options: InspectOptions = {},
): Promise<Inspected<ToolVersion>> {
  const result = await runTool(tool, ["--version"], {
    env: options.env,
    timeoutMs: options.timeoutMs ?? INSPECT_TIMEOUT_MS,
  });
  if (!result.success) return { ok: false, error: failureText(result) };
  const line = (result.stdout.trim() || result.stderr.trim()).split("\n")[0];
  return { ok: true, value: { tool, version: line } };
}

// ----------------------------------------------------------- rule analysis

/** An inclusive port span a rule accepts. */
export interface PortSpan {
  /** First port. */
  from: number;
  /** Last port (same as `from` for one port). */
  to: number;
}

/** What doctor needs to know about one input chain (nft base chain, or iptables/ip6tables INPUT). */
export interface InputChainFacts {
  /** Human name, e.g. `table inet filter chain input` or `ip6tables INPUT`. */
  where: string;
  /** Whether the chain exists (and, for nft, hooks input). */
  exists: boolean;
  /** Chain policy ("accept", "drop"); null when the chain does not exist. */
  policy: string | null;
  /** A rule with no match drops or rejects everything that reaches it. */
  catchAllDrop: boolean;
  /** nft handle of the first such rule, or null. */
  catchAllHandle: number | null;
  /** Policy drop, or a catch-all drop/reject rule: what no rule accepts is dropped. */
  defaultDeny: boolean;
  /** A rule jumps (or goes) to the `openme` chain (nft only). */
  jumpsToOpenme: boolean;
  /** That jump comes after a catch-all drop, so nothing reaches it (nft only). */
  jumpUnreachable: boolean;
  /** nft handle of the first jump to `openme`, or null. */
  jumpHandle: number | null;
  /** A rule accepts everything arriving on the loopback interface. */
  acceptsLoopback: boolean;
  /** A rule accepts `ct state established` (or `--ctstate ESTABLISHED`). */
  acceptsEstablished: boolean;
  /** ICMPv6 types accepted (all ICMPv6 accepted counts as both neighbour discovery types). */
  acceptedIcmpv6Types: number[];
  /** Rules accept every ICMPv6 packet. */
  acceptsAllIcmpv6: boolean;
  /** UDP destination ports some rule accepts. */
  acceptedUdpPorts: PortSpan[];
}

/** Whether a chain accepts ICMPv6 neighbour solicitations and advertisements. */
export function acceptsNeighborDiscovery(chain: InputChainFacts): boolean {
  if (chain.acceptsAllIcmpv6) return true;
  return ND_ICMPV6_TYPES.every((t) => chain.acceptedIcmpv6Types.includes(t));
}

/** Whether a chain (or list of spans) accepts a UDP port. */
export function acceptsUdpPort(spans: PortSpan[], port: number): boolean {
  return spans.some((span) => span.from <= port && port <= span.to);
}

function emptyChain(where: string): InputChainFacts {
  return {
    where,
    exists: false,
    policy: null,
    catchAllDrop: false,
    catchAllHandle: null,
    defaultDeny: false,
    jumpsToOpenme: false,
    jumpUnreachable: false,
    jumpHandle: null,
    acceptsLoopback: false,
    acceptsEstablished: false,
    acceptedIcmpv6Types: [],
    acceptsAllIcmpv6: false,
    acceptedUdpPorts: [],
  };
}

const ICMPV6_TYPE_NAMES: Record<string, number> = {
  "nd-router-solicit": 133,
  "nd-router-advert": 134,
  "nd-neighbor-solicit": 135,
  "nd-neighbor-advert": 136,
  "router-solicitation": 133,
  "router-advertisement": 134,
  "neighbour-solicitation": 135,
  "neighbor-solicitation": 135,
  "neighbour-advertisement": 136,
  "neighbor-advertisement": 136,
};

function icmpv6TypeNumber(value: string | number): number | null {
  if (typeof value === "number") return value;
  const named = ICMPV6_TYPE_NAMES[value.toLowerCase()];
  if (named !== undefined) return named;
  const numeric = /^(\d{1,3})(\/\d+)?$/.exec(value);
  return numeric === null ? null : Number(numeric[1]);
}

function isIcmpv6Protocol(value: string | number): boolean {
  return value === 58 || value === "58" || value === "ipv6-icmp" ||
    value === "icmpv6";
}

// ------------------------------------------------------------------- nft

/** What `nft -j list ruleset` shows that doctor checks. */
export interface NftRulesetFacts {
  /** `table inet filter chain input`, where openme's jump lives. */
  input: InputChainFacts;
  /** Whether `table inet filter` has the `openme` chain. */
  openmeChainExists: boolean;
  /** UDP ports the `openme` chain accepts (the knock port rule, when serve runs). */
  openmeChainUdpPorts: PortSpan[];
  /** Other base chains hooked at input (their drops apply after openme's accept too). */
  otherInputChains: InputChainFacts[];
}

type NftValue = string | number | PortSpan;

interface NftMatch {
  key: string;
  op: string;
  values: NftValue[];
}

interface NftRule {
  handle: number | null;
  chain: string;
  family: string;
  table: string;
  matches: NftMatch[];
  verdict: string | null;
  target: string | null;
}

/** `{ct:{key:"state"}}` → "ct.state", `{payload:{protocol:"udp",field:"dport"}}` → "udp.dport". */
function nftKeyOf(left: unknown): string {
  const record = asRecord(left);
  if (record === null) return "?";
  const ct = asRecord(record.ct);
  if (ct !== null) return `ct.${String(ct.key)}`;
  const meta = asRecord(record.meta);
  if (meta !== null) return `meta.${String(meta.key)}`;
  const payload = asRecord(record.payload);
  if (payload !== null) {
    return `${String(payload.protocol)}.${String(payload.field)}`;
  }
  return Object.keys(record)[0] ?? "?";
}

function nftValuesOf(right: unknown): NftValue[] {
  if (typeof right === "string" || typeof right === "number") return [right];
  if (Array.isArray(right)) return right.flatMap((item) => nftValuesOf(item));
  const record = asRecord(right);
  if (record === null) return [];
  if (Array.isArray(record.set)) {
    return record.set.flatMap((item) => nftValuesOf(item));
  }
  if (Array.isArray(record.range) && record.range.length === 2) {
    const [from, to] = record.range;
    if (typeof from === "number" && typeof to === "number") {
      return [{ from, to }];
    }
  }
  return [];
}

function parseNftRule(value: Record<string, unknown>): NftRule {
  const rule: NftRule = {
    handle: typeof value.handle === "number" ? value.handle : null,
    chain: String(value.chain),
    family: String(value.family),
    table: String(value.table),
    matches: [],
    verdict: null,
    target: null,
  };
  const expr = Array.isArray(value.expr) ? value.expr : [];
  for (const statement of expr) {
    const record = asRecord(statement);
    if (record === null) continue;
    const match = asRecord(record.match);
    if (match !== null) {
      rule.matches.push({
        key: nftKeyOf(match.left),
        op: String(match.op),
        values: nftValuesOf(match.right),
      });
      continue;
    }
    for (const verdict of ["accept", "drop", "reject", "jump", "goto"]) {
      if (verdict in record) {
        rule.verdict = verdict;
        const target = asRecord(record[verdict])?.target;
        if (typeof target === "string") rule.target = target;
      }
    }
  }
  return rule;
}

function positive(match: NftMatch): boolean {
  return match.op === "==" || match.op === "in";
}

function udpPortsOf(rule: NftRule): PortSpan[] {
  if (rule.verdict !== "accept") return [];
  const spans: PortSpan[] = [];
  for (const match of rule.matches) {
    if (match.key !== "udp.dport" || !positive(match)) continue;
    for (const value of match.values) {
      if (typeof value === "number") spans.push({ from: value, to: value });
      else if (typeof value === "object") spans.push(value);
    }
  }
  return spans;
}

function applyNftRules(chain: InputChainFacts, rules: NftRule[]): void {
  for (const rule of rules) {
    const catchAll = rule.matches.length === 0 &&
      (rule.verdict === "drop" || rule.verdict === "reject");
    if (catchAll && !chain.catchAllDrop) {
      chain.catchAllDrop = true;
      chain.catchAllHandle = rule.handle;
    }
    if (
      (rule.verdict === "jump" || rule.verdict === "goto") &&
      rule.target === NFT_CHAIN && !chain.jumpsToOpenme
    ) {
      chain.jumpsToOpenme = true;
      chain.jumpHandle = rule.handle;
      chain.jumpUnreachable = chain.catchAllDrop;
    }
    if (rule.verdict !== "accept") continue;
    if (
      rule.matches.length === 1 && rule.matches[0].key === "meta.iifname" &&
      positive(rule.matches[0]) && rule.matches[0].values.includes("lo")
    ) {
      chain.acceptsLoopback = true;
    }
    for (const match of rule.matches) {
      if (!positive(match)) continue;
      if (match.key === "ct.state" && match.values.includes("established")) {
        chain.acceptsEstablished = true;
      }
      if (match.key === "icmpv6.type") {
        for (const value of match.values) {
          if (typeof value === "object") continue;
          const type = icmpv6TypeNumber(value);
          if (type !== null && !chain.acceptedIcmpv6Types.includes(type)) {
            chain.acceptedIcmpv6Types.push(type);
          }
        }
      }
    }
    const protoMatch = rule.matches.find((m) =>
      (m.key === "meta.l4proto" || m.key === "ip6.nexthdr") && positive(m) &&
      m.values.some((v) => typeof v !== "object" && isIcmpv6Protocol(v))
    );
    if (
      protoMatch !== undefined &&
      !rule.matches.some((m) => m.key === "icmpv6.type")
    ) {
      chain.acceptsAllIcmpv6 = true;
    }
    chain.acceptedUdpPorts.push(...udpPortsOf(rule));
  }
  chain.defaultDeny = chain.policy === "drop" || chain.catchAllDrop;
}

/** Extracts the facts doctor checks from `nft -j list ruleset` output; throws Error when it is not nft JSON. */
export function parseNftRuleset(json: string): NftRulesetFacts {
  const data = asRecord(JSON.parse(json));
  const items = data?.nftables;
  if (!Array.isArray(items)) {
    throw new Error('nft JSON listing without an "nftables" array');
  }
  const chains = new Map<string, InputChainFacts>();
  const rulesByChain = new Map<string, NftRule[]>();
  let openmeChainExists = false;
  const openmeChainUdpPorts: PortSpan[] = [];
  const id = (family: string, table: string, chain: string): string =>
    `${family} ${table} ${chain}`;
  for (const item of items) {
    const record = asRecord(item);
    if (record === null) continue;
    const chain = asRecord(record.chain);
    if (chain !== null) {
      const family = String(chain.family);
      const table = String(chain.table);
      const name = String(chain.name);
      if (family === NFT_FAMILY && table === NFT_TABLE && name === NFT_CHAIN) {
        openmeChainExists = true;
      }
      if (chain.hook !== "input" || !["inet", "ip", "ip6"].includes(family)) {
        continue;
      }
      const facts = emptyChain(`table ${family} ${table} chain ${name}`);
      facts.exists = true;
      facts.policy = typeof chain.policy === "string" ? chain.policy : "accept";
      chains.set(id(family, table, name), facts);
      continue;
    }
    const rule = asRecord(record.rule);
    if (rule !== null) {
      const parsed = parseNftRule(rule);
      const key = id(parsed.family, parsed.table, parsed.chain);
      const list = rulesByChain.get(key) ?? [];
      list.push(parsed);
      rulesByChain.set(key, list);
      if (
        parsed.family === NFT_FAMILY && parsed.table === NFT_TABLE &&
        parsed.chain === NFT_CHAIN
      ) {
        openmeChainUdpPorts.push(...udpPortsOf(parsed));
      }
    }
  }
  const inputId = id(NFT_FAMILY, NFT_TABLE, NFT_INPUT_CHAIN);
  let input = emptyChain(
    `table ${NFT_FAMILY} ${NFT_TABLE} chain ${NFT_INPUT_CHAIN}`,
  );
  const otherInputChains: InputChainFacts[] = [];
  for (const [key, facts] of chains) {
    applyNftRules(facts, rulesByChain.get(key) ?? []);
    if (key === inputId) input = facts;
    else otherInputChains.push(facts);
  }
  return { input, openmeChainExists, openmeChainUdpPorts, otherInputChains };
}

/** Lists the nft ruleset (`nft -j list ruleset`) and extracts what doctor checks. */
export async function inspectNftRuleset(
  options: InspectOptions = {},
): Promise<Inspected<NftRulesetFacts>> {
  const result = await inspectTool("nft", ["-j", "list", "ruleset"], options);
  if (!result.success) return { ok: false, error: failureText(result) };
  if (result.stdout.trim() === "") {
    return { ok: true, value: parseNftRuleset('{"nftables":[]}') };
  }
  try {
    return { ok: true, value: parseNftRuleset(result.stdout) };
  } catch (err) {
    return {
      ok: false,
      error: `cannot read the output of nft -j list ruleset: ${
        (err as Error).message
      }`,
    };
  }
}

// -------------------------------------------------------------- iptables

/** What `iptables -S INPUT` and `ip6tables -S INPUT` show that doctor checks. */
export interface IptablesRulesetFacts {
  /** The IPv4 INPUT chain. */
  v4: InputChainFacts;
  /** The IPv6 INPUT chain. */
  v6: InputChainFacts;
}

function optionValue(tokens: string[], names: string[]): string | null {
  for (let i = 0; i < tokens.length - 1; i++) {
    if (names.includes(tokens[i]) && tokens[i - 1] !== "!") {
      return tokens[i + 1];
    }
  }
  return null;
}

function parseUdpPortList(text: string): PortSpan[] {
  const spans: PortSpan[] = [];
  for (const part of text.split(",")) {
    const m = /^(\d+)(?::(\d+))?$/.exec(part.trim());
    if (m === null) continue;
    const from = Number(m[1]);
    spans.push({ from, to: m[2] === undefined ? from : Number(m[2]) });
  }
  return spans;
}

/** Extracts the facts doctor checks from `iptables -S INPUT` (or ip6tables) output. */
export function parseIptablesInput(
  output: string,
  where: string,
): InputChainFacts {
  const chain = emptyChain(where);
  for (const rawLine of output.split("\n")) {
    const tokens = splitIptablesLine(rawLine.trim());
    if (tokens.length === 0) continue;
    if (tokens[0] === "-P" && tokens[1] === IPTABLES_CHAIN) {
      chain.exists = true;
      chain.policy = (tokens[2] ?? "ACCEPT").toLowerCase();
      continue;
    }
    if (tokens[0] !== "-A" || tokens[1] !== IPTABLES_CHAIN) continue;
    chain.exists = true;
    const spec = tokens.slice(2);
    const target = optionValue(spec, ["-j", "--jump"]);
    const matchOptions = spec.filter((t, i) =>
      t.startsWith("-") && t !== "-j" && t !== "--jump" &&
      t !== "--reject-with" && spec[i - 1] !== "-j" &&
      !(t === "-m" && spec[i + 1] === "comment") && t !== "--comment"
    );
    if (
      (target === "DROP" || target === "REJECT") && matchOptions.length === 0
    ) {
      chain.catchAllDrop = true;
      continue;
    }
    if (target !== "ACCEPT") continue;
    if (
      optionValue(spec, ["-i", "--in-interface"]) === "lo" &&
      matchOptions.length === 1
    ) {
      chain.acceptsLoopback = true;
    }
    const state = optionValue(spec, ["--ctstate", "--state"]);
    if (state !== null && state.split(",").includes("ESTABLISHED")) {
      chain.acceptsEstablished = true;
    }
    const proto = optionValue(spec, ["-p", "--protocol"]);
    if (proto !== null && isIcmpv6Protocol(proto.toLowerCase())) {
      const type = optionValue(spec, ["--icmpv6-type"]);
      if (type === null) {
        chain.acceptsAllIcmpv6 = true;
      } else {
        const number = icmpv6TypeNumber(type);
        if (number !== null && !chain.acceptedIcmpv6Types.includes(number)) {
          chain.acceptedIcmpv6Types.push(number);
        }
      }
    }
    if (proto === "udp" || proto === "17") {
      const ports = optionValue(spec, [
        "--dport",
        "--destination-port",
        "--dports",
        "--destination-ports",
      ]);
      if (ports !== null) {
        chain.acceptedUdpPorts.push(...parseUdpPortList(ports));
      }
    }
  }
  chain.defaultDeny = chain.policy === "drop" || chain.catchAllDrop;
  return chain;
}

/** Lists INPUT with `iptables -w -S INPUT` and `ip6tables -w -S INPUT` and extracts what doctor checks. */
export async function inspectIptablesRuleset(
  options: InspectOptions = {},
): Promise<Inspected<IptablesRulesetFacts>> {
  const v4 = await inspectTool(
    "iptables",
    ["-w", "-S", IPTABLES_CHAIN],
    options,
  );
  if (!v4.success) return { ok: false, error: failureText(v4) };
  const v6 = await inspectTool(
    "ip6tables",
    ["-w", "-S", IPTABLES_CHAIN],
    options,
  );
  if (!v6.success) return { ok: false, error: failureText(v6) };
  return {
    ok: true,
    value: {
      v4: parseIptablesInput(v4.stdout, `iptables ${IPTABLES_CHAIN}`),
      v6: parseIptablesInput(v6.stdout, `ip6tables ${IPTABLES_CHAIN}`),
    },
  };
}

// --------------------------------------------------------------- sockets

/** A socket bound to a local port, from /proc/net/{udp,udp6,tcp,tcp6}. */
export interface BoundSocket {
  /** Transport. */
  proto: "udp" | "tcp";
  /** 4 or 6. */
  family: 4 | 6;
  /** Local port. */
  port: number;
  /** Socket inode, to find the process holding it. */
  inode: number;
}

/** TCP state LISTEN in /proc/net/tcp. */
const TCP_LISTEN_STATE = "0A";

/** Parses /proc/net/udp, udp6, tcp or tcp6 text: UDP sockets bound to a port, TCP sockets listening. */
export function parseProcNetSockets(
  text: string,
  proto: "udp" | "tcp",
  family: 4 | 6,
): BoundSocket[] {
  const sockets: BoundSocket[] = [];
  const lines = text.split("\n").slice(1);
  for (const line of lines) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10) continue;
    const local = fields[1];
    const state = fields[3];
    const colon = local.lastIndexOf(":");
    if (colon < 0) continue;
    const port = parseInt(local.slice(colon + 1), 16);
    const inode = Number(fields[9]);
    if (!Number.isInteger(port) || port === 0) continue;
    if (proto === "tcp" && state !== TCP_LISTEN_STATE) continue;
    sockets.push({ proto, family, port, inode });
  }
  return sockets;
}

const PROC_NET_FILES: { file: string; proto: "udp" | "tcp"; family: 4 | 6 }[] =
  [
    { file: "udp", proto: "udp", family: 4 },
    { file: "udp6", proto: "udp", family: 6 },
    { file: "tcp", proto: "tcp", family: 4 },
    { file: "tcp6", proto: "tcp", family: 6 },
  ];

/** Reads the bound UDP and listening TCP sockets of the (or a namespace's) network stack. */
export async function listBoundSockets(
  options: InspectOptions = {},
): Promise<Inspected<BoundSocket[]>> {
  const sockets: BoundSocket[] = [];
  for (const entry of PROC_NET_FILES) {
    const path = `/proc/net/${entry.file}`;
    let text: string;
    if ((options.netns ?? null) === null) {
      try {
        text = await Deno.readTextFile(path);
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) continue; // no IPv6
        return { ok: false, error: `cannot read ${path}: ${err}` };
      }
    } else {
      const result = await inspectTool("cat", [path], options);
      if (!result.success) {
        if (/No such file/.test(result.stderr)) continue;
        return { ok: false, error: failureText(result) };
      }
      text = result.stdout;
    }
    sockets.push(...parseProcNetSockets(text, entry.proto, entry.family));
  }
  return { ok: true, value: sockets };
}

/** A process holding a socket. */
export interface SocketOwner {
  /** Process id. */
  pid: number;
  /** Its command line, split into arguments. */
  argv: string[];
}

/** Finds the processes holding the given socket inodes by scanning /proc/PID/fd (bounded); inodes not found are absent. */
export async function findSocketOwners(
  inodes: number[],
): Promise<Map<number, SocketOwner>> {
  const owners = new Map<number, SocketOwner>();
  const wanted = new Set(inodes.map((inode) => `socket:[${inode}]`));
  if (wanted.size === 0) return owners;
  let scanned = 0;
  try {
    for await (const entry of Deno.readDir("/proc")) {
      if (!/^\d+$/.test(entry.name)) continue;
      if (++scanned > MAX_SCANNED_PROCESSES) break;
      const pid = Number(entry.name);
      let fds = 0;
      try {
        for await (const fd of Deno.readDir(`/proc/${pid}/fd`)) {
          if (++fds > MAX_SCANNED_FDS_PER_PROCESS) break;
          let link: string;
          try {
            link = await Deno.readLink(`/proc/${pid}/fd/${fd.name}`);
          } catch {
            continue;
          }
          if (!wanted.has(link)) continue;
          const inode = Number(link.slice(8, -1));
          if (!owners.has(inode)) {
            owners.set(inode, { pid, argv: await processArgv(pid) });
          }
        }
      } catch {
        // The process exited or we may not look at it.
      }
      if (owners.size === wanted.size) break;
    }
  } catch {
    // No /proc: owners stay unknown.
  }
  return owners;
}

async function processArgv(pid: number): Promise<string[]> {
  try {
    const raw = await Deno.readTextFile(`/proc/${pid}/cmdline`);
    return raw.split("\0").filter((arg) => arg !== "");
  } catch {
    return [];
  }
}

/** Whether a command line is `openme serve` (the binary, or main.ts run by deno). */
export function isOpenmeServe(argv: string[]): boolean {
  if (!argv.includes("serve")) return false;
  return argv.some((arg) => {
    const base = arg.split("/").pop() ?? "";
    return base.startsWith("openme") || arg.includes("/openme/") ||
      base === "main.ts";
  });
}

// ------------------------------------------------------ privilege, clock

/** Whether a /proc/PID/status text shows CAP_NET_ADMIN in the effective set. */
export function hasNetAdminCapability(statusText: string): boolean {
  const m = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(statusText);
  if (m === null) return false;
  const effective = BigInt(`0x${m[1]}`);
  return ((effective >> BigInt(CAP_NET_ADMIN_BIT)) & 1n) === 1n;
}

/** Whether the system clock is synchronised: true, false, or null when it cannot be told. */
export interface ClockSync {
  /** The answer. */
  synchronized: boolean | null;
  /** How it was found out, e.g. "timedatectl" or why it could not be. */
  source: string;
}

/** Path systemd-timesyncd touches once the clock is synchronised. */
export const TIMESYNC_FLAG_FILE = "/run/systemd/timesync/synchronized";

/** Finds out whether the clock is NTP-synchronised: systemd-timesyncd's flag file, else `timedatectl show`. */
export async function inspectClockSync(
  options: InspectOptions = {},
): Promise<ClockSync> {
  try {
    await Deno.stat(TIMESYNC_FLAG_FILE);
    return { synchronized: true, source: TIMESYNC_FLAG_FILE };
  } catch {
    // Not systemd-timesyncd, or not synchronised yet: ask timedatectl.
  }
  const result = await runTool(
    "timedatectl",
    ["show", "-p", "NTPSynchronized", "--value"],
    { env: options.env, timeoutMs: options.timeoutMs ?? INSPECT_TIMEOUT_MS },
  );
  if (result.success) {
    const value = result.stdout.trim();
    if (value === "yes") return { synchronized: true, source: "timedatectl" };
    if (value === "no") return { synchronized: false, source: "timedatectl" };
  }
  return {
    synchronized: null,
    source: result.error ?? (result.stderr.trim().split("\n")[0] ||
      "timedatectl gave no answer"),
  };
}
