import assert from "node:assert/strict";
import {
  type BaseRulesOptions,
  FirewallError,
} from "../../lib/firewall/backend.ts";
import { GATE_CHECKS } from "../../lib/firewall/gate.ts";
import { parseIptablesChain } from "../../lib/firewall/inspect.ts";
import {
  buildIptablesAcceptSpec,
  buildIptablesBaseRules,
  IptablesBackend,
  iptablesRuleKey,
} from "../../lib/firewall/iptables.ts";
import type { IpAddress } from "../../lib/ip.ts";
import { setLogSink } from "../../lib/log.ts";

// Keep test output readable; tests that check logs capture them explicitly.
setLogSink(() => {});

const V4: IpAddress = { family: 4, text: "192.0.2.2" };
const V6: IpAddress = { family: 6, text: "2001:db8::1" };
const BASE: BaseRulesOptions = {
  knockPort: 54154,
  openKnockPort: true,
  dropPorts: [],
  interface: null,
};

/** Base rules without, and with, the whole knock gate (IPv4). */
const NO_GATE = { family: 4, checks: [] } as const;
const ALL_GATE = { family: 4, checks: GATE_CHECKS } as const;

/** The iptables-restore lines of the gate and knock rule of {@linkcode BASE}: each -I goes to the top, so the gate comes out size, version, rate, then the knock rule. */
function gateRestoreLines(family: 4 | 6, iface: string | null): string[] {
  const match = `${iface === null ? "" : `-i ${iface} `}-p udp --dport 54154`;
  const at = family === 4 ? ["0>>22&0x3C@4", "0>>22&0x3C@8"] : ["44", "48"];
  const mask = family === 6 ? " --hashlimit-srcmask 64" : "";
  const gate = "-j DROP -m comment --comment openme-gate";
  return [
    `-I INPUT ${match} -j ACCEPT -m comment --comment openme-knock`,
    `-I INPUT ${match} -m hashlimit --hashlimit-mode srcip --hashlimit-above 20/second --hashlimit-burst 40${mask} --hashlimit-name openme${family}-20s40 --hashlimit-htable-expire 60000 ${gate}`,
    `-I INPUT ${match} -m u32 ! --u32 "${at[1]}>>24=1" ${gate}`,
    `-I INPUT ${match} -m u32 ! --u32 "${at[0]}>>16=173" ${gate}`,
  ];
}

// Real `ip6tables -w -v -S INPUT` output (iptables 1.8.9, nf_tables) of the gate and knock rule.
const IP6TABLES_GATE_SAMPLE = [
  "-P INPUT ACCEPT -c 0 0",
  '-A INPUT -p udp -m udp --dport 54154 -m u32 ! --u32 "0x2c>>0x10=0xad" -m comment --comment openme-gate -c 3 120 -j DROP',
  '-A INPUT -p udp -m udp --dport 54154 -m u32 ! --u32 "0x30>>0x18=0x1" -m comment --comment openme-gate -c 2 400 -j DROP',
  "-A INPUT -p udp -m udp --dport 54154 -m hashlimit --hashlimit-above 20/sec --hashlimit-burst 40 --hashlimit-mode srcip --hashlimit-name openme6-20s40 --hashlimit-htable-expire 60000 --hashlimit-srcmask 64 -m comment --comment openme-gate -c 7 1400 -j DROP",
  "-A INPUT -p udp -m udp --dport 54154 -m comment --comment openme-knock -c 0 0 -j ACCEPT",
  "",
].join("\n");

// Real `iptables -w -S INPUT` output (iptables 1.8.9, nf_tables).
const IPTABLES_S_SAMPLE = [
  "-P INPUT ACCEPT",
  "-A INPUT -s 192.0.2.2/32 -p tcp -m tcp --dport 8080:8090 -m comment --comment openme -j ACCEPT",
  "-A INPUT -s 192.0.2.2/32 -i eth0 -p tcp -m tcp --dport 22 -m comment --comment openme -j ACCEPT",
  "-A INPUT -p udp -m udp --dport 54154 -m comment --comment openme-knock -j ACCEPT",
  "-A INPUT -p tcp -m tcp --dport 22 -m comment --comment openme-drop -j DROP",
  '-A INPUT -p tcp -m tcp --dport 23 -m comment --comment "my rule" -j DROP',
  "-A INPUT -p tcp -m tcp --dport 24 -m comment --comment openme2 -j DROP",
  "",
].join("\n");

