/**
 * iptables backend (SPEC §9): `iptables` for IPv4, `ip6tables` for IPv6, with
 * the base rules of each family in one `iptables-restore --noflush` commit.
 *
 * @module
 */

import { type IpAddress, parseIp } from "../ip.ts";
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
  IPTABLES_CHAIN,
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
  type ToolProgram,
  type ToolResult,
} from "./exec.ts";
import {
  buildIptablesKnockRules,
  GATE_CHECKS,
  type GateCheck,
  installGate,
} from "./gate.ts";
import {
  type IptablesChain,
  iptablesGate,
  iptablesGateCheck,
  iptablesOption,
  type IptablesRule,
  parseIptablesChain,
  quoteIptablesArg,
} from "./inspect.ts";

type IptablesTool = "iptables" | "ip6tables";

const TOOLS: IptablesTool[] = ["iptables", "ip6tables"];

function iptablesToolFor(address: IpAddress): IptablesTool {
  return address.family === 4 ? "iptables" : "ip6tables";
}

function ruleSpec(
  iface: string | null,
  matches: string[],
  verdict: string,
  comment: string,
): string[] {
  const inIface = iface === null ? [] : ["-i", iface];
  const tag = ["-m", "comment", "--comment", comment];
  return [...inIface, ...matches, "-j", verdict, ...tag];
}

function portArgs(port: FirewallRulePort): string[] {
  return ["-p", port.proto, "--dport", portRangeText(port, ":")];
}

/** Returns the spec (after `-I INPUT` / `-D INPUT`) of one per-knock accept rule. */
export function buildIptablesAcceptSpec(
  address: IpAddress,
  port: FirewallRulePort,
  iface: string | null,
): string[] {
  const matches = ["-s", address.text, ...portArgs(port)];
  return ruleSpec(iface, matches, "ACCEPT", RULE_COMMENT);
}

/** Returns the base rules of one family as iptables-restore lines: `-I INPUT` the gate and the knock-port accept (in that order), `-A INPUT` each drop. */
export function buildIptablesBaseRules(
  options: BaseRulesOptions,
  gate: { family: 4 | 6; checks: readonly GateCheck[] },
): string[][] {
  const iface = options.interface;
  const rules: string[][] = [];
  if (options.openKnockPort) {
    // Each -I goes to the top: inserted last to first, they end up in order.
    const specs = buildIptablesKnockRules(options, { ...gate, tagged: true });
    for (const spec of specs.reverse()) {
      rules.push(["-I", IPTABLES_CHAIN, ...spec]);
    }
  }
  for (const port of options.dropPorts) {
    const drop = ruleSpec(iface, portArgs(port), "DROP", DROP_RULE_COMMENT);
    rules.push(["-A", IPTABLES_CHAIN, ...drop]);
  }
  return rules;
}

/** Reduces a rule spec (ours, or one `-S` listed) to what identifies it, whatever the option order, `-m tcp` or `/32`. */
export function iptablesRuleKey(spec: string[]): string {
  const value = (...names: string[]) => iptablesOption(spec, names) ?? "";
  const source = value("-s", "--source").replace(/\/(32|128)$/, "");
  return [
    value("-i", "--in-interface"),
    parseIp(source)?.text ?? source,
    value("-p", "--protocol"),
    value("--dport", "--destination-port"),
    value("-j", "--jump"),
    value("--comment"),
    iptablesGateCheck(spec) ?? "",
    value("--hashlimit-name"),
  ].join(" ");
}

function isRuleGone(result: ToolResult): boolean {
  return result.error === null && !result.timedOut &&
    /does a matching rule exist/.test(result.stderr);
}

/** iptables/ip6tables firewall backend. */
export class IptablesBackend implements FirewallBackend {
  /** Backend name. */
  readonly name = "iptables";
  readonly #tools: FirewallBackendOptions;
  readonly #queue: OperationQueue;
  #options: BaseRulesOptions | null = null;
  #ipv6Problem: string | null = null;
  /** The gate checks installed in each family. */
  #gate: Record<IptablesTool, GateCheck[]> = { iptables: [], ip6tables: [] };

  /** Creates the backend; nothing runs until setup(). */
  constructor(options: FirewallBackendOptions = {}) {
    this.#tools = options;
    this.#queue = new OperationQueue("iptables");
  }

