/**
 * Tests of `openme doctor`: runDoctorChecks against rulesets built in network
 * namespaces of this test (good, no default deny, no jump, jump after a
 * drop, no established rule, no ICMPv6 neighbour discovery, an empty
 * ruleset, iptables), ports held by another program and by a real
 * `openme serve`, the fix commands (run in the namespace, after which the
 * finding is ✓), injected platform and privilege, and the CLI's exit code.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type DoctorOptions,
  type Finding,
  formatFinding,
  runDoctorChecks,
} from "../../../lib/cli/commands/doctor.ts";
import { mainCommand, openme, openmeOk } from "../../support/cli.ts";
import {
  canRunNetnsTests,
  IP_TOOL,
  IPTABLES_TOOLS,
  NFT_TOOL,
  nsExec,
  withNamespace,
} from "../../support/netns.ts";
import { withTempDir } from "../../support/files.ts";
import { findOnPath } from "../../../scripts/testbed.ts";

const KNOCK_PORT = 40123;

const canRun = await canRunNetnsTests("doctor namespace tests", {
  rootFor: "ip netns add, nft, iptables",
  tools: [IP_TOOL, NFT_TOOL, ...IPTABLES_TOOLS],
});

interface Bed {
  ns: string;
  config: string;
  dir: string;
  doctor(options?: DoctorOptions): Promise<Finding[]>;
  sh(script: string): Promise<void>;
}

/** A namespace with lo up, a server config (knock port 40123) and an optional nft ruleset; removed afterwards. */
async function withBed(
  setup: {
    firewall?: "nft" | "iptables";
    nft?: string;
    openKnockPort?: boolean;
  },
  fn: (bed: Bed) => Promise<void>,
): Promise<void> {
  await withTempDir("openme-doctor-", async (dir) => {
    await withNamespace("doc", async (ns) => {
      const config = join(dir, "config.yaml");
      await openmeOk([
        "--config",
        config,
        "init",
        "--server",
        "192.0.2.1",
        "--port",
        String(KNOCK_PORT),
        "--firewall",
        setup.firewall ?? "nft",
      ]);
      if (setup.openKnockPort === false) {
        const text = await Deno.readTextFile(config);
        await Deno.writeTextFile(
          config,
          text.replace("open_knock_port: true", "open_knock_port: false"),
        );
      }
      const bed: Bed = {
        ns,
        config,
        dir,
        doctor: (options = {}) =>
          runDoctorChecks(config, { netns: ns, ...options }),
        sh: async (script) => {
          await nsExec(ns, ["sh", "-c", script]);
        },
      };
      if (setup.nft !== undefined) {
        await nsExec(ns, ["nft", "-f", "-"], { stdin: setup.nft });
      }
      await fn(bed);
    }, { loopbackUp: true });
  });
}

/** The one finding whose text matches. */
function one(findings: Finding[], pattern: RegExp): Finding {
  const found = findings.filter((f) => pattern.test(f.text));
  assert.equal(
    found.length,
    1,
    `expected one finding matching ${pattern}, got:\n${
      findings.map(formatFinding).join("\n")
    }`,
  );
  return found[0];
}

function none(findings: Finding[], pattern: RegExp): void {
  assert.ok(
    !findings.some((f) => pattern.test(f.text)),
    `unexpected finding matching ${pattern}:\n${
      findings.map(formatFinding).join("\n")
    }`,
  );
}

function ruleset(input: string[], extra = ""): string {
  return `table inet filter {
  chain openme {
  }
  chain input {
${input.map((line) => `    ${line}`).join("\n")}
  }
}
${extra}`;
}

const POLICY_DROP = "type filter hook input priority 0; policy drop;";
const POLICY_ACCEPT = "type filter hook input priority 0; policy accept;";
const ESTABLISHED = "ct state established,related accept";
const LOOPBACK = 'iifname "lo" accept';
const ND =
  "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept";
const JUMP = "jump openme";

