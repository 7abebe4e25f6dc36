import assert from "node:assert/strict";
import {
  type BaseRulesOptions,
  FirewallError,
} from "../../lib/firewall/backend.ts";
import { parseNftJson } from "../../lib/firewall/inspect.ts";
import {
  buildNftAcceptRule,
  buildNftBaseRules,
  findMissingNftBase,
  NftBackend,
} from "../../lib/firewall/nft.ts";
import type { IpAddress } from "../../lib/ip.ts";
import { setLogSink } from "../../lib/log.ts";

// Keep test output readable; tests that check logs capture them explicitly.
setLogSink(() => {});

const V4: IpAddress = { family: 4, text: "192.0.2.2" };
const V6: IpAddress = { family: 6, text: "2001:db8::1" };

// Real `nft -e -a -f -` output (nftables 1.0.6) for three inserts in one batch.
const ECHO_SAMPLE = [
  'insert rule inet filter openme ip saddr 192.0.2.2 tcp dport 22 accept comment "openme" # handle 5',
  'insert rule inet filter openme handle 7 ip6 saddr 2001:db8::1 tcp dport 8080-8090 accept comment "openme" # handle 6',
  'insert rule inet filter openme iifname "eth0" ip saddr 192.0.2.2 udp dport 53 accept comment "openme" # handle 7',
  "# new generation 7 by process 3897 (nft)",
  "",
].join("\n");

