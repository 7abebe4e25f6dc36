/**
 * Tests of lib/firewall/inspect.ts: the parsers on fixed listings (no root
 * needed), then the real tools against rulesets and sockets built inside
 * network namespaces of this test (root only).
 */

import assert from "node:assert/strict";
import { FirewallError } from "../../lib/firewall/backend.ts";
import {
  findSocketOwners,
  hasNetAdminCapability,
  type InputChainFacts,
  inspectClockSync,
  inspectIptablesRuleset,
  inspectNftRuleset,
  iptablesChainFacts,
  isOpenmeServe,
  listSocketInodes,
  nftRulesetFacts,
  parseIptablesChain,
  parseNftJson,
  parseProcNetInodes,
  type PortSpan,
  TIMESYNC_FLAG_FILE,
  toolVersion,
} from "../../lib/firewall/inspect.ts";
import { withTempDir } from "../support/files.ts";
import {
  canRunNetnsTests,
  IP_TOOL,
  IPTABLES_TOOLS,
  NFT_TOOL,
  nsExec,
  withNamespace,
} from "../support/netns.ts";

function acceptsUdpPort(spans: PortSpan[], port: number): boolean {
  return spans.some((span) => span.from <= port && port <= span.to);
}

/** The UDP ports a chain's rules accept. */
function accepted(chain: InputChainFacts): PortSpan[] {
  return chain.udpRules.filter((rule) => rule.verdict === "accept")
    .flatMap((rule) => rule.ports);
}

const canRun = await canRunNetnsTests("inspect namespace tests", {
  rootFor: "ip netns add, nft, iptables",
  tools: [IP_TOOL, NFT_TOOL, ...IPTABLES_TOOLS],
});

/** A ruleset with every kind of rule the parser has to recognise. */
const RICH_NFT_RULESET = `table inet filter {
  chain input {
    type filter hook input priority 0; policy drop;
    ct state { established, related } counter accept
    iifname "lo" accept
    icmpv6 type { nd-neighbor-solicit, nd-router-advert } accept
    icmpv6 type nd-neighbor-advert accept
    udp dport { 53, 54154 } accept
    udp dport 60000-60010 accept
    counter drop
    jump openme
  }
  chain openme {
    udp dport 40000 accept comment "openme-knock"
  }
}
table ip other {
  chain INPUT { type filter hook input priority 0; policy drop; }
}
`;

Deno.test("nftRulesetFacts reads policy, jump, established, ICMPv6 and UDP accepts from nft JSON", () => {
  const json = JSON.stringify({
    nftables: [
      { metainfo: { version: "1.0.6" } },
      { table: { family: "inet", name: "filter", handle: 1 } },
      {
        chain: {
          family: "inet",
          table: "filter",
          name: "input",
          handle: 1,
          type: "filter",
          hook: "input",
          prio: 0,
          policy: "accept",
        },
      },
      {
        rule: {
          family: "inet",
          table: "filter",
          chain: "input",
          handle: 4,
          expr: [
            {
              match: {
                op: "in",
                left: { ct: { key: "state" } },
                right: ["established", "related"],
              },
            },
            { accept: null },
          ],
        },
      },
      {
        rule: {
          family: "inet",
          table: "filter",
          chain: "input",
          handle: 5,
          expr: [
            {
              match: {
                op: "==",
                left: { meta: { key: "l4proto" } },
                right: "ipv6-icmp",
              },
            },
            { accept: null },
          ],
        },
      },
      {
        rule: {
          family: "inet",
          table: "filter",
          chain: "input",
          handle: 6,
          expr: [{ jump: { target: "openme" } }],
        },
      },
    ],
  });
  const facts = nftRulesetFacts(parseNftJson(json));
  assert.notEqual(facts.input.policy, null, "the chain exists");
  assert.equal(facts.input.policy, "accept");
  assert.equal(facts.input.defaultDeny, false);
  assert.equal(facts.input.acceptsEstablished, true);
  assert.equal(facts.input.acceptsNeighborDiscovery, true, "all ICMPv6");
  assert.equal(facts.input.jumpHandle, "6");
  assert.equal(facts.input.jumpUnreachable, false);
  assert.equal(facts.openmeChainExists, false);
  assert.deepEqual(facts.otherInputChains, []);
});

