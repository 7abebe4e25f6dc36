/**
 * Reads the live firewall and host without changing anything: the one reader
 * of nft JSON and `iptables -S` output, and the facts doctor checks.
 *
 * @module
 */

import {
  type FirewallBackendOptions,
  FirewallError,
  GATE_RULE_COMMENT,
  type GateCounters,
  IPTABLES_CHAIN,
  NFT_CHAIN,
  NFT_INPUT_CHAIN,
  NFT_TABLE,
} from "./backend.ts";
import { describeToolFailure, runTool, type ToolProgram } from "./exec.ts";
import { GATE_CHECKS, type GateCheck, KNOCK_UDP_LENGTH } from "./gate.ts";

/** An inclusive port span a rule accepts. */
export interface PortSpan {
  /** First port. */
  from: number;
  /** Last port (same as `from` for one port). */
  to: number;
}

/** One match of an nft rule, e.g. key "udp.dport", op "==", values [54154]. */
export interface NftMatch {
  /** What is matched: "udp.dport", "ct.state", "meta.iifname", ... */
  key: string;
  /** The operator: "==", "!=", "in", ... */
  op: string;
  /** Values compared with; sets are flattened, ranges become spans. */
  values: (string | number | PortSpan)[];
}

/** A chain of an nft JSON listing. */
export interface NftChain {
  /** Table family and name, e.g. "inet filter". */
  table: string;
  /** Chain name. */
  name: string;
  /** Chain handle. */
  handle: string;
  /** Hook of a base chain ("input"), or null for a regular chain. */
  hook: string | null;
  /** Policy of a base chain ("accept" when not given), or null for a regular chain. */
  policy: string | null;
}

/** A rule of an nft JSON listing. */
export interface NftRule {
  /** Table family and name, e.g. "inet filter". */
  table: string;
  /** Chain the rule is in. */
  chain: string;
  /** Rule handle. */
  handle: string;
  /** Rule comment, or null. */
  comment: string | null;
  /** Its matches, in order. */
  matches: NftMatch[];
  /** Its verdict: "accept", "drop", "reject", "jump", "goto", or null. */
  verdict: string | null;
  /** Chain a jump or goto goes to, or null. */
  target: string | null;
  /** Packets its counter counted, or null without a counter. */
  packets: number | null;
}

/** What `nft -j list table ...` or `nft -j list ruleset` printed. */
export interface NftListing {
  /** Handle of table inet filter, or null when it is not listed. */
  tableHandle: string | null;
  /** Every chain listed. */
  chains: NftChain[];
  /** Every rule listed. */
  rules: NftRule[];
  /** Other objects (sets, maps, ...), as "kind name". */
  others: string[];
}

function asRecord(value: unknown): Record<string, unknown> | null {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Record<string, unknown>
    : null;
}

/** `{ct:{key:"state"}}` -> "ct.state", `{payload:{protocol:"udp",field:"dport"}}` -> "udp.dport", a raw payload -> "@th,64,8". */
function nftKey(left: unknown): string {
  const value = asRecord(left) ?? {};
  const ct = asRecord(value.ct);
  const meta = asRecord(value.meta);
  const payload = asRecord(value.payload);
  if (ct !== null) return `ct.${ct.key}`;
  if (meta !== null) return `meta.${meta.key}`;
  if (payload?.base !== undefined) {
    return `@${payload.base},${payload.offset},${payload.len}`;
  }
  if (payload !== null) return `${payload.protocol}.${payload.field}`;
  return Object.keys(value)[0] ?? "?";
}

function nftValues(right: unknown): (string | number | PortSpan)[] {
  if (typeof right === "string" || typeof right === "number") return [right];
  if (Array.isArray(right)) return right.flatMap(nftValues);
  const value = asRecord(right) ?? {};
  if (Array.isArray(value.set)) return value.set.flatMap(nftValues);
  const range = value.range;
  if (
    Array.isArray(range) && typeof range[0] === "number" &&
    typeof range[1] === "number"
  ) {
    return [{ from: range[0], to: range[1] }];
  }
  return [];
}