  /** Removes rules of a run that died and adds the base rules in both families. */
  async setup(options: BaseRulesOptions): Promise<void> {
    const valid = validateBaseRulesOptions(options);
    await this.#queue.run(async () => {
      this.#ipv6Problem = null;
      for (const tool of TOOLS) {
        try {
          const stale = await this.#installBase(
            tool,
            valid,
            OPENME_RULE_COMMENTS,
          );
          if (stale > 0) {
            log.warn(
              `firewall: removed ${stale} stale per-knock ${tool} rules left by an earlier run`,
            );
          }
        } catch (err) {
          if (tool === "iptables") throw err;
          this.#ipv6Problem = err instanceof Error ? err.message : String(err);
          log.warn(
            `firewall: ip6tables is not usable, serving IPv4 only (IPv6 knocks will fail): ${this.#ipv6Problem}`,
          );
        }
      }
      const families = this.#ipv6Problem === null
        ? "IPv4 and IPv6"
        : "IPv4 only";
      const rules = describeBaseRules(valid);
      log.info(`firewall: iptables rules ready (${rules}, ${families})`);
      this.#options = valid;
    });
  }

  /** Replaces the base rules in both families. */
  async updateBaseRules(options: BaseRulesOptions): Promise<void> {
    const valid = validateBaseRulesOptions(options);
    await this.#queue.run(async () => {
      for (const tool of this.#families()) {
        await this.#installBase(tool, valid, BASE_RULE_COMMENTS);
      }
      log.info("firewall: iptables knock and drop rules updated");
      this.#options = valid;
    });
  }

  /** Inserts one accept rule per port for the address; removes the added ones again if any fails. */
  async open(
    address: IpAddress,
    ports: FirewallRulePort[],
  ): Promise<OpenedRules> {
    ({ address, ports } = validateOpenRequest(address, ports));
    return await this.#queue.run(async () => {
      const options = this.#options;
      const tool = iptablesToolFor(address);
      if (options === null) {
        throw new FirewallError(
          `firewall: iptables backend is not set up; call setup() before opening ports for ${address.text}`,
        );
      }
      const what = describeRules({ address, ports });
      const action = `opening ${what}`;
      if (!this.#families().includes(tool)) {
        throw new FirewallError(
          `firewall: ${action}: ip6tables was not usable at setup (${this.#ipv6Problem}); ` +
            "install ip6tables (or use the nft backend) and restart openme",
        );
      }
      const added: string[][] = [];
      for (const port of ports) {
        const spec = buildIptablesAcceptSpec(address, port, options.interface);
        const args = ["-w", "-I", IPTABLES_CHAIN, ...spec];
        const result = await this.#run(tool, args);
        if (!result.success) {
          await this.#deleteSpecs(tool, added);
          throw firewallErrorFromResult(result, action);
        }
        added.push(spec);
      }
      log.debug(`firewall: opened ${what} (${tool})`);
      return { address, ports, handles: added.map((spec) => spec.join(" ")) };
    });
  }

  /** Deletes the rules of one knock with `-D`; rules already gone are ignored. */
  close(rules: OpenedRules): Promise<void> {
    const tool = iptablesToolFor(rules.address);
    return this.#queue.run(async () => {
      await this.#deleteSpecs(tool, rules.handles.map((h) => h.split(" ")));
      log.debug(`firewall: closed ${describeRules(rules)} (${tool})`);
    });
  }

  /** Lists INPUT once per family, puts back base rules a reload removed, and reports rule sets of which a rule is gone. */
  ensureBaseRules(open: OpenedRules[]): Promise<BaseRulesCheck> {
    return this.#queue.run(async () => {
      const options = this.#options;
      if (options === null) return { repaired: [], lost: [] };
      const repaired: string[] = [];
      const lost: OpenedRules[] = [];
      for (const tool of TOOLS) {
        const sets = open.filter((r) => iptablesToolFor(r.address) === tool);
        if (!this.#families().includes(tool)) {
          lost.push(...sets);
          continue;
        }
        const base = buildIptablesBaseRules(options, {
          family: tool === "iptables" ? 4 : 6,
          checks: this.#gate[tool],
        });
        const present = new Set(
          (await this.#list(tool)).rules.filter((rule) =>
            OPENME_RULE_COMMENTS.includes(rule.comment ?? "")
          ).map((rule) => iptablesRuleKey(rule.spec)),
        );
        if (base.some((rule) => !present.has(iptablesRuleKey(rule.slice(2))))) {
          await this.#replaceTagged(tool, BASE_RULE_COMMENTS, base);
          repaired.push(`knock and drop rules (${tool})`);
        }
        lost.push(
          ...sets.filter((rules) =>
            rules.handles.some((h) =>
              !present.has(iptablesRuleKey(h.split(" ")))
            )
          ),
        );
      }
      return { repaired, lost };
    });
  }

  /** Removes every INPUT rule tagged openme, openme-gate, openme-knock or openme-drop in both families (one restore per family). */
  teardown(): Promise<void> {
    return this.#queue.run(async () => {
      const ipv6Problem = this.#ipv6Problem;
      this.#options = null;
      let firstError: unknown = null;
      for (const tool of TOOLS) {
        try {
          await this.#replaceTagged(tool, OPENME_RULE_COMMENTS, []).catch(
            async (err) => {
              // A rule deleted meanwhile fails the whole commit: go one by one.
              log.debug(`${err.message}; deleting the rules one by one`);
              const left = (await this.#list(tool)).rules.filter((rule) =>
                OPENME_RULE_COMMENTS.includes(rule.comment ?? "")
              );
              await this.#deleteSpecs(tool, left.map((rule) => rule.spec));
            },
          );
        } catch (err) {
          if (tool === "iptables" || ipv6Problem === null) firstError ??= err;
        }
      }
      if (firstError !== null) throw firstError;
      log.info("firewall: removed openme's iptables rules");
    });
  }

  /** Lists INPUT of each family and adds up the gate rules' counters; null without a gate. */
  gateCounters(): Promise<GateCounters | null> {
    return this.#queue.run(async () => {
      const tools = this.#families().filter((t) => this.#gate[t].length > 0);
      if (!this.#options?.openKnockPort || tools.length === 0) return null;
      const rules: IptablesRule[] = [];
      for (const tool of tools) rules.push(...(await this.#list(tool)).rules);
      return iptablesGate(rules).counters;
    });
  }

  /** The families in use: ip6tables only when it worked at setup. */
  #families(): IptablesTool[] {
    return this.#ipv6Problem === null ? TOOLS : ["iptables"];
  }

  #run(
    tool: ToolProgram,
    args: string[],
    stdin?: string,
  ): Promise<ToolResult> {
    return runTool(tool, args, { ...this.#tools, stdin });
  }

  async #list(tool: IptablesTool): Promise<IptablesChain> {
    const listed = await this.#run(tool, ["-w", "-v", "-S", IPTABLES_CHAIN]);
    if (!listed.success) {
      throw firewallErrorFromResult(listed, `listing chain ${IPTABLES_CHAIN}`);
    }
    return parseIptablesChain(listed.stdout);
  }

  /** Deletes the INPUT rules tagged with the comments and adds the given ones, in one restore; returns how many per-knock rules it deleted. */
  async #replaceTagged(
    tool: IptablesTool,
    comments: readonly string[],
    adds: string[][],
  ): Promise<number> {
    const stale = (await this.#list(tool)).rules.filter((rule) =>
      comments.includes(rule.comment ?? "")
    );
    if (stale.length + adds.length > 0) {
      const lines = [
        ...stale.map((rule) => ["-D", IPTABLES_CHAIN, ...rule.spec]),
        ...adds,
      ].map((line) => line.map(quoteIptablesArg).join(" "));
      const script = ["*filter", ...lines, "COMMIT", ""].join("\n");
      const restore = `${tool}-restore` as const;
      const result = await this.#run(restore, ["--noflush", "-w"], script);
      if (!result.success) {
        throw firewallErrorFromResult(
          result,
          adds.length > 0
            ? "setting up the knock and drop rules"
            : "removing openme's rules",
        );
      }
    }
    return stale.filter((rule) => rule.comment === RULE_COMMENT).length;
  }

  /** Replaces one family's rules tagged with the comments by the base rules with every gate check its kernel can do; returns how many per-knock rules it deleted. */
  async #installBase(
    tool: IptablesTool,
    options: BaseRulesOptions,
    comments: readonly string[],
  ): Promise<number> {
    let stale = 0;
    const family = tool === "iptables" ? 4 : 6;
    const wanted = options.openKnockPort ? GATE_CHECKS : [];
    this.#gate[tool] = await installGate("iptables", wanted, async (checks) => {
      const adds = buildIptablesBaseRules(options, { family, checks });
      stale += await this.#replaceTagged(tool, comments, adds);
    });
    return stale;
  }

  /** Deletes rules by spec with `-D`; rules already gone are fine; throws the first other failure after trying all. */
  async #deleteSpecs(tool: IptablesTool, specs: string[][]): Promise<void> {
    let firstError: FirewallError | null = null;
    for (const spec of specs) {
      const args = ["-w", "-D", IPTABLES_CHAIN, ...spec];
      const result = await this.#run(tool, args);
      if (result.success || isRuleGone(result)) continue;
      const action = `removing rule "${spec.join(" ")}"`;
      firstError ??= firewallErrorFromResult(result, action);
    }
    if (firstError !== null) throw firstError;
  }
}
