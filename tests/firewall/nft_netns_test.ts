/**
 * NftBackend against real nftables inside network namespaces (root only).
 * The backend runs nft through `ip netns exec` (its `netns` option), so the
 * host's ruleset is never touched.
 */
import assert from "node:assert/strict";
import type { BaseRulesOptions } from "../../lib/firewall/backend.ts";
import { NftBackend } from "../../lib/firewall/nft.ts";
import type { IpAddress } from "../../lib/ip.ts";
import { setLogSink } from "../../lib/log.ts";
import {
  canRunNetnsTests,
  IP_TOOL,
  NFT_TOOL,
  nsExec,
  withNamespace,
} from "../support/netns.ts";

setLogSink(() => {});

const V4: IpAddress = { family: 4, text: "192.0.2.2" };
const V6: IpAddress = { family: 6, text: "2001:db8::1" };
const BASE: BaseRulesOptions = {
  knockPort: 54154,
  openKnockPort: true,
  dropPorts: [],
  interface: null,
};

const canRun = await canRunNetnsTests("nft namespace tests", {
  rootFor: "ip netns add, nft",
  tools: [IP_TOOL, NFT_TOOL],
});

/** Runs nft in the namespace; returns its output. */
async function nft(
  ns: string,
  args: string[],
  stdin?: string,
): Promise<string> {
  return await nsExec(ns, ["nft", ...args], { stdin });
}

/** The rule lines of a chain as `nft list chain` prints them, without handles; the gate's too when asked (the gate tests check them). */
async function chainLines(
  ns: string,
  chain: string,
  options: { gate?: boolean } = {},
): Promise<string[]> {
  const text = await nft(ns, ["list", "chain", "inet", "filter", chain]);
  return text.split("\n")
    .map((line) => line.trim())
    .filter((line) =>
      line !== "" && !line.startsWith("table ") && !line.startsWith("chain ") &&
      line !== "}" &&
      !line.startsWith("type ") &&
      (options.gate === true || !line.endsWith('comment "openme-gate"'))
    );
}

interface RuleSummary {
  handle: number;
  comment: string | null;
  text: string;
}

/** Summarises the rules of a chain from `nft -j list chain`: handle, comment and the matches. */
async function chainRules(ns: string, chain: string): Promise<RuleSummary[]> {
  const json = JSON.parse(
    await nft(ns, ["-j", "list", "chain", "inet", "filter", chain]),
  );
  const rules: RuleSummary[] = [];
  for (const item of json.nftables) {
    if (!item.rule) continue;
    const parts: string[] = [];
    for (const statement of item.rule.expr) {
      if (statement.match) {
        const left = statement.match.left;
        const key = left.payload
          ? `${left.payload.protocol} ${left.payload.field}`
          : `meta ${left.meta?.key}`;
        const right = statement.match.right;
        const value = typeof right === "object" && right !== null && right.range
          ? `${right.range[0]}-${right.range[1]}`
          : JSON.stringify(right);
        parts.push(`${key} ${value}`);
      } else {
        parts.push(
          Object.keys(statement)[0] +
            (statement.jump ? ` ${statement.jump.target}` : ""),
        );
      }
    }
    if (item.rule.comment === "openme-gate") continue; // the gate tests check them
    rules.push({
      handle: item.rule.handle,
      comment: item.rule.comment ?? null,
      text: parts.join(" "),
    });
  }
  return rules;
}

async function ruleset(ns: string): Promise<string> {
  return (await nft(ns, ["list", "ruleset"])).trim();
}

const OPERATOR_RULESET = `table inet filter {
  chain openme {
  }
  chain input {
    type filter hook input priority 0; policy drop;
    ct state established,related accept
    iifname "lo" accept
    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept
    jump openme
    tcp dport 2222 accept comment "operator ssh"
  }
  chain forward {
    type filter hook forward priority 0; policy drop;
  }
}
`;

