/**
 * nftables backend (SPEC §9). Everything lives in table `inet filter`:
 *
 * - chain `openme` (created when missing) holds, top to bottom, the per-knock
 *   accepts (`comment "openme"`), the knock-port accept (`"openme-knock"`) and
 *   the `drop_ports` drops (`"openme-drop"`). Per-knock rules are added with
 *   `insert` (prepended), knock and drop rules with `add` (appended), so the
 *   drops always sit after every per-knock accept without tracking positions.
 * - chain `input`: when it is missing openme creates it as
 *   `type filter hook input priority 0; policy accept;` and logs a warning:
 *   openme then works but protects nothing until the operator adds a
 *   default-deny policy. openme appends one `jump openme comment "openme-jump"`
 *   only when no rule of `input` jumps to `openme` yet. The jump is appended,
 *   so the operator's earlier rules (established/related, loopback) still come
 *   first and the drop rules do not cut established sessions; when `input`
 *   has a catch-all drop/reject rule (no match, e.g. `counter drop`), the jump
 *   is inserted just before the first one so it is reachable.
 *
 * All rules of one knock go in one `nft -e -a -f -` transaction; their handles
 * are read from nft's echo (lines ending in `# handle N`) and they are deleted
 * by handle, together, in one `nft -f -` transaction. Teardown removes only
 * what openme added: rules carrying an openme comment, the jump when openme
 * added it (or a tagged jump left by a run that died), and the chains and the
 * table when openme created them and nothing else is left in them.
 *
 * Handles are per table and start over when a table or chain is created
 * again. ensureBaseRules() (run periodically by the server) notices an
 * operator's ruleset reload by the table and chain handles, forgets the
 * stale per-knock handles, puts back what is missing and reports the lost
 * rule sets so the server can open them again.
 *
 * @module
 */

import type { IpAddress } from "../ip.ts";
import * as log from "../log.ts";
import {
  type BaseRulesCheck,
  type BaseRulesOptions,
  describeBaseRules,
  describeRulePorts,
  DROP_RULE_COMMENT,
  type FirewallBackend,
  type FirewallBackendOptions,
  FirewallError,
  firewallErrorFromResult,
  type FirewallRulePort,
  invalidRuleHandleError,
  JUMP_RULE_COMMENT,
  KNOCK_RULE_COMMENT,
  type OpenedRules,
  type OpenRequest,
  RULE_COMMENT,
  validateBaseRulesOptions,
  validateNetnsName,
  validateOpenRequest,
} from "./backend.ts";
import {
  DEFAULT_TOOL_TIMEOUT_MS,
  OperationQueue,
  runFirewallTool,
  type ToolResult,
} from "./exec.ts";

/** The nft binary, found through PATH. */
export const NFT_TOOL = "nft";
/** Table family openme uses. */
export const NFT_FAMILY = "inet";
/** Table openme uses. */
export const NFT_TABLE = "filter";
/** Chain that holds openme's rules. */
export const NFT_CHAIN = "openme";
/** Base chain that must jump to the openme chain. */
export const NFT_INPUT_CHAIN = "input";
/** What to check when an nft command fails. */
export const NFT_HINT =
  "is nftables installed and are you root (CAP_NET_ADMIN)?";

const TABLE_REF = `${NFT_FAMILY} ${NFT_TABLE}`;
const HANDLE_PATTERN = /^[0-9]{1,20}$/;
const ECHO_RULE_PATTERN =
  /^(add|insert) rule (\S+) (\S+) (\S+) .*# handle ([0-9]+)$/;
const OPENME_COMMENTS: readonly string[] = [
  RULE_COMMENT,
  KNOCK_RULE_COMMENT,
  DROP_RULE_COMMENT,
];

/** Options for building nft rule text. */
export interface NftRuleOptions {
  /** Input interface the rule matches, or null. Must already be validated. */
  interface: string | null;
}

/** Returns the port match of a rule: "tcp dport 22" or "tcp dport 8080-8090". */
export function nftPortMatch(port: FirewallRulePort): string {
  const range = port.endPort !== undefined && port.endPort > port.port
    ? `${port.port}-${port.endPort}`
    : `${port.port}`;
  return `${port.proto} dport ${range}`;
}

function interfacePrefix(options: NftRuleOptions): string {
  return options.interface === null ? "" : `iifname "${options.interface}" `;
}

/** Returns the body of one per-knock accept rule, e.g. `ip saddr 192.0.2.2 tcp dport 22 accept comment "openme"`. */
export function buildNftAcceptRule(
  address: IpAddress,
  port: FirewallRulePort,
  options: NftRuleOptions,
): string {
  const saddr = address.family === 4 ? "ip saddr" : "ip6 saddr";
  return `${interfacePrefix(options)}${saddr} ${address.text} ${
    nftPortMatch(port)
  } accept comment "${RULE_COMMENT}"`;
}