Deno.test({
  name:
    "doctor finds nothing wrong with the README's default-deny ruleset plus the jump",
  ignore: !canRun,
  fn: async () => {
    await withBed({
      nft: ruleset([POLICY_DROP, ESTABLISHED, LOOPBACK, ND, JUMP]),
    }, async (bed) => {
      const findings = await bed.doctor();
      assert.equal(one(findings, /^config .* is valid/).level, "ok");
      assert.equal(one(findings, /^running as root/).level, "ok");
      assert.equal(one(findings, /^nft found: nftables v/).level, "ok");
      assert.equal(
        one(findings, /chain input drops by default \(policy drop\)/).level,
        "ok",
      );
      assert.equal(
        one(findings, /chain input jumps to chain openme/).level,
        "ok",
      );
      assert.equal(
        one(findings, /accepts established,related connections/).level,
        "ok",
      );
      assert.equal(
        one(findings, /accepts ICMPv6 neighbour discovery/).level,
        "ok",
      );
      assert.equal(
        one(findings, new RegExp(`^knock port udp ${KNOCK_PORT} is free`))
          .level,
        "ok",
      );
      assert.equal(
        one(findings, new RegExp(`^health port tcp ${KNOCK_PORT} is free`))
          .level,
        "ok",
      );
      one(findings, /clock/);
      assert.deepEqual(findings.filter((f) => f.level === "fail"), []);
      // Only the clock may warn (no NTP in test environments).
      assert.deepEqual(
        findings.filter((f) => f.level === "warn" && !/clock/.test(f.text)),
        [],
      );
    });
  },
});

Deno.test({
  name:
    "doctor warns that openme protects nothing without default deny, and its fix makes the chain default-deny",
  ignore: !canRun,
  fn: async () => {
    await withBed({
      nft: ruleset([POLICY_ACCEPT, ESTABLISHED, JUMP]),
    }, async (bed) => {
      const finding = one(
        await bed.doctor(),
        /has policy accept and no final drop/,
      );
      assert.equal(finding.level, "warn");
      assert.match(finding.text, /openme protects nothing/);
      assert.equal(
        finding.fix,
        `nft add rule inet filter input iifname lo accept && nft add rule inet filter input '${ND}' && nft chain inet filter input '{ policy drop; }'`,
      );
      await bed.sh(finding.fix!);
      const after = await bed.doctor();
      assert.equal(one(after, /drops by default/).level, "ok");
      assert.equal(
        one(after, /accepts ICMPv6 neighbour discovery/).level,
        "ok",
      );
    });
  },
});

Deno.test({
  name: "doctor warns when the jump to openme is missing, and its fix adds one",
  ignore: !canRun,
  fn: async () => {
    await withBed({
      nft: ruleset([POLICY_DROP, ESTABLISHED, LOOPBACK, ND]),
    }, async (bed) => {
      const finding = one(
        await bed.doctor(),
        /has no jump to chain openme yet/,
      );
      assert.equal(finding.level, "warn");
      assert.equal(finding.fix, "nft add rule inet filter input jump openme");
      await bed.sh(finding.fix!);
      assert.equal(
        one(await bed.doctor(), /jumps to chain openme/).level,
        "ok",
      );
    });
  },
});

Deno.test({
  name:
    "doctor fails a jump that sits after a drop-everything rule, and its fix moves it before",
  ignore: !canRun,
  fn: async () => {
    await withBed({
      nft: ruleset([
        POLICY_ACCEPT,
        ESTABLISHED,
        LOOPBACK,
        ND,
        "counter drop",
        JUMP,
      ]),
    }, async (bed) => {
      const findings = await bed.doctor();
      assert.equal(
        one(findings, /drops by default \(a final drop rule\)/).level,
        "ok",
      );
      const finding = one(findings, /comes after a rule that drops everything/);
      assert.equal(finding.level, "fail");
      assert.match(
        finding.fix!,
        /^nft delete rule inet filter input handle \d+ && nft insert rule inet filter input position \d+ jump openme$/,
      );
      await bed.sh(finding.fix!);
      const after = await bed.doctor();
      assert.equal(one(after, /jumps to chain openme/).level, "ok");
      none(after, /comes after a rule that drops everything/);
    });
  },
});

