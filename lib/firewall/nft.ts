/**
 * nftables backend (SPEC §9): chain `openme` of table `inet filter`, which
 * `input` jumps to, holds the per-knock accepts (inserted at the top, deleted
 * by the handles nft echoed) and then the base rules (appended).
 *
 * @module
 */

import type { IpAddress } from "../ip.ts";
import * as log from "../log.ts";
import {
  BASE_RULE_COMMENTS,
  type BaseRulesCheck,
  type BaseRulesOptions,
  describeBaseRules,
  describeRules,
  DROP_RULE_COMMENT,
  type FirewallBackend,
  type FirewallBackendOptions,
  FirewallError,
  type FirewallRulePort,
  type GateCounters,
  JUMP_RULE_COMMENT,
  NFT_CHAIN,
  NFT_INPUT_CHAIN,
  NFT_TABLE,
  type OpenedRules,
  OPENME_RULE_COMMENTS,
  portRangeText,
  RULE_COMMENT,
  validateBaseRulesOptions,
  validateOpenRequest,
} from "./backend.ts";
import {
  firewallErrorFromResult,
  OperationQueue,
  runTool,
  type ToolResult,
} from "./exec.ts";
import {
  buildNftKnockRules,
  GATE_CHECKS,
  type GateCheck,
  installGate,
  NFT_GATE_SETS,
} from "./gate.ts";
import {
  dropsEverything,
  jumpsToOpenme,
  nftGate,
  type NftListing,
  type NftRule,
  parseNftJson,
} from "./inspect.ts";

const CHAIN = `${NFT_TABLE} ${NFT_CHAIN}`;
const INPUT = `${NFT_TABLE} ${NFT_INPUT_CHAIN}`;

function matchPrefix(iface: string | null): string {
  return iface === null ? "" : `iifname "${iface}" `;
}

function portMatch(port: FirewallRulePort): string {
  return `${port.proto} dport ${portRangeText(port, "-")}`;
}

/** Returns the body of one per-knock accept rule, e.g. `ip saddr 192.0.2.2 tcp dport 22 accept comment "openme"`. */
export function buildNftAcceptRule(
  address: IpAddress,
  port: FirewallRulePort,
  iface: string | null,
): string {
  const saddr = address.family === 4 ? "ip saddr" : "ip6 saddr";
  return `${matchPrefix(iface)}${saddr} ${address.text} ${
    portMatch(port)
  } accept comment "${RULE_COMMENT}"`;
}

/** Returns the `add` lines of the base rules of chain openme, in order: the gate's sets and rules, the knock-port accept, then the drops. */
export function buildNftBaseRules(
  options: BaseRulesOptions,
  checks: readonly GateCheck[] = GATE_CHECKS,
): string[] {
  const add = `add rule ${CHAIN} ${matchPrefix(options.interface)}`;
  const lines: string[] = [];
  if (options.openKnockPort) {
    const knock = buildNftKnockRules(options, { checks, tagged: true });
    for (const set of knock.sets) {
      // Flushed, so a new budget applies to every source at once.
      lines.push(`add ${set}`, `flush ${set.slice(0, set.indexOf(" {"))}`);
    }
    lines.push(...knock.rules.map((rule) => `add rule ${CHAIN} ${rule}`));
  }
  for (const port of options.dropPorts) {
    lines.push(`${add}${portMatch(port)} drop comment "${DROP_RULE_COMMENT}"`);
  }
  return lines;
}

/** Names what the base rules (with these gate checks) lack in a listing of table inet filter (null: no table); empty when all is in place. */
export function findMissingNftBase(
  listing: NftListing | null,
  options: BaseRulesOptions,
  checks: readonly GateCheck[] = GATE_CHECKS,
): string[] {
  if (listing === null) return [`table ${NFT_TABLE}`];
  const missing: string[] = [];
  for (const name of [NFT_CHAIN, NFT_INPUT_CHAIN]) {
    if (!listing.chains.some((chain) => chain.name === name)) {
      missing.push(`chain ${NFT_TABLE} ${name}`);
    }
  }
  if (!listing.rules.some((rule) => isJump(rule))) {
    missing.push(`jump from ${NFT_INPUT_CHAIN} to ${NFT_CHAIN}`);
  }
  const lines = buildNftBaseRules(options, checks);
  for (const tag of BASE_RULE_COMMENTS) {
    const want = lines.filter((line) => line.endsWith(`"${tag}"`)).length;
    const have = listing.rules.filter((rule) =>
      rule.chain === NFT_CHAIN && rule.comment === tag
    ).length;
    if (have !== want) {
      missing.push(`${tag} rules (${have} of ${want})`);
    }
  }
  return missing;
}