Deno.test({
  name:
    "nft setup on an empty ruleset creates table, chains and jump; teardown removes everything",
  ignore: !canRun,
  fn: async () => {
    await withNamespace("fw-n", async (ns) => {
      const backend = new NftBackend({ netns: ns });
      try {
        await backend.setup({
          ...BASE,
          dropPorts: [{ port: 22, proto: "tcp" }, {
            port: 8080,
            endPort: 8090,
            proto: "tcp",
          }],
        });
        assert.deepEqual(await chainLines(ns, "openme"), [
          'udp dport 54154 accept comment "openme-knock"',
          'tcp dport 22 drop comment "openme-drop"',
          'tcp dport 8080-8090 drop comment "openme-drop"',
        ]);
        const input = await nft(ns, [
          "list",
          "chain",
          "inet",
          "filter",
          "input",
        ]);
        assert.match(
          input,
          /type filter hook input priority filter; policy accept;/,
        );
        assert.deepEqual(await chainLines(ns, "input"), [
          'jump openme comment "openme-jump"',
        ]);
        const opened = await backend.open(V4, [{ port: 22, proto: "tcp" }]);
        assert.equal(opened.handles.length, 1);
      } finally {
        await backend.teardown();
      }
      assert.equal(
        await ruleset(ns),
        "",
        "teardown leaves the empty ruleset it found",
      );
    });
  },
});

Deno.test({
  name:
    "nft opens v4, v6 and range rules in an operator ruleset, before the drops, and teardown keeps the operator's rules",
  ignore: !canRun,
  fn: async () => {
    await withNamespace("fw-n", async (ns) => {
      await nft(ns, ["-f", "-"], OPERATOR_RULESET);
      const inputBefore = await chainRules(ns, "input");
      const forwardBefore = await nft(ns, [
        "list",
        "chain",
        "inet",
        "filter",
        "forward",
      ]);
      const backend = new NftBackend({ netns: ns });
      try {
        await backend.setup({
          ...BASE,
          dropPorts: [{ port: 22, proto: "tcp" }],
        });
        const jumps = (await chainRules(ns, "input")).filter((rule) =>
          rule.text === "jump openme"
        );
        assert.equal(
          jumps.length,
          1,
          "the operator's jump is enough; no second jump",
        );
        assert.deepEqual(await chainRules(ns, "input"), inputBefore);

        const v4 = await backend.open(V4, [
          { port: 22, proto: "tcp" },
          { port: 8080, endPort: 8090, proto: "tcp" },
        ]);
        const v6 = await backend.open(V6, [{ port: 22, proto: "tcp" }, {
          port: 53,
          proto: "udp",
        }]);
        const rules = await chainRules(ns, "openme");
        const perKnock = rules.filter((rule) => rule.comment === "openme");
        assert.deepEqual(perKnock.map((rule) => rule.text).sort(), [
          'ip saddr "192.0.2.2" tcp dport 22 accept',
          'ip saddr "192.0.2.2" tcp dport 8080-8090 accept',
          'ip6 saddr "2001:db8::1" tcp dport 22 accept',
          'ip6 saddr "2001:db8::1" udp dport 53 accept',
        ]);
        assert.deepEqual(
          perKnock.map((rule) => String(rule.handle)).sort(),
          [...v4.handles, ...v6.handles].sort(),
          "open() returns the handles of exactly these rules",
        );
        const lastAccept = Math.max(
          ...perKnock.map((rule) => rules.indexOf(rule)),
        );
        const firstDrop = rules.findIndex((rule) =>
          rule.comment === "openme-drop"
        );
        assert.ok(
          firstDrop > lastAccept,
          "drop rules sit after the per-knock accepts",
        );
        assert.equal(rules.length, 6);

        await backend.close(v4);
        assert.deepEqual(
          (await chainRules(ns, "openme")).filter((rule) =>
            rule.comment === "openme"
          ).map((rule) => rule.text)
            .sort(),
          [
            'ip6 saddr "2001:db8::1" tcp dport 22 accept',
            'ip6 saddr "2001:db8::1" udp dport 53 accept',
          ],
        );
        await backend.close(v6);
        assert.deepEqual(await chainLines(ns, "openme"), [
          'udp dport 54154 accept comment "openme-knock"',
          'tcp dport 22 drop comment "openme-drop"',
        ]);
        await backend.open(V4, [{ port: 443, proto: "tcp" }]);
      } finally {
        await backend.teardown();
      }
      assert.deepEqual(
        await chainRules(ns, "input"),
        inputBefore,
        "operator's input rules untouched",
      );
      assert.equal(
        await nft(ns, ["list", "chain", "inet", "filter", "forward"]),
        forwardBefore,
      );
      assert.deepEqual(
        await chainLines(ns, "openme"),
        [],
        "the operator's openme chain stays, emptied",
      );
    });
  },
});