Deno.test({
  name:
    "doctor warns when established connections are not accepted, and its fix accepts them",
  ignore: !canRun,
  fn: async () => {
    await withBed({
      nft: ruleset([POLICY_DROP, LOOPBACK, ND, JUMP]),
    }, async (bed) => {
      const finding = one(
        await bed.doctor(),
        /has no ct state established,related accept/,
      );
      assert.equal(finding.level, "warn");
      assert.match(finding.text, /drop when their knock expires/);
      assert.equal(
        finding.fix,
        "nft insert rule inet filter input ct state established,related accept",
      );
      await bed.sh(finding.fix!);
      assert.equal(
        one(await bed.doctor(), /accepts established,related/).level,
        "ok",
      );
    });
  },
});

Deno.test({
  name:
    "doctor warns when a default-deny chain drops ICMPv6 neighbour discovery, and its fix accepts it",
  ignore: !canRun,
  fn: async () => {
    await withBed({
      nft: ruleset([POLICY_DROP, ESTABLISHED, LOOPBACK, JUMP]),
    }, async (bed) => {
      const finding = one(
        await bed.doctor(),
        /drops ICMPv6 neighbour discovery/,
      );
      assert.equal(finding.level, "warn");
      assert.match(finding.text, /IPv6 to this host does not work/);
      await bed.sh(finding.fix!);
      assert.equal(
        one(await bed.doctor(), /accepts ICMPv6 neighbour discovery/).level,
        "ok",
      );
    });
  },
});

Deno.test({
  name:
    "doctor on an empty ruleset warns there is no input chain, and its fix builds a default-deny one",
  ignore: !canRun,
  fn: async () => {
    await withBed({}, async (bed) => {
      const findings = await bed.doctor();
      const finding = one(
        findings,
        /there is no table inet filter chain input/,
      );
      assert.equal(finding.level, "warn");
      none(findings, /jumps to chain openme|has no jump/);
      await bed.sh(finding.fix!);
      const after = await bed.doctor();
      assert.equal(one(after, /drops by default \(policy drop\)/).level, "ok");
      assert.equal(one(after, /accepts established,related/).level, "ok");
      assert.equal(
        one(after, /accepts ICMPv6 neighbour discovery/).level,
        "ok",
      );
      assert.equal(one(after, /has no jump to chain openme yet/).level, "warn");
    });
  },
});

Deno.test({
  name: "doctor warns about another input base chain that drops by default",
  ignore: !canRun,
  fn: async () => {
    await withBed({
      nft: ruleset(
        [POLICY_DROP, ESTABLISHED, LOOPBACK, ND, JUMP],
        "table ip legacy {\n  chain INPUT { type filter hook input priority 0; policy drop; }\n}\n",
      ),
    }, async (bed) => {
      const finding = one(
        await bed.doctor(),
        /table ip legacy chain INPUT also filters/,
      );
      assert.equal(finding.level, "warn");
      assert.match(finding.fix!, /nft delete table ip legacy/);
    });
  },
});

/** Sends one datagram of `size` bytes (ASCII zeros, so not version 1) to the knock port over loopback, from inside the namespace. */
async function sendJunk(bed: Bed, size: number): Promise<void> {
  await bed.sh(
    `bash -c 'printf "%0${size}d" 0 > /dev/udp/127.0.0.1/${KNOCK_PORT}'`,
  );
}