// Real `ip6tables -w -S INPUT` output.
const IP6TABLES_S_SAMPLE = "-P INPUT ACCEPT\n" +
  "-A INPUT -s 2001:db8::1/128 -p tcp -m tcp --dport 22 -m comment --comment openme -j ACCEPT\n";

Deno.test("per-knock iptables specs match SPEC §9 for IPv4, IPv6, lo:hi ranges and interfaces", () => {
  assert.deepEqual(
    buildIptablesAcceptSpec(V4, { port: 22, proto: "tcp" }, null),
    "-s 192.0.2.2 -p tcp --dport 22 -j ACCEPT -m comment --comment openme"
      .split(" "),
  );
  assert.deepEqual(
    buildIptablesAcceptSpec(
      V6,
      { port: 8080, endPort: 8090, proto: "tcp" },
      null,
    ),
    "-s 2001:db8::1 -p tcp --dport 8080:8090 -j ACCEPT -m comment --comment openme"
      .split(" "),
  );
  assert.deepEqual(
    buildIptablesAcceptSpec(V4, { port: 53, proto: "udp" }, "eth0"),
    "-i eth0 -s 192.0.2.2 -p udp --dport 53 -j ACCEPT -m comment --comment openme"
      .split(" "),
  );
});

Deno.test("buildIptablesBaseRules puts the knock rule at the top and the drops at the end, with comments and the interface", () => {
  assert.deepEqual(
    buildIptablesBaseRules({
      ...BASE,
      dropPorts: [{ port: 8080, endPort: 8090, proto: "tcp" }],
      interface: "wg0",
    }, NO_GATE).map((rule) => rule.join(" ")),
    [
      "-I INPUT -i wg0 -p udp --dport 54154 -j ACCEPT -m comment --comment openme-knock",
      "-A INPUT -i wg0 -p tcp --dport 8080:8090 -j DROP -m comment --comment openme-drop",
    ],
  );
  assert.deepEqual(
    buildIptablesBaseRules({ ...BASE, openKnockPort: false }, ALL_GATE),
    [],
  );
});

Deno.test("iptablesRuleKey matches a spec openme built with the line iptables -S lists for it", () => {
  const listed = parseIptablesChain(IPTABLES_S_SAMPLE + IP6TABLES_S_SAMPLE)
    .rules.filter((rule) =>
      rule.comment?.startsWith("openme-") || rule.comment === "openme"
    )
    .filter((rule) => rule.comment !== "openme2")
    .map((rule) => iptablesRuleKey(rule.spec));
  const ours = [
    buildIptablesAcceptSpec(
      V4,
      { port: 8080, endPort: 8090, proto: "tcp" },
      null,
    ),
    buildIptablesAcceptSpec(V4, { port: 22, proto: "tcp" }, "eth0"),
    ...buildIptablesBaseRules({
      ...BASE,
      dropPorts: [{ port: 22, proto: "tcp" }],
    }, NO_GATE).map((rule) => rule.slice(2)),
    buildIptablesAcceptSpec(V6, { port: 22, proto: "tcp" }, null),
  ].map(iptablesRuleKey);
  assert.deepEqual(ours, listed);
  const ssh = buildIptablesAcceptSpec(V4, { port: 22, proto: "tcp" }, null);
  assert.notEqual(
    iptablesRuleKey(ssh),
    iptablesRuleKey(
      buildIptablesAcceptSpec(V4, { port: 22, proto: "tcp" }, "eth0"),
    ),
  );
  assert.notEqual(
    iptablesRuleKey(ssh),
    iptablesRuleKey(
      buildIptablesAcceptSpec(V4, { port: 23, proto: "tcp" }, null),
    ),
  );
});

// ---- IptablesBackend against fake iptables/ip6tables first in PATH -------

