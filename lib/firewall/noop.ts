/**
 * No-op firewall backend for macOS and Windows builds (which only knock) and
 * for tests: it logs and tracks what it was asked to do and runs nothing.
 *
 * @module
 */

import type { IpAddress } from "../ip.ts";
import * as log from "../log.ts";
import {
  type BaseRulesCheck,
  type BaseRulesOptions,
  describeRulePorts,
  type FirewallBackend,
  type FirewallRulePort,
  type OpenedRules,
  validateBaseRulesOptions,
  validateOpenRequest,
} from "./backend.ts";

/** Firewall backend that changes nothing. */
export class NoopBackend implements FirewallBackend {
  /** Backend name. */
  readonly name = "noop";
  #nextId = 1;
  #open = new Set<string>();
  #options: BaseRulesOptions | null = null;

  /** Number of rules opened and not yet closed. */
  get openRuleCount(): number {
    return this.#open.size;
  }

  /** The base-rule options of the last setup() or updateBaseRules(), or null. */
  get baseRules(): BaseRulesOptions | null {
    return this.#options;
  }

  /** Records the options; no rules are managed. */
  async setup(options: BaseRulesOptions): Promise<void> {
    await this.updateBaseRules(options);
    log.info(
      "firewall: no-op backend: openme manages no firewall rules on this system",
    );
  }

  /** Records the new options. */
  updateBaseRules(options: BaseRulesOptions): Promise<void> {
    return Promise.try(() => {
      this.#options = validateBaseRulesOptions(options, "noop");
    });
  }

  /** Returns ids for the rules it would have opened. */
  open(address: IpAddress, ports: FirewallRulePort[]): Promise<OpenedRules> {
    return Promise.try(() => {
      const request = validateOpenRequest(address, ports, "noop");
      const handles = request.ports.map(() => `noop-${this.#nextId++}`);
      for (const handle of handles) this.#open.add(handle);
      log.debug(
        `firewall: no-op: would open ${
          describeRulePorts(request.ports)
        } for ${request.address.text}`,
      );
      return { ...request, handles };
    });
  }

  /** Forgets the ids; unknown ids are ignored. */
  close(rules: OpenedRules): Promise<void> {
    for (const handle of rules.handles) this.#open.delete(handle);
    log.debug(
      `firewall: no-op: would close ${
        describeRulePorts(rules.ports)
      } for ${rules.address.text}`,
    );
    return Promise.resolve();
  }

  /** Reports the rule sets with ids it does not hold (closed or torn down); repairs nothing. */
  ensureBaseRules(open: OpenedRules[]): Promise<BaseRulesCheck> {
    const lost = open.filter((rules) =>
      rules.handles.some((handle) => !this.#open.has(handle))
    );
    return Promise.resolve({ repaired: [], lost });
  }

  /** Forgets everything. */
  teardown(): Promise<void> {
    this.#open.clear();
    this.#options = null;
    return Promise.resolve();
  }
}