Deno.test({
  name:
    "doctor with open_knock_port: false pastes the gate and accept rules for nft, which drop junk in the kernel, and flags an accept ahead of them",
  ignore: !canRun,
  fn: async () => {
    await withBed({
      openKnockPort: false,
      nft: ruleset([POLICY_DROP, ESTABLISHED, LOOPBACK, ND, JUMP]),
    }, async (bed) => {
      const missing = one(await bed.doctor(), /open_knock_port is false/);
      assert.equal(missing.level, "fail");
      assert.match(
        missing.text,
        /no rule of .* accepts udp 40123: knocks never reach openme/,
      );
      await bed.sh(
        missing.fix!.replace(/ \(or set open_knock_port: true in .*\)$/, ""),
      );
      const pasted = one(await bed.doctor(), /open_knock_port is false/);
      assert.equal(pasted.level, "ok");
      assert.match(pasted.text, /accepts udp 40123 behind a knock gate/);
      await sendJunk(bed, 40);
      await sendJunk(bed, 165);
      const chain = await nsExec(bed.ns, [
        "nft",
        "list",
        "chain",
        "inet",
        "filter",
        "input",
      ]);
      assert.match(chain, /udp length != 173 counter packets 1 /);
      assert.match(chain, /@th,64,8 != 0x1 counter packets 1 /);
      // An accept of the knock port ahead of the gate lets junk through.
      await bed.sh(
        `nft insert rule inet filter input udp dport ${KNOCK_PORT} accept`,
      );
      const shadow = one(
        await bed.doctor(),
        /accepts udp 40123 ahead of the knock gate/,
      );
      assert.equal(shadow.level, "warn");
      await bed.sh(shadow.fix!);
      none(await bed.doctor(), /ahead of the knock gate/);
    });
  },
});

Deno.test({
  name:
    "doctor with open_knock_port: false warns about an accept of the knock port without a gate, for iptables and ip6tables, with pastes that work",
  ignore: !canRun,
  fn: async () => {
    await withBed(
      { firewall: "iptables", openKnockPort: false },
      async (bed) => {
        for (const tool of ["iptables", "ip6tables"]) {
          await bed.sh(
            `${tool} -w -A INPUT -i lo -j ACCEPT && ${tool} -w -A INPUT -p udp --dport ${KNOCK_PORT} -j ACCEPT && ${tool} -w -P INPUT DROP`,
          );
        }
        const findings = await bed.doctor();
        for (const tool of ["iptables", "ip6tables"]) {
          const finding = one(
            findings,
            new RegExp(
              `^open_knock_port is false and ${tool} INPUT accepts udp 40123 without a knock gate`,
            ),
          );
          assert.equal(finding.level, "warn");
          await bed.sh(finding.fix!);
        }
        const after = await bed.doctor();
        for (const tool of ["iptables", "ip6tables"]) {
          assert.equal(
            one(
              after,
              new RegExp(
                `^open_knock_port is false and ${tool} INPUT accepts udp 40123 behind a knock gate`,
              ),
            ).level,
            "ok",
          );
        }
        // The pasted gate sits above the loopback accept and drops junk.
        await sendJunk(bed, 40);
        assert.match(
          await nsExec(bed.ns, ["iptables", "-w", "-v", "-S", "INPUT"]),
          /--u32 "0x0>>0x16&0x3c@0x4>>0x10=0xad" -c 1 /,
        );
        await bed.sh(
          `iptables -w -I INPUT -p udp --dport ${KNOCK_PORT} -j ACCEPT -m comment --comment "my rule"`,
        );
        const shadow = one(
          await bed.doctor(),
          /^a rule of iptables INPUT accepts udp 40123 ahead of the knock gate/,
        );
        assert.equal(shadow.level, "warn");
        await bed.sh(shadow.fix!);
        none(await bed.doctor(), /ahead of the knock gate/);
      },
    );
  },
});