/** Returns the body of the knock-port rule: `udp dport 54154 accept comment "openme-knock"`. */
export function buildNftKnockRule(
  knockPort: number,
  options: NftRuleOptions,
): string {
  return `${
    interfacePrefix(options)
  }udp dport ${knockPort} accept comment "${KNOCK_RULE_COMMENT}"`;
}

/** Returns the body of one drop rule: `tcp dport 22 drop comment "openme-drop"`. */
export function buildNftDropRule(
  port: FirewallRulePort,
  options: NftRuleOptions,
): string {
  return `${interfacePrefix(options)}${
    nftPortMatch(port)
  } drop comment "${DROP_RULE_COMMENT}"`;
}

/** Returns the `nft -f -` script that inserts the accept rules of one knock (one line per port). */
export function buildNftOpenScript(
  address: IpAddress,
  ports: FirewallRulePort[],
  options: NftRuleOptions,
): string {
  const lines = ports.map((port) =>
    `insert rule ${TABLE_REF} ${NFT_CHAIN} ${
      buildNftAcceptRule(address, port, options)
    }`
  );
  return lines.join("\n") + "\n";
}

/** Returns the `nft -f -` script that deletes rules of the openme chain by handle. */
export function buildNftDeleteScript(handles: string[]): string {
  const lines = handles.map((handle) =>
    `delete rule ${TABLE_REF} ${NFT_CHAIN} handle ${handle}`
  );
  return lines.join("\n") + "\n";
}

/** One rule line of nft's echo output (`nft -e`). */
export interface NftEchoRule {
  /** "add" or "insert". */
  verb: "add" | "insert";
  /** Chain the rule went into. */
  chain: string;
  /** Handle nft assigned. */
  handle: string;
  /** The whole echoed line. */
  text: string;
}

/** Reads the rule lines ending in `# handle N` from nft's echo output, in order. */
export function parseNftEchoRules(stdout: string): NftEchoRule[] {
  const rules: NftEchoRule[] = [];
  for (const rawLine of stdout.split("\n")) {
    const line = rawLine.trim();
    const match = ECHO_RULE_PATTERN.exec(line);
    if (match === null) continue;
    if (`${match[2]} ${match[3]}` !== TABLE_REF) continue;
    rules.push({
      verb: match[1] as "add" | "insert",
      chain: match[4],
      handle: match[5],
      text: line,
    });
  }
  return rules;
}

/** A chain of the listed table. */
export interface NftChainInfo {
  /** Chain name. */
  name: string;
  /** Hook of a base chain ("input"), or null for a regular chain. */
  hook: string | null;
}

/** A rule of the listed table. */
export interface NftRuleInfo {
  /** Chain the rule is in. */
  chain: string;
  /** Rule handle. */
  handle: string;
  /** Rule comment, or null. */
  comment: string | null;
  /** Chains this rule jumps or goes to. */
  jumpTargets: string[];
  /** The rule drops or rejects every packet (a verdict without any match, e.g. `counter drop`). */
  dropsEverything: boolean;
}

/** What `nft -t -j list table inet filter` reported. */
export interface NftTableListing {
  /** Chains of the table. */
  chains: NftChainInfo[];
  /** Rules of the table. */
  rules: NftRuleInfo[];
  /** Other objects in the table (sets, maps, ...), as "kind name". */
  otherObjects: string[];
  /** Handle of the table: a table deleted and created again (a ruleset reload) gets a new one. */
  tableHandle: string | null;
  /** Handle of the openme chain, or null when there is none. */
  openmeChainHandle: string | null;
}

/** The value as a plain object (an nft JSON listing entry), or null when it is not one. */
export function asRecord(value: unknown): Record<string, unknown> | null {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Record<string, unknown>
    : null;
}

function dropsEverything(expr: unknown): boolean {
  if (!Array.isArray(expr)) return false;
  let hasMatch = false;
  let dropOrReject = false;
  for (const statement of expr) {
    const record = asRecord(statement);
    if (record === null) continue;
    if ("match" in record) hasMatch = true;
    if ("drop" in record || "reject" in record) dropOrReject = true;
  }
  return dropOrReject && !hasMatch;
}

function jumpTargetsOf(expr: unknown): string[] {
  const targets: string[] = [];
  if (!Array.isArray(expr)) return targets;
  for (const statement of expr) {
    const record = asRecord(statement);
    if (record === null) continue;
    for (const verdict of ["jump", "goto"]) {
      const target = asRecord(record[verdict])?.target;
      if (typeof target === "string") targets.push(target);
    }
  }
  return targets;
}