const FAKE_TOOL = `#!/bin/sh
dir="$FAKE_DIR"
n=$(cat "$dir/count" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$dir/count"
echo "$(basename "$0") $*" >> "$dir/calls.log"
case "$(basename "$0")" in *-restore) cat > "$dir/stdin-$n.txt" ;; esac
[ -f "$dir/out-$n.txt" ] && cat "$dir/out-$n.txt"
[ -f "$dir/err-$n.txt" ] && cat "$dir/err-$n.txt" >&2
if [ -f "$dir/code-$n.txt" ]; then exit "$(cat "$dir/code-$n.txt")"; fi
exit 0
`;

const BAD_RULE =
  "iptables: Bad rule (does a matching rule exist in that chain?).\n";

class FakeIptables {
  constructor(readonly dir: string) {}

  static async create(
    tools: string[] = [
      "iptables",
      "ip6tables",
      "iptables-restore",
      "ip6tables-restore",
    ],
  ): Promise<FakeIptables> {
    const dir = await Deno.makeTempDir({ prefix: "openme-fake-iptables-" });
    for (const tool of tools) {
      await Deno.writeTextFile(`${dir}/${tool}`, FAKE_TOOL);
      await Deno.chmod(`${dir}/${tool}`, 0o755);
    }
    return new FakeIptables(dir);
  }

  get env(): Record<string, string> {
    return { PATH: `${this.dir}:/usr/bin:/bin`, FAKE_DIR: this.dir };
  }

  async respond(
    call: number,
    response: { out?: string; err?: string; code?: number },
  ) {
    if (response.out !== undefined) {
      await Deno.writeTextFile(`${this.dir}/out-${call}.txt`, response.out);
    }
    if (response.err !== undefined) {
      await Deno.writeTextFile(`${this.dir}/err-${call}.txt`, response.err);
    }
    if (response.code !== undefined) {
      await Deno.writeTextFile(
        `${this.dir}/code-${call}.txt`,
        `${response.code}`,
      );
    }
  }

  async calls(): Promise<string[]> {
    try {
      return (await Deno.readTextFile(`${this.dir}/calls.log`)).trimEnd().split(
        "\n",
      );
    } catch {
      return [];
    }
  }

  stdin(call: number): Promise<string> {
    return Deno.readTextFile(`${this.dir}/stdin-${call}.txt`);
  }

  async remove(): Promise<void> {
    await Deno.remove(this.dir, { recursive: true });
  }
}

async function captureLogs(fn: () => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  const previous = setLogSink((line) => lines.push(line));
  try {
    await fn();
  } finally {
    setLogSink(previous);
  }
  return lines;
}

Deno.test("IptablesBackend.setup removes stale tagged rules and adds the base rules in one restore per family", async () => {
  const fake = await FakeIptables.create();
  try {
    await fake.respond(1, { out: IPTABLES_S_SAMPLE });
    const backend = new IptablesBackend({ env: fake.env });
    const logs = await captureLogs(() =>
      backend.setup({
        ...BASE,
        dropPorts: [{ port: 22, proto: "tcp" }],
        interface: "eth0",
      })
    );
    assert.deepEqual(await fake.calls(), [
      "iptables -w -v -S INPUT",
      "iptables-restore --noflush -w",
      "ip6tables -w -v -S INPUT",
      "ip6tables-restore --noflush -w",
    ]);
    const drop =
      "-A INPUT -i eth0 -p tcp --dport 22 -j DROP -m comment --comment openme-drop";
    const added = [...gateRestoreLines(4, "eth0"), drop];
    assert.equal(
      await fake.stdin(2),
      [
        "*filter",
        "-D INPUT -s 192.0.2.2/32 -p tcp -m tcp --dport 8080:8090 -m comment --comment openme -j ACCEPT",
        "-D INPUT -s 192.0.2.2/32 -i eth0 -p tcp -m tcp --dport 22 -m comment --comment openme -j ACCEPT",
        "-D INPUT -p udp -m udp --dport 54154 -m comment --comment openme-knock -j ACCEPT",
        "-D INPUT -p tcp -m tcp --dport 22 -m comment --comment openme-drop -j DROP",
        ...added,
        "COMMIT",
        "",
      ].join("\n"),
    );
    assert.equal(
      await fake.stdin(4),
      ["*filter", ...gateRestoreLines(6, "eth0"), drop, "COMMIT", ""].join(
        "\n",
      ),
    );
    assert.ok(
      logs.some((line) =>
        line.startsWith("WARN") &&
        line.includes("removed 2 stale per-knock iptables rules")
      ),
    );
  } finally {
    await fake.remove();
  }
});