function parseNftRule(value: Record<string, unknown>): NftRule {
  const rule: NftRule = {
    table: `${value.family} ${value.table}`,
    chain: String(value.chain),
    handle: String(value.handle),
    comment: typeof value.comment === "string" ? value.comment : null,
    matches: [],
    verdict: null,
    target: null,
    packets: null,
  };
  for (const statement of Array.isArray(value.expr) ? value.expr : []) {
    const record = asRecord(statement) ?? {};
    const counter = asRecord(record.counter);
    if (counter !== null) rule.packets = Number(counter.packets);
    const match = asRecord(record.match);
    if (match !== null) {
      rule.matches.push({
        key: nftKey(match.left),
        op: String(match.op),
        values: nftValues(match.right),
      });
    }
    for (const verdict of ["accept", "drop", "reject", "jump", "goto"]) {
      if (!(verdict in record)) continue;
      rule.verdict = verdict;
      const target = asRecord(record[verdict])?.target;
      if (typeof target === "string") rule.target = target;
    }
  }
  return rule;
}

/** Reads nft's JSON listing (empty output is an empty ruleset); throws FirewallError when it is not nft JSON. */
export function parseNftJson(json: string): NftListing {
  let items: unknown;
  let problem = 'no "nftables" array';
  try {
    items = json.trim() === "" ? [] : asRecord(JSON.parse(json))?.nftables;
  } catch (err) {
    problem = (err as Error).message;
  }
  if (!Array.isArray(items)) {
    throw new FirewallError(
      `firewall: could not read the JSON nft printed (${problem}); is nftables >= 0.9 installed?`,
    );
  }
  const listing: NftListing = {
    tableHandle: null,
    chains: [],
    rules: [],
    others: [],
  };
  for (const item of items) {
    for (const [kind, raw] of Object.entries(asRecord(item) ?? {})) {
      const value = asRecord(raw) ?? {};
      if (kind === "metainfo") continue;
      if (kind === "rule") {
        listing.rules.push(parseNftRule(value));
      } else if (kind === "chain") {
        const hook = typeof value.hook === "string" ? value.hook : null;
        listing.chains.push({
          table: `${value.family} ${value.table}`,
          name: String(value.name),
          handle: String(value.handle),
          hook,
          policy: hook === null ? null : String(value.policy ?? "accept"),
        });
      } else if (kind === "table") {
        if (`${value.family} ${value.name}` === NFT_TABLE) {
          listing.tableHandle = String(value.handle);
        }
      } else {
        listing.others.push(`${kind} ${value.name ?? ""}`.trim());
      }
    }
  }
  return listing;
}

/** Whether an nft rule drops or rejects every packet that reaches it (a verdict without any match). */
export function dropsEverything(rule: NftRule): boolean {
  return rule.matches.length === 0 &&
    (rule.verdict === "drop" || rule.verdict === "reject");
}

/** Whether an nft rule jumps (or goes) to the openme chain. */
export function jumpsToOpenme(rule: NftRule): boolean {
  return (rule.verdict === "jump" || rule.verdict === "goto") &&
    rule.target === NFT_CHAIN;
}

/** One `-A INPUT` rule of `iptables -S INPUT` output. */
export interface IptablesRule {
  /** The arguments after `-A INPUT`, ready for `-D INPUT`. */
  spec: string[];
  /** Its `--comment`, or null. */
  comment: string | null;
  /** Packets it matched (`-v` prints `-c PACKETS BYTES`), or null when not listed. */
  packets: number | null;
}

/** What `iptables -S INPUT` (or ip6tables) printed. */
export interface IptablesChain {
  /** The chain policy, lower case ("accept", "drop"), or null when not listed. */
  policy: string | null;
  /** The chain's rules, in order. */
  rules: IptablesRule[];
}

/** The value after the first of the option names in a rule spec (not negated with `!`), or null. */
export function iptablesOption(spec: string[], names: string[]): string | null {
  for (let i = 0; i < spec.length - 1; i++) {
    if (names.includes(spec[i]) && spec[i - 1] !== "!") return spec[i + 1];
  }
  return null;
}

