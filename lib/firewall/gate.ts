/**
 * The knock gate (SPEC §9): rules ahead of the knock port's accept rule that
 * drop in the kernel, each with a counter, what can never be a v1 knock: a
 * UDP length other than a knock's, a first payload byte other than the
 * version, and more than the configured rate per source (an IPv4 address, an
 * IPv6 /64). Built here for both backends, which install them with their
 * base rules and leave out the checks the kernel or the tools cannot do.
 *
 * @module
 */

import * as log from "../log.ts";
import { KNOCK_PACKET_BYTES, PROTOCOL_VERSION } from "../protocol/packet.ts";
import {
  type BaseRulesOptions,
  DEFAULT_KNOCK_RATE_LIMIT,
  GATE_RULE_COMMENT,
  type GateCounters,
  RATE_UNIT_SECONDS,
} from "./backend.ts";

/** What one gate rule checks, which is also the reason of its drops. */
export type GateCheck = keyof GateCounters;
/** Every gate check, in the order the rules apply them. */
export const GATE_CHECKS: readonly GateCheck[] = ["size", "version", "rate"];
/** UDP length of a knock: the 8-byte header and the packet. */
export const KNOCK_UDP_LENGTH = 8 + KNOCK_PACKET_BYTES;
/** openme's nft sets of the per-source buckets, IPv4 then IPv6. */
export const NFT_GATE_SETS: readonly string[] = [
  "openme_gate4",
  "openme_gate6",
];

const U32_FIX =
  "modprobe xt_u32, or use a kernel with CONFIG_NETFILTER_XT_MATCH_U32";

/** What each check needs that a kernel or tool may lack, and how to get it. */
export const GATE_NEEDS: Record<
  "nft" | "iptables",
  Record<GateCheck, { need: string; fix: string }>
> = {
  nft: {
    size: {
      need: "the udp length match",
      fix: "install nftables 0.9 or later",
    },
    version: {
      need: "the raw payload match @th,64,8",
      fix: "install a newer nftables",
    },
    rate: {
      need: "dynamic sets with the limit statement",
      fix: "modprobe nft_limit, or use a kernel with CONFIG_NFT_LIMIT",
    },
  },
  iptables: {
    size: { need: "the u32 match", fix: U32_FIX },
    version: { need: "the u32 match", fix: U32_FIX },
    rate: {
      need: "the hashlimit match",
      fix:
        "modprobe xt_hashlimit, or use a kernel with CONFIG_NETFILTER_XT_MATCH_HASHLIMIT",
    },
  },
};

/** Seconds an idle source's bucket is kept: until it is full again, and at least a minute. */
function bucketSeconds(options: BaseRulesOptions): number {
  const limit = options.knockRateLimit ?? DEFAULT_KNOCK_RATE_LIMIT;
  const refill = limit.burst * RATE_UNIT_SECONDS[limit.unit] / limit.count;
  return Math.max(60, Math.ceil(refill));
}

/** The gate's nft sets (declarations after `add`) and rule bodies, in order; untagged ones (for an operator's chain) use sets named knock_gate4/6. */
export function buildNftGate(
  options: BaseRulesOptions,
  gate: { checks: readonly GateCheck[]; table: string; tagged: boolean },
): { sets: string[]; rules: string[] } {
  const limit = options.knockRateLimit ?? DEFAULT_KNOCK_RATE_LIMIT;
  const iface = options.interface === null
    ? ""
    : `iifname "${options.interface}" `;
  const match = `${iface}udp dport ${options.knockPort} `;
  const verdict = gate.tagged
    ? ` counter drop comment "${GATE_RULE_COMMENT}"`
    : " counter drop";
  const names = gate.tagged ? NFT_GATE_SETS : ["knock_gate4", "knock_gate6"];
  const sets: string[] = [];
  const rules: string[] = [];
  if (gate.checks.includes("size")) {
    rules.push(`${match}udp length != ${KNOCK_UDP_LENGTH}${verdict}`);
  }
  if (gate.checks.includes("version")) {
    rules.push(`${match}@th,64,8 != ${PROTOCOL_VERSION}${verdict}`);
  }
  if (gate.checks.includes("rate")) {
    const keys = ["ip saddr", "ip6 saddr & ffff:ffff:ffff:ffff::"];
    for (const [i, type] of ["ipv4_addr", "ipv6_addr"].entries()) {
      sets.push(
        `set ${gate.table} ${
          names[i]
        } { type ${type}; size 65536; flags dynamic,timeout; }`,
      );
      rules.push(
        `${match}update @${names[i]} { ${keys[i]} timeout ${
          bucketSeconds(options)
        }s limit rate over ${limit.count}/${limit.unit} burst ${limit.burst} packets }${verdict}`,
      );
    }
  }
  return { sets, rules };
}