Deno.test({
  name:
    "doctor checks iptables and ip6tables INPUT: policy, established, ICMPv6, with working fixes",
  ignore: !canRun,
  fn: async () => {
    await withBed({ firewall: "iptables" }, async (bed) => {
      // IPv4 is default-deny with established; IPv6 is wide open.
      await bed.sh(
        "iptables -w -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT && iptables -w -A INPUT -i lo -j ACCEPT && iptables -w -P INPUT DROP",
      );
      const findings = await bed.doctor();
      assert.equal(one(findings, /^iptables found: iptables v/).level, "ok");
      assert.equal(one(findings, /^ip6tables found: ip6tables v/).level, "ok");
      assert.equal(
        one(findings, /^iptables INPUT drops by default \(policy DROP\)/).level,
        "ok",
      );
      assert.equal(
        one(findings, /^iptables INPUT accepts established/).level,
        "ok",
      );
      const v6 = one(findings, /^ip6tables INPUT has policy ACCEPT/);
      assert.equal(v6.level, "warn");
      assert.match(v6.text, /openme protects nothing over IPv6/);
      const v6Established = one(
        findings,
        /^ip6tables INPUT has no ESTABLISHED,RELATED accept/,
      );
      assert.equal(v6Established.level, "warn");
      none(findings, /jump/);

      await bed.sh(v6.fix!);
      const after = await bed.doctor();
      assert.equal(one(after, /^ip6tables INPUT drops by default/).level, "ok");
      assert.equal(
        one(after, /^ip6tables INPUT accepts established/).level,
        "ok",
      );
      assert.equal(
        one(after, /^ip6tables INPUT accepts ICMPv6 neighbour discovery/).level,
        "ok",
      );
      assert.deepEqual(after.filter((f) => f.level === "fail"), []);
    });
  },
});

Deno.test({
  name:
    "doctor warns when ip6tables drops by default but not neighbour discovery",
  ignore: !canRun,
  fn: async () => {
    await withBed({ firewall: "iptables" }, async (bed) => {
      await bed.sh("ip6tables -w -P INPUT DROP");
      const finding = one(
        await bed.doctor(),
        /^ip6tables INPUT drops ICMPv6 neighbour discovery/,
      );
      assert.equal(finding.level, "warn");
      await bed.sh(finding.fix!);
      assert.equal(
        one(
          await bed.doctor(),
          /^ip6tables INPUT accepts ICMPv6 neighbour discovery/,
        ).level,
        "ok",
      );
    });
  },
});

Deno.test({
  name: "doctor fails a knock port held by another program and names it",
  ignore: !canRun,
  fn: async () => {
    await withBed({
      nft: ruleset([POLICY_DROP, ESTABLISHED, LOOPBACK, ND, JUMP]),
    }, async (bed) => {
      const code = `import { createSocket } from "node:dgram";
const u = createSocket("udp4");
await new Promise((r) => u.bind(${KNOCK_PORT}, "0.0.0.0", r));
console.log("ready");
setTimeout(() => Deno.exit(0), 20000);`;
      const child = new Deno.Command("ip", {
        args: ["netns", "exec", bed.ns, "deno", "eval", "--no-config", code],
        stdout: "piped",
        stderr: "null",
        stdin: "null",
      }).spawn();
      const reader = child.stdout.getReader();
      try {
        await reader.read();
        const findings = await bed.doctor();
        const finding = one(
          findings,
          new RegExp(`^knock port udp ${KNOCK_PORT} is in use by`),
        );
        assert.equal(finding.level, "fail");
        assert.match(finding.text, new RegExp(`\\(pid ${child.pid}\\)`));
        assert.match(finding.fix!, new RegExp(`kill ${child.pid}`));
        assert.equal(
          one(findings, new RegExp(`^health port tcp ${KNOCK_PORT} is free`))
            .level,
          "ok",
        );
      } finally {
        reader.releaseLock();
        child.kill("SIGKILL");
        await child.status;
        await child.stdout.cancel().catch(() => {});
      }
    });
  },
});

/** A running `openme serve` in the bed: its child process, its log so far and doctor's findings once it holds both ports. */
interface Serve {
  child: Deno.ChildProcess;
  log(): string;
  findings: Finding[];
}

/** Runs `openme serve` in the bed (PATH as given) while fn runs, then stops it with SIGTERM. */
async function withServe(
  bed: Bed,
  path: string | undefined,
  fn: (serve: Serve) => Promise<void>,
): Promise<void> {
  const command = mainCommand([
    "--config",
    bed.config,
    "serve",
    "--state-file",
    join(bed.dir, "state.json"),
  ], { netns: bed.ns });
  const child = new Deno.Command(command[0], {
    args: command.slice(1),
    stdout: "null",
    stderr: "piped",
    stdin: "null",
    env: path === undefined ? {} : { PATH: path },
  }).spawn();
  let log = "";
  const pump = (async () => {
    for await (const chunk of child.stderr) {
      log += new TextDecoder().decode(chunk);
    }
  })();
  try {
    let findings: Finding[] = [];
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      // Serving: its ports are bound before its firewall set-up, logged after.
      const serving = log.includes("openme serving");
      findings = await bed.doctor();
      if (
        serving &&
        findings.some((f) => /health port .* held by openme serve/.test(f.text))
      ) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    await fn({ child, log: () => log, findings });
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await pump;
  }
}