/** Parses the JSON listing of table inet filter; throws FirewallError when it is not nft JSON. */
export function parseNftTableListing(json: string): NftTableListing {
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch (err) {
    throw new FirewallError(
      `firewall: could not parse the JSON of nft -j list table ${TABLE_REF}: ${
        err instanceof Error ? err.message : String(err)
      }; is nftables >= 0.9 installed?`,
      { tool: NFT_TOOL, args: ["-j", "list", "table", NFT_FAMILY, NFT_TABLE] },
    );
  }
  const items = asRecord(data)?.nftables;
  if (!Array.isArray(items)) {
    throw new FirewallError(
      `firewall: nft -j list table ${TABLE_REF} printed JSON without an "nftables" array; is nftables >= 0.9 installed?`,
      { tool: NFT_TOOL, args: ["-j", "list", "table", NFT_FAMILY, NFT_TABLE] },
    );
  }
  const listing: NftTableListing = {
    chains: [],
    rules: [],
    otherObjects: [],
    tableHandle: null,
    openmeChainHandle: null,
  };
  for (const item of items) {
    const record = asRecord(item);
    if (record === null) continue;
    for (const [kind, rawValue] of Object.entries(record)) {
      const value = asRecord(rawValue) ?? {};
      if (kind === "metainfo") continue;
      if (kind === "table") {
        if (value.handle !== undefined) {
          listing.tableHandle = String(value.handle);
        }
        continue;
      }
      if (kind === "chain") {
        listing.chains.push({
          name: String(value.name),
          hook: typeof value.hook === "string" ? value.hook : null,
        });
        if (value.name === NFT_CHAIN && value.handle !== undefined) {
          listing.openmeChainHandle = String(value.handle);
        }
      } else if (kind === "rule") {
        listing.rules.push({
          chain: String(value.chain),
          handle: String(value.handle),
          comment: typeof value.comment === "string" ? value.comment : null,
          jumpTargets: jumpTargetsOf(value.expr),
          dropsEverything: dropsEverything(value.expr),
        });
      } else {
        listing.otherObjects.push(`${kind} ${String(value.name ?? "")}`.trim());
      }
    }
  }
  return listing;
}

/** Options for {@linkcode planNftBase}. */
export interface NftBasePlanOptions {
  /** Delete per-knock rules (`comment "openme"`) left by a run that died (setup only). */
  removeStalePerKnock: boolean;
}

/** The transaction that sets up the table, chains, jump and base rules, and what it changes. */
export interface NftBasePlan {
  /** Script lines for `nft -e -a -f -`. */
  lines: string[];
  /** The table did not exist and the script creates it. */
  createsTable: boolean;
  /** The openme chain did not exist and the script creates it. */
  createsChain: boolean;
  /** The input chain did not exist and the script creates it (policy accept). */
  createsInput: boolean;
  /** No rule of the input chain jumped to openme and the script adds the jump. */
  addsJump: boolean;
  /** Handle of the catch-all drop/reject rule the new jump is inserted before, or null (appended). */
  jumpBeforeHandle: string | null;
  /** Existing jumps to openme tagged `openme-jump` (left by an earlier run): openme owns them. */
  taggedJumpHandles: string[];
  /** The input chain exists but is not a base chain (no hook). */
  inputWithoutHook: boolean;
  /** Rules the script deletes, as found in the listing. */
  deletes: NftRuleInfo[];
}