/** The gate's iptables or ip6tables rule specs (after `-I INPUT`), in order; untagged ones carry no comment. */
export function buildIptablesGate(
  options: BaseRulesOptions,
  gate: { checks: readonly GateCheck[]; family: 4 | 6; tagged: boolean },
): string[][] {
  const limit = options.knockRateLimit ?? DEFAULT_KNOCK_RATE_LIMIT;
  const iface = options.interface === null ? [] : ["-i", options.interface];
  const match = [...iface, "-p", "udp", "--dport", String(options.knockPort)];
  const verdict = gate.tagged
    ? ["-j", "DROP", "-m", "comment", "--comment", GATE_RULE_COMMENT]
    : ["-j", "DROP"];
  // u32 offsets count from the IP header: IPv4's length is in its first byte.
  const at = (offset: number) =>
    gate.family === 4 ? `0>>22&0x3C@${offset}` : `${40 + offset}`;
  const u32 = (test: string) => ["-m", "u32", "!", "--u32", test];
  const specs: string[][] = [];
  if (gate.checks.includes("size")) {
    specs.push([
      ...match,
      ...u32(`${at(4)}>>16=${KNOCK_UDP_LENGTH}`),
      ...verdict,
    ]);
  }
  if (gate.checks.includes("version")) {
    specs.push([
      ...match,
      ...u32(`${at(8)}>>24=${PROTOCOL_VERSION}`),
      ...verdict,
    ]);
  }
  if (gate.checks.includes("rate")) {
    specs.push([
      ...match,
      ...["-m", "hashlimit", "--hashlimit-mode", "srcip"],
      ...["--hashlimit-above", `${limit.count}/${limit.unit}`],
      ...["--hashlimit-burst", String(limit.burst)],
      ...(gate.family === 6 ? ["--hashlimit-srcmask", "64"] : []),
      // The kernel reuses a table of the same name with its old budget.
      "--hashlimit-name",
      `openme${gate.family}-${limit.count}${limit.unit[0]}${limit.burst}`,
      "--hashlimit-htable-expire",
      String(bucketSeconds(options) * 1000),
      ...verdict,
    ]);
  }
  return specs;
}

/** The check of one of openme's nft gate rules, from the keys of its matches. */
export function nftGateCheck(keys: string[]): GateCheck {
  if (keys.includes("udp.length")) return "size";
  return keys.includes("@th,64,8") ? "version" : "rate";
}

/** The check of an iptables rule spec that is one of the gate's, or null. */
export function iptablesGateCheck(spec: string[]): GateCheck | null {
  if (spec.includes("--hashlimit-name")) return "rate";
  const u32 = spec[spec.indexOf("--u32") + 1];
  if (!spec.includes("--u32") || u32 === undefined) return null;
  // Listings print numbers in hex: "0x2c>>0x10=0xad".
  return Number(u32.split("=").pop()) === KNOCK_UDP_LENGTH ? "size" : "version";
}

/** What openme's gate rules in a listing check and what they dropped. */
export interface GateFacts {
  /** The checks present, in {@linkcode GATE_CHECKS} order. */
  checks: GateCheck[];
  /** Their counters added up by check. */
  counters: GateCounters;
}

/** Reads the checks and counters of listed gate rules. */
export function readGate(
  rules: { check: GateCheck | null; packets: number | null }[],
): GateFacts {
  const counters: GateCounters = { size: 0, version: 0, rate: 0 };
  for (const rule of rules) {
    if (rule.check !== null) counters[rule.check] += rule.packets ?? 0;
  }
  const present = new Set(rules.map((rule) => rule.check));
  return { checks: GATE_CHECKS.filter((c) => present.has(c)), counters };
}

/** Installs the base rules with the whole gate, else alone and then with each check that works, logging what is left out and why; returns the checks installed; throws when the base rules alone fail. */
export async function installGate(
  backend: "nft" | "iptables",
  wanted: readonly GateCheck[],
  install: (checks: GateCheck[]) => Promise<void>,
): Promise<GateCheck[]> {
  try {
    await install([...wanted]);
    return [...wanted];
  } catch (err) {
    if (wanted.length === 0) throw err;
  }
  await install([]);
  // Each try is one transaction: after a failed one the last that worked stays.
  const working: GateCheck[] = [];
  for (const check of wanted) {
    const next = [...working, check];
    if (await install(next).then(() => true, () => false)) working.push(check);
  }
  for (const check of wanted.filter((c) => !working.includes(c))) {
    const { need, fix } = GATE_NEEDS[backend][check];
    log.warn(
      `firewall: the knock gate has no ${check} check: ${backend} lacks ${need} (${fix}); knocks still work and openme itself drops such datagrams`,
    );
  }
  return working;
}