Deno.test("nftRulesetFacts of an empty ruleset has no input chain, and parseNftJson rejects what is not nft JSON", () => {
  for (const empty of ['{"nftables":[{"metainfo":{}}]}', "", "\n"]) {
    const facts = nftRulesetFacts(parseNftJson(empty));
    assert.equal(facts.input.policy, null, "no chain");
    assert.equal(facts.input.defaultDeny, false);
  }
  assert.throws(
    () => parseNftJson('{"other":1}'),
    (err: unknown) =>
      err instanceof FirewallError &&
      /\(no "nftables" array\); is nftables >= 0\.9 installed\?/.test(
        err.message,
      ),
  );
  assert.throws(() => parseNftJson("table inet filter {"), FirewallError);
});

Deno.test("parseNftJson reads the table handle, chains, hooks, policies, comments, matches, verdicts and other objects", () => {
  const listing = parseNftJson(JSON.stringify({
    nftables: [
      { metainfo: { version: "1.0.6", json_schema_version: 1 } },
      { table: { family: "inet", name: "filter", handle: 3 } },
      { set: { family: "inet", name: "s1", table: "filter", handle: 6 } },
      { chain: { family: "inet", table: "filter", name: "openme", handle: 1 } },
      {
        chain: {
          family: "inet",
          table: "filter",
          name: "input",
          handle: 2,
          hook: "input",
        },
      },
      {
        rule: {
          family: "inet",
          table: "filter",
          chain: "openme",
          handle: 9,
          comment: "openme-knock",
          expr: [
            {
              match: {
                op: "==",
                left: { payload: { protocol: "udp", field: "dport" } },
                right: { set: [53, { range: [60000, 60010] }] },
              },
            },
            { accept: null },
          ],
        },
      },
      {
        rule: {
          family: "inet",
          table: "filter",
          chain: "input",
          handle: 7,
          expr: [{ counter: null }, { goto: { target: "openme" } }],
        },
      },
    ],
  }));
  assert.equal(listing.tableHandle, "3");
  assert.deepEqual(listing.chains, [
    {
      table: "inet filter",
      name: "openme",
      handle: "1",
      hook: null,
      policy: null,
    },
    {
      table: "inet filter",
      name: "input",
      handle: "2",
      hook: "input",
      policy: "accept",
    },
  ]);
  assert.deepEqual(listing.others, ["set s1"]);
  assert.deepEqual(listing.rules, [
    {
      table: "inet filter",
      chain: "openme",
      handle: "9",
      comment: "openme-knock",
      matches: [{
        key: "udp.dport",
        op: "==",
        values: [53, { from: 60000, to: 60010 }],
      }],
      verdict: "accept",
      target: null,
      packets: null,
    },
    {
      table: "inet filter",
      chain: "input",
      handle: "7",
      comment: null,
      matches: [],
      verdict: "goto",
      target: "openme",
      packets: null,
    },
  ]);
});

Deno.test("parseIptablesChain honours double quotes and backslash escapes and reads exact comments", () => {
  const chain = parseIptablesChain(
    [
      "-P INPUT DROP",
      '-A INPUT -m comment --comment "my \\"odd\\" rule" -j DROP',
      '-A INPUT --comment ""',
      "-A INPUT -p tcp -m comment --comment openme2 -j DROP",
      "-A OTHER -j ACCEPT",
      "  ",
    ].join("\n"),
  );
  assert.equal(chain.policy, "drop");
  assert.deepEqual(chain.rules.map((rule) => rule.spec), [
    ["-m", "comment", "--comment", 'my "odd" rule', "-j", "DROP"],
    ["--comment", ""],
    ["-p", "tcp", "-m", "comment", "--comment", "openme2", "-j", "DROP"],
  ]);
  assert.deepEqual(chain.rules.map((rule) => rule.comment), [
    'my "odd" rule',
    "",
    "openme2",
  ]);
});

