/**
 * The knock gate (SPEC §9): rules ahead of the knock port's accept rule that
 * drop, with counters, what can never be a v1 knock, for both backends.
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
  KNOCK_RULE_COMMENT,
  NFT_TABLE,
  RATE_UNIT_SECONDS,
} from "./backend.ts";

/** What one gate rule checks, which is also the reason of its drops. */
export type GateCheck = keyof GateCounters;
/** Every gate check, in the order the rules apply them. */
export const GATE_CHECKS: readonly GateCheck[] = ["size", "version", "rate"];
/** UDP length of a knock: the 8-byte header and the packet. */
export const KNOCK_UDP_LENGTH: number = 8 + KNOCK_PACKET_BYTES;
/** openme's nft sets of the per-source buckets, IPv4 then IPv6. */
export const NFT_GATE_SETS: readonly string[] = [
  "openme_gate4",
  "openme_gate6",
];

/** What a gate check needs that a kernel or tool may lack, and how to get it. */
export function gateNeeds(
  backend: "nft" | "iptables",
  check: GateCheck,
): { need: string; fix: string } {
  if (backend === "iptables") {
    return check === "rate"
      ? {
        need: "the hashlimit match",
        fix:
          "modprobe xt_hashlimit, or a kernel with CONFIG_NETFILTER_XT_MATCH_HASHLIMIT",
      }
      : {
        need: "the u32 match",
        fix: "modprobe xt_u32, or a kernel with CONFIG_NETFILTER_XT_MATCH_U32",
      };
  }
  return check === "rate"
    ? {
      need: "the limit statement",
      fix: "modprobe nft_limit, or a kernel with CONFIG_NFT_LIMIT",
    }
    : { need: "payload matches", fix: "install nftables 0.9 or later" };
}

/** Seconds an idle source's bucket is kept: until it is full again, and at least a minute. */
function bucketSeconds(options: BaseRulesOptions): number {
  const limit = options.knockRateLimit ?? DEFAULT_KNOCK_RATE_LIMIT;
  const refill = limit.burst * RATE_UNIT_SECONDS[limit.unit] / limit.count;
  return Math.max(60, Math.ceil(refill));
}

/** The nft sets (declarations after `add`) and rule bodies of the gate (with these checks) and the knock port's accept rule, in order; tagged with openme's comments, or plain (sets knock_gate4/6) for an operator to paste. */
export function buildNftKnockRules(
  options: BaseRulesOptions,
  knock: { checks: readonly GateCheck[]; tagged: boolean },
): { sets: string[]; rules: string[] } {
  const limit = options.knockRateLimit ?? DEFAULT_KNOCK_RATE_LIMIT;
  const iface = options.interface === null
    ? ""
    : `iifname "${options.interface}" `;
  const match = `${iface}udp dport ${options.knockPort} `;
  const tag = (name: string) => knock.tagged ? ` comment "${name}"` : "";
  const drop = ` counter drop${tag(GATE_RULE_COMMENT)}`;
  const rules: string[] = [];
  if (knock.checks.includes("size")) {
    rules.push(`${match}udp length != ${KNOCK_UDP_LENGTH}${drop}`);
  }
  if (knock.checks.includes("version")) {
    rules.push(`${match}@th,64,8 != ${PROTOCOL_VERSION}${drop}`);
  }
  const sets: string[] = [];
  if (knock.checks.includes("rate")) {
    const keys = ["ip saddr", "ip6 saddr & ffff:ffff:ffff:ffff::"];
    const timeout = bucketSeconds(options);
    for (const [i, type] of ["ipv4_addr", "ipv6_addr"].entries()) {
      const name = `${knock.tagged ? "openme" : "knock"}_gate${4 + 2 * i}`;
      sets.push(
        `set ${NFT_TABLE} ${name} { type ${type}; size 65536; flags dynamic,timeout; }`,
      );
      rules.push(
        `${match}update @${name} { ${
          keys[i]
        } timeout ${timeout}s limit rate over ${limit.count}/${limit.unit} burst ${limit.burst} packets }${drop}`,
      );
    }
  }
  rules.push(`${match}accept${tag(KNOCK_RULE_COMMENT)}`);
  return { sets, rules };
}

/** The iptables or ip6tables rule specs (after `-I INPUT`) of the gate (with these checks) and the knock port's accept rule, in order; tagged with openme's comments, or plain. */
export function buildIptablesKnockRules(
  options: BaseRulesOptions,
  knock: { checks: readonly GateCheck[]; tagged: boolean; family: 4 | 6 },
): string[][] {
  const limit = options.knockRateLimit ?? DEFAULT_KNOCK_RATE_LIMIT;
  const iface = options.interface === null ? [] : ["-i", options.interface];
  const match = [...iface, "-p", "udp", "--dport", String(options.knockPort)];
  const tag = (name: string) =>
    knock.tagged ? ["-m", "comment", "--comment", name] : [];
  const drop = ["-j", "DROP", ...tag(GATE_RULE_COMMENT)];
  // u32 offsets count from the IP header: IPv4's length is in its first byte.
  const at = (offset: number) =>
    knock.family === 4 ? `0>>22&0x3C@${offset}` : `${40 + offset}`;
  const u32 = (test: string) => [...match, "-m", "u32", "!", "--u32", test];
  const specs: string[][] = [];
  if (knock.checks.includes("size")) {
    specs.push([...u32(`${at(4)}>>16=${KNOCK_UDP_LENGTH}`), ...drop]);
  }
  if (knock.checks.includes("version")) {
    specs.push([...u32(`${at(8)}>>24=${PROTOCOL_VERSION}`), ...drop]);
  }
  if (knock.checks.includes("rate")) {
    specs.push([
      ...match,
      ...["-m", "hashlimit", "--hashlimit-mode", "srcip"],
      ...["--hashlimit-above", `${limit.count}/${limit.unit}`],
      ...["--hashlimit-burst", String(limit.burst)],
      ...(knock.family === 6 ? ["--hashlimit-srcmask", "64"] : []),
      // The kernel reuses a table of the same name with its old budget.
      "--hashlimit-name",
      `openme${knock.family}-${limit.count}${limit.unit[0]}${limit.burst}`,
      "--hashlimit-htable-expire",
      String(bucketSeconds(options) * 1000),
      ...drop,
    ]);
  }
  specs.push([...match, "-j", "ACCEPT", ...tag(KNOCK_RULE_COMMENT)]);
  return specs;
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
    const { need, fix } = gateNeeds(backend, check);
    log.warn(
      `firewall: the knock gate has no ${check} check: ${backend} lacks ${need} (${fix}); knocks still work and openme itself drops such datagrams`,
    );
  }
  return working;
}