/** Plans the setup transaction from the current listing (null when the table does not exist). */
export function planNftBase(
  listing: NftTableListing | null,
  options: BaseRulesOptions,
  planOptions: NftBasePlanOptions,
): NftBasePlan {
  const plan: NftBasePlan = {
    lines: [],
    createsTable: false,
    createsChain: false,
    createsInput: false,
    addsJump: false,
    jumpBeforeHandle: null,
    taggedJumpHandles: [],
    inputWithoutHook: false,
    deletes: [],
  };
  const chains = listing?.chains ?? [];
  const rules = listing?.rules ?? [];
  if (listing === null) {
    plan.createsTable = true;
    plan.lines.push(`add table ${TABLE_REF}`);
  }
  if (!chains.some((chain) => chain.name === NFT_CHAIN)) {
    plan.createsChain = true;
    plan.lines.push(`add chain ${TABLE_REF} ${NFT_CHAIN}`);
  }
  const input = chains.find((chain) => chain.name === NFT_INPUT_CHAIN);
  if (input === undefined) {
    plan.createsInput = true;
    plan.lines.push(
      `add chain ${TABLE_REF} ${NFT_INPUT_CHAIN} { type filter hook input priority 0; policy accept; }`,
    );
  } else if (input.hook === null) {
    plan.inputWithoutHook = true;
  }
  const jumps = rules.filter((rule) =>
    rule.chain === NFT_INPUT_CHAIN && rule.jumpTargets.includes(NFT_CHAIN)
  );
  if (jumps.length === 0) {
    plan.addsJump = true;
    const jumpRule = `jump ${NFT_CHAIN} comment "${JUMP_RULE_COMMENT}"`;
    const catchAll = rules.find((rule) =>
      rule.chain === NFT_INPUT_CHAIN && rule.dropsEverything
    );
    if (catchAll === undefined) {
      plan.lines.push(`add rule ${TABLE_REF} ${NFT_INPUT_CHAIN} ${jumpRule}`);
    } else {
      plan.jumpBeforeHandle = catchAll.handle;
      plan.lines.push(
        `insert rule ${TABLE_REF} ${NFT_INPUT_CHAIN} position ${catchAll.handle} ${jumpRule}`,
      );
    }
  } else {
    for (const jump of jumps) {
      if (jump.comment === JUMP_RULE_COMMENT) {
        plan.taggedJumpHandles.push(jump.handle);
      }
    }
  }
  const deleteComments = planOptions.removeStalePerKnock
    ? OPENME_COMMENTS
    : [KNOCK_RULE_COMMENT, DROP_RULE_COMMENT];
  for (const rule of rules) {
    if (rule.chain !== NFT_CHAIN || rule.comment === null) continue;
    if (!deleteComments.includes(rule.comment)) continue;
    plan.deletes.push(rule);
    plan.lines.push(
      `delete rule ${TABLE_REF} ${NFT_CHAIN} handle ${rule.handle}`,
    );
  }
  const ruleOptions: NftRuleOptions = { interface: options.interface };
  if (options.openKnockPort) {
    plan.lines.push(
      `add rule ${TABLE_REF} ${NFT_CHAIN} ${
        buildNftKnockRule(options.knockPort, ruleOptions)
      }`,
    );
  }
  for (const port of options.dropPorts) {
    plan.lines.push(
      `add rule ${TABLE_REF} ${NFT_CHAIN} ${
        buildNftDropRule(port, ruleOptions)
      }`,
    );
  }
  return plan;
}

/**
 * Lists what the base rules lack in the current listing (null: no table):
 * table, chains, the jump to openme, the knock rule, the drop rules. Empty
 * when everything is in place.
 */
export function findMissingNftBase(
  listing: NftTableListing | null,
  options: BaseRulesOptions,
): string[] {
  if (listing === null) return [`table ${TABLE_REF}`];
  const missing: string[] = [];
  if (!listing.chains.some((chain) => chain.name === NFT_CHAIN)) {
    missing.push(`chain ${TABLE_REF} ${NFT_CHAIN}`);
  }
  if (!listing.chains.some((chain) => chain.name === NFT_INPUT_CHAIN)) {
    missing.push(`chain ${TABLE_REF} ${NFT_INPUT_CHAIN}`);
  }
  const jumps = listing.rules.filter((rule) =>
    rule.chain === NFT_INPUT_CHAIN && rule.jumpTargets.includes(NFT_CHAIN)
  );
  if (jumps.length === 0) {
    missing.push(`jump from ${NFT_INPUT_CHAIN} to ${NFT_CHAIN}`);
  }
  const countTagged = (comment: string): number =>
    listing.rules.filter((rule) =>
      rule.chain === NFT_CHAIN && rule.comment === comment
    ).length;
  if (countTagged(KNOCK_RULE_COMMENT) !== (options.openKnockPort ? 1 : 0)) {
    missing.push(`knock rule (udp/${options.knockPort})`);
  }
  if (countTagged(DROP_RULE_COMMENT) !== options.dropPorts.length) {
    missing.push(`drop rules (${options.dropPorts.length})`);
  }
  return missing;
}

/** What openme added to the table, as the teardown plan needs it. */
export interface NftOwnedState {
  /** Handles of per-knock rules still open. */
  openHandles: string[];
  /** Handles of jump rules openme added. */
  jumpHandles: string[];
  /** openme created the openme chain. */
  createdChain: boolean;
  /** openme created the input chain. */
  createdInput: boolean;
  /** openme created the table. */
  createdTable: boolean;
}

/** The teardown transaction and what it leaves behind. */
export interface NftTeardownPlan {
  /** Script lines for `nft -f -`: rule deletions, then chains, then the table. */
  lines: string[];
  /** The openme chain is kept although openme created it (something else is left in or points at it). */
  keepsCreatedChain: boolean;
  /** The input chain is kept although openme created it (the operator added rules to it). */
  keepsCreatedInput: boolean;
  /** The table is kept although openme created it (something else is left in it). */
  keepsCreatedTable: boolean;
}