Deno.test("iptablesChainFacts reads policy, catch-all, conntrack, ICMPv6 types and UDP ports", () => {
  const v4 = iptablesChainFacts(
    [
      "-P INPUT ACCEPT",
      "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
      "-A INPUT -i lo -j ACCEPT",
      "-A INPUT -p udp -m udp --dport 54154 -j ACCEPT",
      "-A INPUT -p udp -m multiport --dports 53,60000:60010 -j ACCEPT",
      '-A INPUT -s 192.0.2.2/32 -p tcp -m tcp --dport 22 -m comment --comment "openme" -j ACCEPT',
      "-A INPUT -j REJECT --reject-with icmp-port-unreachable",
      "",
    ].join("\n"),
    "iptables INPUT",
  );
  assert.equal(v4.policy, "accept");
  assert.equal(v4.defaultDeny, true, "a catch-all REJECT");
  assert.equal(v4.acceptsEstablished, true);
  assert.equal(v4.acceptsLoopback, true);
  assert.ok(acceptsUdpPort(accepted(v4), 54154));
  assert.ok(acceptsUdpPort(accepted(v4), 53));
  assert.ok(acceptsUdpPort(accepted(v4), 60005));
  assert.ok(!acceptsUdpPort(accepted(v4), 22));

  const v6 = iptablesChainFacts(
    [
      "-P INPUT DROP",
      "-A INPUT -m state --state ESTABLISHED -j ACCEPT",
      "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT",
      "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type neighbour-advertisement -j ACCEPT",
    ].join("\n"),
    "ip6tables INPUT",
  );
  assert.equal(v6.policy, "drop");
  assert.equal(v6.defaultDeny, true);
  assert.equal(v6.acceptsEstablished, true);
  assert.equal(v6.acceptsNeighborDiscovery, true);

  const onlySolicit = iptablesChainFacts(
    "-P INPUT DROP\n-A INPUT -p ipv6-icmp --icmpv6-type 135 -j ACCEPT\n-A INPUT -m conntrack ! --ctstate ESTABLISHED -j ACCEPT\n",
    "ip6tables INPUT",
  );
  assert.equal(onlySolicit.acceptsNeighborDiscovery, false);
  assert.equal(onlySolicit.acceptsEstablished, false);
});

Deno.test("parseProcNetInodes finds bound UDP sockets and listening TCP sockets on a port, not connections", () => {
  const udp6 = [
    "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops",
    " 2449: 00000000000000000000000000000000:D38A 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 96870 2 000000006af1bdd2 0",
  ].join("\n");
  assert.deepEqual(parseProcNetInodes(udp6, 54154), [96870]);
  assert.deepEqual(parseProcNetInodes(udp6, 54155), []);
  const tcp = [
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "   0: 0100007F:D38A 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 96871 1 0000 100 0 0 10 0",
    "   1: 0100007F:D38A 0100007F:9C42 01 00000000:00000000 00:00000000 00000000     0        0 96872 1 0000 100 0 0 10 0",
  ].join("\n");
  assert.deepEqual(parseProcNetInodes(tcp, 54154), [96871]);
});

Deno.test("hasNetAdminCapability reads bit 12 of CapEff", () => {
  assert.equal(
    hasNetAdminCapability("CapInh:\t0\nCapEff:\t0000000000001000\n"),
    true,
  );
  assert.equal(hasNetAdminCapability("CapEff:\t000001fffeffffff\n"), true);
  assert.equal(hasNetAdminCapability("CapEff:\t0000000000000fff\n"), false);
  assert.equal(hasNetAdminCapability("CapEff:\t0000000000000000\n"), false);
  assert.equal(hasNetAdminCapability("no such line"), false);
});

Deno.test("isOpenmeServe recognises the binary and main.ts run by deno, not other programs", () => {
  assert.ok(isOpenmeServe(["/usr/local/bin/openme", "serve"]));
  assert.ok(
    isOpenmeServe(["openme", "--config", "/etc/openme/c.yaml", "serve"]),
  );
  assert.ok(
    isOpenmeServe(["deno", "run", "-A", "/src/openme/main.ts", "serve"]),
  );
  assert.ok(!isOpenmeServe(["/usr/local/bin/openme", "knock"]));
  assert.ok(!isOpenmeServe(["python3", "-m", "http.server", "serve"]));
});

Deno.test("toolVersion reports a missing tool with the PATH searched", async () => {
  await withTempDir("openme-empty-path-", async (empty) => {
    await assert.rejects(
      toolVersion("nft", { env: { PATH: empty } }),
      new RegExp(`command not found: nft \\(searched PATH=${empty}\\)`),
    );
  });
});

Deno.test("inspectClockSync without timedatectl says it cannot tell (unless timesyncd's flag file exists)", async () => {
  await withTempDir("openme-empty-path-", async (empty) => {
    const clock = await inspectClockSync({ env: { PATH: empty } });
    let flagExists = true;
    try {
      await Deno.stat(TIMESYNC_FLAG_FILE);
    } catch {
      flagExists = false;
    }
    if (flagExists) {
      assert.deepEqual(clock, {
        synchronized: true,
        source: TIMESYNC_FLAG_FILE,
      });
    } else {
      assert.equal(clock.synchronized, null);
      assert.match(clock.source, /command not found: timedatectl/);
    }
  });
});