Deno.test({
  name:
    "nft close succeeds quietly when a rule was deleted behind the backend's back",
  ignore: !canRun,
  fn: async () => {
    await withNamespace("fw-n", async (ns) => {
      const backend = new NftBackend({ netns: ns });
      try {
        await backend.setup(BASE);
        const opened = await backend.open(V4, [{ port: 22, proto: "tcp" }, {
          port: 443,
          proto: "tcp",
        }]);
        await nft(ns, [
          "delete",
          "rule",
          "inet",
          "filter",
          "openme",
          "handle",
          opened.handles[0],
        ]);
        const logs: string[] = [];
        setLogSink((line) => logs.push(line));
        try {
          await backend.close(opened);
        } finally {
          setLogSink(() => {});
        }
        assert.deepEqual(
          logs.filter((line) =>
            line.startsWith("WARN") || line.startsWith("ERROR")
          ),
          [],
        );
        assert.deepEqual(await chainLines(ns, "openme"), [
          'udp dport 54154 accept comment "openme-knock"',
        ]);
        assert.equal(backend.openRuleCount, 0);
      } finally {
        await backend.teardown();
      }
      assert.equal(await ruleset(ns), "");
    });
  },
});

Deno.test({
  name:
    "nft setup removes stale openme rules of a dead run and keeps the operator's rules",
  ignore: !canRun,
  fn: async () => {
    await withNamespace("fw-n", async (ns) => {
      await nft(
        ns,
        ["-f", "-"],
        `table inet filter {
  chain openme {
    ip saddr 192.0.2.99 tcp dport 22 accept comment "openme"
    ip6 saddr 2001:db8::99 tcp dport 22 accept comment "openme"
    ip saddr 198.51.100.7 tcp dport 443 accept
    tcp dport 25 accept comment "openme-operator"
    udp dport 54154 accept comment "openme-knock"
    tcp dport 22 drop comment "openme-drop"
  }
  chain input {
    type filter hook input priority 0; policy accept;
    jump openme comment "openme-jump"
  }
}
`,
      );
      const backend = new NftBackend({ netns: ns });
      try {
        await backend.setup({ ...BASE, openKnockPort: false });
        assert.deepEqual(await chainLines(ns, "openme"), [
          "ip saddr 198.51.100.7 tcp dport 443 accept",
          'tcp dport 25 accept comment "openme-operator"',
        ]);
        assert.deepEqual(await chainLines(ns, "input"), [
          'jump openme comment "openme-jump"',
        ]);
      } finally {
        await backend.teardown();
      }
      // The tagged jump was openme's (left by the dead run); the rest is the operator's.
      assert.deepEqual(await chainLines(ns, "input"), []);
      assert.deepEqual(await chainLines(ns, "openme"), [
        "ip saddr 198.51.100.7 tcp dport 443 accept",
        'tcp dport 25 accept comment "openme-operator"',
      ]);
    });
  },
});

Deno.test({
  name:
    "nft adds the jump before the operator's catch-all drop and removes only that jump on teardown",
  ignore: !canRun,
  fn: async () => {
    await withNamespace("fw-n", async (ns) => {
      await nft(
        ns,
        ["-f", "-"],
        `table inet filter {
  chain input {
    type filter hook input priority 0; policy accept;
    ct state established,related accept
    iifname "lo" accept
    counter drop
  }
}
`,
      );
      const before = await chainLines(ns, "input");
      const backend = new NftBackend({ netns: ns });
      try {
        await backend.setup(BASE);
        assert.deepEqual(await chainLines(ns, "input"), [
          "ct state established,related accept",
          'iifname "lo" accept',
          'jump openme comment "openme-jump"',
          "counter packets 0 bytes 0 drop",
        ]);
      } finally {
        await backend.teardown();
      }
      assert.deepEqual(await chainLines(ns, "input"), before);
      const tables = await nft(ns, ["list", "tables"]);
      assert.equal(
        tables.trim(),
        "table inet filter",
        "the operator's table stays",
      );
      const chains = await nft(ns, ["list", "chains"]);
      assert.ok(
        !chains.includes("chain openme"),
        "the openme chain openme created is gone",
      );
    });
  },
});

