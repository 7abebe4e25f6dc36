import assert from "node:assert/strict";
import {
  describeBaseRules,
  describeRulePort,
  describeRulePorts,
  FirewallError,
  firewallErrorFromResult,
  invalidRuleHandleError,
  stderrOneLine,
  validateAddress,
  validateBaseRulesOptions,
  validateInterfaceName,
  validateNetnsName,
  validateOpenRequest,
  validateRulePort,
} from "../../lib/firewall/backend.ts";
import type { ToolResult } from "../../lib/firewall/exec.ts";

function result(overrides: Partial<ToolResult>): ToolResult {
  return {
    command: "nft",
    args: ["-e", "-a", "-f", "-"],
    code: 1,
    success: false,
    stdout: "",
    stderr: "",
    timedOut: false,
    timeoutMs: 5000,
    error: null,
    ...overrides,
  };
}

Deno.test("validateInterfaceName accepts usual Linux interface names", () => {
  for (
    const name of [
      "eth0",
      "enp3s0",
      "wg0",
      "br-lan",
      "eth0.100",
      "veth_a:1",
      "ppp@x",
      "a23456789012345",
    ]
  ) {
    assert.equal(validateInterfaceName(name, "nft"), name);
  }
});

Deno.test("validateInterfaceName rejects names that could break a rule, naming the value", () => {
  for (
    const name of [
      "",
      "eth 0",
      'eth0"',
      "eth0;",
      "a234567890123456",
      "eth+",
      "eth0\n",
      "$(id)",
    ]
  ) {
    assert.throws(() => validateInterfaceName(name, "nft"), (err: unknown) => {
      assert.ok(err instanceof FirewallError);
      assert.ok(err.message.includes(JSON.stringify(name)), err.message);
      assert.match(err.message, /server\.interface/);
      assert.equal(err.tool, "nft");
      return true;
    });
  }
});

Deno.test("validateNetnsName rejects names starting with a dash or with odd characters", () => {
  assert.equal(validateNetnsName("om-fw-1-a", "nft"), "om-fw-1-a");
  assert.throws(() => validateNetnsName("-x", "nft"), FirewallError);
  assert.throws(() => validateNetnsName("a b", "nft"), FirewallError);
  assert.throws(() => validateNetnsName("", "nft"), FirewallError);
});

Deno.test("validateRulePort keeps ports and ranges and drops an endPort equal to port", () => {
  assert.deepEqual(validateRulePort({ port: 22, proto: "tcp" }, "nft"), {
    port: 22,
    proto: "tcp",
  });
  assert.deepEqual(
    validateRulePort({ port: 8080, endPort: 8090, proto: "udp" }, "nft"),
    { port: 8080, endPort: 8090, proto: "udp" },
  );
  assert.deepEqual(
    validateRulePort({ port: 53, endPort: 53, proto: "udp" }, "nft"),
    {
      port: 53,
      proto: "udp",
    },
  );
});

Deno.test("validateRulePort rejects out-of-range ports, reversed ranges and unknown protocols", () => {
  const bad = [
    { port: 0, proto: "tcp" },
    { port: 65536, proto: "tcp" },
    { port: 22.5, proto: "tcp" },
    { port: 90, endPort: 80, proto: "tcp" },
    { port: 80, endPort: 70000, proto: "tcp" },
    { port: 22, proto: "sctp" },
  ];
  for (const port of bad) {
    assert.throws(
      () => validateRulePort(port as never, "iptables"),
      (err: unknown) =>
        err instanceof FirewallError &&
        err.message.includes(JSON.stringify(port)),
    );
  }
});

Deno.test("validateAddress returns canonical addresses and rejects text that is not an address", () => {
  assert.deepEqual(validateAddress({ family: 4, text: "192.0.2.2" }, "nft"), {
    family: 4,
    text: "192.0.2.2",
  });
  assert.deepEqual(
    validateAddress({ family: 6, text: "2001:DB8:0::1" }, "nft"),
    {
      family: 6,
      text: "2001:db8::1",
    },
  );
  assert.throws(
    () => validateAddress({ family: 4, text: "192.0.2.2 accept" }, "nft"),
    FirewallError,
  );
  assert.throws(
    () => validateAddress({ family: 6, text: "192.0.2.2" }, "nft"),
    FirewallError,
  );
  assert.throws(
    () => validateAddress({ family: 4, text: "2001:db8::1" }, "nft"),
    FirewallError,
  );
});

Deno.test("validateBaseRulesOptions normalises an empty interface to null and validates drop ports", () => {
  const clean = validateBaseRulesOptions({
    knockPort: 54154,
    openKnockPort: true,
    dropPorts: [{ port: 22, endPort: 22, proto: "tcp" }],
    interface: "",
  }, "nft");
  assert.deepEqual(clean, {
    knockPort: 54154,
    openKnockPort: true,
    dropPorts: [{ port: 22, proto: "tcp" }],
    interface: null,
  });
  assert.throws(
    () =>
      validateBaseRulesOptions({
        knockPort: 0,
        openKnockPort: true,
        dropPorts: [],
        interface: null,
      }, "nft"),
    /invalid knock port 0/,
  );
  assert.throws(
    () =>
      validateBaseRulesOptions({
        knockPort: 1,
        openKnockPort: true,
        dropPorts: [],
        interface: "bad if",
      }, "nft"),
    /invalid interface name "bad if"/,
  );
});