/** Plans the teardown transaction: only rules, chains and the table openme added. */
export function planNftTeardown(
  listing: NftTableListing,
  owned: NftOwnedState,
): NftTeardownPlan {
  const plan: NftTeardownPlan = {
    lines: [],
    keepsCreatedChain: false,
    keepsCreatedInput: false,
    keepsCreatedTable: false,
  };
  const deleted = new Set<NftRuleInfo>();
  for (const rule of listing.rules) {
    if (rule.chain === NFT_CHAIN) {
      const tagged = rule.comment !== null &&
        OPENME_COMMENTS.includes(rule.comment);
      if (tagged || owned.openHandles.includes(rule.handle)) deleted.add(rule);
    } else if (
      rule.chain === NFT_INPUT_CHAIN && rule.jumpTargets.includes(NFT_CHAIN)
    ) {
      const ours = owned.jumpHandles.includes(rule.handle) ||
        rule.comment === JUMP_RULE_COMMENT;
      if (ours) deleted.add(rule);
    }
  }
  for (const rule of deleted) {
    plan.lines.push(
      `delete rule ${TABLE_REF} ${rule.chain} handle ${rule.handle}`,
    );
  }
  const remaining = listing.rules.filter((rule) => !deleted.has(rule));
  const deletedChains = new Set<string>();
  const hasChain = (name: string) =>
    listing.chains.some((chain) => chain.name === name);
  if (owned.createdChain && hasChain(NFT_CHAIN)) {
    const inUse = remaining.some((rule) =>
      rule.chain === NFT_CHAIN || rule.jumpTargets.includes(NFT_CHAIN)
    );
    if (inUse) {
      plan.keepsCreatedChain = true;
    } else {
      deletedChains.add(NFT_CHAIN);
      plan.lines.push(`delete chain ${TABLE_REF} ${NFT_CHAIN}`);
    }
  }
  if (owned.createdInput && hasChain(NFT_INPUT_CHAIN)) {
    if (remaining.some((rule) => rule.chain === NFT_INPUT_CHAIN)) {
      plan.keepsCreatedInput = true;
    } else {
      deletedChains.add(NFT_INPUT_CHAIN);
      plan.lines.push(`delete chain ${TABLE_REF} ${NFT_INPUT_CHAIN}`);
    }
  }
  if (owned.createdTable) {
    const chainsLeft = listing.chains.some((chain) =>
      !deletedChains.has(chain.name)
    );
    if (chainsLeft || listing.otherObjects.length > 0) {
      plan.keepsCreatedTable = true;
    } else {
      plan.lines.push(`delete table ${TABLE_REF}`);
    }
  }
  return plan;
}

/** The handle nft echoed for the table or the openme chain it created, or null. */
function echoedHandle(stdout: string, kind: "table" | "chain"): string | null {
  const prefix = kind === "table"
    ? `add table ${TABLE_REF} `
    : `add chain ${TABLE_REF} ${NFT_CHAIN} `;
  for (const rawLine of stdout.split("\n")) {
    const line = rawLine.trim();
    if (!line.startsWith(prefix)) continue;
    const match = /# handle ([0-9]+)$/.exec(line);
    if (match !== null) return match[1];
  }
  return null;
}

function isNoSuchObject(result: ToolResult): boolean {
  return result.error === null && !result.timedOut &&
    result.stderr.includes("No such file or directory");
}

function isBusy(result: ToolResult): boolean {
  return result.error === null && !result.timedOut &&
    result.stderr.includes("Device or resource busy");
}

/** nftables firewall backend. */
export class NftBackend implements FirewallBackend {
  /** Backend name. */
  readonly name = "nft";
  readonly #timeoutMs: number;
  readonly #netns: string | null;
  readonly #env: Record<string, string> | undefined;
  readonly #queue: OperationQueue;
  #options: BaseRulesOptions | null = null;
  #openHandles = new Set<string>();
  #jumpHandles = new Set<string>();
  #createdTable = false;
  #createdChain = false;
  #createdInput = false;
  /** Handles of the table and the openme chain when the per-knock handles were valid. */
  #tableHandle: string | null = null;
  #chainHandle: string | null = null;