function isJump(rule: NftRule): boolean {
  return rule.chain === NFT_INPUT_CHAIN && jumpsToOpenme(rule);
}

/** Handles nft echoed (`-e -a`) for what was added, e.g. `rule inet filter openme` or `table inet filter`. */
function echoedHandles(stdout: string, what: string): string[] {
  const handles: string[] = [];
  for (const line of stdout.split("\n")) {
    const m = /^(?:add|insert) (.*) # handle (\d+)$/.exec(line.trim());
    if (m !== null && `${m[1]} `.startsWith(`${what} `)) handles.push(m[2]);
  }
  return handles;
}

function stderrSays(result: ToolResult, text: string): boolean {
  return result.error === null && !result.timedOut &&
    result.stderr.includes(text);
}

function isNoSuchObject(result: ToolResult): boolean {
  return stderrSays(result, "No such file or directory");
}

/** nftables firewall backend. */
export class NftBackend implements FirewallBackend {
  /** Backend name. */
  readonly name = "nft";
  readonly #tools: FirewallBackendOptions;
  readonly #queue: OperationQueue;
  #options: BaseRulesOptions | null = null;
  /** The gate checks installed with the base rules. */
  #gate: GateCheck[] = [];
  #openHandles = new Set<string>();
  #created = { table: false, chain: false, input: false };
  /** Whether this run added the jump from input to openme. */
  #addedJump = false;
  /** "table handle/chain handle" the per-knock handles belong to; null when unknown. */
  #generation: string | null = null;

  /** Creates the backend; nothing runs until setup(). */
  constructor(options: FirewallBackendOptions = {}) {
    this.#tools = options;
    this.#queue = new OperationQueue("nft");
  }

  /** Number of per-knock rules this backend added and has not removed. */
  get openRuleCount(): number {
    return this.#openHandles.size;
  }

  /** Ensures table, chains and jump exist, removes rules of a run that died, adds the base rules. */
  async setup(options: BaseRulesOptions): Promise<void> {
    const valid = validateBaseRulesOptions(options);
    await this.#queue.run(() => this.#installBase(valid, true));
  }

  /** Replaces the base rules (and recreates table, chain and jump when they vanished). */
  async updateBaseRules(options: BaseRulesOptions): Promise<void> {
    const valid = validateBaseRulesOptions(options);
    await this.#queue.run(() => this.#installBase(valid, false));
  }