Deno.test({
  name: "nft rules match the interface when one is set",
  ignore: !canRun,
  fn: async () => {
    await withNamespace("fw-n", async (ns) => {
      const backend = new NftBackend({ netns: ns });
      try {
        await backend.setup({
          ...BASE,
          dropPorts: [{ port: 22, proto: "tcp" }],
          interface: "om-test0",
        });
        await backend.open(V6, [{ port: 22, proto: "tcp" }]);
        assert.deepEqual(await chainLines(ns, "openme"), [
          'iifname "om-test0" ip6 saddr 2001:db8::1 tcp dport 22 accept comment "openme"',
          'iifname "om-test0" udp dport 54154 accept comment "openme-knock"',
          'iifname "om-test0" tcp dport 22 drop comment "openme-drop"',
        ]);
      } finally {
        await backend.teardown();
      }
      assert.equal(await ruleset(ns), "");
    });
  },
});

Deno.test({
  name:
    "nft updateBaseRules replaces knock and drop rules and keeps open per-knock rules",
  ignore: !canRun,
  fn: async () => {
    await withNamespace("fw-n", async (ns) => {
      const backend = new NftBackend({ netns: ns });
      try {
        await backend.setup({
          ...BASE,
          dropPorts: [{ port: 22, proto: "tcp" }],
        });
        const opened = await backend.open(V4, [{ port: 22, proto: "tcp" }]);
        await backend.updateBaseRules({
          knockPort: 40000,
          openKnockPort: true,
          dropPorts: [{ port: 443, proto: "tcp" }],
          interface: null,
        });
        assert.deepEqual(await chainLines(ns, "openme"), [
          'ip saddr 192.0.2.2 tcp dport 22 accept comment "openme"',
          'udp dport 40000 accept comment "openme-knock"',
          'tcp dport 443 drop comment "openme-drop"',
        ]);
        await backend.close(opened);
        assert.deepEqual(await chainLines(ns, "openme"), [
          'udp dport 40000 accept comment "openme-knock"',
          'tcp dport 443 drop comment "openme-drop"',
        ]);
      } finally {
        await backend.teardown();
      }
      assert.equal(await ruleset(ns), "");
    });
  },
});

Deno.test({
  name:
    "nft concurrent opens and closes are serialised and each gets its own handles",
  ignore: !canRun,
  fn: async () => {
    await withNamespace("fw-n", async (ns) => {
      const backend = new NftBackend({ netns: ns });
      try {
        await backend.setup(BASE);
        const opens = [];
        for (let i = 1; i <= 10; i++) {
          opens.push(backend.open({ family: 4, text: `198.51.100.${i}` }, [
            { port: 22, proto: "tcp" },
            { port: 443, proto: "tcp" },
          ]));
        }
        const opened = await Promise.all(opens);
        const handles = opened.flatMap((rules) => rules.handles);
        assert.equal(new Set(handles).size, 20);
        assert.equal(
          (await chainRules(ns, "openme")).filter((rule) =>
            rule.comment === "openme"
          ).length,
          20,
        );
        await Promise.all(opened.map((rules) => backend.close(rules)));
        assert.deepEqual(await chainLines(ns, "openme"), [
          'udp dport 54154 accept comment "openme-knock"',
        ]);
      } finally {
        await backend.teardown();
      }
      assert.equal(await ruleset(ns), "");
    });
  },
});

