/**
 * Tests of lib/firewall/inspect.ts: the parsers on fixed listings (no root
 * needed), then the real tools against rulesets and sockets built inside
 * network namespaces of this test (root only).
 */

import assert from "node:assert/strict";
import {
  acceptsNeighborDiscovery,
  acceptsUdpPort,
  findSocketOwners,
  hasNetAdminCapability,
  inspectClockSync,
  inspectIptablesRuleset,
  inspectNftRuleset,
  isOpenmeServe,
  listBoundSockets,
  parseIptablesInput,
  parseNftRuleset,
  parseProcNetSockets,
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

Deno.test("parseNftRuleset reads policy, jump, established, ICMPv6 and UDP accepts from nft JSON", () => {
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
  const facts = parseNftRuleset(json);
  assert.equal(facts.input.exists, true);
  assert.equal(facts.input.policy, "accept");
  assert.equal(facts.input.defaultDeny, false);
  assert.equal(facts.input.acceptsEstablished, true);
  assert.equal(facts.input.acceptsAllIcmpv6, true);
  assert.ok(acceptsNeighborDiscovery(facts.input));
  assert.equal(facts.input.jumpsToOpenme, true);
  assert.equal(facts.input.jumpHandle, 6);
  assert.equal(facts.input.jumpUnreachable, false);
  assert.equal(facts.openmeChainExists, false);
  assert.deepEqual(facts.otherInputChains, []);
});

Deno.test("parseNftRuleset of an empty ruleset has no input chain", () => {
  const facts = parseNftRuleset('{"nftables":[{"metainfo":{}}]}');
  assert.equal(facts.input.exists, false);
  assert.equal(facts.input.defaultDeny, false);
  assert.throws(() => parseNftRuleset('{"other":1}'), /nftables/);
});

Deno.test("parseIptablesInput reads policy, catch-all, conntrack, ICMPv6 types and UDP ports", () => {
  const v4 = parseIptablesInput(
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
  assert.equal(v4.catchAllDrop, true);
  assert.equal(v4.defaultDeny, true);
  assert.equal(v4.acceptsEstablished, true);
  assert.equal(v4.acceptsLoopback, true);
  assert.ok(acceptsUdpPort(v4.acceptedUdpPorts, 54154));
  assert.ok(acceptsUdpPort(v4.acceptedUdpPorts, 53));
  assert.ok(acceptsUdpPort(v4.acceptedUdpPorts, 60005));
  assert.ok(!acceptsUdpPort(v4.acceptedUdpPorts, 22));

  const v6 = parseIptablesInput(
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
  assert.deepEqual(v6.acceptedIcmpv6Types.sort(), [135, 136]);
  assert.ok(acceptsNeighborDiscovery(v6));

  const onlySolicit = parseIptablesInput(
    "-P INPUT DROP\n-A INPUT -p ipv6-icmp --icmpv6-type 135 -j ACCEPT\n-A INPUT -m conntrack ! --ctstate ESTABLISHED -j ACCEPT\n",
    "ip6tables INPUT",
  );
  assert.equal(acceptsNeighborDiscovery(onlySolicit), false);
  assert.equal(onlySolicit.acceptsEstablished, false);
});

Deno.test("parseProcNetSockets finds bound UDP sockets and listening TCP sockets", () => {
  const udp6 = [
    "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops",
    " 2449: 00000000000000000000000000000000:D38A 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 96870 2 000000006af1bdd2 0",
  ].join("\n");
  assert.deepEqual(parseProcNetSockets(udp6, "udp", 6), [
    { proto: "udp", family: 6, port: 54154, inode: 96870 },
  ]);
  const tcp = [
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "   0: 0100007F:D38A 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 96871 1 0000 100 0 0 10 0",
    "   1: 0100007F:9C42 0100007F:D38A 01 00000000:00000000 00:00000000 00000000     0        0 96872 1 0000 100 0 0 10 0",
  ].join("\n");
  assert.deepEqual(parseProcNetSockets(tcp, "tcp", 4), [
    { proto: "tcp", family: 4, port: 54154, inode: 96871 },
  ]);
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
    const result = await toolVersion("nft", { env: { PATH: empty } });
    assert.equal(result.ok, false);
    if (!result.ok) assert.match(result.error, /command not found: nft/);
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
      assert.ok(empty.ok);
      if (empty.ok) assert.equal(empty.value.input.exists, false);

      await nsExec(ns, ["nft", "-f", "-"], { stdin: RICH_NFT_RULESET });
      const listed = await inspectNftRuleset({ netns: ns });
      assert.ok(listed.ok, listed.ok ? "" : listed.error);
      if (!listed.ok) return;
      const {
        input,
        openmeChainExists,
        openmeChainUdpPorts,
        otherInputChains,
      } = listed.value;
      assert.equal(input.where, "table inet filter chain input");
      assert.equal(input.policy, "drop");
      assert.equal(input.defaultDeny, true);
      assert.equal(input.acceptsEstablished, true);
      assert.equal(input.acceptsLoopback, true);
      assert.ok(acceptsNeighborDiscovery(input));
      assert.equal(input.acceptsAllIcmpv6, false);
      assert.ok(acceptsUdpPort(input.acceptedUdpPorts, 54154));
      assert.ok(acceptsUdpPort(input.acceptedUdpPorts, 60010));
      assert.ok(!acceptsUdpPort(input.acceptedUdpPorts, 60011));
      assert.equal(input.catchAllDrop, true);
      assert.equal(typeof input.catchAllHandle, "number");
      assert.equal(input.jumpsToOpenme, true);
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
      const listed = await inspectIptablesRuleset({ netns: ns });
      assert.ok(listed.ok, listed.ok ? "" : listed.error);
      if (!listed.ok) return;
      assert.equal(listed.value.v4.defaultDeny, true);
      assert.equal(listed.value.v4.acceptsEstablished, true);
      assert.equal(listed.value.v6.policy, "accept");
      assert.equal(listed.value.v6.defaultDeny, false);
      assert.deepEqual(listed.value.v6.acceptedIcmpv6Types, [135]);
    }, { loopbackUp: true });
  },
});

Deno.test({
  name:
    "listBoundSockets sees a namespace's sockets and findSocketOwners finds the process",
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
        const listed = await listBoundSockets({ netns: ns });
        assert.ok(listed.ok, listed.ok ? "" : listed.error);
        if (!listed.ok) return;
        const mine = listed.value.filter((s) => s.port === port);
        assert.deepEqual(
          mine.map((s) => `${s.proto}${s.family}`).sort(),
          ["tcp4", "udp6"],
        );
        // The host's own socket table does not show the namespace's sockets.
        const host = await listBoundSockets();
        assert.ok(host.ok);
        if (host.ok) {
          assert.ok(
            !host.value.some((s) =>
              s.port === port && mine.some((m) => m.inode === s.inode)
            ),
          );
        }
        const owners = await findSocketOwners(mine.map((s) => s.inode));
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
