/**
 * iptables backend (SPEC §9). IPv4 rules go through `iptables`, IPv6 rules
 * through `ip6tables`, always with `-w` (wait for the xtables lock):
 *
 * - per knock, one rule per port inserted at the top of INPUT:
 *   `-I INPUT [-i IF] -s A -p tcp --dport 22 -j ACCEPT -m comment --comment openme`
 *   (`--dport lo:hi` for ranges), removed with `-D INPUT` and the same spec;
 * - knock port, in both families, inserted at the top:
 *   `-I INPUT [-i IF] -p udp --dport P -j ACCEPT -m comment --comment openme-knock`;
 * - drop rules, in both families, appended at the end (after every per-knock
 *   accept): `-A INPUT [-i IF] -p tcp --dport P -j DROP -m comment --comment openme-drop`.
 *
 * setup() first deletes every INPUT rule carrying one of the three comments
 * (left by a run that died), found in `-S INPUT` output and deleted with `-D`
 * and the listed spec. Such bulk deletions (setup, teardown) go through one
 * `iptables-restore --noflush -w` per family (a `*filter` block of `-D INPUT`
 * lines and `COMMIT`), falling back to one `-D` per rule when that fails.
 * When ip6tables is missing or fails during setup, the backend logs a
 * warning and serves IPv4 only; IPv6 knocks then fail with a FirewallError
 * that says why.
 *
 * @module
 */

import { type IpAddress, parseIp } from "../ip.ts";
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

/** The two iptables tools, one per address family. */
export type IptablesTool = "iptables" | "ip6tables";
/** Both tools, IPv4 first. */
export const IPTABLES_TOOLS: readonly IptablesTool[] = [
  "iptables",
  "ip6tables",
];
/** The bulk tools, one per address family: `iptables-restore`, `ip6tables-restore`. */
export const IPTABLES_RESTORE_TOOLS: Readonly<Record<IptablesTool, string>> = {
  iptables: "iptables-restore",
  ip6tables: "ip6tables-restore",
};
/** The chain openme's rules go in. */
export const IPTABLES_CHAIN = "INPUT";
/** What to check when an iptables command fails. */
export const IPTABLES_HINT =
  "is iptables installed and are you root (CAP_NET_ADMIN)?";

const ALL_COMMENTS: readonly string[] = [
  RULE_COMMENT,
  KNOCK_RULE_COMMENT,
  DROP_RULE_COMMENT,
];
const BASE_COMMENTS: readonly string[] = [
  KNOCK_RULE_COMMENT,
  DROP_RULE_COMMENT,
];
const HANDLE_PATTERN = /^[A-Za-z0-9_.:@/ -]{1,300}$/;
const HANDLE_SUFFIX = ` -m comment --comment ${RULE_COMMENT}`;
const RULE_GONE_PATTERN = /does a matching rule exist/;

/** Options for building iptables rule specs. */
export interface IptablesRuleOptions {
  /** Input interface the rule matches, or null. Must already be validated. */
  interface: string | null;
}

/** Returns the tool for an address: `iptables` for IPv4, `ip6tables` for IPv6. */
export function iptablesToolFor(address: IpAddress): IptablesTool {
  return address.family === 4 ? "iptables" : "ip6tables";
}

/** Returns the protocol and port arguments: `-p tcp --dport 22` or `-p tcp --dport 8080:8090`. */
export function iptablesPortArgs(port: FirewallRulePort): string[] {
  const range = port.endPort !== undefined && port.endPort > port.port
    ? `${port.port}:${port.endPort}`
    : `${port.port}`;
  return ["-p", port.proto, "--dport", range];
}

function interfaceArgs(options: IptablesRuleOptions): string[] {
  return options.interface === null ? [] : ["-i", options.interface];
}

/** Returns the spec (after `-I INPUT` / `-D INPUT`) of one per-knock accept rule. */
export function buildIptablesAcceptSpec(
  address: IpAddress,
  port: FirewallRulePort,
  options: IptablesRuleOptions,
): string[] {
  return [
    ...interfaceArgs(options),
    "-s",
    address.text,
    ...iptablesPortArgs(port),
    "-j",
    "ACCEPT",
    "-m",
    "comment",
    "--comment",
    RULE_COMMENT,
  ];
}

/** Returns the spec of the knock-port accept rule. */
export function buildIptablesKnockSpec(
  knockPort: number,
  options: IptablesRuleOptions,
): string[] {
  return [
    ...interfaceArgs(options),
    ...iptablesPortArgs({ port: knockPort, proto: "udp" }),
    "-j",
    "ACCEPT",
    "-m",
    "comment",
    "--comment",
    KNOCK_RULE_COMMENT,
  ];
}

