/**
 * IptablesBackend against real iptables/ip6tables inside network namespaces
 * (root only). The backend runs the tools through `ip netns exec` (its
 * `netns` option), so the host's rules are never touched.
 */
import assert from "node:assert/strict";
import type { BaseRulesOptions } from "../../lib/firewall/backend.ts";
import { IptablesBackend } from "../../lib/firewall/iptables.ts";
import type { IpAddress } from "../../lib/ip.ts";
import { setLogSink } from "../../lib/log.ts";
import {
  canRunNetnsTests,
  IP_TOOL,
  IPTABLES_TOOLS,
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
const EMPTY = ["-P INPUT ACCEPT"];

const canRun = await canRunNetnsTests("iptables namespace tests", {
  rootFor: "ip netns add, iptables",
  tools: [IP_TOOL, ...IPTABLES_TOOLS],
});

/** Runs `iptables -w` or `ip6tables -w` in the namespace; returns its output. */
async function tool(
  ns: string,
  name: "iptables" | "ip6tables",
  args: string[],
): Promise<string> {
  return await nsExec(ns, [name, "-w", ...args]);
}

/** `-S INPUT` lines; the gate's too when asked (the gate tests check them). */
async function inputLines(
  ns: string,
  name: "iptables" | "ip6tables",
  options: { gate?: boolean } = {},
): Promise<string[]> {
  return (await tool(ns, name, ["-S", "INPUT"])).trimEnd().split("\n")
    .filter((line) =>
      options.gate === true || !line.includes(" --comment openme-gate ")
    );
}

function tagged(lines: string[], comment: string): string[] {
  return lines.filter((line) => line.includes(` --comment ${comment} `));
}

async function addOperatorRules(ns: string): Promise<void> {
  for (const name of ["iptables", "ip6tables"] as const) {
    await tool(ns, name, [
      "-A",
      "INPUT",
      "-m",
      "conntrack",
      "--ctstate",
      "ESTABLISHED,RELATED",
      "-j",
      "ACCEPT",
    ]);
    await tool(ns, name, ["-A", "INPUT", "-i", "lo", "-j", "ACCEPT"]);
    await tool(ns, name, [
      "-A",
      "INPUT",
      "-p",
      "tcp",
      "--dport",
      "2222",
      "-j",
      "ACCEPT",
      "-m",
      "comment",
      "--comment",
      "operator ssh",
    ]);
    await tool(ns, name, [
      "-A",
      "INPUT",
      "-p",
      "tcp",
      "--dport",
      "25",
      "-j",
      "ACCEPT",
      "-m",
      "comment",
      "--comment",
      "openme2",
    ]);
  }
}

Deno.test({
  name:
    "iptables setup on empty chains adds knock and drop rules in both families; teardown removes them",
  ignore: !canRun,
  fn: async () => {
    await withNamespace("fw-i", async (ns) => {
      const backend = new IptablesBackend({ netns: ns });
      try {
        await backend.setup({
          ...BASE,
          dropPorts: [{ port: 22, proto: "tcp" }, {
            port: 8080,
            endPort: 8090,
            proto: "tcp",
          }],
        });
        for (const name of ["iptables", "ip6tables"] as const) {
          assert.deepEqual(await inputLines(ns, name), [
            "-P INPUT ACCEPT",
            "-A INPUT -p udp -m udp --dport 54154 -m comment --comment openme-knock -j ACCEPT",
            "-A INPUT -p tcp -m tcp --dport 22 -m comment --comment openme-drop -j DROP",
            "-A INPUT -p tcp -m tcp --dport 8080:8090 -m comment --comment openme-drop -j DROP",
          ]);
        }
      } finally {
        await backend.teardown();
      }
      assert.deepEqual(await inputLines(ns, "iptables"), EMPTY);
      assert.deepEqual(await inputLines(ns, "ip6tables"), EMPTY);
    });
  },
});

Deno.test({
  name:
    "iptables opens v4, v6 and range rules before the drops and teardown keeps the operator's rules",
  ignore: !canRun,
  fn: async () => {
    await withNamespace("fw-i", async (ns) => {
      await addOperatorRules(ns);
      const v4Before = await inputLines(ns, "iptables");
      const v6Before = await inputLines(ns, "ip6tables");
      const backend = new IptablesBackend({ netns: ns });
      try {
        await backend.setup({
          ...BASE,
          dropPorts: [{ port: 22, proto: "tcp" }],
        });
        const v4 = await backend.open(V4, [{ port: 22, proto: "tcp" }, {
          port: 8080,
          endPort: 8090,
          proto: "tcp",
        }]);
        const v6 = await backend.open(V6, [{ port: 22, proto: "tcp" }, {
          port: 53,
          proto: "udp",
        }]);
        const v4Lines = await inputLines(ns, "iptables");
        const v6Lines = await inputLines(ns, "ip6tables");
        assert.deepEqual(tagged(v4Lines, "openme").sort(), [
          "-A INPUT -s 192.0.2.2/32 -p tcp -m tcp --dport 22 -m comment --comment openme -j ACCEPT",
          "-A INPUT -s 192.0.2.2/32 -p tcp -m tcp --dport 8080:8090 -m comment --comment openme -j ACCEPT",
        ]);
        assert.deepEqual(tagged(v6Lines, "openme").sort(), [
          "-A INPUT -s 2001:db8::1/128 -p tcp -m tcp --dport 22 -m comment --comment openme -j ACCEPT",
          "-A INPUT -s 2001:db8::1/128 -p udp -m udp --dport 53 -m comment --comment openme -j ACCEPT",
        ]);
        for (const lines of [v4Lines, v6Lines]) {
          const lastAccept = Math.max(
            ...tagged(lines, "openme").map((line) => lines.indexOf(line)),
          );
          const drop = lines.indexOf(tagged(lines, "openme-drop")[0]);
          assert.ok(
            drop > lastAccept,
            "drop rules sit after the per-knock accepts",
          );
          assert.equal(tagged(lines, "openme-knock").length, 1);
        }
        await backend.close(v4);
        assert.deepEqual(
          tagged(await inputLines(ns, "iptables"), "openme"),
          [],
        );
        assert.equal(
          tagged(await inputLines(ns, "ip6tables"), "openme").length,
          2,
        );
        await backend.close(v6);
        assert.deepEqual(
          tagged(await inputLines(ns, "ip6tables"), "openme"),
          [],
        );
        await backend.open(V4, [{ port: 443, proto: "tcp" }]);
      } finally {
        await backend.teardown();
      }
      assert.deepEqual(await inputLines(ns, "iptables"), v4Before);
      assert.deepEqual(await inputLines(ns, "ip6tables"), v6Before);
    });
  },
});

Deno.test({
  name:
    "iptables close succeeds quietly when a rule was deleted behind the backend's back",
  ignore: !canRun,
  fn: async () => {
    await withNamespace("fw-i", async (ns) => {
      const backend = new IptablesBackend({ netns: ns });
      try {
        await backend.setup(BASE);
        const opened = await backend.open(V6, [{ port: 22, proto: "tcp" }, {
          port: 443,
          proto: "tcp",
        }]);
        await tool(ns, "ip6tables", [
          "-D",
          "INPUT",
          ...opened.handles[1].split(" "),
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
        assert.deepEqual(
          tagged(await inputLines(ns, "ip6tables"), "openme"),
          [],
        );
      } finally {
        await backend.teardown();
      }
      assert.deepEqual(await inputLines(ns, "ip6tables"), EMPTY);
    });
  },
});

Deno.test({
  name:
    "iptables setup removes stale openme rules of a dead run and keeps the operator's rules",
  ignore: !canRun,
  fn: async () => {
    await withNamespace("fw-i", async (ns) => {
      await addOperatorRules(ns);
      const v4Before = await inputLines(ns, "iptables");
      const v6Before = await inputLines(ns, "ip6tables");
      await tool(
        ns,
        "iptables",
        "-I INPUT -s 192.0.2.99 -p tcp --dport 22 -j ACCEPT -m comment --comment openme"
          .split(" "),
      );
      await tool(
        ns,
        "iptables",
        "-I INPUT -p udp --dport 54154 -j ACCEPT -m comment --comment openme-knock"
          .split(" "),
      );
      await tool(
        ns,
        "iptables",
        "-A INPUT -p tcp --dport 22 -j DROP -m comment --comment openme-drop"
          .split(" "),
      );
      await tool(
        ns,
        "ip6tables",
        "-I INPUT -s 2001:db8::99 -p tcp --dport 22 -j ACCEPT -m comment --comment openme"
          .split(" "),
      );
      const backend = new IptablesBackend({ netns: ns });
      try {
        await backend.setup({ ...BASE, openKnockPort: false });
        assert.deepEqual(await inputLines(ns, "iptables"), v4Before);
        assert.deepEqual(await inputLines(ns, "ip6tables"), v6Before);
      } finally {
        await backend.teardown();
      }
    });
  },
});

Deno.test({
  name: "iptables rules match the interface when one is set",
  ignore: !canRun,
  fn: async () => {
    await withNamespace("fw-i", async (ns) => {
      const backend = new IptablesBackend({ netns: ns });
      try {
        await backend.setup({
          ...BASE,
          dropPorts: [{ port: 22, proto: "tcp" }],
          interface: "om-test0",
        });
        await backend.open(V4, [{ port: 22, proto: "tcp" }]);
        assert.deepEqual(await inputLines(ns, "iptables"), [
          "-P INPUT ACCEPT",
          "-A INPUT -s 192.0.2.2/32 -i om-test0 -p tcp -m tcp --dport 22 -m comment --comment openme -j ACCEPT",
          "-A INPUT -i om-test0 -p udp -m udp --dport 54154 -m comment --comment openme-knock -j ACCEPT",
          "-A INPUT -i om-test0 -p tcp -m tcp --dport 22 -m comment --comment openme-drop -j DROP",
        ]);
      } finally {
        await backend.teardown();
      }
      assert.deepEqual(await inputLines(ns, "iptables"), EMPTY);
    });
  },
});

Deno.test({
  name:
    "iptables updateBaseRules replaces knock and drop rules and keeps open per-knock rules",
  ignore: !canRun,
  fn: async () => {
    await withNamespace("fw-i", async (ns) => {
      const backend = new IptablesBackend({ netns: ns });
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
        assert.deepEqual(await inputLines(ns, "iptables"), [
          "-P INPUT ACCEPT",
          "-A INPUT -p udp -m udp --dport 40000 -m comment --comment openme-knock -j ACCEPT",
          "-A INPUT -s 192.0.2.2/32 -p tcp -m tcp --dport 22 -m comment --comment openme -j ACCEPT",
          "-A INPUT -p tcp -m tcp --dport 443 -m comment --comment openme-drop -j DROP",
        ]);
        await backend.close(opened);
        assert.deepEqual(
          tagged(await inputLines(ns, "iptables"), "openme"),
          [],
        );
      } finally {
        await backend.teardown();
      }
      assert.deepEqual(await inputLines(ns, "iptables"), EMPTY);
      assert.deepEqual(await inputLines(ns, "ip6tables"), EMPTY);
    });
  },
});

Deno.test({
  name: "iptables concurrent opens and closes are serialised",
  ignore: !canRun,
  fn: async () => {
    await withNamespace("fw-i", async (ns) => {
      const backend = new IptablesBackend({ netns: ns });
      try {
        await backend.setup(BASE);
        const opens = [];
        for (let i = 1; i <= 6; i++) {
          opens.push(
            backend.open({ family: 4, text: `198.51.100.${i}` }, [{
              port: 22,
              proto: "tcp",
            }]),
          );
          opens.push(
            backend.open({ family: 6, text: `2001:db8::${i}` }, [{
              port: 22,
              proto: "tcp",
            }]),
          );
        }
        const opened = await Promise.all(opens);
        assert.equal(
          tagged(await inputLines(ns, "iptables"), "openme").length,
          6,
        );
        assert.equal(
          tagged(await inputLines(ns, "ip6tables"), "openme").length,
          6,
        );
        await Promise.all(opened.map((rules) => backend.close(rules)));
        assert.deepEqual(
          tagged(await inputLines(ns, "iptables"), "openme"),
          [],
        );
        assert.deepEqual(
          tagged(await inputLines(ns, "ip6tables"), "openme"),
          [],
        );
      } finally {
        await backend.teardown();
      }
    });
  },
});

Deno.test({
  name:
    "iptables installs the knock gate ahead of the knock rule in both families, puts it back after iptables -F, and teardown leaves none of it",
  ignore: !canRun,
  fn: async () => {
    await withNamespace("fw-i", async (ns) => {
      const gate = (family: 4 | 6) => {
        const [size, version] = family === 4
          ? ["0x0>>0x16&0x3c@0x4>>0x10=0xad", "0x0>>0x16&0x3c@0x8>>0x18=0x1"]
          : ["0x2c>>0x10=0xad", "0x30>>0x18=0x1"];
        const mask = family === 6 ? " --hashlimit-srcmask 64" : "";
        const match = "-A INPUT -p udp -m udp --dport 54154";
        const tag = "-m comment --comment openme-gate -j DROP";
        return [
          "-P INPUT ACCEPT",
          `${match} -m u32 ! --u32 "${size}" ${tag}`,
          `${match} -m u32 ! --u32 "${version}" ${tag}`,
          `${match} -m hashlimit --hashlimit-above 1/hour --hashlimit-burst 2 --hashlimit-mode srcip --hashlimit-name openme${family}-1h2 --hashlimit-htable-expire 7200000${mask} ${tag}`,
          `${match} -m comment --comment openme-knock -j ACCEPT`,
        ];
      };
      const backend = new IptablesBackend({ netns: ns });
      try {
        await backend.setup({
          ...BASE,
          knockRateLimit: { count: 1, unit: "hour", burst: 2 },
        });
        assert.deepEqual(
          await inputLines(ns, "iptables", { gate: true }),
          gate(4),
        );
        assert.deepEqual(
          await inputLines(ns, "ip6tables", { gate: true }),
          gate(6),
        );
        assert.deepEqual(await backend.gateCounters(), {
          size: 0,
          version: 0,
          rate: 0,
        });
        await tool(ns, "iptables", ["-F"]);
        const check = await backend.ensureBaseRules([]);
        assert.deepEqual(check.repaired, ["knock and drop rules (iptables)"]);
        assert.deepEqual(
          await inputLines(ns, "iptables", { gate: true }),
          gate(4),
        );
      } finally {
        await backend.teardown();
      }
      assert.deepEqual(await inputLines(ns, "iptables", { gate: true }), EMPTY);
      assert.deepEqual(
        await inputLines(ns, "ip6tables", { gate: true }),
        EMPTY,
      );
    });
  },
});