Deno.test({
  name:
    "nft open recreates the chain and jump when the ruleset was flushed behind the backend's back",
  ignore: !canRun,
  fn: async () => {
    await withNamespace("fw-n", async (ns) => {
      const backend = new NftBackend({ netns: ns });
      try {
        await backend.setup(BASE);
        await nft(ns, ["flush", "ruleset"]);
        const opened = await backend.open(V4, [{ port: 22, proto: "tcp" }]);
        assert.equal(opened.handles.length, 1);
        assert.deepEqual(await chainLines(ns, "openme"), [
          'ip saddr 192.0.2.2 tcp dport 22 accept comment "openme"',
          'udp dport 54154 accept comment "openme-knock"',
        ]);
        assert.deepEqual(await chainLines(ns, "input"), [
          'jump openme comment "openme-jump"',
        ]);
      } finally {
        await backend.teardown();
      }
      assert.equal(await ruleset(ns), "");
    });
  },
});

Deno.test({
  name:
    "nft installs the knock gate ahead of the knock rule, puts it back after a flush, and teardown and cleanup leave none of it",
  ignore: !canRun,
  fn: async () => {
    await withNamespace("fw-n", async (ns) => {
      const gate = [
        'udp dport 54154 udp length != 173 counter packets 0 bytes 0 drop comment "openme-gate"',
        'udp dport 54154 @th,64,8 != 0x1 counter packets 0 bytes 0 drop comment "openme-gate"',
        'udp dport 54154 update @openme_gate4 { ip saddr timeout 1m limit rate over 1/hour burst 2 packets } counter packets 0 bytes 0 drop comment "openme-gate"',
        'udp dport 54154 update @openme_gate6 { ip6 saddr & ffff:ffff:ffff:ffff:: timeout 2h limit rate over 1/hour burst 2 packets } counter packets 0 bytes 0 drop comment "openme-gate"',
        'udp dport 54154 accept comment "openme-knock"',
      ];
      // An hour per token: an idle source's bucket is kept 2 h, until full.
      gate[2] = gate[2].replace("timeout 1m", "timeout 2h");
      const options: BaseRulesOptions = {
        ...BASE,
        knockRateLimit: { count: 1, unit: "hour", burst: 2 },
      };
      await nft(ns, ["-f", "-"], OPERATOR_RULESET);
      let backend = new NftBackend({ netns: ns });
      try {
        await backend.setup(options);
        assert.deepEqual(await chainLines(ns, "openme", { gate: true }), gate);
        assert.deepEqual(await backend.gateCounters(), {
          size: 0,
          version: 0,
          rate: 0,
        });
        await nft(ns, ["flush", "ruleset"]);
        let check = await backend.ensureBaseRules([]);
        assert.deepEqual(check.repaired, ["table inet filter"]);
        assert.deepEqual(await chainLines(ns, "openme", { gate: true }), gate);
        // One gate rule deleted by hand is missed and put back too.
        const listed = JSON.parse(
          await nft(ns, ["-j", "list", "chain", "inet", "filter", "openme"]),
        ).nftables.find((item: { rule?: { comment?: string } }) =>
          item.rule?.comment === "openme-gate"
        );
        await nft(ns, [
          "delete",
          "rule",
          "inet",
          "filter",
          "openme",
          "handle",
          String(listed.rule.handle),
        ]);
        check = await backend.ensureBaseRules([]);
        assert.deepEqual(check.repaired, ["openme-gate rules (3 of 4)"]);
        assert.deepEqual(await chainLines(ns, "openme", { gate: true }), gate);
      } finally {
        await backend.teardown();
      }
      assert.equal(await ruleset(ns), "");
      // A run that dies leaves its rules; cleanup takes them out.
      await nft(ns, ["-f", "-"], OPERATOR_RULESET);
      backend = new NftBackend({ netns: ns });
      await backend.setup(options);
      await new NftBackend({ netns: ns }).cleanup();
      const left = await ruleset(ns);
      assert.doesNotMatch(left, /openme_gate|comment "openme/);
      assert.deepEqual(await chainLines(ns, "input"), [
        "ct state established,related accept",
        'iifname "lo" accept',
        "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept",
        "jump openme",
        'tcp dport 2222 accept comment "operator ssh"',
      ]);
    });
  },
});