/** Returns the spec of one drop rule. */
export function buildIptablesDropSpec(
  port: FirewallRulePort,
  options: IptablesRuleOptions,
): string[] {
  return [
    ...interfaceArgs(options),
    ...iptablesPortArgs(port),
    "-j",
    "DROP",
    "-m",
    "comment",
    "--comment",
    DROP_RULE_COMMENT,
  ];
}

/** Returns the full argument array: `-w ACTION INPUT ...spec`. */
export function iptablesArgs(
  action: "-I" | "-A" | "-D",
  spec: string[],
): string[] {
  return ["-w", action, IPTABLES_CHAIN, ...spec];
}

/** Splits one line of `iptables -S` output into arguments, honouring double quotes and backslashes. */
export function splitIptablesLine(line: string): string[] {
  const tokens: string[] = [];
  let current = "";
  let inToken = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === "\\" && i + 1 < line.length) {
        current += line[++i];
      } else if (ch === '"') {
        quoted = false;
      } else {
        current += ch;
      }
    } else if (ch === '"') {
      quoted = true;
      inToken = true;
    } else if (ch === " " || ch === "\t") {
      if (inToken) tokens.push(current);
      current = "";
      inToken = false;
    } else {
      current += ch;
      inToken = true;
    }
  }
  if (inToken) tokens.push(current);
  return tokens;
}

/** An INPUT rule found in `iptables -S INPUT` output. */
export interface IptablesListedRule {
  /** The rule's comment. */
  comment: string;
  /** The spec after `-A INPUT`, ready for `-D INPUT`. */
  spec: string[];
  /** The listed line. */
  line: string;
}

/** Options for {@linkcode parseIptablesRules}. */
export interface ParseIptablesRulesOptions {
  /** Comments to select, compared exactly (`openme` does not select `openme-knock`). */
  comments: readonly string[];
}

/** Finds the INPUT rules whose comment is exactly one of the given comments in `-S INPUT` output. */
export function parseIptablesRules(
  output: string,
  options: ParseIptablesRulesOptions,
): IptablesListedRule[] {
  const found: IptablesListedRule[] = [];
  for (const rawLine of output.split("\n")) {
    const line = rawLine.trim();
    const tokens = splitIptablesLine(line);
    if (
      tokens.length < 3 || tokens[0] !== "-A" || tokens[1] !== IPTABLES_CHAIN
    ) continue;
    const at = tokens.indexOf("--comment");
    if (at < 0 || at + 1 >= tokens.length) continue;
    const comment = tokens[at + 1];
    if (!options.comments.includes(comment)) continue;
    found.push({ comment, spec: tokens.slice(2), line });
  }
  return found;
}

/** Returns the `iptables-restore --noflush` input that deletes the listed rules in one commit. */
export function buildIptablesRestoreDeleteScript(
  rules: IptablesListedRule[],
): string {
  const lines = ["*filter"];
  for (const rule of rules) {
    lines.push(
      ["-D", IPTABLES_CHAIN, ...rule.spec].map(quoteRestoreArg).join(" "),
    );
  }
  lines.push("COMMIT");
  return lines.join("\n") + "\n";
}