Deno.test({
  name:
    "doctor recognises a running openme serve holding both ports, the jump it added and its knock gate's drops",
  ignore: !canRun,
  fn: async () => {
    // No loopback accept: the junk sent over lo below reaches the gate.
    await withBed({
      nft: ruleset([POLICY_DROP, ESTABLISHED, ND]),
    }, async (bed) => {
      await withServe(bed, undefined, async ({ child, log, findings }) => {
        const knock = one(
          findings,
          new RegExp(
            `^knock port udp ${KNOCK_PORT} is held by openme serve \\(pid ${child.pid}\\)`,
          ),
        );
        assert.equal(knock.level, "ok", log());
        assert.equal(
          one(
            findings,
            new RegExp(
              `^health port tcp ${KNOCK_PORT} is held by openme serve`,
            ),
          ).level,
          "ok",
        );
        assert.equal(
          one(findings, /chain input jumps to chain openme/).level,
          "ok",
        );
        assert.deepEqual(findings.filter((f) => f.level === "fail"), []);
        // The gate's kernel drops, next to openme's own from its state file.
        await sendJunk(bed, 40);
        const stateFile = join(bed.dir, "state.json");
        assert.equal(
          one(
            await bed.doctor({ stateFile }),
            /^openme's knock gate \(nft\) dropped 1 size, 0 version, 0 rate in the kernel; openme itself dropped 0$/,
          ).level,
          "ok",
        );
      });
      // serve removed its jump; doctor no longer sees it.
      assert.equal(
        one(await bed.doctor(), /has no jump to chain openme yet/).level,
        "warn",
      );
    });
  },
});