Deno.test({
  name: "inspectNftRuleset reads a ruleset built in a namespace",
  ignore: !canRun,
  fn: async () => {
    await withNamespace("insp", async (ns) => {
      const empty = await inspectNftRuleset({ netns: ns });
      assert.equal(empty.input.policy, null, "no chain");

      await nsExec(ns, ["nft", "-f", "-"], { stdin: RICH_NFT_RULESET });
      const {
        input,
        openmeChainExists,
        openmeChainUdpPorts,
        otherInputChains,
      } = await inspectNftRuleset({ netns: ns });
      assert.equal(input.where, "table inet filter chain input");
      assert.equal(input.policy, "drop");
      assert.equal(input.defaultDeny, true);
      assert.equal(input.acceptsEstablished, true);
      assert.equal(input.acceptsLoopback, true);
      assert.equal(input.acceptsNeighborDiscovery, true);
      assert.ok(acceptsUdpPort(accepted(input), 54154));
      assert.ok(acceptsUdpPort(accepted(input), 60010));
      assert.ok(!acceptsUdpPort(accepted(input), 60011));
      assert.match(input.catchAllHandle ?? "", /^\d+$/);
      assert.match(input.jumpHandle ?? "", /^\d+$/);
      assert.equal(input.jumpUnreachable, true);
      assert.equal(openmeChainExists, true);
      assert.ok(acceptsUdpPort(openmeChainUdpPorts, 40000));
      assert.deepEqual(
        otherInputChains.map((c) => [c.where, c.defaultDeny]),
        [["table ip other chain INPUT", true]],
      );
    }, { loopbackUp: true });
  },
});

Deno.test({
  name:
    "inspectIptablesRuleset reads INPUT of iptables and ip6tables in a namespace",
  ignore: !canRun,
  fn: async () => {
    await withNamespace("insp", async (ns) => {
      await nsExec(ns, ["iptables", "-w", "-P", "INPUT", "DROP"]);
      await nsExec(ns, [
        "iptables",
        "-w",
        "-A",
        "INPUT",
        "-m",
        "conntrack",
        "--ctstate",
        "ESTABLISHED,RELATED",
        "-j",
        "ACCEPT",
      ]);
      await nsExec(ns, [
        "ip6tables",
        "-w",
        "-A",
        "INPUT",
        "-p",
        "ipv6-icmp",
        "--icmpv6-type",
        "neighbour-solicitation",
        "-j",
        "ACCEPT",
      ]);
      const { v4, v6 } = await inspectIptablesRuleset({ netns: ns });
      assert.equal(v4.defaultDeny, true);
      assert.equal(v4.acceptsEstablished, true);
      assert.equal(v6.policy, "accept");
      assert.equal(v6.defaultDeny, false);
      assert.equal(v6.acceptsNeighborDiscovery, false, "solicitation only");
    }, { loopbackUp: true });
  },
});

Deno.test({
  name:
    "listSocketInodes sees a namespace's sockets and findSocketOwners finds the process",
  ignore: !canRun,
  fn: async () => {
    await withNamespace("insp", async (ns) => {
      const port = 41000 + (Deno.pid % 10000);
      const code = `import { createSocket } from "node:dgram";
const u = createSocket("udp6");
await new Promise((r) => u.bind(${port}, "::", r));
const t = Deno.listen({ hostname: "0.0.0.0", port: ${port} });
console.log("ready");
setTimeout(() => Deno.exit(0), 20000);`;
      const child = new Deno.Command("ip", {
        args: ["netns", "exec", ns, "deno", "eval", "--no-config", code],
        stdout: "piped",
        stderr: "null",
        stdin: "null",
      }).spawn();
      const reader = child.stdout.getReader();
      try {
        const first = await reader.read();
        assert.match(new TextDecoder().decode(first.value), /ready/);
        const udp = await listSocketInodes("udp", port, { netns: ns });
        const tcp = await listSocketInodes("tcp", port, { netns: ns });
        assert.equal(udp.length, 1, "one udp6 socket");
        assert.equal(tcp.length, 1, "one tcp4 listener");
        const mine = [...udp, ...tcp];
        // The host's own socket table does not show the namespace's sockets.
        const host = await listSocketInodes("udp", port);
        assert.ok(!host.some((inode) => mine.includes(inode)));
        const owners = await findSocketOwners(mine);
        assert.equal(owners.size, 2);
        for (const owner of owners.values()) {
          assert.equal(owner.pid, child.pid);
          assert.ok(owner.argv.includes("eval"), owner.argv.join(" "));
        }
      } finally {
        reader.releaseLock();
        child.kill("SIGKILL");
        await child.status;
        await child.stdout.cancel().catch(() => {});
      }
    }, { loopbackUp: true });
  },
});
