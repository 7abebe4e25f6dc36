import assert from "node:assert/strict";
import {
  type BaseRulesOptions,
  DEFAULT_KNOCK_RATE_LIMIT,
  describeBaseRules,
  describeRules,
  FirewallError,
  portRangeText,
  validateBaseRulesOptions,
  validateOpenRequest,
} from "../../lib/firewall/backend.ts";

const BASE: BaseRulesOptions = {
  knockPort: 54154,
  openKnockPort: true,
  dropPorts: [],
  interface: null,
};

function withInterface(name: string): BaseRulesOptions {
  return { ...BASE, interface: name };
}

Deno.test("validateBaseRulesOptions accepts usual Linux interface names", () => {
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
    assert.equal(
      validateBaseRulesOptions(withInterface(name)).interface,
      name,
    );
  }
});

Deno.test("validateBaseRulesOptions rejects interface names that could break a rule, naming the value", () => {
  for (
    const name of [
      "eth 0",
      'eth0"',
      "eth0;",
      "a234567890123456",
      "eth+",
      "eth0\n",
      "$(id)",
    ]
  ) {
    assert.throws(
      () => validateBaseRulesOptions(withInterface(name)),
      (err: unknown) => {
        assert.ok(err instanceof FirewallError);
        assert.ok(err.message.includes(JSON.stringify(name)), err.message);
        assert.match(err.message, /server\.interface/);
        return true;
      },
    );
  }
});

Deno.test("validateBaseRulesOptions normalises an empty interface to null, drops an endPort equal to port and rejects a bad knock port", () => {
  const clean = validateBaseRulesOptions({
    ...BASE,
    dropPorts: [
      { port: 22, endPort: 22, proto: "tcp" },
      { port: 8080, endPort: 8090, proto: "udp" },
    ],
    interface: "",
  });
  assert.deepEqual(clean, {
    ...BASE,
    dropPorts: [
      { port: 22, proto: "tcp" },
      { port: 8080, endPort: 8090, proto: "udp" },
    ],
    interface: null,
    knockRateLimit: DEFAULT_KNOCK_RATE_LIMIT,
  });
  assert.throws(
    () => validateBaseRulesOptions({ ...BASE, knockPort: 0 }),
    /invalid knock port 0 \(server\.udp_port\)/,
  );
});

Deno.test("validateOpenRequest returns the canonical address and clean ports", () => {
  assert.deepEqual(
    validateOpenRequest({ family: 6, text: "2001:DB8::2" }, [
      { port: 22, endPort: 22, proto: "tcp" },
      { port: 8080, endPort: 8090, proto: "udp" },
    ]),
    {
      address: { family: 6, text: "2001:db8::2" },
      ports: [
        { port: 22, proto: "tcp" },
        { port: 8080, endPort: 8090, proto: "udp" },
      ],
    },
  );
});

Deno.test("validateOpenRequest rejects text that is not an address of the family, before the ports", () => {
  const bad = [
    { family: 4, text: "192.0.2.2 accept" },
    { family: 6, text: "192.0.2.2" },
    { family: 4, text: "2001:db8::1" },
  ] as const;
  for (const address of bad) {
    assert.throws(
      () => validateOpenRequest(address, [{ port: 0, proto: "tcp" }]),
      (err: unknown) =>
        err instanceof FirewallError &&
        err.message.includes(`invalid address ${JSON.stringify(address)}`),
    );
  }
});

Deno.test("validateOpenRequest rejects out-of-range ports, reversed ranges and unknown protocols, naming the port", () => {
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
      () =>
        validateOpenRequest({ family: 4, text: "192.0.2.2" }, [
          { port: 22, proto: "tcp" },
          port as never,
        ]),
      (err: unknown) =>
        err instanceof FirewallError &&
        err.message.includes(`invalid port ${JSON.stringify(port)}`),
    );
  }
});

Deno.test("portRangeText and describeRules format single ports, ranges and the address", () => {
  const range = { port: 8080, endPort: 8090, proto: "udp" as const };
  assert.equal(portRangeText(range, ":"), "8080:8090");
  assert.equal(portRangeText({ port: 22, proto: "tcp" }, ":"), "22");
  assert.equal(
    describeRules({
      address: { family: 4, text: "192.0.2.2" },
      ports: [{ port: 22, proto: "tcp" }, range],
    }),
    "22/tcp, 8080-8090/udp for 192.0.2.2",
  );
});

Deno.test("describeBaseRules summarises knock port, drop rule count and interface", () => {
  assert.equal(
    describeBaseRules({
      ...BASE,
      dropPorts: [{ port: 22, proto: "tcp" }, { port: 80, proto: "tcp" }],
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

Deno.test("validateBaseRulesOptions refuses a knock rate limit the gate rules cannot hold, naming the settings", () => {
  for (
    const knockRateLimit of [
      { count: 0, unit: "second", burst: 40 },
      { count: 1000, unit: "second", burst: 40 },
      { count: 1.5, unit: "second", burst: 40 },
      { count: 20, unit: "day", burst: 40 },
      { count: 20, unit: "second", burst: 0 },
      { count: 20, unit: "second", burst: 1000 },
    ] as const
  ) {
    assert.throws(
      () =>
        validateBaseRulesOptions({
          ...BASE,
          knockRateLimit: knockRateLimit as BaseRulesOptions["knockRateLimit"],
        }),
      /invalid knock rate limit .*\(server\.knock_rate_limit, server\.knock_burst\)/,
    );
  }
  const limit = { count: 999, unit: "hour", burst: 1 } as const;
  assert.deepEqual(
    validateBaseRulesOptions({ ...BASE, knockRateLimit: limit })
      .knockRateLimit,
    limit,
  );
});