  /** Creates the backend; nothing runs until setup(). */
  constructor(options: FirewallBackendOptions = {}) {
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS;
    this.#netns = options.netns
      ? validateNetnsName(options.netns, NFT_TOOL)
      : null;
    this.#env = options.env;
    this.#queue = new OperationQueue({
      name: NFT_TOOL,
      limit: options.maxQueuedOperations,
    });
  }

  /** Number of per-knock rules this backend added and has not removed. */
  get openRuleCount(): number {
    return this.#openHandles.size;
  }

  /** Ensures table, chains and jump exist, removes rules of a run that died, adds knock and drop rules. */
  setup(options: BaseRulesOptions): Promise<void> {
    return this.#queueApplyBase(options, true);
  }

  /** Replaces the knock and drop rules (and recreates table, chain and jump when they vanished). */
  updateBaseRules(options: BaseRulesOptions): Promise<void> {
    return this.#queueApplyBase(options, false);
  }

  /** Inserts one accept rule per port for the address in one atomic transaction. */
  open(address: IpAddress, ports: FirewallRulePort[]): Promise<OpenedRules> {
    let request: OpenRequest;
    try {
      request = validateOpenRequest(address, ports, { tool: NFT_TOOL });
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#queue.run(() => this.#open(request.address, request.ports));
  }

  /** Deletes the rules of one knock by handle; rules already gone are ignored. */
  close(rules: OpenedRules): Promise<void> {
    for (const handle of rules.handles) {
      if (!HANDLE_PATTERN.test(handle)) {
        return Promise.reject(
          invalidRuleHandleError(rules, handle, {
            backend: "nft",
            tool: NFT_TOOL,
          }),
        );
      }
    }
    return this.#queue.run(() => this.#close(rules));
  }

  /**
   * Lists the table once: puts back table, chains, jump, knock and drop
   * rules when an operator's reload removed them, and reports the rule sets
   * whose handles are gone (all of them when the table or chain was created
   * again, as handles then start over).
   */
  ensureBaseRules(open: OpenedRules[]): Promise<BaseRulesCheck> {
    return this.#queue.run(() => this.#ensureBaseRules(open));
  }

  /** Removes every rule openme added, the jump it added and the chains and table it created, in one transaction. */
  teardown(): Promise<void> {
    return this.#queue.run(() => this.#teardown());
  }

  /** Validates the options and queues setting up (or updating) the base rules. */
  #queueApplyBase(options: BaseRulesOptions, isSetup: boolean): Promise<void> {
    let validated: BaseRulesOptions;
    try {
      validated = validateBaseRulesOptions(options, NFT_TOOL);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#queue.run(() => this.#applyBase(validated, isSetup));
  }

  #run(args: string[], stdin?: string): Promise<ToolResult> {
    return runFirewallTool(NFT_TOOL, args, {
      netns: this.#netns,
      stdin,
      timeoutMs: this.#timeoutMs,
      env: this.#env,
    });
  }

  async #listTable(): Promise<NftTableListing | null> {
    let result = await this.#run([
      "-t",
      "-j",
      "list",
      "table",
      NFT_FAMILY,
      NFT_TABLE,
    ]);
    if (
      !result.success &&
      /unrecognized option|invalid option/i.test(result.stderr)
    ) {
      // nft before 0.9.1 has no --terse; the listing then includes set elements.
      result = await this.#run(["-j", "list", "table", NFT_FAMILY, NFT_TABLE]);
    }
    if (result.success) return parseNftTableListing(result.stdout);
    if (isNoSuchObject(result)) return null;
    throw firewallErrorFromResult(result, {
      hint: NFT_HINT,
      action: `listing table ${TABLE_REF}`,
    });
  }

  async #applyBase(
    options: BaseRulesOptions,
    isSetup: boolean,
    known?: NftTableListing | null,
  ): Promise<void> {
    const listing = known !== undefined ? known : await this.#listTable();
    const plan = planNftBase(listing, options, {
      removeStalePerKnock: isSetup,
    });
    let echoed = "";
    if (plan.lines.length > 0) {
      const result = await this.#run(
        ["-e", "-a", "-f", "-"],
        plan.lines.join("\n") + "\n",
      );
      if (!result.success) {
        throw firewallErrorFromResult(result, {
          hint: NFT_HINT,
          action: `setting up chain ${NFT_CHAIN} in table ${TABLE_REF}`,
        });
      }
      echoed = result.stdout;
      const echoedRules = parseNftEchoRules(result.stdout);
      if (plan.addsJump) {
        const jump = echoedRules.find((rule) => rule.chain === NFT_INPUT_CHAIN);
        // Without an echoed handle teardown still finds the jump by its comment.
        if (jump !== undefined) this.#jumpHandles.add(jump.handle);
      }
    }
    if (isSetup || plan.createsTable || plan.createsChain) {
      // Per-knock rules are gone (removed as stale, or their chain vanished).
      if (this.#openHandles.size > 0) {
        log.warn(
          `firewall: ${this.#openHandles.size} per-knock nft rules were removed or lost; their sessions no longer have rules`,
        );
      }
      this.#openHandles.clear();
    }
    for (const handle of plan.taggedJumpHandles) this.#jumpHandles.add(handle);
    if (plan.createsTable) this.#createdTable = true;
    if (plan.createsChain) this.#createdChain = true;
    if (isSetup && plan.taggedJumpHandles.length > 0) {
      // A jump tagged openme-jump was added by an earlier run that died, so
      // that run set up the chain too: remove it at teardown (when nothing
      // else is left in it), as that run would have.
      this.#createdChain = true;
    }
    if (plan.createsInput) {
      this.#createdInput = true;
      log.warn(
        `firewall: table ${TABLE_REF} had no chain ${NFT_INPUT_CHAIN}; created it with policy accept. ` +
          "openme works but protects nothing until you add a default-deny policy (see the hardening section of the README)",
      );
    }
    if (plan.jumpBeforeHandle !== null) {
      log.info(
        `firewall: added the jump to ${NFT_CHAIN} before the catch-all drop/reject rule (handle ${plan.jumpBeforeHandle}) of ${TABLE_REF} ${NFT_INPUT_CHAIN}`,
      );
    }
    if (plan.inputWithoutHook) {
      log.warn(
        `firewall: chain ${TABLE_REF} ${NFT_INPUT_CHAIN} is not a base chain (no hook); ` +
          `the jump to ${NFT_CHAIN} only takes effect if traffic reaches that chain`,
      );
    }
    const stale =
      plan.deletes.filter((rule) => rule.comment === RULE_COMMENT).length;
    if (stale > 0) {
      log.warn(
        `firewall: removed ${stale} stale per-knock nft rules left by an earlier run`,
      );
    }
    log.info(
      `firewall: nft chain ${TABLE_REF} ${NFT_CHAIN} ready (${
        describeBaseRules(options)
      })`,
    );
    this.#options = options;
    // Handles are only valid for this table and chain: remember which ones
    // (the echo names the handles of what the transaction created).
    this.#tableHandle = plan.createsTable
      ? echoedHandle(echoed, "table")
      : listing?.tableHandle ?? null;
    this.#chainHandle = plan.createsChain
      ? echoedHandle(echoed, "chain")
      : listing?.openmeChainHandle ?? null;
  }

  async #ensureBaseRules(open: OpenedRules[]): Promise<BaseRulesCheck> {
    const options = this.#options;
    if (options === null) {
      // Not set up (or torn down): nothing of ours should be there.
      return { repaired: [], lost: [] };
    }
    const listing = await this.#listTable();
    // An unknown generation (an nft that echoed no table or chain handle) is
    // adopted; the handles are then checked one by one.
    const sameChain = listing !== null &&
      (this.#tableHandle === null ||
        listing.tableHandle === this.#tableHandle &&
          listing.openmeChainHandle === this.#chainHandle);
    const live = new Set<string>();
    if (sameChain) {
      for (const rule of listing.rules) {
        if (rule.chain === NFT_CHAIN && rule.comment === RULE_COMMENT) {
          live.add(rule.handle);
        }
      }
    } else {
      // The table or the chain was deleted and created again: every handle
      // we hold is stale and may now name someone else's rule.
      this.#jumpHandles.clear();
      this.#createdTable = false;
      this.#createdChain = false;
      this.#createdInput = false;
    }
    for (const handle of [...this.#openHandles]) {
      if (!live.has(handle)) this.#openHandles.delete(handle);
    }
    const lost = open.filter((rules) =>
      rules.handles.some((handle) => !live.has(handle))
    );
    const missing = findMissingNftBase(listing, options);
    if (missing.length > 0) {
      await this.#applyBase(options, false, listing);
    } else if (!sameChain) {
      this.#tableHandle = listing?.tableHandle ?? null;
      this.#chainHandle = listing?.openmeChainHandle ?? null;
    }
    return { repaired: missing, lost };
  }

  async #open(
    address: IpAddress,
    ports: FirewallRulePort[],
  ): Promise<OpenedRules> {
    const options = this.#options;
    if (options === null) {
      throw new FirewallError(
        `firewall: nft backend is not set up; call setup() before opening ports for ${address.text}`,
        { tool: NFT_TOOL, args: [] },
      );
    }
    if (ports.length === 0) return { address, ports: [], handles: [] };
    const script = buildNftOpenScript(address, ports, {
      interface: options.interface,
    });
    const args = ["-e", "-a", "-f", "-"];
    let result = await this.#run(args, script);
    if (!result.success && isNoSuchObject(result)) {
      log.warn(
        `firewall: chain ${TABLE_REF} ${NFT_CHAIN} is missing (ruleset reloaded?); recreating it and the base rules`,
      );
      await this.#applyBase(options, false);
      result = await this.#run(args, script);
    }
    const action = `opening ${describeRulePorts(ports)} for ${address.text}`;
    if (!result.success) {
      throw firewallErrorFromResult(result, { hint: NFT_HINT, action });
    }
    const handles = parseNftEchoRules(result.stdout)
      .filter((rule) => rule.chain === NFT_CHAIN)
      .map((rule) => rule.handle);
    if (handles.length !== ports.length) {
      await this.#deleteHandles(handles);
      throw new FirewallError(
        `firewall: ${action}: nft echoed ${handles.length} rule handles for ${ports.length} rules; ` +
          "removed the ones it reported. Does this nft support --echo (nftables >= 0.9)?",
        { tool: NFT_TOOL, args, stderr: result.stderr, exitCode: result.code },
      );
    }
    for (const handle of handles) this.#openHandles.add(handle);
    log.debug(
      `firewall: opened ${
        describeRulePorts(ports)
      } for ${address.text} (nft handles ${handles.join(" ")})`,
    );
    return { address, ports, handles };
  }

  async #close(rules: OpenedRules): Promise<void> {
    const live = rules.handles.filter((handle) =>
      this.#openHandles.has(handle)
    );
    if (live.length < rules.handles.length) {
      log.debug(
        `firewall: ${
          rules.handles.length - live.length
        } nft handles for ${rules.address.text} ` +
          "are not open (already closed or removed by setup); skipping them",
      );
    }
    if (live.length === 0) return;
    await this.#deleteHandles(live);
    log.debug(
      `firewall: closed ${
        describeRulePorts(rules.ports)
      } for ${rules.address.text}`,
    );
  }

  /** Deletes handles in one transaction, then one by one if that fails; missing rules are fine. */
  async #deleteHandles(handles: string[]): Promise<void> {
    if (handles.length === 0) return;
    const result = await this.#run(["-f", "-"], buildNftDeleteScript(handles));
    if (result.success) {
      for (const handle of handles) this.#openHandles.delete(handle);
      return;
    }
    let firstError: FirewallError | null = null;
    for (const handle of handles) {
      const one = await this.#run(["-f", "-"], buildNftDeleteScript([handle]));
      if (one.success || isNoSuchObject(one)) {
        if (!one.success) {
          log.debug(`firewall: nft rule handle ${handle} was already gone`);
        }
        this.#openHandles.delete(handle);
        continue;
      }
      firstError ??= firewallErrorFromResult(one, {
        hint: NFT_HINT,
        action: `deleting rule handle ${handle} from chain ${NFT_CHAIN}`,
      });
    }
    if (firstError !== null) throw firstError;
  }

  #forgetOwnedState(): void {
    this.#options = null;
    this.#tableHandle = null;
    this.#chainHandle = null;
    this.#openHandles.clear();
    this.#jumpHandles.clear();
    this.#createdChain = false;
    this.#createdInput = false;
    this.#createdTable = false;
  }

  async #teardown(): Promise<void> {
    const owned: NftOwnedState = {
      openHandles: [...this.#openHandles],
      jumpHandles: [...this.#jumpHandles],
      createdChain: this.#createdChain,
      createdInput: this.#createdInput,
      createdTable: this.#createdTable,
    };
    // A listing failure keeps the state, so a second teardown() can retry.
    const listing = await this.#listTable();
    this.#forgetOwnedState();
    if (listing === null) {
      log.info(`firewall: table ${TABLE_REF} is gone; nothing to remove`);
      return;
    }
    const plan = planNftTeardown(listing, owned);
    if (plan.keepsCreatedChain) {
      log.warn(
        `firewall: kept chain ${TABLE_REF} ${NFT_CHAIN}: other rules are in it or jump to it`,
      );
    }
    if (plan.keepsCreatedInput) {
      log.warn(
        `firewall: kept chain ${TABLE_REF} ${NFT_INPUT_CHAIN} (created by openme): it has other rules now`,
      );
    }
    if (plan.keepsCreatedTable) {
      log.info(
        `firewall: kept table ${TABLE_REF} (created by openme): it has other content now`,
      );
    }
    if (plan.lines.length === 0) return;
    const result = await this.#run(["-f", "-"], plan.lines.join("\n") + "\n");
    if (result.success) {
      log.info(
        `firewall: removed openme's nft rules (${plan.lines.length} objects)`,
      );
      return;
    }
    // Something changed under us: remove what is left one object at a time.
    let firstError: FirewallError | null = null;
    for (const line of plan.lines) {
      const one = await this.#run(["-f", "-"], line + "\n");
      if (one.success || isNoSuchObject(one)) continue;
      if (isBusy(one)) {
        log.warn(
          `firewall: kept ${line.replace(/^delete /, "")}: still in use`,
        );
        continue;
      }
      firstError ??= firewallErrorFromResult(one, {
        hint: NFT_HINT,
        action: "removing openme's rules",
      });
    }
    if (firstError !== null) throw firstError;
  }
}