Deno.test("stderrOneLine joins lines, drops caret markers and blank lines", () => {
  const stderr =
    "/dev/stdin:1:39-40: Error: Could not process rule: No such file or directory\n" +
    "delete rule inet filter openme handle 99\n" +
    "                                      ^^\n\n";
  assert.equal(
    stderrOneLine(stderr),
    "/dev/stdin:1:39-40: Error: Could not process rule: No such file or directory | delete rule inet filter openme handle 99",
  );
  assert.ok(stderrOneLine("x".repeat(1000)).length <= 403);
});

Deno.test("firewallErrorFromResult names tool, arguments, exit code, stderr and the hint", () => {
  const err = firewallErrorFromResult(
    result({ code: 1, stderr: "Error: Operation not permitted\n" }),
    {
      hint: "is nftables installed and are you root (CAP_NET_ADMIN)?",
      action: "opening 22/tcp for 192.0.2.2",
    },
  );
  assert.ok(err instanceof FirewallError);
  assert.equal(
    err.message,
    "firewall: opening 22/tcp for 192.0.2.2: nft -e -a -f - failed (exit 1): Error: Operation not permitted; " +
      "is nftables installed and are you root (CAP_NET_ADMIN)?",
  );
  assert.equal(err.tool, "nft");
  assert.deepEqual(err.args, ["-e", "-a", "-f", "-"]);
  assert.equal(err.exitCode, 1);
  assert.equal(err.stderr, "Error: Operation not permitted");
});

Deno.test("firewallErrorFromResult explains a timeout and a missing binary", () => {
  const timedOut = firewallErrorFromResult(
    result({ code: null, timedOut: true, timeoutMs: 250 }),
    {
      hint: "hint",
    },
  );
  assert.match(
    timedOut.message,
    /nft -e -a -f - did not finish within 250 ms and was killed; hint/,
  );
  assert.equal(timedOut.exitCode, null);
  const missing = firewallErrorFromResult(
    result({ code: null, error: "command not found: nft (searched PATH=/x)" }),
    { hint: "hint" },
  );
  assert.match(missing.message, /could not run: command not found: nft/);
});

Deno.test("describeRulePort formats single ports and ranges", () => {
  assert.equal(describeRulePort({ port: 22, proto: "tcp" }), "22/tcp");
  assert.equal(
    describeRulePort({ port: 8080, endPort: 8090, proto: "udp" }),
    "8080-8090/udp",
  );
  assert.equal(
    describeRulePorts([{ port: 22, proto: "tcp" }, { port: 53, proto: "udp" }]),
    "22/tcp, 53/udp",
  );
});

Deno.test("describeBaseRules summarises knock port, drop rule count and interface", () => {
  assert.equal(
    describeBaseRules({
      knockPort: 54154,
      openKnockPort: true,
      dropPorts: [{ port: 22, proto: "tcp" }, { port: 80, proto: "tcp" }],
      interface: null,
    }),
    "knock port 54154/udp open, 2 drop rules, all interfaces",
  );
  assert.equal(
    describeBaseRules({
      knockPort: 7000,
      openKnockPort: false,
      dropPorts: [],
      interface: "eth0",
    }),
    "knock port not managed, 0 drop rules, interface eth0",
  );
});

Deno.test("validateOpenRequest returns the canonical address and clean ports", () => {
  assert.deepEqual(
    validateOpenRequest({ family: 6, text: "2001:DB8::2" }, [
      { port: 22, endPort: 22, proto: "tcp" },
      { port: 8080, endPort: 8090, proto: "udp" },
    ], { tool: "ip6tables" }),
    {
      address: { family: 6, text: "2001:db8::2" },
      ports: [
        { port: 22, proto: "tcp" },
        { port: 8080, endPort: 8090, proto: "udp" },
      ],
    },
  );
});

Deno.test("validateOpenRequest rejects a bad address before the ports, naming the tool", () => {
  assert.throws(
    () =>
      validateOpenRequest({ family: 4, text: "192.0.2.2;" }, [
        { port: 0, proto: "tcp" },
      ], { tool: "iptables" }),
    (err: unknown) =>
      err instanceof FirewallError && err.tool === "iptables" &&
      err.message.includes("invalid address"),
  );
  assert.throws(
    () =>
      validateOpenRequest({ family: 4, text: "192.0.2.2" }, [
        { port: 22, proto: "tcp" },
        { port: 70000, proto: "tcp" },
      ], { tool: "nft" }),
    (err: unknown) =>
      err instanceof FirewallError && err.tool === "nft" &&
      err.message.includes("invalid port"),
  );
});

Deno.test("invalidRuleHandleError names the backend, the handle, the address and the tool", () => {
  const err = invalidRuleHandleError(
    {
      address: { family: 6, text: "2001:db8::2" },
      ports: [{ port: 22, proto: "tcp" }],
      handles: ["x; y"],
    },
    "x; y",
    { backend: "iptables", tool: "ip6tables" },
  );
  assert.ok(err instanceof FirewallError);
  assert.equal(
    err.message,
    'firewall: invalid iptables rule handle "x; y" for 2001:db8::2: ' +
      "pass the OpenedRules that open() returned",
  );
  assert.equal(err.tool, "ip6tables");
  assert.deepEqual(err.args, []);
  assert.equal(err.exitCode, null);
});