// Real `nft -t -j list table inet filter` output: an operator's input chain
// with a jump to openme, openme rules of all kinds, and a set.
const LISTING_SAMPLE = JSON.stringify({
  nftables: [
    {
      metainfo: {
        version: "1.0.6",
        release_name: "Lester Gooch #5",
        json_schema_version: 1,
      },
    },
    { table: { family: "inet", name: "filter", handle: 1 } },
    {
      set: {
        family: "inet",
        name: "s1",
        table: "filter",
        type: "ipv4_addr",
        handle: 6,
      },
    },
    { chain: { family: "inet", table: "filter", name: "openme", handle: 1 } },
    {
      chain: {
        family: "inet",
        table: "filter",
        name: "input",
        handle: 2,
        type: "filter",
        hook: "input",
        prio: 0,
        policy: "drop",
      },
    },
    {
      rule: {
        family: "inet",
        table: "filter",
        chain: "openme",
        handle: 9,
        comment: "openme",
        expr: [
          {
            match: {
              op: "==",
              left: { payload: { protocol: "ip", field: "saddr" } },
              right: "192.0.2.99",
            },
          },
          {
            match: {
              op: "==",
              left: { payload: { protocol: "tcp", field: "dport" } },
              right: 22,
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
        chain: "openme",
        handle: 10,
        expr: [
          {
            match: {
              op: "==",
              left: { payload: { protocol: "tcp", field: "dport" } },
              right: 443,
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
        chain: "openme",
        handle: 4,
        comment: "openme-knock",
        expr: [
          {
            match: {
              op: "==",
              left: { payload: { protocol: "udp", field: "dport" } },
              right: 54154,
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
        chain: "openme",
        handle: 5,
        comment: "openme-drop",
        expr: [
          {
            match: {
              op: "==",
              left: { payload: { protocol: "tcp", field: "dport" } },
              right: { range: [8080, 8090] },
            },
          },
          { drop: null },
        ],
      },
    },
    {
      rule: {
        family: "inet",
        table: "filter",
        chain: "input",
        handle: 3,
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
        handle: 7,
        expr: [{ jump: { target: "openme" } }],
      },
    },
  ],
});

const BASE: BaseRulesOptions = {
  knockPort: 54154,
  openKnockPort: true,
  dropPorts: [],
  interface: null,
};

/** An entry of table inet filter in an nft JSON listing. */
function nftTable(handle: number): unknown {
  return { table: { family: "inet", name: "filter", handle } };
}

function nftChain(name: string, handle: number, hook?: string): unknown {
  const base = hook === undefined ? {} : { hook, policy: "drop" };
  return { chain: { family: "inet", table: "filter", name, handle, ...base } };
}

function nftRule(
  chain: string,
  handle: number,
  expr: unknown[],
  comment?: string,
): unknown {
  const tagged = comment === undefined ? {} : { comment };
  return {
    rule: { family: "inet", table: "filter", chain, handle, expr, ...tagged },
  };
}

function nftListing(...items: unknown[]): string {
  return JSON.stringify({ nftables: items });
}

const JUMP = [{ jump: { target: "openme" } }];
const ACCEPT = [{ accept: null }];

Deno.test("buildNftAcceptRule uses ip saddr for IPv4, ip6 saddr for IPv6, lo-hi ranges and iifname first", () => {
  assert.equal(
    buildNftAcceptRule(V4, { port: 22, proto: "tcp" }, null),
    'ip saddr 192.0.2.2 tcp dport 22 accept comment "openme"',
  );
  assert.equal(
    buildNftAcceptRule(V6, { port: 443, endPort: 444, proto: "tcp" }, "eth0"),
    'iifname "eth0" ip6 saddr 2001:db8::1 tcp dport 443-444 accept comment "openme"',
  );
  assert.equal(
    buildNftAcceptRule(V4, { port: 53, proto: "udp" }, null),
    'ip saddr 192.0.2.2 udp dport 53 accept comment "openme"',
  );
});

/** The gate of {@linkcode BASE}, as SPEC §9 describes it: sets first, then size, version and rate per family. */
const GATE_LINES = [
  "add set inet filter openme_gate4 { type ipv4_addr; size 65536; flags dynamic,timeout; }",
  "flush set inet filter openme_gate4",
  "add set inet filter openme_gate6 { type ipv6_addr; size 65536; flags dynamic,timeout; }",
  "flush set inet filter openme_gate6",
  'add rule inet filter openme udp dport 54154 udp length != 173 counter drop comment "openme-gate"',
  'add rule inet filter openme udp dport 54154 @th,64,8 != 1 counter drop comment "openme-gate"',
  'add rule inet filter openme udp dport 54154 update @openme_gate4 { ip saddr timeout 60s limit rate over 20/second burst 40 packets } counter drop comment "openme-gate"',
  'add rule inet filter openme udp dport 54154 update @openme_gate6 { ip6 saddr & ffff:ffff:ffff:ffff:: timeout 60s limit rate over 20/second burst 40 packets } counter drop comment "openme-gate"',
];

/** {@linkcode GATE_LINES} with the rules matching an input interface. */
function gateLines(iface: string): string[] {
  return GATE_LINES.map((line) =>
    line.replace("openme udp dport", `openme iifname "${iface}" udp dport`)
  );
}

Deno.test("buildNftBaseRules appends the gate, the knock rule, then one drop per port, with their comments and the interface", () => {
  const drops = [{ port: 22, proto: "tcp" as const }, {
    port: 8080,
    endPort: 8090,
    proto: "tcp" as const,
  }];
  assert.deepEqual(buildNftBaseRules({ ...BASE, dropPorts: drops }), [
    ...GATE_LINES,
    'add rule inet filter openme udp dport 54154 accept comment "openme-knock"',
    'add rule inet filter openme tcp dport 22 drop comment "openme-drop"',
    'add rule inet filter openme tcp dport 8080-8090 drop comment "openme-drop"',
  ]);
  assert.deepEqual(
    buildNftBaseRules({
      ...BASE,
      openKnockPort: false,
      dropPorts: [drops[0]],
      interface: "wg0",
    }),
    [
      'add rule inet filter openme iifname "wg0" tcp dport 22 drop comment "openme-drop"',
    ],
  );
});

// ---- NftBackend against a fake nft first in PATH -------------------------

const FAKE_TOOL = `#!/bin/sh
dir="$FAKE_DIR"
n=$(cat "$dir/count" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$dir/count"
echo "$(basename "$0") $*" >> "$dir/calls.log"
case " $* " in *" -f - "*) cat > "$dir/stdin-$n.txt" ;; esac
[ -f "$dir/out-$n.txt" ] && cat "$dir/out-$n.txt"
[ -f "$dir/err-$n.txt" ] && cat "$dir/err-$n.txt" >&2
[ -f "$dir/hang-$n.txt" ] && sleep 30
if [ -f "$dir/code-$n.txt" ]; then exit "$(cat "$dir/code-$n.txt")"; fi
exit 0
`;

const NFT_ENOENT =
  "Error: No such file or directory\nlist table inet filter\n                ^^^^^^\n";

class FakeNft {
  constructor(readonly dir: string) {}

  static async create(): Promise<FakeNft> {
    const dir = await Deno.makeTempDir({ prefix: "openme-fake-nft-" });
    await Deno.writeTextFile(`${dir}/nft`, FAKE_TOOL);
    await Deno.chmod(`${dir}/nft`, 0o755);
    return new FakeNft(dir);
  }

  get env(): Record<string, string> {
    return {
      PATH: `${this.dir}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
      FAKE_DIR: this.dir,
    };
  }

  async respond(
    call: number,
    response: { out?: string; err?: string; code?: number; hang?: boolean },
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
    if (response.hang) {
      await Deno.writeTextFile(`${this.dir}/hang-${call}.txt`, "1");
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

/** Sets up a backend against an empty fake ruleset: calls 1 (list) and 2 (transaction). */
async function setUpFake(
  fake: FakeNft,
  options: { interface: string | null },
): Promise<NftBackend> {
  await fake.respond(1, { code: 1, err: NFT_ENOENT });
  await fake.respond(2, {
    out: [
      "add table inet filter # handle 1",
      "add chain inet filter openme # handle 1",
      "add chain inet filter input { type filter hook input priority filter; policy accept; } # handle 2",
      'add rule inet filter input jump openme comment "openme-jump" # handle 3',
      'add rule inet filter openme udp dport 54154 accept comment "openme-knock" # handle 4',
    ].join("\n") + "\n",
  });
  const backend = new NftBackend({ env: fake.env, timeoutMs: 3000 });
  await backend.setup({ ...BASE, interface: options.interface });
  return backend;
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

Deno.test("NftBackend.setup lists the table and applies one transaction through nft -e -a -f -", async () => {
  const fake = await FakeNft.create();
  try {
    const logs = await captureLogs(async () => {
      await setUpFake(fake, { interface: "eth0" });
    });
    assert.deepEqual(await fake.calls(), [
      "nft -t -j list table inet filter",
      "nft -e -a -f -",
    ]);
    assert.equal(
      await fake.stdin(2),
      [
        "add table inet filter",
        "add chain inet filter openme",
        "add chain inet filter input { type filter hook input priority 0; policy accept; }",
        'add rule inet filter input jump openme comment "openme-jump"',
        ...gateLines("eth0"),
        'add rule inet filter openme iifname "eth0" udp dport 54154 accept comment "openme-knock"',
      ].join("\n") + "\n",
    );
    assert.ok(
      logs.some((line) =>
        line.startsWith("WARN") && line.includes("protects nothing")
      ),
      "creating the input chain is logged as a warning",
    );
  } finally {
    await fake.remove();
  }
});

Deno.test("NftBackend.open sends all rules in one transaction and returns the echoed handles", async () => {
  const fake = await FakeNft.create();
  try {
    const backend = await setUpFake(fake, { interface: "eth0" });
    await fake.respond(3, {
      out:
        'insert rule inet filter openme iifname "eth0" ip saddr 192.0.2.2 tcp dport 22 accept comment "openme" # handle 7\n' +
        'insert rule inet filter openme iifname "eth0" ip saddr 192.0.2.2 tcp dport 8080-8090 accept comment "openme" # handle 8\n' +
        "# new generation 3 by process 1 (nft)\n",
    });
    const ports = [{ port: 22, proto: "tcp" as const }, {
      port: 8080,
      endPort: 8090,
      proto: "tcp" as const,
    }];
    const opened = await backend.open(V4, ports);
    assert.deepEqual(opened, { address: V4, ports, handles: ["7", "8"] });
    assert.equal(backend.openRuleCount, 2);
    assert.equal((await fake.calls())[2], "nft -e -a -f -");
    assert.equal(
      await fake.stdin(3),
      'insert rule inet filter openme iifname "eth0" ip saddr 192.0.2.2 tcp dport 22 accept comment "openme"\n' +
        'insert rule inet filter openme iifname "eth0" ip saddr 192.0.2.2 tcp dport 8080-8090 accept comment "openme"\n',
    );
    await backend.close(opened);
    assert.equal((await fake.calls())[3], "nft -f -");
    assert.equal(
      await fake.stdin(4),
      "delete rule inet filter openme handle 7\ndelete rule inet filter openme handle 8\n",
    );
    assert.equal(backend.openRuleCount, 0);
  } finally {
    await fake.remove();
  }
});

Deno.test("NftBackend.open turns a non-zero nft exit into a FirewallError with stderr", async () => {
  const fake = await FakeNft.create();
  try {
    const backend = await setUpFake(fake, { interface: null });
    await fake.respond(3, {
      code: 1,
      err:
        "Error: Could not process rule: Operation not permitted\ninsert rule inet filter openme\n^^^^^^\n",
    });
    await assert.rejects(
      backend.open(V4, [{ port: 22, proto: "tcp" }]),
      (err: unknown) => {
        assert.ok(err instanceof FirewallError);
        assert.match(err.message, /opening 22\/tcp for 192\.0\.2\.2/);
        assert.match(
          err.message,
          /nft -e -a -f - failed \(exit 1\): Error: Could not process rule: Operation not permitted/,
        );
        assert.match(err.message, /are you root \(CAP_NET_ADMIN\)\?/);
        return true;
      },
    );
    assert.equal(backend.openRuleCount, 0);
  } finally {
    await fake.remove();
  }
});

Deno.test("NftBackend.open rolls back the reported handles when nft echoes fewer handles than rules", async () => {
  const fake = await FakeNft.create();
  try {
    const backend = await setUpFake(fake, { interface: null });
    await fake.respond(3, {
      out:
        'insert rule inet filter openme ip6 saddr 2001:db8::1 tcp dport 22 accept comment "openme" # handle 11\n',
    });
    await assert.rejects(
      backend.open(V6, [{ port: 22, proto: "tcp" }, {
        port: 443,
        proto: "tcp",
      }]),
      /echoed 1 rule handles for 2 rules/,
    );
    assert.equal(
      await fake.stdin(4),
      "delete rule inet filter openme handle 11\n",
    );
    assert.equal(backend.openRuleCount, 0);
  } finally {
    await fake.remove();
  }
});

Deno.test("NftBackend.close retries one by one and ignores rules that are already gone", async () => {
  const fake = await FakeNft.create();
  try {
    const backend = await setUpFake(fake, { interface: null });
    await fake.respond(3, {
      out:
        'insert rule inet filter openme ip saddr 192.0.2.2 tcp dport 22 accept comment "openme" # handle 5\n' +
        'insert rule inet filter openme ip saddr 192.0.2.2 tcp dport 23 accept comment "openme" # handle 6\n',
    });
    const opened = await backend.open(V4, [{ port: 22, proto: "tcp" }, {
      port: 23,
      proto: "tcp",
    }]);
    const gone =
      "/dev/stdin:1:39-39: Error: Could not process rule: No such file or directory\n";
    await fake.respond(4, { code: 1, err: gone });
    await fake.respond(5, { code: 1, err: gone });
    const logs = await captureLogs(() => backend.close(opened));
    assert.deepEqual(logs.filter((line) => !line.startsWith("DEBUG")), []);
    assert.equal(
      await fake.stdin(5),
      "delete rule inet filter openme handle 5\n",
    );
    assert.equal(
      await fake.stdin(6),
      "delete rule inet filter openme handle 6\n",
    );
    assert.equal(backend.openRuleCount, 0);
    // A second close of the same rules runs nothing.
    await backend.close(opened);
    assert.equal((await fake.calls()).length, 6);
  } finally {
    await fake.remove();
  }
});

Deno.test("NftBackend.close reports a failure that is not a missing rule", async () => {
  const fake = await FakeNft.create();
  try {
    const backend = await setUpFake(fake, { interface: null });
    await fake.respond(3, {
      out:
        'insert rule inet filter openme ip saddr 192.0.2.2 tcp dport 22 accept comment "openme" # handle 5\n',
    });
    const opened = await backend.open(V4, [{ port: 22, proto: "tcp" }]);
    await fake.respond(4, { code: 1, err: "Error: Operation not permitted\n" });
    await fake.respond(5, { code: 1, err: "Error: Operation not permitted\n" });
    await assert.rejects(backend.close(opened), /Operation not permitted/);
    assert.equal(
      backend.openRuleCount,
      1,
      "the rule stays tracked for teardown",
    );
  } finally {
    await fake.remove();
  }
});

Deno.test("NftBackend reports a missing nft binary clearly", async () => {
  const empty = await Deno.makeTempDir({ prefix: "openme-no-nft-" });
  try {
    const backend = new NftBackend({ env: { PATH: empty } });
    await assert.rejects(backend.setup(BASE), (err: unknown) => {
      assert.ok(err instanceof FirewallError);
      assert.match(err.message, /could not run: command not found: nft/);
      assert.match(err.message, /is nftables installed/);
      return true;
    });
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
});

Deno.test("NftBackend kills a hanging nft at the timeout and throws FirewallError", async () => {
  const fake = await FakeNft.create();
  try {
    // The first failure could be the gate's: setup tries once more without it.
    await fake.respond(1, { hang: true });
    await fake.respond(2, { hang: true });
    const backend = new NftBackend({ env: fake.env, timeoutMs: 300 });
    await assert.rejects(
      backend.setup(BASE),
      (err: unknown) =>
        err instanceof FirewallError &&
        /nft -t -j list table inet filter did not finish within 300 ms and was killed/
          .test(err.message),
    );
  } finally {
    await fake.remove();
  }
});

Deno.test("NftBackend refuses to open before setup and refuses invalid values and foreign handles before running nft", async () => {
  const fake = await FakeNft.create();
  try {
    const backend = new NftBackend({ env: fake.env });
    await assert.rejects(
      backend.open(V4, [{ port: 22, proto: "tcp" }]),
      /not set up; call setup\(\)/,
    );
    await assert.rejects(
      backend.setup({ ...BASE, interface: 'eth0" accept' }),
      /invalid interface name/,
    );
    await assert.rejects(
      backend.open({ family: 4, text: "192.0.2.2 accept" }, []),
      /invalid address/,
    );
    // close() deletes only handles its own open() returned.
    await backend.close({
      address: V4,
      ports: [],
      handles: ["5; flush ruleset"],
    });
    assert.deepEqual(await fake.calls(), []);
  } finally {
    await fake.remove();
  }
});

Deno.test("NftBackend.teardown deletes only what openme added, in one transaction", async () => {
  const fake = await FakeNft.create();
  try {
    const backend = await setUpFake(fake, { interface: null });
    await fake.respond(3, {
      out:
        'insert rule inet filter openme ip saddr 192.0.2.2 tcp dport 22 accept comment "openme" # handle 9\n',
    });
    await backend.open(V4, [{ port: 22, proto: "tcp" }]);
    await fake.respond(4, { out: LISTING_SAMPLE });
    await backend.teardown();
    assert.deepEqual((await fake.calls()).slice(3), [
      "nft -t -j list table inet filter",
      "nft -f -",
    ]);
    // Rule 10 (no comment) and the untagged jump 7 belong to the operator.
    // The table, chain and input chain were created by setup but are in use.
    assert.equal(
      await fake.stdin(5),
      "delete rule inet filter openme handle 9\n" +
        "delete rule inet filter openme handle 4\n" +
        "delete rule inet filter openme handle 5\n",
    );
    assert.equal(backend.openRuleCount, 0);
  } finally {
    await fake.remove();
  }
});

Deno.test("NftBackend runs nft inside a network namespace through ip netns exec when netns is set", async () => {
  const fake = await FakeNft.create();
  try {
    await Deno.copyFile(`${fake.dir}/nft`, `${fake.dir}/ip`);
    await Deno.chmod(`${fake.dir}/ip`, 0o755);
    await fake.respond(1, { code: 1, err: NFT_ENOENT });
    const backend = new NftBackend({ env: fake.env, netns: "om-fw-test" });
    await backend.setup({ ...BASE, openKnockPort: false });
    assert.deepEqual(await fake.calls(), [
      "ip netns exec om-fw-test nft -t -j list table inet filter",
      "ip netns exec om-fw-test nft -e -a -f -",
    ]);
    await assert.rejects(
      new NftBackend({ env: fake.env, netns: "-bad" }).setup(BASE),
      /invalid network namespace name "-bad"/,
    );
    assert.equal((await fake.calls()).length, 2, "nothing ran for -bad");
  } finally {
    await fake.remove();
  }
});

/** A `nft -j list table inet filter` answer with chains openme (handle 1) and input (handle 2). */
function listingJson(
  tableHandle: number,
  rules: { chain: string; handle: number; comment?: string; jump?: string }[],
): string {
  return nftListing(
    nftTable(tableHandle),
    nftChain("openme", 1),
    nftChain("input", 2, "input"),
    ...rules.map((rule) =>
      nftRule(
        rule.chain,
        rule.handle,
        rule.jump === undefined ? ACCEPT : JUMP,
        rule.comment,
      )
    ),
  );
}

/** The four gate rules of a listing, as listingJson takes them. */
const GATE_RULES = [10, 11, 12, 13].map((handle) => ({
  chain: "openme",
  handle,
  comment: "openme-gate",
}));

Deno.test("findMissingNftBase names the table, chains, jump, gate, knock and drop rules that are gone", () => {
  const complete = [
    { chain: "input", handle: 3, jump: "openme" },
    ...GATE_RULES,
    { chain: "openme", handle: 4, comment: "openme-knock" },
    { chain: "openme", handle: 5, comment: "openme-drop" },
  ];
  const options = { ...BASE, dropPorts: [{ port: 22, proto: "tcp" as const }] };
  assert.deepEqual(findMissingNftBase(null, options), ["table inet filter"]);
  assert.deepEqual(
    findMissingNftBase(parseNftJson(listingJson(1, complete)), options),
    [],
  );
  assert.deepEqual(
    findMissingNftBase(parseNftJson(listingJson(1, [])), options),
    [
      "jump from input to openme",
      "openme-gate rules (0 of 4)",
      "openme-knock rules (0 of 1)",
      "openme-drop rules (0 of 1)",
    ],
  );
  assert.deepEqual(
    findMissingNftBase(
      parseNftJson(listingJson(1, complete)),
      { ...options, openKnockPort: false, dropPorts: [] },
    ),
    [
      "openme-gate rules (4 of 0)",
      "openme-knock rules (1 of 0)",
      "openme-drop rules (1 of 0)",
    ],
  );
  // A gate installed without the checks the kernel lacks is complete.
  assert.deepEqual(
    findMissingNftBase(
      parseNftJson(listingJson(1, complete.filter((r) => r.handle !== 10))),
      options,
      ["version", "rate"],
    ),
    [],
  );
});

Deno.test("NftBackend.ensureBaseRules reports lost handles and, after a ruleset reload, forgets every handle and puts the base rules back", async () => {
  const fake = await FakeNft.create();
  try {
    const backend = await setUpFake(fake, { interface: null });
    await fake.respond(3, {
      out:
        'insert rule inet filter openme ip saddr 192.0.2.2 tcp dport 22 accept comment "openme" # handle 7\n',
    });
    await fake.respond(4, {
      out:
        'insert rule inet filter openme ip saddr 192.0.2.3 tcp dport 22 accept comment "openme" # handle 8\n',
    });
    const kept = await backend.open(V4, [{ port: 22, proto: "tcp" }]);
    const gone = await backend.open({ family: 4, text: "192.0.2.3" }, [{
      port: 22,
      proto: "tcp",
    }]);
    // 5: same table and chain; rule 8 was deleted by hand.
    await fake.respond(5, {
      out: listingJson(1, [
        { chain: "input", handle: 3, jump: "openme", comment: "openme-jump" },
        { chain: "openme", handle: 7, comment: "openme" },
        ...GATE_RULES,
        { chain: "openme", handle: 4, comment: "openme-knock" },
      ]),
    });
    let check = await backend.ensureBaseRules([kept, gone]);
    assert.deepEqual(check, { repaired: [], lost: [gone] });
    assert.equal(backend.openRuleCount, 1);
    assert.equal((await fake.calls()).length, 5, "one listing, nothing else");
    // 6: `nft flush ruleset` + the operator's file: a new table (handle 2)
    // in which handle 7 happens to name a rule again; no gate or knock rule.
    await fake.respond(6, {
      out: listingJson(2, [
        { chain: "input", handle: 3, jump: "openme" },
        { chain: "openme", handle: 7, comment: "openme" },
      ]),
    });
    check = await backend.ensureBaseRules([kept]);
    assert.deepEqual(check, {
      repaired: ["openme-gate rules (0 of 4)", "openme-knock rules (0 of 1)"],
      lost: [kept],
    });
    assert.equal(backend.openRuleCount, 0, "stale handles forgotten");
    assert.deepEqual((await fake.calls()).slice(5), [
      "nft -t -j list table inet filter",
      "nft -e -a -f -",
    ]);
    assert.equal(
      await fake.stdin(7),
      [
        ...GATE_LINES,
        'add rule inet filter openme udp dport 54154 accept comment "openme-knock"\n',
      ].join("\n"),
    );
    // Closing the lost set deletes nothing (handle 7 is not ours any more).
    await backend.close(kept);
    assert.equal((await fake.calls()).length, 7);
  } finally {
    await fake.remove();
  }
});

/** Sets up (or updates) a fresh backend against a listing; returns the transaction it sent, its logs and the backend. */
async function applyAgainst(
  fake: FakeNft,
  listing: string,
  options: BaseRulesOptions,
  how: "setup" | "updateBaseRules" = "setup",
): Promise<{ script: string; logs: string[]; backend: NftBackend }> {
  await fake.respond(1, { out: listing });
  const backend = new NftBackend({ env: fake.env });
  const logs = await captureLogs(() => backend[how](options));
  assert.deepEqual((await fake.calls()).slice(0, 2), [
    "nft -t -j list table inet filter",
    "nft -e -a -f -",
  ]);
  return { script: await fake.stdin(2), logs, backend };
}

Deno.test("NftBackend.setup keeps the operator's untagged jump and rules and removes stale openme rules", async () => {
  const fake = await FakeNft.create();
  try {
    const { script, logs } = await applyAgainst(fake, LISTING_SAMPLE, {
      ...BASE,
      interface: "eth0",
    });
    assert.equal(
      script,
      [
        "delete rule inet filter openme handle 9",
        "delete rule inet filter openme handle 4",
        "delete rule inet filter openme handle 5",
        ...gateLines("eth0"),
        'add rule inet filter openme iifname "eth0" udp dport 54154 accept comment "openme-knock"',
        "",
      ].join("\n"),
    );
    assert.ok(
      logs.some((line) =>
        line.startsWith("WARN") &&
        line.includes("removed 1 stale per-knock nft rules")
      ),
      logs.join("\n"),
    );
  } finally {
    await fake.remove();
  }
});

Deno.test("NftBackend.updateBaseRules replaces knock and drop rules but keeps per-knock rules", async () => {
  const fake = await FakeNft.create();
  try {
    const { script } = await applyAgainst(
      fake,
      LISTING_SAMPLE,
      { ...BASE, openKnockPort: false },
      "updateBaseRules",
    );
    assert.equal(
      script,
      "delete rule inet filter openme handle 4\ndelete rule inet filter openme handle 5\n",
    );
  } finally {
    await fake.remove();
  }
});

Deno.test("NftBackend.setup inserts the jump before a catch-all drop rule so it is reachable", async () => {
  const fake = await FakeNft.create();
  const counter = { counter: { packets: 0, bytes: 0 } };
  const listing = nftListing(
    nftTable(1),
    nftChain("input", 2, "input"),
    nftRule("input", 3, [
      {
        match: {
          op: "in",
          left: { ct: { key: "state" } },
          right: ["established", "related"],
        },
      },
      ...ACCEPT,
    ]),
    nftRule("input", 4, [
      {
        match: {
          op: "==",
          left: { payload: { protocol: "tcp", field: "dport" } },
          right: 22,
        },
      },
      counter,
      { reject: { type: "icmpx", expr: "port-unreachable" } },
    ]),
    nftRule("input", 5, [counter, { drop: null }]),
  );
  try {
    const { script, logs } = await applyAgainst(fake, listing, {
      ...BASE,
      openKnockPort: false,
    });
    assert.equal(
      script,
      "add chain inet filter openme\n" +
        'insert rule inet filter input position 5 jump openme comment "openme-jump"\n',
    );
    assert.ok(
      logs.some((line) =>
        line.includes("catch-all drop/reject rule (handle 5)")
      ),
    );
  } finally {
    await fake.remove();
  }
});

Deno.test("NftBackend.setup adopts a tagged jump left by a dead run, warns about an input chain without hook, and teardown removes that jump and chain", async () => {
  const fake = await FakeNft.create();
  const listing = (...extra: unknown[]) =>
    nftListing(
      nftTable(1),
      nftChain("openme", 1),
      nftChain("input", 2),
      nftRule("input", 7, JUMP, "openme-jump"),
      ...extra,
    );
  try {
    const { script, logs, backend } = await applyAgainst(
      fake,
      listing(),
      BASE,
    );
    assert.equal(
      script,
      [
        ...GATE_LINES,
        'add rule inet filter openme udp dport 54154 accept comment "openme-knock"\n',
      ].join("\n"),
    );
    assert.ok(logs.some((line) => line.includes("is not a base chain")));
    await fake.respond(3, {
      out: listing(nftRule("openme", 4, ACCEPT, "openme-knock")),
    });
    await backend.teardown();
    assert.equal(
      await fake.stdin(4),
      "delete rule inet filter input handle 7\n" +
        "delete rule inet filter openme handle 4\n" +
        "delete chain inet filter openme\n",
    );
  } finally {
    await fake.remove();
  }
});

Deno.test("NftBackend.teardown deletes the jump, chains and table it created once nothing else is left", async () => {
  const fake = await FakeNft.create();
  try {
    const backend = await setUpFake(fake, { interface: null });
    await fake.respond(3, {
      out: nftListing(
        nftTable(1),
        nftChain("openme", 1),
        nftChain("input", 2, "input"),
        nftRule("input", 3, JUMP, "openme-jump"),
        nftRule("openme", 4, [], "openme-knock"),
      ),
    });
    await backend.teardown();
    assert.equal(
      await fake.stdin(4),
      [
        "delete rule inet filter input handle 3",
        "delete rule inet filter openme handle 4",
        "delete chain inet filter openme",
        "delete chain inet filter input",
        "delete table inet filter",
        "",
      ].join("\n"),
    );
  } finally {
    await fake.remove();
  }
});

Deno.test("NftBackend.open reads the handles of every echoed rule line in order", async () => {
  const fake = await FakeNft.create();
  try {
    const backend = await setUpFake(fake, { interface: null });
    await fake.respond(3, { out: ECHO_SAMPLE });
    const opened = await backend.open(V4, [
      { port: 22, proto: "tcp" },
      { port: 8080, endPort: 8090, proto: "tcp" },
      { port: 53, proto: "udp" },
    ]);
    assert.deepEqual(opened.handles, ["5", "6", "7"]);
  } finally {
    await fake.remove();
  }
});

/** Real `nft -j list` entries (nftables 1.0.6) of the gate's rules, with their counters. */
function gateRuleEntries(packets: [number, number, number, number]): unknown[] {
  const dport = {
    match: {
      op: "==",
      left: { payload: { protocol: "udp", field: "dport" } },
      right: 54154,
    },
  };
  const update = (elem: unknown, set: string) => ({
    set: {
      op: "update",
      elem,
      set,
      stmt: [{
        limit: { rate: 20, burst: 40, per: "second", inv: true },
      }],
    },
  });
  const saddr6 = {
    "&": [
      { payload: { protocol: "ip6", field: "saddr" } },
      "ffff:ffff:ffff:ffff::",
    ],
  };
  const checks = [
    {
      match: {
        op: "!=",
        left: { payload: { protocol: "udp", field: "length" } },
        right: 173,
      },
    },
    {
      match: {
        op: "!=",
        left: { payload: { base: "th", offset: 64, len: 8 } },
        right: 1,
      },
    },
    update({ payload: { protocol: "ip", field: "saddr" } }, "@openme_gate4"),
    update(saddr6, "@openme_gate6"),
  ];
  return checks.map((check, i) =>
    nftRule("openme", 20 + i, [
      dport,
      check,
      { counter: { packets: packets[i], bytes: 0 } },
      { drop: null },
    ], "openme-gate")
  );
}

const GATE_SETS = ["openme_gate4", "openme_gate6"].map((name) => ({
  set: { family: "inet", name, table: "filter", type: "ipv4_addr", handle: 9 },
}));

Deno.test("NftBackend leaves out a gate check nft or the kernel refuses, says which and how to get it, and reads the counters of the rest", async () => {
  const fake = await FakeNft.create();
  try {
    // 1-2: the whole gate fails, 3-4: none, 5-6: size, 7-8: size and
    // version, 9-10: with the rate check fails again.
    const refused = {
      code: 1,
      err: "Error: Could not process rule: No such file or directory\n",
    };
    await fake.respond(2, refused);
    await fake.respond(10, refused);
    const backend = new NftBackend({ env: fake.env });
    const logs = await captureLogs(() => backend.setup(BASE));
    assert.deepEqual(logs.filter((line) => line.startsWith("WARN")).slice(-1), [
      "WARN  firewall: the knock gate has no rate check: nft lacks the limit statement (modprobe nft_limit, or a kernel with CONFIG_NFT_LIMIT); knocks still work and openme itself drops such datagrams",
    ]);
    assert.match(await fake.stdin(8), /@th,64,8 != 1 counter drop/);
    assert.doesNotMatch(await fake.stdin(8), /limit|openme_gate/);
    // 11: the counters of the size and version rules.
    const [size, version] = gateRuleEntries([3, 2, 0, 0]);
    const listing = nftListing(
      nftTable(1),
      nftChain("openme", 1),
      nftChain("input", 2, "input"),
      nftRule("input", 3, JUMP, "openme-jump"),
      size,
      version,
      nftRule("openme", 4, ACCEPT, "openme-knock"),
    );
    await fake.respond(11, { out: listing });
    assert.deepEqual(await backend.gateCounters(), {
      size: 3,
      version: 2,
      rate: 0,
    });
    // 12: the check expects only the checks that were installed.
    await fake.respond(12, { out: listing });
    assert.deepEqual(await backend.ensureBaseRules([]), {
      repaired: [],
      lost: [],
    });
    assert.equal((await fake.calls()).length, 12);
  } finally {
    await fake.remove();
  }
});

Deno.test("NftBackend.setup does not take the jump it added itself while trying gate checks for a dead run's, so teardown keeps the operator's chain", async () => {
  const fake = await FakeNft.create();
  try {
    const operator = [
      nftTable(1),
      nftChain("openme", 1),
      nftChain("input", 2, "input"),
    ];
    const withJump = nftListing(
      ...operator,
      nftRule("input", 3, JUMP, "openme-jump"),
      nftRule("openme", 4, ACCEPT, "openme-knock"),
    );
    const refused = {
      code: 1,
      err: "Error: Could not process rule: No such file or directory\n",
    };
    // 1-2: the whole gate fails, 3-4: none (adds the jump), 5-10: one check
    // more each time, the rate check failing; 11: teardown's listing.
    for (const call of [1, 3]) {
      await fake.respond(call, { out: nftListing(...operator) });
    }
    await fake.respond(2, refused);
    await fake.respond(4, {
      out:
        'add rule inet filter input jump openme comment "openme-jump" # handle 3\n',
    });
    for (const call of [5, 7, 9, 11]) {
      await fake.respond(call, { out: withJump });
    }
    await fake.respond(10, refused);
    const backend = new NftBackend({ env: fake.env });
    await backend.setup(BASE);
    await backend.teardown();
    assert.equal(
      await fake.stdin(12),
      "delete rule inet filter input handle 3\ndelete rule inet filter openme handle 4\n",
    );
  } finally {
    await fake.remove();
  }
});

Deno.test("NftBackend.gateCounters adds up the counters by check, both families' rate rules together, and is null without a gate", async () => {
  const fake = await FakeNft.create();
  try {
    const backend = await setUpFake(fake, { interface: null });
    await fake.respond(3, {
      out: nftListing(
        nftTable(1),
        nftChain("openme", 1),
        ...gateRuleEntries([3, 2, 5, 1]),
      ),
    });
    assert.deepEqual(await backend.gateCounters(), {
      size: 3,
      version: 2,
      rate: 6,
    });
    await fake.respond(4, { out: nftListing(nftTable(1)) });
    await backend.updateBaseRules({ ...BASE, openKnockPort: false });
    assert.equal(await backend.gateCounters(), null);
    assert.equal((await fake.calls()).length, 5, "no listing for it");
  } finally {
    await fake.remove();
  }
});

Deno.test("NftBackend.teardown deletes the gate's rules and sets with the rest it created", async () => {
  const fake = await FakeNft.create();
  try {
    const backend = await setUpFake(fake, { interface: null });
    await fake.respond(3, {
      out: nftListing(
        nftTable(1),
        ...GATE_SETS,
        nftChain("openme", 1),
        nftChain("input", 2, "input"),
        nftRule("input", 3, JUMP, "openme-jump"),
        ...gateRuleEntries([0, 0, 0, 0]),
        nftRule("openme", 4, ACCEPT, "openme-knock"),
      ),
    });
    await backend.teardown();
    assert.equal(
      await fake.stdin(4),
      [
        "delete rule inet filter input handle 3",
        ...[20, 21, 22, 23, 4].map((h) =>
          `delete rule inet filter openme handle ${h}`
        ),
        "delete set inet filter openme_gate4",
        "delete set inet filter openme_gate6",
        "delete chain inet filter openme",
        "delete chain inet filter input",
        "delete table inet filter",
        "",
      ].join("\n"),
    );
  } finally {
    await fake.remove();
  }
});

Deno.test("NftBackend.cleanup removes every openme rule, set, jump and chain openme a dead run left, and keeps the operator's", async () => {
  const fake = await FakeNft.create();
  try {
    await fake.respond(1, {
      out: nftListing(
        nftTable(1),
        ...GATE_SETS,
        { set: { family: "inet", name: "mine", table: "filter", handle: 8 } },
        nftChain("openme", 1),
        nftChain("input", 2, "input"),
        nftRule("input", 5, ACCEPT),
        nftRule("input", 3, JUMP, "openme-jump"),
        ...gateRuleEntries([0, 0, 0, 0]),
        nftRule("openme", 4, ACCEPT, "openme-knock"),
        nftRule("openme", 6, ACCEPT, "openme"),
      ),
    });
    await new NftBackend({ env: fake.env }).cleanup();
    assert.equal(
      await fake.stdin(2),
      [
        "delete rule inet filter input handle 3",
        ...[20, 21, 22, 23, 4, 6].map((h) =>
          `delete rule inet filter openme handle ${h}`
        ),
        "delete set inet filter openme_gate4",
        "delete set inet filter openme_gate6",
        "delete chain inet filter openme",
        "",
      ].join("\n"),
    );
  } finally {
    await fake.remove();
  }
});