  /** Inserts one accept rule per port for the address in one atomic transaction. */
  async open(
    address: IpAddress,
    ports: FirewallRulePort[],
  ): Promise<OpenedRules> {
    ({ address, ports } = validateOpenRequest(address, ports));
    return await this.#queue.run(async () => {
      const options = this.#options;
      if (options === null) {
        throw new FirewallError(
          `firewall: nft backend is not set up; call setup() before opening ports for ${address.text}`,
        );
      }
      if (ports.length === 0) return { address, ports, handles: [] };
      const script = ports.map((port) =>
        `insert rule ${CHAIN} ${
          buildNftAcceptRule(address, port, options.interface)
        }\n`
      ).join("");
      const args = ["-e", "-a", "-f", "-"];
      let result = await this.#run(args, script);
      if (!result.success && isNoSuchObject(result)) {
        log.warn(
          `firewall: chain ${CHAIN} is missing (ruleset reloaded?); recreating it and the base rules`,
        );
        await this.#applyBase(options, false);
        result = await this.#run(args, script);
      }
      const what = describeRules({ address, ports });
      const action = `opening ${what}`;
      if (!result.success) {
        throw firewallErrorFromResult(result, action);
      }
      const handles = echoedHandles(result.stdout, `rule ${CHAIN}`);
      if (handles.length !== ports.length) {
        await this.#deleteHandles(handles);
        throw new FirewallError(
          `firewall: ${action}: nft echoed ${handles.length} rule handles for ${ports.length} rules; ` +
            "removed the ones it reported. Does this nft support --echo (nftables >= 0.9)?",
        );
      }
      for (const handle of handles) this.#openHandles.add(handle);
      log.debug(`firewall: opened ${what} (nft handles ${handles.join(" ")})`);
      return { address, ports, handles };
    });
  }

  /** Deletes the rules of one knock by handle; rules already gone are ignored. */
  close(rules: OpenedRules): Promise<void> {
    return this.#queue.run(async () => {
      // Handles we do not hold were closed already or removed by setup or a reload.
      const live = rules.handles.filter((h) => this.#openHandles.has(h));
      if (live.length === 0) return;
      await this.#deleteHandles(live);
      log.debug(`firewall: closed ${describeRules(rules)}`);
    });
  }

  /** Lists the table once, puts back what a reload removed and reports the rule sets whose handles are gone. */
  ensureBaseRules(open: OpenedRules[]): Promise<BaseRulesCheck> {
    return this.#queue.run(async () => {
      const options = this.#options;
      if (options === null) return { repaired: [], lost: [] };
      const listing = await this.#list();
      const generation = listing === null
        ? null
        : `${listing.tableHandle}/${
          listing.chains.find((chain) => chain.name === NFT_CHAIN)?.handle
        }`;
      // An unknown generation (no echoed handles) is adopted; handles are then checked one by one.
      const same = listing !== null &&
        (this.#generation === null || generation === this.#generation);
      const live = new Set(
        (same ? listing.rules : []).filter((rule) =>
          rule.chain === NFT_CHAIN && rule.comment === RULE_COMMENT
        ).map((rule) => rule.handle),
      );
      if (!same) {
        // Table or chain created again: openme did not create what is there now.
        this.#created = { table: false, chain: false, input: false };
      }
      for (const handle of this.#openHandles) {
        if (!live.has(handle)) this.#openHandles.delete(handle);
      }
      const lost = open.filter((rules) =>
        rules.handles.some((handle) => !live.has(handle))
      );
      const missing = findMissingNftBase(listing, options, this.#gate);
      if (missing.length > 0) await this.#applyBase(options, false, listing);
      else if (!same) this.#generation = generation;
      return { repaired: missing, lost };
    });
  }

  /** Removes every rule openme added, the jump it added and the chains and table it created, in one transaction. */
  teardown(): Promise<void> {
    return this.#queue.run(() => this.#teardown());
  }

  /** Removes every openme rule, set and jump, whoever added them, and chain openme unless other rules use it: the clean-up after a crash. */
  cleanup(): Promise<void> {
    return this.#queue.run(() => {
      this.#created.chain = true;
      return this.#teardown();
    });
  }

  /** Lists the table and adds up the gate rules' counters; null without a gate. */
  gateCounters(): Promise<GateCounters | null> {
    return this.#queue.run(async () => {
      if (!this.#options?.openKnockPort || this.#gate.length === 0) return null;
      return nftGate((await this.#list())?.rules ?? []).counters;
    });
  }

  #run(args: string[], stdin?: string): Promise<ToolResult> {
    return runTool("nft", args, { ...this.#tools, stdin });
  }

  async #list(): Promise<NftListing | null> {
    const args = ["-t", "-j", "list", "table", "inet", "filter"];
    const result = await this.#run(args);
    if (result.success) return parseNftJson(result.stdout);
    if (isNoSuchObject(result)) return null;
    throw firewallErrorFromResult(result, `listing table ${NFT_TABLE}`);
  }

  /** Runs the lines in one `nft -f -` transaction, or one by one when that fails; objects already gone are fine. */
  async #transaction(lines: string[], action: string): Promise<void> {
    if ((await this.#run(["-f", "-"], lines.join("\n") + "\n")).success) return;
    let firstError: FirewallError | null = null;
    for (const line of lines) {
      const one = await this.#run(["-f", "-"], line + "\n");
      if (one.success || isNoSuchObject(one)) continue;
      if (stderrSays(one, "Device or resource busy")) {
        log.warn(
          `firewall: kept ${line.replace(/^delete /, "")}: still in use`,
        );
        continue;
      }
      firstError ??= firewallErrorFromResult(one, action);
    }
    if (firstError !== null) throw firstError;
  }

  /** Applies the base rules with every gate check this kernel and nft can do. */
  async #installBase(
    options: BaseRulesOptions,
    isSetup: boolean,
  ): Promise<void> {
    const wanted = options.openKnockPort ? GATE_CHECKS : [];
    this.#gate = await installGate("nft", wanted, (checks) => {
      this.#gate = checks;
      return this.#applyBase(options, isSetup);
    });
  }

  async #applyBase(
    options: BaseRulesOptions,
    isSetup: boolean,
    known?: NftListing | null,
  ): Promise<void> {
    const listing = known !== undefined ? known : await this.#list();
    const rules = listing?.rules ?? [];
    const chain = listing?.chains.find((c) => c.name === NFT_CHAIN);
    const input = listing?.chains.find((c) => c.name === NFT_INPUT_CHAIN);
    const jumps = rules.filter(isJump);
    const catchAll = rules.find((rule) =>
      rule.chain === NFT_INPUT_CHAIN && dropsEverything(rule)
    );
    const replaced = isSetup ? OPENME_RULE_COMMENTS : BASE_RULE_COMMENTS;
    const stale = rules.filter((rule) =>
      rule.chain === NFT_CHAIN && replaced.includes(rule.comment ?? "")
    );
    const lines: string[] = [];
    if (listing === null) lines.push(`add table ${NFT_TABLE}`);
    if (chain === undefined) lines.push(`add chain ${CHAIN}`);
    if (input === undefined) {
      lines.push(
        `add chain ${INPUT} { type filter hook input priority 0; policy accept; }`,
      );
    }
    const jump = `jump ${NFT_CHAIN} comment "${JUMP_RULE_COMMENT}"`;
    if (jumps.length === 0) {
      lines.push(
        catchAll === undefined
          ? `add rule ${INPUT} ${jump}`
          : `insert rule ${INPUT} position ${catchAll.handle} ${jump}`,
      );
    }
    for (const rule of stale) {
      lines.push(`delete rule ${CHAIN} handle ${rule.handle}`);
    }
    lines.push(...buildNftBaseRules(options, this.#gate));
    let echoed = "";
    if (lines.length > 0) {
      const result = await this.#run(
        ["-e", "-a", "-f", "-"],
        lines.join("\n") + "\n",
      );
      if (!result.success) {
        throw firewallErrorFromResult(
          result,
          `setting up chain ${NFT_CHAIN} in table ${NFT_TABLE}`,
        );
      }
      echoed = result.stdout;
    }
    if (isSetup || listing === null || chain === undefined) {
      // Per-knock rules are gone (removed as stale, or their chain vanished).
      if (this.#openHandles.size > 0) {
        log.warn(
          `firewall: ${this.#openHandles.size} per-knock nft rules were removed or lost; their sessions no longer have rules`,
        );
      }
      this.#openHandles.clear();
    }
    this.#created.table ||= listing === null;
    // A tagged jump this run did not add means a run that died set up the chain: remove it as that run would have.
    const inherited = !this.#addedJump &&
      jumps.some((rule) => rule.comment === JUMP_RULE_COMMENT);
    this.#addedJump ||= jumps.length === 0;
    this.#created.chain ||= chain === undefined || (isSetup && inherited);
    this.#created.input ||= input === undefined;
    if (input === undefined) {
      log.warn(
        `firewall: table ${NFT_TABLE} had no chain ${NFT_INPUT_CHAIN}; created it with policy accept. ` +
          "openme works but protects nothing until you add a default-deny policy (see the hardening section of the README)",
      );
    } else if (input.hook === null) {
      log.warn(
        `firewall: chain ${INPUT} is not a base chain (no hook); ` +
          `the jump to ${NFT_CHAIN} only takes effect if traffic reaches that chain`,
      );
    }
    if (jumps.length === 0 && catchAll !== undefined) {
      log.info(
        `firewall: added the jump to ${NFT_CHAIN} before the catch-all drop/reject rule (handle ${catchAll.handle}) of ${INPUT}`,
      );
    }
    const staleKnocks = stale.filter((r) => r.comment === RULE_COMMENT).length;
    if (staleKnocks > 0) {
      log.warn(
        `firewall: removed ${staleKnocks} stale per-knock nft rules left by an earlier run`,
      );
    }
    log.info(
      `firewall: nft chain ${CHAIN} ready (${describeBaseRules(options)})`,
    );
    this.#options = options;
    // Per-knock handles are only valid for this table and chain.
    const tableHandle = listing?.tableHandle ??
      echoedHandles(echoed, `table ${NFT_TABLE}`)[0];
    const chainHandle = chain?.handle ??
      echoedHandles(echoed, `chain ${CHAIN}`)[0];
    this.#generation = tableHandle && chainHandle
      ? `${tableHandle}/${chainHandle}`
      : null;
  }

  /** Deletes per-knock rules by handle; on failure they stay tracked, so teardown tries again. */
  async #deleteHandles(handles: string[]): Promise<void> {
    if (handles.length === 0) return;
    await this.#transaction(
      handles.map((handle) => `delete rule ${CHAIN} handle ${handle}`),
      `deleting rule handles ${handles.join(" ")} from chain ${NFT_CHAIN}`,
    );
    for (const handle of handles) this.#openHandles.delete(handle);
  }

  async #teardown(): Promise<void> {
    // A listing failure keeps the state, so a second teardown() can retry.
    const listing = await this.#list();
    const created = this.#created;
    this.#options = null;
    this.#generation = null;
    this.#openHandles = new Set();
    this.#created = { table: false, chain: false, input: false };
    this.#addedJump = false;
    if (listing === null) {
      log.info(`firewall: table ${NFT_TABLE} is gone; nothing to remove`);
      return;
    }
    // Every rule openme adds carries one of its comments.
    const ours = (rule: NftRule): boolean =>
      rule.chain === NFT_CHAIN
        ? OPENME_RULE_COMMENTS.includes(rule.comment ?? "")
        : isJump(rule) && rule.comment === JUMP_RULE_COMMENT;
    const lines = listing.rules.filter(ours).map((rule) =>
      `delete rule ${NFT_TABLE} ${rule.chain} handle ${rule.handle}`
    );
    const remaining = listing.rules.filter((rule) => !ours(rule));
    const sets = NFT_GATE_SETS.filter((name) =>
      listing.others.includes(`set ${name}`)
    );
    lines.push(...sets.map((name) => `delete set ${NFT_TABLE} ${name}`));
    const has = (name: string) => listing.chains.some((c) => c.name === name);
    const deletedChains: string[] = [];
    if (created.chain && has(NFT_CHAIN)) {
      if (remaining.some((r) => r.chain === NFT_CHAIN || jumpsToOpenme(r))) {
        log.warn(
          `firewall: kept chain ${CHAIN}: other rules are in it or jump to it`,
        );
      } else {
        deletedChains.push(NFT_CHAIN);
      }
    }
    if (created.input && has(NFT_INPUT_CHAIN)) {
      if (remaining.some((rule) => rule.chain === NFT_INPUT_CHAIN)) {
        log.warn(
          `firewall: kept chain ${INPUT} (created by openme): it has other rules now`,
        );
      } else {
        deletedChains.push(NFT_INPUT_CHAIN);
      }
    }
    for (const name of deletedChains) {
      lines.push(`delete chain ${NFT_TABLE} ${name}`);
    }
    if (created.table) {
      const left = listing.chains.some((c) => !deletedChains.includes(c.name));
      if (left || listing.others.length > sets.length) {
        log.info(
          `firewall: kept table ${NFT_TABLE} (created by openme): it has other content now`,
        );
      } else {
        lines.push(`delete table ${NFT_TABLE}`);
      }
    }
    if (lines.length === 0) return;
    await this.#transaction(lines, "removing openme's rules");
    log.info(`firewall: removed openme's nft rules (${lines.length} objects)`);
  }
}