Deno.test({
  name:
    "serve on a kernel without nft's limit statement says so at start and keeps the rest of the gate; doctor says what is missing and how to get it",
  ignore: !canRun,
  fn: async () => {
    await withBed({
      nft: ruleset([POLICY_DROP, ESTABLISHED, LOOPBACK, ND]),
    }, async (bed) => {
      // An nft that refuses what needs nft_limit, as a kernel without it does.
      const real = findOnPath("nft");
      assert.ok(real !== null);
      const fake = join(bed.dir, "bin");
      await Deno.mkdir(fake);
      await Deno.writeTextFile(
        join(fake, "nft"),
        `#!/bin/sh
input=$(cat)
case "$input" in *"limit rate"*)
  echo "Error: Could not process rule: No such file or directory" >&2; exit 1;;
esac
printf '%s\\n' "$input" | exec ${real} "$@"
`,
        { mode: 0o755 },
      );
      const path = `${fake}:${Deno.env.get("PATH")}`;
      await withServe(bed, path, async ({ log, findings }) => {
        assert.match(
          log(),
          /WARN {2}firewall: the knock gate has no rate check: nft lacks the limit statement \(modprobe nft_limit/,
        );
        const missing = one(
          findings,
          /^openme's knock gate \(nft\) has no rate check/,
        );
        assert.equal(missing.level, "warn");
        assert.match(missing.text, /nft lacks the limit statement/);
        assert.match(
          missing.fix!,
          /^modprobe nft_limit, or a kernel with CONFIG_NFT_LIMIT, then systemctl restart openme$/,
        );
        none(findings, /has no (size|version) check/);
        // The knock port still works, behind what the gate could keep.
        const chain = await nsExec(bed.ns, [
          "nft",
          "list",
          "chain",
          "inet",
          "filter",
          "openme",
        ]);
        assert.match(
          chain,
          /udp length != 173 .*\n.*@th,64,8 != 0x1 .*\n.*udp dport 40123 accept comment "openme-knock"/,
        );
      });
    });
  },
});

Deno.test("doctor off Linux fails with one line saying the server needs Linux", async () => {
  const findings = await runDoctorChecks("/nonexistent/config.yaml", {
    platform: "darwin",
  });
  assert.equal(findings.length, 1);
  assert.equal(findings[0].level, "fail");
  assert.match(findings[0].text, /needs Linux/);
});

Deno.test("doctor accepts CAP_NET_ADMIN without root and fails without either", async () => {
  await withTempDir("openme-doctor-path-", async (empty) => {
    const base = { env: { PATH: empty }, uid: 1000 };
    const withCap = await runDoctorChecks("/nonexistent/config.yaml", {
      ...base,
      procStatus: "Name:\topenme\nCapEff:\t0000000000001000\n",
    });
    assert.equal(one(withCap, /^running with CAP_NET_ADMIN/).level, "ok");
    const without = await runDoctorChecks("/nonexistent/config.yaml", {
      ...base,
      procStatus: "Name:\topenme\nCapEff:\t0000000000000000\n",
    });
    const finding = one(without, /^running as uid 1000 without CAP_NET_ADMIN/);
    assert.equal(finding.level, "fail");
    assert.match(finding.fix!, /sudo openme doctor/);
  });
});

Deno.test("doctor fails a missing config and a missing firewall tool, with the commands to fix them", async () => {
  await withTempDir("openme-doctor-path-", async (empty) => {
    const findings = await runDoctorChecks(join(empty, "config.yaml"), {
      env: { PATH: empty },
    });
    const config = one(findings, /file not found/);
    assert.equal(config.level, "fail");
    assert.equal(
      config.fix,
      `openme init --server HOST --config ${join(empty, "config.yaml")}`,
    );
    const nft = one(findings, /^nft is missing or broken/);
    assert.equal(nft.level, "fail");
    assert.match(nft.fix!, /apt install nftables/);
    none(findings, /drops by default|chain input/);
  });
});

Deno.test("openme doctor prints one line per finding and exits 1 on any ✗", async () => {
  await withTempDir("openme-doctor-cli-", async (dir) => {
    const result = await openme([
      "--config",
      join(dir, "missing.yaml"),
      "doctor",
    ]);
    assert.equal(result.code, 1);
    const lines = result.out.split("\n");
    assert.match(
      lines[0],
      /^✗ config .*missing\.yaml: file not found .* — fix: openme init --server HOST --config /,
    );
    for (const line of lines.slice(0, -1)) assert.match(line, /^[✓⚠✗] /);
    assert.match(
      lines[lines.length - 1],
      /^\d+ problem\(s\), \d+ warning\(s\), \d+ fine: openme will not work until the ✗ lines are fixed$/,
    );
  });
});

Deno.test({
  name:
    "doctor fails a refused clients.d file and warns when a user other than root may change the config",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    await withTempDir("openme-doctor-files-", async (dir) => {
      const config = join(dir, "config.yaml");
      await openmeOk(["--config", config, "init", "--server", "h.example"]);
      await Deno.mkdir(join(dir, "clients.d"), { mode: 0o755 });
      await Deno.writeTextFile(
        join(dir, "clients.d", "bad.yaml"),
        "clients: [\n",
      );
      const doctor = () => runDoctorChecks(config, { env: { PATH: dir } });
      const findings = await doctor();
      const refused = one(findings, /clients\.d\/bad\.yaml:1: invalid YAML/);
      assert.equal(refused.level, "fail");
      assert.match(refused.text, /file refused/);
      none(findings, /only root should change the server config/);
      await Deno.chmod(config, 0o660);
      const writable = one(
        await doctor(),
        /only root should change the server config/,
      );
      assert.equal(writable.level, "warn");
      assert.match(
        writable.text,
        new RegExp(
          `^config ${config}: mode 0660 lets other users change it \\(run chmod go-w ${config}\\)`,
        ),
      );
    });
  },
});