Deno.test("IptablesBackend.updateBaseRules replaces the knock and drop rules and keeps per-knock rules", async () => {
  const fake = await FakeIptables.create();
  try {
    const backend = new IptablesBackend({ env: fake.env });
    await backend.setup({ ...BASE, openKnockPort: false });
    await fake.respond(3, { out: IPTABLES_S_SAMPLE });
    await backend.updateBaseRules({ ...BASE, knockPort: 40000 });
    assert.deepEqual((await fake.calls()).slice(2), [
      "iptables -w -v -S INPUT",
      "iptables-restore --noflush -w",
      "ip6tables -w -v -S INPUT",
      "ip6tables-restore --noflush -w",
    ]);
    assert.equal(
      await fake.stdin(4),
      [
        "*filter",
        "-D INPUT -p udp -m udp --dport 54154 -m comment --comment openme-knock -j ACCEPT",
        "-D INPUT -p tcp -m tcp --dport 22 -m comment --comment openme-drop -j DROP",
        ...gateRestoreLines(4, null).map((line) =>
          line.replace("54154", "40000")
        ),
        "COMMIT",
        "",
      ].join("\n"),
    );
  } finally {
    await fake.remove();
  }
});

Deno.test("IptablesBackend.ensureBaseRules puts back a missing knock rule and reports per-knock rules that are gone", async () => {
  const fake = await FakeIptables.create();
  try {
    const backend = new IptablesBackend({ env: fake.env });
    await backend.setup(BASE);
    // calls 1-4: setup (listing and restore per family); 5-6: two opens.
    const kept = await backend.open(V4, [{ port: 22, proto: "tcp" }]);
    const gone = await backend.open({ family: 4, text: "192.0.2.3" }, [{
      port: 22,
      proto: "tcp",
    }]);
    // 7: iptables -S after `iptables -F INPUT` and a partial restore.
    const v4 = "-P INPUT DROP\n" +
      "-A INPUT -s 192.0.2.2/32 -p tcp -m tcp --dport 22 -m comment --comment openme -j ACCEPT\n";
    await fake.respond(7, { out: v4 });
    await fake.respond(8, { out: v4 });
    // 10: ip6tables -S still has the gate and the knock rule.
    await fake.respond(10, { out: IP6TABLES_GATE_SAMPLE });
    const check = await backend.ensureBaseRules([kept, gone]);
    assert.deepEqual(check.repaired, ["knock and drop rules (iptables)"]);
    assert.deepEqual(check.lost, [gone]);
    assert.deepEqual((await fake.calls()).slice(6), [
      "iptables -w -v -S INPUT",
      "iptables -w -v -S INPUT",
      "iptables-restore --noflush -w",
      "ip6tables -w -v -S INPUT",
    ]);
    assert.equal(
      await fake.stdin(9),
      ["*filter", ...gateRestoreLines(4, null), "COMMIT", ""].join("\n"),
    );
  } finally {
    await fake.remove();
  }
});