function quoteRestoreArg(arg: string): string {
  if (/^[A-Za-z0-9_.:@/,!+=-]+$/.test(arg)) return arg;
  return `"${arg.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

/**
 * Reduces a rule spec (ours, or one from `-S` output) to what identifies it:
 * interface, source address (without /32 or /128), protocol, port, target
 * and comment; `-m tcp`/`-m comment` and the option order do not matter.
 */
export function iptablesRuleKey(spec: string[]): string {
  const fields: Record<string, string> = {};
  const extra: string[] = [];
  for (let i = 0; i < spec.length; i++) {
    const option = spec[i];
    const value = spec[i + 1];
    if (option === "-m" || option === "--match") {
      i++;
      continue;
    }
    const name = ({
      "-i": "in",
      "--in-interface": "in",
      "-s": "src",
      "--source": "src",
      "-p": "proto",
      "--protocol": "proto",
      "--dport": "dport",
      "--destination-port": "dport",
      "-j": "target",
      "--jump": "target",
      "--comment": "comment",
    } as Record<string, string | undefined>)[option];
    if (name === undefined || value === undefined) {
      extra.push(option);
      continue;
    }
    i++;
    if (name === "src") {
      const bare = value.replace(/\/(32|128)$/, "");
      fields.src = parseIp(bare)?.text ?? value;
    } else {
      fields[name] = value;
    }
  }
  return [
    `in=${fields.in ?? ""}`,
    `src=${fields.src ?? ""}`,
    `proto=${fields.proto ?? ""}`,
    `dport=${fields.dport ?? ""}`,
    `target=${fields.target ?? ""}`,
    `comment=${fields.comment ?? ""}`,
    ...extra,
  ].join(" ");
}

function isRuleGone(result: ToolResult): boolean {
  return result.error === null && !result.timedOut &&
    RULE_GONE_PATTERN.test(result.stderr);
}

/** iptables/ip6tables firewall backend. */
export class IptablesBackend implements FirewallBackend {
  /** Backend name. */
  readonly name = "iptables";
  readonly #timeoutMs: number;
  readonly #netns: string | null;
  readonly #env: Record<string, string> | undefined;
  readonly #queue: OperationQueue;
  #options: BaseRulesOptions | null = null;
  #ipv6Problem: string | null = null;

  /** Creates the backend; nothing runs until setup(). */
  constructor(options: FirewallBackendOptions = {}) {
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS;
    this.#netns = options.netns
      ? validateNetnsName(options.netns, "iptables")
      : null;
    this.#env = options.env;
    this.#queue = new OperationQueue({
      name: "iptables",
      limit: options.maxQueuedOperations,
    });
  }

  /** Why IPv6 rules cannot be managed (ip6tables missing or failing at setup), or null. */
  get ipv6Problem(): string | null {
    return this.#ipv6Problem;
  }

  /** Removes rules of a run that died and adds knock and drop rules in both families. */
  setup(options: BaseRulesOptions): Promise<void> {
    return this.#queueBase(options, true);
  }

  /** Replaces the knock and drop rules in both families. */
  updateBaseRules(options: BaseRulesOptions): Promise<void> {
    return this.#queueBase(options, false);
  }

  /** Inserts one accept rule per port for the address; removes the added ones again if any fails. */
  open(address: IpAddress, ports: FirewallRulePort[]): Promise<OpenedRules> {
    let request: OpenRequest;
    try {
      request = validateOpenRequest(address, ports, {
        tool: iptablesToolFor(address),
      });
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#queue.run(() => this.#open(request.address, request.ports));
  }

  /** Deletes the rules of one knock with `-D`; rules already gone are ignored. */
  close(rules: OpenedRules): Promise<void> {
    for (const handle of rules.handles) {
      if (!HANDLE_PATTERN.test(handle) || !handle.endsWith(HANDLE_SUFFIX)) {
        return Promise.reject(
          invalidRuleHandleError(rules, handle, {
            backend: "iptables",
            tool: iptablesToolFor(rules.address),
          }),
        );
      }
    }
    return this.#queue.run(() => this.#close(rules));
  }

  /**
   * Lists INPUT once per family: puts back the knock and drop rules when an
   * operator's reload (`iptables -F`, a restore) removed them, and reports
   * the rule sets of which a rule is gone.
   */
  ensureBaseRules(open: OpenedRules[]): Promise<BaseRulesCheck> {
    return this.#queue.run(() => this.#ensureBaseRules(open));
  }

  /** Removes every INPUT rule tagged openme, openme-knock or openme-drop in both families (one restore per family). */
  teardown(): Promise<void> {
    return this.#queue.run(() => this.#teardown());
  }

  /** Validates the options and queues setting up (or updating) the knock and drop rules. */
  #queueBase(options: BaseRulesOptions, isSetup: boolean): Promise<void> {
    let validated: BaseRulesOptions;
    try {
      validated = validateBaseRulesOptions(options, "iptables");
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#queue.run(() =>
      isSetup ? this.#setup(validated) : this.#updateBaseRules(validated)
    );
  }

  #run(
    tool: IptablesTool | string,
    args: string[],
    stdin?: string,
  ): Promise<ToolResult> {
    return runFirewallTool(tool, args, {
      netns: this.#netns,
      stdin,
      timeoutMs: this.#timeoutMs,
      env: this.#env,
    });
  }

  /** Lists INPUT of one family (`-S INPUT`). */
  async #listInput(tool: IptablesTool): Promise<string> {
    const listed = await this.#run(tool, ["-w", "-S", IPTABLES_CHAIN]);
    if (!listed.success) {
      throw firewallErrorFromResult(listed, {
        hint: IPTABLES_HINT,
        action: `listing chain ${IPTABLES_CHAIN}`,
      });
    }
    return listed.stdout;
  }

  /** Deletes listed rules: one `iptables-restore --noflush` commit, or one `-D` each when that fails. */
  async #deleteListed(
    tool: IptablesTool,
    rules: IptablesListedRule[],
  ): Promise<void> {
    if (rules.length === 0) return;
    if (rules.length > 1) {
      const restore = IPTABLES_RESTORE_TOOLS[tool];
      const result = await this.#run(
        restore,
        ["--noflush", "-w"],
        buildIptablesRestoreDeleteScript(rules),
      );
      if (result.success) return;
      const why = result.error ??
        (result.timedOut
          ? `did not finish within ${result.timeoutMs} ms`
          : result.stderr.trim().split("\n")[0]);
      log.debug(
        `firewall: ${restore} --noflush could not delete ${rules.length} rules (${why}); deleting them one by one`,
      );
    }
    for (const rule of rules) {
      const result = await this.#run(tool, iptablesArgs("-D", rule.spec));
      if (!result.success && !isRuleGone(result)) {
        throw firewallErrorFromResult(result, {
          hint: IPTABLES_HINT,
          action: `removing rule "${rule.line}"`,
        });
      }
    }
  }

  async #runOrThrow(
    tool: IptablesTool,
    args: string[],
    action: string,
  ): Promise<void> {
    const result = await this.#run(tool, args);
    if (!result.success) {
      throw firewallErrorFromResult(result, { hint: IPTABLES_HINT, action });
    }
  }

  /** Deletes every INPUT rule with one of the comments; returns how many per-knock rules were among them. */
  async #removeTagged(
    tool: IptablesTool,
    comments: readonly string[],
  ): Promise<number> {
    const rules = parseIptablesRules(await this.#listInput(tool), {
      comments,
    });
    await this.#deleteListed(tool, rules);
    return rules.filter((rule) => rule.comment === RULE_COMMENT).length;
  }

  async #addBase(tool: IptablesTool, options: BaseRulesOptions): Promise<void> {
    const ruleOptions: IptablesRuleOptions = { interface: options.interface };
    if (options.openKnockPort) {
      await this.#runOrThrow(
        tool,
        iptablesArgs(
          "-I",
          buildIptablesKnockSpec(options.knockPort, ruleOptions),
        ),
        `opening knock port ${options.knockPort}/udp`,
      );
    }
    for (const port of options.dropPorts) {
      await this.#runOrThrow(
        tool,
        iptablesArgs("-A", buildIptablesDropSpec(port, ruleOptions)),
        `adding drop rule for ${describeRulePorts([port])}`,
      );
    }
  }

  async #setup(options: BaseRulesOptions): Promise<void> {
    for (const tool of IPTABLES_TOOLS) {
      try {
        const stale = await this.#removeTagged(tool, ALL_COMMENTS);
        if (stale > 0) {
          log.warn(
            `firewall: removed ${stale} stale per-knock ${tool} rules left by an earlier run`,
          );
        }
        await this.#addBase(tool, options);
        if (tool === "ip6tables") this.#ipv6Problem = null;
      } catch (err) {
        if (tool === "iptables") throw err;
        this.#ipv6Problem = err instanceof Error ? err.message : String(err);
        log.warn(
          `firewall: ip6tables is not usable, serving IPv4 only (IPv6 knocks will fail): ${this.#ipv6Problem}`,
        );
      }
    }
    const families = this.#ipv6Problem === null ? "IPv4 and IPv6" : "IPv4 only";
    log.info(
      `firewall: iptables rules ready (${
        describeBaseRules(options)
      }, ${families})`,
    );
    this.#options = options;
  }

  async #updateBaseRules(options: BaseRulesOptions): Promise<void> {
    for (const tool of IPTABLES_TOOLS) {
      if (tool === "ip6tables" && this.#ipv6Problem !== null) continue;
      await this.#removeTagged(tool, BASE_COMMENTS);
      await this.#addBase(tool, options);
    }
    log.info("firewall: iptables knock and drop rules updated");
    this.#options = options;
  }

  async #ensureBaseRules(open: OpenedRules[]): Promise<BaseRulesCheck> {
    const options = this.#options;
    if (options === null) return { repaired: [], lost: [] };
    const ruleOptions: IptablesRuleOptions = { interface: options.interface };
    const expected: string[][] = [];
    if (options.openKnockPort) {
      expected.push(buildIptablesKnockSpec(options.knockPort, ruleOptions));
    }
    for (const port of options.dropPorts) {
      expected.push(buildIptablesDropSpec(port, ruleOptions));
    }
    const repaired: string[] = [];
    const lost: OpenedRules[] = [];
    for (const tool of IPTABLES_TOOLS) {
      const sets = open.filter((rules) =>
        iptablesToolFor(rules.address) === tool
      );
      if (tool === "ip6tables" && this.#ipv6Problem !== null) {
        lost.push(...sets);
        continue;
      }
      const present = new Set(
        parseIptablesRules(await this.#listInput(tool), {
          comments: ALL_COMMENTS,
        }).map((rule) => iptablesRuleKey(rule.spec)),
      );
      const missing = expected.filter((spec) =>
        !present.has(iptablesRuleKey(spec))
      );
      if (missing.length > 0) {
        await this.#removeTagged(tool, BASE_COMMENTS);
        await this.#addBase(tool, options);
        repaired.push(`knock and drop rules (${tool})`);
      }
      for (const rules of sets) {
        const gone = rules.handles.some((handle) =>
          !present.has(iptablesRuleKey(handle.split(" ")))
        );
        if (gone) lost.push(rules);
      }
    }
    return { repaired, lost };
  }

  async #open(
    address: IpAddress,
    ports: FirewallRulePort[],
  ): Promise<OpenedRules> {
    const options = this.#options;
    const tool = iptablesToolFor(address);
    if (options === null) {
      throw new FirewallError(
        `firewall: iptables backend is not set up; call setup() before opening ports for ${address.text}`,
        { tool, args: [] },
      );
    }
    const action = `opening ${describeRulePorts(ports)} for ${address.text}`;
    if (tool === "ip6tables" && this.#ipv6Problem !== null) {
      throw new FirewallError(
        `firewall: ${action}: ip6tables was not usable at setup (${this.#ipv6Problem}); ` +
          "install ip6tables (or use the nft backend) and restart openme",
        { tool, args: [] },
      );
    }
    const added: string[][] = [];
    for (const port of ports) {
      const spec = buildIptablesAcceptSpec(address, port, {
        interface: options.interface,
      });
      const result = await this.#run(tool, iptablesArgs("-I", spec));
      if (!result.success) {
        await this.#deleteSpecs(tool, added);
        throw firewallErrorFromResult(result, { hint: IPTABLES_HINT, action });
      }
      added.push(spec);
    }
    log.debug(
      `firewall: opened ${
        describeRulePorts(ports)
      } for ${address.text} (${tool})`,
    );
    return { address, ports, handles: added.map((spec) => spec.join(" ")) };
  }

  /** Deletes rules by spec; rules already gone are fine; throws the first other failure after trying all. */
  async #deleteSpecs(tool: IptablesTool, specs: string[][]): Promise<void> {
    let firstError: FirewallError | null = null;
    for (const spec of specs) {
      const result = await this.#run(tool, iptablesArgs("-D", spec));
      if (result.success) continue;
      if (isRuleGone(result)) {
        log.debug(
          `firewall: ${tool} rule "${spec.join(" ")}" was already gone`,
        );
        continue;
      }
      firstError ??= firewallErrorFromResult(result, {
        hint: IPTABLES_HINT,
        action: `removing rule "${spec.join(" ")}"`,
      });
    }
    if (firstError !== null) throw firstError;
  }

  async #close(rules: OpenedRules): Promise<void> {
    const tool = iptablesToolFor(rules.address);
    await this.#deleteSpecs(
      tool,
      rules.handles.map((handle) => handle.split(" ")),
    );
    log.debug(
      `firewall: closed ${
        describeRulePorts(rules.ports)
      } for ${rules.address.text} (${tool})`,
    );
  }

  async #teardown(): Promise<void> {
    const ipv6Problem = this.#ipv6Problem;
    this.#options = null;
    let firstError: unknown = null;
    for (const tool of IPTABLES_TOOLS) {
      try {
        await this.#removeTagged(tool, ALL_COMMENTS);
      } catch (err) {
        if (tool === "ip6tables" && ipv6Problem !== null) {
          log.debug(
            `firewall: ip6tables cleanup skipped: ${
              err instanceof Error ? err.message : String(err)
            }`,
          );
          continue;
        }
        firstError ??= err;
      }
    }
    if (firstError !== null) throw firstError;
    log.info("firewall: removed openme's iptables rules");
  }
}