/** Quotes an iptables argument for iptables-restore or a shell: as is, or in double quotes. */
export function quoteIptablesArg(arg: string): string {
  if (/^[A-Za-z0-9_.:@/,!+=-]+$/.test(arg)) return arg;
  return `"${arg.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

/** Reads `iptables [-v] -S INPUT` output; double-quoted arguments (with backslash escapes) are one argument. */
export function parseIptablesChain(output: string): IptablesChain {
  const chain: IptablesChain = { policy: null, rules: [] };
  for (const raw of output.split("\n")) {
    const line = raw.trim();
    const tokens = (line.match(/"(?:\\.|[^"\\])*"|\S+/g) ?? []).map((token) =>
      token.startsWith('"') ? token.slice(1, -1).replace(/\\(.)/g, "$1") : token
    );
    if (tokens[1] !== IPTABLES_CHAIN) continue;
    if (tokens[0] === "-P") chain.policy = (tokens[2] ?? "").toLowerCase();
    if (tokens[0] !== "-A") continue;
    const spec = tokens.slice(2);
    const counter = spec.findIndex((token, i) =>
      token === "-c" && spec[i - 1] !== "--comment"
    );
    const packets = counter < 0 ? null : Number(spec[counter + 1]);
    if (counter >= 0) spec.splice(counter, 3);
    chain.rules.push({
      spec,
      comment: iptablesOption(spec, ["--comment"]),
      packets,
    });
  }
  return chain;
}

/** What doctor checks about one input chain (an nft base chain on the input hook, or iptables INPUT). */
export interface InputChainFacts {
  /** Human name, e.g. `table inet filter chain input` or `ip6tables INPUT`. */
  where: string;
  /** Chain policy ("accept", "drop"); null when the chain does not exist. */
  policy: string | null;
  /** Policy drop, or a rule that drops everything: what no rule accepts is dropped. */
  defaultDeny: boolean;
  /** nft handle of the first rule that drops everything, or null. */
  catchAllHandle: string | null;
  /** nft handle of the first jump to the openme chain, or null when there is none. */
  jumpHandle: string | null;
  /** That jump comes after a rule that drops everything, so nothing reaches it. */
  jumpUnreachable: boolean;
  /** A rule accepts everything arriving on the loopback interface. */
  acceptsLoopback: boolean;
  /** A rule accepts established connections. */
  acceptsEstablished: boolean;
  /** Rules accept ICMPv6 neighbour solicitations and advertisements. */
  acceptsNeighborDiscovery: boolean;
  /** The rules that accept or drop UDP ports or jump to chain openme, in order: whether a knock meets a gate first. */
  udpRules: {
    verdict: "accept" | "drop" | "jump";
    ports: PortSpan[];
    /** What deletes it after `nft delete rule TABLE CHAIN` (`handle N`) or `iptables -D INPUT` (its spec). */
    remove: string;
  }[];
}

/** One rule as the chain checks see it, from nft JSON or from iptables -S. */
interface RuleSummary {
  handle: string | null;
  remove: string;
  dropsEverything: boolean;
  jumpsToOpenme: boolean;
  accepts: boolean;
  drops: boolean;
  loopbackOnly: boolean;
  established: boolean;
  /** ICMPv6 types it matches ("all": every ICMPv6 packet); empty when not ICMPv6. */
  icmpv6: (number | "all")[];
  udpPorts: PortSpan[];
}

/** ICMPv6 neighbour solicitation (135) and advertisement (136), by the names nft and ip6tables use. */
const ND_TYPES: Record<string, number> = {
  "135": 135,
  "136": 136,
  "nd-neighbor-solicit": 135,
  "nd-neighbor-advert": 136,
  "neighbour-solicitation": 135,
  "neighbor-solicitation": 135,
  "neighbour-advertisement": 136,
  "neighbor-advertisement": 136,
};

function isIcmpv6(value: string | number | PortSpan): boolean {
  return ["58", "ipv6-icmp", "icmpv6"].includes(String(value).toLowerCase());
}

/** What openme's gate rules in a listing check and what they dropped. */
export interface GateFacts {
  /** The checks present, in {@linkcode GATE_CHECKS} order. */
  checks: GateCheck[];
  /** Their counters added up by check. */
  counters: GateCounters;
}

function gateFacts(rules: [GateCheck | null, number | null][]): GateFacts {
  const counters: GateCounters = { size: 0, version: 0, rate: 0 };
  for (const [check, packets] of rules) {
    if (check !== null) counters[check] += packets ?? 0;
  }
  const present = new Set(rules.map(([check]) => check));
  return { checks: GATE_CHECKS.filter((c) => present.has(c)), counters };
}

/** openme's gate in the rules of an nft listing (chain openme). */
export function nftGate(rules: NftRule[]): GateFacts {
  return gateFacts(
    rules.filter((rule) =>
      rule.chain === NFT_CHAIN && rule.comment === GATE_RULE_COMMENT
    ).map((rule) => {
      const keys = rule.matches.map((m) => m.key);
      const check = keys.includes("udp.length")
        ? "size"
        : keys.includes("@th,64,8")
        ? "version"
        : "rate";
      return [check, rule.packets];
    }),
  );
}

/** openme's gate in the rules of `iptables -v -S INPUT` (or ip6tables). */
export function iptablesGate(rules: IptablesRule[]): GateFacts {
  return gateFacts(
    rules.filter((rule) => rule.comment === GATE_RULE_COMMENT)
      .map((rule) => [iptablesGateCheck(rule.spec), rule.packets]),
  );
}

/** The check of an iptables rule spec that is one of the gate's, or null. */
export function iptablesGateCheck(spec: string[]): GateCheck | null {
  if (spec.includes("--hashlimit-name")) return "rate";
  const u32 = spec[spec.indexOf("--u32") + 1];
  if (!spec.includes("--u32") || u32 === undefined) return null;
  // Listings print numbers in hex: "0x2c>>0x10=0xad".
  return Number(u32.split("=").pop()) === KNOCK_UDP_LENGTH ? "size" : "version";
}

function inputChainFacts(
  where: string,
  policy: string | null,
  rules: RuleSummary[],
): InputChainFacts {
  const accepted = rules.filter((rule) => rule.accepts);
  const types = new Set(accepted.flatMap((rule) => rule.icmpv6));
  const catchAll = rules.findIndex((rule) => rule.dropsEverything);
  const jump = rules.findIndex((rule) => rule.jumpsToOpenme);
  return {
    where,
    policy,
    defaultDeny: policy === "drop" || catchAll >= 0,
    catchAllHandle: rules[catchAll]?.handle ?? null,
    jumpHandle: rules[jump]?.handle ?? null,
    jumpUnreachable: jump >= 0 && catchAll >= 0 && catchAll < jump,
    acceptsLoopback: accepted.some((rule) => rule.loopbackOnly),
    acceptsEstablished: accepted.some((rule) => rule.established),
    acceptsNeighborDiscovery: types.has("all") ||
      (types.has(135) && types.has(136)),
    udpRules: rules.filter((rule) =>
      rule.jumpsToOpenme ||
      (rule.udpPorts.length > 0 && (rule.accepts || rule.drops))
    ).map((rule) => ({
      verdict: rule.jumpsToOpenme ? "jump" : rule.accepts ? "accept" : "drop",
      ports: rule.udpPorts,
      remove: rule.remove,
    })),
  };
}

function nftSummary(rule: NftRule): RuleSummary {
  const positive = rule.matches.filter((m) => m.op === "==" || m.op === "in");
  const valuesOf = (key: string) =>
    positive.filter((m) => m.key === key).flatMap((m) => m.values);
  const types = valuesOf("icmpv6.type");
  const icmpv6Proto = [...valuesOf("meta.l4proto"), ...valuesOf("ip6.nexthdr")]
    .some(isIcmpv6);
  return {
    handle: rule.handle,
    remove: `handle ${rule.handle}`,
    dropsEverything: dropsEverything(rule),
    jumpsToOpenme: jumpsToOpenme(rule),
    accepts: rule.verdict === "accept",
    drops: rule.verdict === "drop" || rule.verdict === "reject",
    loopbackOnly: rule.matches.length === 1 &&
      valuesOf("meta.iifname").includes("lo"),
    established: valuesOf("ct.state").includes("established"),
    icmpv6: icmpv6Proto && types.length === 0
      ? ["all"]
      : types.flatMap((type) => ND_TYPES[String(type)] ?? []),
    udpPorts: valuesOf("udp.dport").map((value) =>
      typeof value === "object" ? value : { from: +value, to: +value }
    ).filter((span) => Number.isInteger(span.from)),
  };
}

/** What `nft -j list ruleset` shows that doctor checks. */
export interface NftRulesetFacts {
  /** `table inet filter chain input`, where openme's jump lives. */
  input: InputChainFacts;
  /** Whether table inet filter has the openme chain. */
  openmeChainExists: boolean;
  /** UDP ports the openme chain accepts (the knock port rule, when serve runs). */
  openmeChainUdpPorts: PortSpan[];
  /** Other base chains on the input hook (their drops apply after openme's accepts too). */
  otherInputChains: InputChainFacts[];
  /** openme's gate rules in chain openme. */
  gate: GateFacts;
}

/** Extracts the facts doctor checks from an nft listing of the whole ruleset. */
export function nftRulesetFacts(listing: NftListing): NftRulesetFacts {
  const inChain = (table: string, chain: string) =>
    listing.rules.filter((rule) => rule.table === table && rule.chain === chain)
      .map(nftSummary);
  const input = `table ${NFT_TABLE} chain ${NFT_INPUT_CHAIN}`;
  const chains = listing.chains.filter((chain) =>
    chain.hook === "input" && /^(inet|ip|ip6) /.test(chain.table)
  ).map((chain) =>
    inputChainFacts(
      `table ${chain.table} chain ${chain.name}`,
      chain.policy,
      inChain(chain.table, chain.name),
    )
  );
  return {
    input: chains.find((chain) => chain.where === input) ??
      inputChainFacts(input, null, []),
    openmeChainExists: listing.chains.some((chain) =>
      chain.table === NFT_TABLE && chain.name === NFT_CHAIN
    ),
    openmeChainUdpPorts: inChain(NFT_TABLE, NFT_CHAIN)
      .filter((rule) => rule.accepts).flatMap((rule) => rule.udpPorts),
    otherInputChains: chains.filter((chain) => chain.where !== input),
    gate: nftGate(listing.rules),
  };
}

function iptablesSummary(rule: IptablesRule): RuleSummary {
  const spec = rule.spec;
  const option = (...names: string[]) => iptablesOption(spec, names);
  const target = option("-j", "--jump");
  // Options that match packets (not the target, its options or the comment).
  const matches = spec.filter((token, i) =>
    token.startsWith("-") && spec[i - 1] !== "-j" &&
    !["-j", "--jump", "--comment", "--reject-with"].includes(token) &&
    !(token === "-m" && spec[i + 1] === "comment")
  );
  const proto = option("-p", "--protocol")?.toLowerCase() ?? "";
  const icmpType = option("--icmpv6-type");
  const ports = option("--dport", "--destination-port", "--dports");
  return {
    handle: null,
    remove: spec.map(quoteIptablesArg).join(" "),
    dropsEverything: matches.length === 0 &&
      (target === "DROP" || target === "REJECT"),
    jumpsToOpenme: false,
    accepts: target === "ACCEPT",
    drops: target === "DROP" || target === "REJECT",
    loopbackOnly: matches.length === 1 &&
      option("-i", "--in-interface") === "lo",
    established: (option("--ctstate", "--state") ?? "").split(",")
      .includes("ESTABLISHED"),
    icmpv6: !isIcmpv6(proto)
      ? []
      : [icmpType === null ? "all" : ND_TYPES[icmpType.toLowerCase()] ?? 0],
    udpPorts: (proto === "udp" || proto === "17") && ports !== null
      ? ports.split(",").map((part) => part.split(":").map(Number))
        .map(([from, to]) => ({ from, to: to ?? from }))
        .filter((span) => Number.isInteger(span.from))
      : [],
  };
}

/** What doctor checks about iptables or ip6tables INPUT, openme's gate rules in it included. */
export type IptablesChainFacts = InputChainFacts & { gate: GateFacts };

/** Extracts the facts doctor checks from `iptables [-v] -S INPUT` (or ip6tables) output. */
export function iptablesChainFacts(
  output: string,
  where: string,
): IptablesChainFacts {
  const chain = parseIptablesChain(output);
  return {
    ...inputChainFacts(where, chain.policy, chain.rules.map(iptablesSummary)),
    gate: iptablesGate(chain.rules),
  };
}

async function stdoutOrThrow(
  tool: ToolProgram,
  args: string[],
  options: FirewallBackendOptions,
): Promise<string> {
  const result = await runTool(tool, args, options);
  if (!result.success) throw new Error(describeToolFailure(result));
  return result.stdout;
}

/** Lists the nft ruleset (`nft -j list ruleset`) and extracts what doctor checks; throws when that fails. */
export async function inspectNftRuleset(
  options: FirewallBackendOptions = {},
): Promise<NftRulesetFacts> {
  const json = await stdoutOrThrow("nft", ["-j", "list", "ruleset"], options);
  return nftRulesetFacts(parseNftJson(json));
}

/** Lists INPUT of iptables and ip6tables (`-w -v -S INPUT`) and extracts what doctor checks; throws when that fails. */
export async function inspectIptablesRuleset(
  options: FirewallBackendOptions = {},
): Promise<{ v4: IptablesChainFacts; v6: IptablesChainFacts }> {
  const args = ["-w", "-v", "-S", IPTABLES_CHAIN];
  const v4 = await stdoutOrThrow("iptables", args, options);
  const v6 = await stdoutOrThrow("ip6tables", args, options);
  return {
    v4: iptablesChainFacts(v4, `iptables ${IPTABLES_CHAIN}`),
    v6: iptablesChainFacts(v6, `ip6tables ${IPTABLES_CHAIN}`),
  };
}

/** Runs `TOOL --version` and returns the first line it printed; throws when the tool is missing or fails. */
export async function toolVersion(
  tool: ToolProgram,
  options: FirewallBackendOptions = {},
): Promise<string> {
  const host = { ...options, netns: null };
  const version = await stdoutOrThrow(tool, ["--version"], host);
  return version.trim().split("\n")[0];
}

/** Inodes of the sockets in /proc/net/{udp,tcp}[6] text that hold the port: bound (state 07) or listening (0A). */
export function parseProcNetInodes(text: string, port: number): number[] {
  const inodes: number[] = [];
  for (const line of text.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    const local = parseInt(fields[1]?.split(":")[1] ?? "", 16);
    if (local === port && ["07", "0A"].includes(fields[3])) {
      inodes.push(Number(fields[9]));
    }
  }
  return inodes;
}

/** Inodes of the IPv4 and IPv6 sockets holding a UDP or TCP port in the current (or the given) network namespace; throws when it cannot tell. */
export async function listSocketInodes(
  proto: "udp" | "tcp",
  port: number,
  options: FirewallBackendOptions = {},
): Promise<number[]> {
  const inodes: number[] = [];
  for (const path of [`/proc/net/${proto}`, `/proc/net/${proto}6`]) {
    let text: string;
    if ((options.netns ?? null) === null) {
      const read = await Deno.readTextFile(path).catch((err) => err as Error);
      if (read instanceof Deno.errors.NotFound) continue; // no IPv6
      if (read instanceof Error) {
        throw new Error(`cannot read ${path}: ${read}`);
      }
      text = read;
    } else {
      // A namespace's /proc/net is only visible from inside it.
      const result = await runTool("cat", [path], options);
      if (/No such file/.test(result.stderr)) continue;
      if (!result.success) throw new Error(describeToolFailure(result));
      text = result.stdout;
    }
    inodes.push(...parseProcNetInodes(text, port));
  }
  return inodes;
}

/** A process holding a socket. */
export interface SocketOwner {
  /** Process id. */
  pid: number;
  /** Its command line, split into arguments. */
  argv: string[];
}

/** Most processes, and file descriptors per process, scanned when looking for a socket's owner. */
export const MAX_SCANNED_ENTRIES = 65_536;

async function* boundedDir(path: string): AsyncGenerator<string> {
  let count = 0;
  try {
    for await (const entry of Deno.readDir(path)) {
      if (++count > MAX_SCANNED_ENTRIES) return;
      yield entry.name;
    }
  } catch {
    // Gone, or not ours to look at.
  }
}

/** Finds the processes holding the given socket inodes by scanning /proc/PID/fd; inodes not found are absent. */
export async function findSocketOwners(
  inodes: number[],
): Promise<Map<number, SocketOwner>> {
  const owners = new Map<number, SocketOwner>();
  const wanted = new Set(inodes);
  for await (const name of boundedDir("/proc")) {
    if (owners.size === wanted.size) break;
    if (!/^\d+$/.test(name)) continue;
    for await (const fd of boundedDir(`/proc/${name}/fd`)) {
      const link = await Deno.readLink(`/proc/${name}/fd/${fd}`).catch(() =>
        ""
      );
      const inode = Number(/^socket:\[(\d+)\]$/.exec(link)?.[1]);
      if (!wanted.has(inode) || owners.has(inode)) continue;
      const cmdline = await Deno.readTextFile(`/proc/${name}/cmdline`)
        .catch(() => "");
      owners.set(inode, {
        pid: Number(name),
        argv: cmdline.split("\0").filter((arg) => arg !== ""),
      });
    }
  }
  return owners;
}

/** Whether a command line is `openme serve` (the binary, or main.ts run by deno). */
export function isOpenmeServe(argv: string[]): boolean {
  return argv.includes("serve") && argv.some((arg) => {
    const base = arg.split("/").pop() ?? "";
    return base.startsWith("openme") || arg.includes("/openme/") ||
      base === "main.ts";
  });
}

/** Whether a /proc/PID/status text shows CAP_NET_ADMIN (bit 12) in the effective set. */
export function hasNetAdminCapability(statusText: string): boolean {
  const m = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(statusText);
  return m !== null && ((BigInt(`0x${m[1]}`) >> 12n) & 1n) === 1n;
}

/** Path systemd-timesyncd touches once the clock is synchronised. */
export const TIMESYNC_FLAG_FILE = "/run/systemd/timesync/synchronized";

/** Whether the system clock is NTP-synchronised (null: cannot tell) and how that was found out. */
export interface ClockSync {
  /** The answer. */
  synchronized: boolean | null;
  /** How it was found out, e.g. "timedatectl", or why it could not be. */
  source: string;
}

/** Finds out whether the clock is NTP-synchronised: systemd-timesyncd's flag file, else `timedatectl show`. */
export async function inspectClockSync(
  options: FirewallBackendOptions = {},
): Promise<ClockSync> {
  const flag = await Deno.stat(TIMESYNC_FLAG_FILE).then(
    () => true,
    () => false,
  );
  if (flag) return { synchronized: true, source: TIMESYNC_FLAG_FILE };
  const result = await runTool(
    "timedatectl",
    ["show", "-p", "NTPSynchronized", "--value"],
    { ...options, netns: null },
  );
  const value = result.success ? result.stdout.trim() : "";
  if (value === "yes" || value === "no") {
    return { synchronized: value === "yes", source: "timedatectl" };
  }
  return {
    synchronized: null,
    source: result.error ?? (result.stderr.trim().split("\n")[0] ||
      "timedatectl gave no answer"),
  };
}