Deno.test("IptablesBackend serves IPv4 only when ip6tables is missing, and IPv6 opens fail clearly", async () => {
  const fake = await FakeIptables.create(["iptables", "iptables-restore"]);
  try {
    const backend = new IptablesBackend({ env: fake.env });
    const logs = await captureLogs(() => backend.setup(BASE));
    assert.ok(
      logs.some((line) =>
        line.startsWith("WARN") && line.includes("ip6tables is not usable")
      ),
    );
    const opened = await backend.open(V4, [{ port: 22, proto: "tcp" }]);
    assert.equal(opened.handles.length, 1);
    await assert.rejects(
      backend.open(V6, [{ port: 22, proto: "tcp" }]),
      (err: unknown) => {
        assert.ok(err instanceof FirewallError);
        assert.match(
          err.message,
          /ip6tables was not usable at setup \(.*command not found: ip6tables/,
        );
        assert.match(err.message, /2001:db8::1/);
        return true;
      },
    );
  } finally {
    await fake.remove();
  }
});

Deno.test("IptablesBackend.setup fails with FirewallError when iptables itself fails", async () => {
  const fake = await FakeIptables.create();
  try {
    // The first failure could be the gate's: setup tries once more without it.
    for (const call of [1, 2]) {
      await fake.respond(call, {
        code: 4,
        err:
          "iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)\n",
      });
    }
    const backend = new IptablesBackend({ env: fake.env });
    await assert.rejects(backend.setup(BASE), (err: unknown) => {
      assert.ok(err instanceof FirewallError);
      assert.match(
        err.message,
        /iptables -w -v -S INPUT failed \(exit 4\): .*Permission denied/,
      );
      assert.match(err.message, /are you root/);
      return true;
    });
  } finally {
    await fake.remove();
  }
});

Deno.test("IptablesBackend.open inserts one rule per port and rolls back when one fails", async () => {
  const fake = await FakeIptables.create();
  try {
    const backend = new IptablesBackend({ env: fake.env });
    await backend.setup({ ...BASE, openKnockPort: false });
    // Calls 1-2 were the two -S listings; 3 and 4 are the inserts, 4 fails.
    await fake.respond(4, {
      code: 2,
      err: "iptables v1.8.9 (nf_tables): invalid port/service `x' specified\n",
    });
    await assert.rejects(
      backend.open(V4, [{ port: 22, proto: "tcp" }, {
        port: 8080,
        endPort: 8090,
        proto: "tcp",
      }]),
      /opening 22\/tcp, 8080-8090\/tcp for 192\.0\.2\.2: iptables .* failed \(exit 2\)/,
    );
    assert.deepEqual((await fake.calls()).slice(2), [
      "iptables -w -I INPUT -s 192.0.2.2 -p tcp --dport 22 -j ACCEPT -m comment --comment openme",
      "iptables -w -I INPUT -s 192.0.2.2 -p tcp --dport 8080:8090 -j ACCEPT -m comment --comment openme",
      "iptables -w -D INPUT -s 192.0.2.2 -p tcp --dport 22 -j ACCEPT -m comment --comment openme",
    ]);
  } finally {
    await fake.remove();
  }
});

Deno.test("IptablesBackend.close deletes with ip6tables for IPv6 and tolerates rules already gone", async () => {
  const fake = await FakeIptables.create();
  try {
    const backend = new IptablesBackend({ env: fake.env });
    await backend.setup({ ...BASE, openKnockPort: false, interface: "eth0" });
    const opened = await backend.open(V6, [{ port: 22, proto: "tcp" }, {
      port: 443,
      proto: "tcp",
    }]);
    assert.deepEqual(opened.handles, [
      "-i eth0 -s 2001:db8::1 -p tcp --dport 22 -j ACCEPT -m comment --comment openme",
      "-i eth0 -s 2001:db8::1 -p tcp --dport 443 -j ACCEPT -m comment --comment openme",
    ]);
    await fake.respond(5, { code: 1, err: BAD_RULE });
    const logs = await captureLogs(() => backend.close(opened));
    assert.deepEqual(logs.filter((line) => !line.startsWith("DEBUG")), []);
    assert.deepEqual((await fake.calls()).slice(4), [
      "ip6tables -w -D INPUT -i eth0 -s 2001:db8::1 -p tcp --dport 22 -j ACCEPT -m comment --comment openme",
      "ip6tables -w -D INPUT -i eth0 -s 2001:db8::1 -p tcp --dport 443 -j ACCEPT -m comment --comment openme",
    ]);
  } finally {
    await fake.remove();
  }
});

Deno.test("IptablesBackend.close reports failures other than a rule already gone", async () => {
  const fake = await FakeIptables.create();
  try {
    const backend = new IptablesBackend({ env: fake.env });
    await backend.setup({ ...BASE, openKnockPort: false });
    const opened = await backend.open(V4, [{ port: 22, proto: "tcp" }]);
    await fake.respond(4, { code: 4, err: "iptables: Permission denied.\n" });
    await assert.rejects(backend.close(opened), /Permission denied/);
  } finally {
    await fake.remove();
  }
});

Deno.test("IptablesBackend.teardown removes all three tags in both families and nothing else, one restore per family", async () => {
  const fake = await FakeIptables.create();
  try {
    const backend = new IptablesBackend({ env: fake.env });
    await backend.setup({ ...BASE, openKnockPort: false });
    await fake.respond(3, { out: IPTABLES_S_SAMPLE });
    await fake.respond(5, { out: IP6TABLES_S_SAMPLE + IP6TABLES_S_SAMPLE });
    await backend.teardown();
    assert.deepEqual((await fake.calls()).slice(2), [
      "iptables -w -v -S INPUT",
      "iptables-restore --noflush -w",
      "ip6tables -w -v -S INPUT",
      "ip6tables-restore --noflush -w",
    ]);
    const v4 = (await fake.stdin(4)).split("\n");
    assert.equal(v4.length, 7, v4.join("\n"));
    assert.equal(v4[0], "*filter");
    assert.equal(v4[5], "COMMIT");
    assert.ok(
      v4.slice(1, 5).every((line) =>
        line.startsWith("-D INPUT ") &&
        / --comment openme(-knock|-drop)? /.test(line)
      ),
    );
    assert.ok(!v4.some((line) => /my rule|openme2/.test(line)));
    assert.match(
      await fake.stdin(6),
      /^\*filter\n-D INPUT -s 2001:db8::1\/128 /,
    );
  } finally {
    await fake.remove();
  }
});

Deno.test("IptablesBackend.teardown lists again and deletes one rule at a time when iptables-restore fails", async () => {
  const fake = await FakeIptables.create();
  try {
    const backend = new IptablesBackend({ env: fake.env });
    await backend.setup({ ...BASE, openKnockPort: false });
    await fake.respond(3, { out: IPTABLES_S_SAMPLE });
    await fake.respond(4, {
      code: 2,
      err: "iptables-restore: line 2 failed\n",
    });
    // The first per-knock rule went away meanwhile; the next one goes too.
    const [, first, ...rest] = IPTABLES_S_SAMPLE.split("\n");
    assert.match(first, /--dport 8080:8090/);
    await fake.respond(5, { out: ["-P INPUT ACCEPT", ...rest].join("\n") });
    await fake.respond(6, { code: 1, err: BAD_RULE });
    await backend.teardown();
    assert.deepEqual((await fake.calls()).slice(2), [
      "iptables -w -v -S INPUT",
      "iptables-restore --noflush -w",
      "iptables -w -v -S INPUT",
      "iptables -w -D INPUT -s 192.0.2.2/32 -i eth0 -p tcp -m tcp --dport 22 -m comment --comment openme -j ACCEPT",
      "iptables -w -D INPUT -p udp -m udp --dport 54154 -m comment --comment openme-knock -j ACCEPT",
      "iptables -w -D INPUT -p tcp -m tcp --dport 22 -m comment --comment openme-drop -j DROP",
      "ip6tables -w -v -S INPUT",
    ]);
  } finally {
    await fake.remove();
  }
});

Deno.test("IptablesBackend.teardown works without iptables-restore installed (one -D per rule)", async () => {
  const fake = await FakeIptables.create(["iptables", "ip6tables"]);
  try {
    // PATH is the fake directory only (no real iptables-restore can be found
    // there), with the two utilities the fake tool itself needs.
    for (const utility of ["cat", "basename"]) {
      const real = ["/usr/bin", "/bin"].map((dir) => `${dir}/${utility}`)
        .find((path) => {
          try {
            return Deno.statSync(path).isFile;
          } catch {
            return false;
          }
        });
      assert.ok(real !== undefined, `${utility} not found`);
      await Deno.symlink(real, `${fake.dir}/${utility}`);
    }
    const backend = new IptablesBackend({
      env: { ...fake.env, PATH: fake.dir },
    });
    await backend.setup({ ...BASE, openKnockPort: false });
    // 3: the listing; iptables-restore cannot start, so 4 lists again.
    await fake.respond(3, { out: IPTABLES_S_SAMPLE });
    await fake.respond(4, { out: IPTABLES_S_SAMPLE });
    await backend.teardown();
    const calls = (await fake.calls()).slice(2);
    assert.equal(
      calls.filter((c) => c.startsWith("iptables -w -D ")).length,
      4,
    );
  } finally {
    await fake.remove();
  }
});

Deno.test("IptablesBackend refuses to open before setup", async () => {
  const fake = await FakeIptables.create();
  try {
    const backend = new IptablesBackend({ env: fake.env });
    await assert.rejects(
      backend.open(V4, [{ port: 22, proto: "tcp" }]),
      /not set up; call setup\(\)/,
    );
    assert.deepEqual(await fake.calls(), []);
  } finally {
    await fake.remove();
  }
});

Deno.test("iptablesRuleKey tells the gate's rules apart and matches them with their -S listing, hex u32 and all", () => {
  const built = buildIptablesBaseRules(BASE, { family: 6, checks: GATE_CHECKS })
    .map((rule) => iptablesRuleKey(rule.slice(2)));
  const listed = parseIptablesChain(IP6TABLES_GATE_SAMPLE).rules.map((rule) =>
    iptablesRuleKey(rule.spec)
  );
  assert.equal(new Set(built).size, 4, "four different keys");
  assert.deepEqual([...built].sort(), [...listed].sort());
});

Deno.test("IptablesBackend leaves out a gate check the kernel refuses, says which and how to get it, and counts the drops of the rest", async () => {
  const fake = await FakeIptables.create();
  try {
    // iptables: 1-2 the whole gate fails, 3-4 none, 5-6 size, 7-8 size and
    // version, 9-10 with the rate check fails; ip6tables: 11-12 all.
    const refused = {
      code: 2,
      err:
        "iptables-restore v1.8.9 (nf_tables): Couldn't load match `hashlimit':No such file or directory\n",
    };
    await fake.respond(2, refused);
    await fake.respond(10, refused);
    const backend = new IptablesBackend({ env: fake.env });
    const logs = await captureLogs(() => backend.setup(BASE));
    assert.deepEqual(
      logs.filter((line) => line.startsWith("WARN")),
      [
        "WARN  firewall: the knock gate has no rate check: iptables lacks the hashlimit match (modprobe xt_hashlimit, or a kernel with CONFIG_NETFILTER_XT_MATCH_HASHLIMIT); knocks still work and openme itself drops such datagrams",
      ],
    );
    assert.doesNotMatch(await fake.stdin(8), /hashlimit/);
    assert.match(await fake.stdin(8), /--u32 "0>>22&0x3C@8>>24=1"/);
    assert.match(await fake.stdin(12), /hashlimit/);
    // 13: iptables -v -S (no rate rule), 14: ip6tables -v -S.
    await fake.respond(13, {
      out: IP6TABLES_GATE_SAMPLE.split("\n").filter((line) =>
        !line.includes("hashlimit")
      ).join("\n"),
    });
    await fake.respond(14, { out: IP6TABLES_GATE_SAMPLE });
    assert.deepEqual(await backend.gateCounters(), {
      size: 6,
      version: 4,
      rate: 7,
    });
    // 15-16: the check finds every rule it expects and repairs nothing.
    await fake.respond(15, {
      out: IP6TABLES_GATE_SAMPLE.split("\n").filter((line) =>
        !line.includes("hashlimit")
      ).join("\n"),
    });
    await fake.respond(16, { out: IP6TABLES_GATE_SAMPLE });
    assert.deepEqual(await backend.ensureBaseRules([]), {
      repaired: [],
      lost: [],
    });
  } finally {
    await fake.remove();
  }
});

Deno.test("IptablesBackend.gateCounters is null without a gate", async () => {
  const fake = await FakeIptables.create();
  try {
    const backend = new IptablesBackend({ env: fake.env });
    await backend.setup({ ...BASE, openKnockPort: false });
    assert.equal(await backend.gateCounters(), null);
    assert.equal((await fake.calls()).length, 2, "setup listed; nothing more");
  } finally {
    await fake.remove();
  }
});
