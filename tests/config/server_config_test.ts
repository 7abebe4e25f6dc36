import assert from "node:assert/strict";
import fc from "fast-check";
import { stringify } from "yaml";
import {
  generateEd25519KeyPair,
  prepareEd25519VerifyKey,
} from "../../lib/protocol/crypto.ts";
import { encodeBase64 } from "../../lib/encoding.ts";
import { ConfigError } from "../../lib/config/errors.ts";
import { parseYamlFile } from "../../lib/config/yaml_file.ts";
import {
  allManagedPorts,
  buildServerConfig,
  DEFAULT_SERVER_CONFIG_PATH,
  DEFAULT_UDP_PORT,
  loadServerConfig,
  parseRfc3339Timestamp,
  renderInitialServerConfig,
  type ServerConfig,
} from "../../lib/config/server_config.ts";
import {
  assertConfigErrorMessage,
  SERVER_SECTION_KEYS,
} from "../support/config.ts";
import {
  ALICE_KEY,
  baseLines,
  configText,
  portsText,
  SERVER_PRIVATE,
  SERVER_PUBLIC,
  SHORT_KEY,
  withTempConfig,
} from "../support/server_config_fixture.ts";

const IS_WINDOWS = Deno.build.os === "windows";
const PATH = "/etc/openme/config.yaml";

function parse(text: string): ServerConfig {
  return buildServerConfig(parseYamlFile(text, { path: PATH }));
}

Deno.test("buildServerConfig reads every key of a full config", () => {
  const config = parse(configText());
  assert.equal(config.path, PATH);
  assert.equal(config.host, "myserver.example.com");
  assert.equal(config.udpPort, 54154);
  assert.equal(config.healthPort, 54155);
  assert.equal(config.firewall, "nft");
  assert.equal(config.knockTimeoutMs, 30_000);
  assert.equal(config.replayWindowMs, 60_000);
  assert.equal(config.openKnockPort, true);
  assert.equal(config.dropPorts, false);
  assert.equal(config.defaultProfile, "default");
  assert.equal(config.interface, "eth0");
  assert.equal(encodeBase64(config.privateKey), SERVER_PRIVATE);
  assert.equal(encodeBase64(config.publicKey), SERVER_PUBLIC);
  assert.deepEqual([...config.portGroups.keys()], ["default", "devops"]);
  assert.deepEqual(portsText(config.portGroups.get("devops")!), [
    "22/tcp",
    "443/tcp",
    "8080-8090/tcp",
  ]);
  assert.equal(config.clients.length, 2);
  const [alice, bob] = config.clients;
  assert.equal(alice.name, "alice");
  assert.equal(encodeBase64(alice.ed25519PublicKey), ALICE_KEY);
  assert.deepEqual(alice.allowedPorts, ["default", "2222/tcp"]);
  assert.deepEqual(portsText(alice.ports), ["22/tcp", "2222/tcp"]);
  assert.equal(alice.expires?.toISOString(), "2099-12-31T23:59:59.000Z");
  assert.equal(alice.disableHealthPort, false);
  assert.equal(bob.expires, null);
  assert.deepEqual(portsText(bob.ports), [
    "22/tcp",
    "443/tcp",
    "8080-8090/tcp",
    "53/udp",
  ]);
  assert.deepEqual(config.skippedClients, []);
  assert.deepEqual(config.warnings, []);
});

Deno.test("buildServerConfig applies the SPEC defaults to a minimal config", () => {
  const text =
    `server:\n  host: h.example\n  private_key: ${SERVER_PRIVATE}\n  public_key: ${SERVER_PUBLIC}\n`;
  const config = parse(text);
  assert.equal(config.udpPort, DEFAULT_UDP_PORT);
  assert.equal(config.udpPort, 54154);
  assert.equal(config.healthPort, 54154);
  assert.equal(config.firewall, "nft");
  assert.equal(config.knockTimeoutMs, 30_000);
  assert.equal(config.replayWindowMs, 60_000);
  assert.equal(config.openKnockPort, true);
  assert.deepEqual(config.knockRateLimit, {
    count: 20,
    unit: "second",
    burst: 40,
  });
  assert.equal(config.dropPorts, false);
  assert.equal(config.defaultProfile, "default");
  assert.equal(config.interface, null);
  assert.equal(config.portGroups.size, 0);
  assert.deepEqual(config.clients, []);
  assert.equal(DEFAULT_SERVER_CONFIG_PATH, "/etc/openme/config.yaml");
});

Deno.test("health_port defaults to udp_port when only udp_port is set", () => {
  const config = parse(configText({ 4: "  udp_port: 6000", 5: null }));
  assert.equal(config.udpPort, 6000);
  assert.equal(config.healthPort, 6000);
});

Deno.test("interface given as empty string or null means all interfaces; firewall is case-insensitive", () => {
  assert.equal(parse(configText({ 12: '  interface: ""' })).interface, null);
  assert.equal(parse(configText({ 12: "  interface:" })).interface, null);
  assert.equal(
    parse(configText({ 6: "  firewall: IPTABLES" })).firewall,
    "iptables",
  );
});

interface ErrorCase {
  name: string;
  text: string;
  line?: number;
  keyPath?: string;
  parts: string[];
}

function assertConfigError(run: () => unknown, c: ErrorCase): void {
  assert.throws(run, (error: unknown) => {
    assertConfigErrorMessage(error, { ...c, file: PATH });
    assert.ok(!error.message.includes("\n"), c.name);
    return true;
  });
}

Deno.test("server-level problems throw a ConfigError naming file, line, key path and value", () => {
  const cases: ErrorCase[] = [
    {
      name: "malformed YAML",
      text: configText({ 6: "  firewall: [nft" }),
      line: 6,
      parts: ["invalid YAML", "add the missing ]", "noticed at line 7"],
    },
    {
      name: "duplicate key",
      text: configText({ 5: "  host: other" }),
      line: 5,
      keyPath: "server.host",
      parts: ['invalid YAML: duplicate key "host"', "unique"],
    },
    {
      name: "empty file",
      text: "",
      parts: ["the file is empty", "openme init"],
    },
    {
      name: "top level list",
      text: "- a\n- b\n",
      parts: ["the top level is a list"],
    },
    {
      name: "missing server section",
      text: "ports: {}\n",
      keyPath: "server",
      parts: ["missing server: section"],
    },
    {
      name: "missing private key",
      text: configText({ 13: null }),
      line: 2,
      keyPath: "server.private_key",
      parts: ["missing key", "32 bytes"],
    },
    {
      name: "short private key",
      text: configText({ 13: `  private_key: ${SHORT_KEY}` }),
      line: 13,
      keyPath: "server.private_key",
      parts: ["key is 16 bytes, expected 32 bytes", "openme init"],
    },
    {
      name: "non-base64 public key",
      text: configText({ 14: "  public_key: not*base64!" }),
      line: 14,
      keyPath: "server.public_key",
      parts: ["not valid base64"],
    },
    {
      name: "private key of the wrong type",
      text: configText({ 13: "  private_key: 12345" }),
      line: 13,
      keyPath: "server.private_key",
      parts: ["expected base64 text, got 12345"],
    },
    {
      name: "unknown firewall",
      text: configText({ 6: "  firewall: pf" }),
      line: 6,
      keyPath: "server.firewall",
      parts: ['unknown firewall "pf"', "(expected nft or iptables)"],
    },
    {
      name: "udp_port out of range",
      text: configText({ 4: "  udp_port: 70000" }),
      line: 4,
      keyPath: "server.udp_port",
      parts: ["port 70000 out of range 1-65535", "54154"],
    },
    {
      name: "udp_port huge number",
      text: configText({ 4: "  udp_port: 1e400" }),
      line: 4,
      keyPath: "server.udp_port",
      parts: ["infinity"],
    },
    {
      name: "udp_port as text",
      text: configText({ 4: "  udp_port: fifty" }),
      line: 4,
      keyPath: "server.udp_port",
      parts: ['expected a port number, got "fifty"'],
    },
    {
      name: "health_port zero",
      text: configText({ 5: "  health_port: 0" }),
      line: 5,
      keyPath: "server.health_port",
      parts: ["port 0 out of range"],
    },
    {
      name: "duration without unit",
      text: configText({ 7: "  knock_timeout: 30" }),
      line: 7,
      keyPath: "server.knock_timeout",
      parts: ["duration 30 has no unit", "30s"],
    },
    {
      name: "duration with a space",
      text: configText({ 7: '  knock_timeout: "30 s"' }),
      line: 7,
      keyPath: "server.knock_timeout",
      parts: ['invalid duration "30 s"', "1m30s"],
    },
    {
      name: "negative duration",
      text: configText({ 8: "  replay_window: -60s" }),
      line: 8,
      keyPath: "server.replay_window",
      parts: ['duration "-60s" must be longer than zero'],
    },
    {
      name: "zero duration",
      text: configText({ 7: "  knock_timeout: 0s" }),
      line: 7,
      keyPath: "server.knock_timeout",
      parts: ["must be longer than zero"],
    },
    {
      name: "too long duration",
      text: configText({ 7: "  knock_timeout: 48h" }),
      line: 7,
      keyPath: "server.knock_timeout",
      parts: ["24h maximum"],
    },
    {
      name: "boolean as yes",
      text: configText({ 9: "  open_knock_port: yes" }),
      line: 9,
      keyPath: "server.open_knock_port",
      parts: ['expected true or false, got "yes"'],
    },
    {
      name: "interface with shell characters",
      text: configText({ 12: '  interface: "eth0; drop"' }),
      line: 12,
      keyPath: "server.interface",
      parts: ['invalid interface name "eth0; drop"', "eth0"],
    },
    {
      name: "interface wildcard the firewall backends refuse",
      text: configText({ 12: '  interface: "eth+"' }),
      line: 12,
      keyPath: "server.interface",
      parts: ['invalid interface name "eth+"'],
    },
    {
      name: "missing host",
      text: configText({ 3: null }),
      line: 2,
      keyPath: "server.host",
      parts: ["missing server host"],
    },
    {
      name: "unicode firewall",
      text: configText({ 6: "  firewall: ñft" }),
      line: 6,
      keyPath: "server.firewall",
      parts: ['unknown firewall "ñft"'],
    },
    {
      name: "server section is a list",
      text: "server: [1, 2]\n",
      line: 1,
      keyPath: "server",
      parts: ["expected a map, got a list"],
    },
    {
      name: "group port out of range",
      text: configText({ 17: "  devops: [22/tcp, 70000/tcp]" }),
      line: 17,
      keyPath: "ports.devops[1]",
      parts: [
        "port 70000 out of range 1-65535",
        "expected e.g. 22/tcp or 8080-8090/tcp",
      ],
    },
    {
      name: "group range low above high",
      text: configText({ 17: "  devops: [8090-8080/tcp]" }),
      line: 17,
      keyPath: "ports.devops[0]",
      parts: ["8090-8080", "low end above its high end"],
    },
    {
      name: "group unknown protocol",
      text: configText({ 17: "  devops: [22/sctp]" }),
      line: 17,
      keyPath: "ports.devops[0]",
      parts: ['unknown protocol "sctp"', "expected tcp or udp"],
    },
    {
      name: "group containing a group",
      text: configText({ 17: "  devops: [default]" }),
      line: 17,
      keyPath: "ports.devops[0]",
      parts: ['"default" is not a port spec'],
    },
    {
      name: "group name that looks like a port",
      text: configText({ 17: "  8080: [8080/tcp]" }),
      line: 17,
      keyPath: "ports.8080",
      parts: ['group name "8080" looks like a port spec'],
    },
    {
      name: "group that is not a list",
      text: configText({ 17: "  devops: 22/tcp" }),
      line: 17,
      keyPath: "ports.devops",
      parts: ['expected a list of port specs, got "22/tcp"'],
    },
    {
      name: "clients section that is a list",
      text: configText({
        18: "clients: [alice]",
        19: null,
        20: null,
        21: null,
        22: null,
        23: null,
        24: null,
        25: null,
        26: null,
      }),
      line: 18,
      keyPath: "clients",
      parts: ["expected a map of client names, got a list"],
    },
  ];
  for (const c of cases) assertConfigError(() => parse(c.text), c);
});

Deno.test("an alias bomb gives a ConfigError instead of expanding 10^10 nodes", () => {
  const lines = [configText(), "bomb0: &b0 [x, x, x, x, x, x, x, x, x, x]"];
  for (let i = 1; i < 10; i++) {
    lines.push(`bomb${i}: &b${i} [${Array(10).fill(`*b${i - 1}`).join(", ")}]`);
  }
  assertConfigError(() => parse(lines.join("\n") + "\n"), {
    name: "alias bomb",
    text: "",
    parts: ["aliases expand to more than 100"],
  });
});

Deno.test("an invalid client is skipped with a warning naming it while the others load", () => {
  const cases: {
    name: string;
    replace: Record<number, string | null>;
    warning: string[];
  }[] = [
    {
      name: "unknown group",
      replace: { 26: "    allowed_ports: [devops, dev0ps]" },
      warning: [
        `config ${PATH}:26: clients.bob.allowed_ports[1]: unknown port group "dev0ps" (defined: default, devops); client "bob" skipped`,
      ],
    },
    {
      name: "port out of range",
      replace: { 26: "    allowed_ports: [70000/tcp]" },
      warning: [
        `config ${PATH}:26: clients.bob.allowed_ports[0]: port 70000 out of range 1-65535`,
      ],
    },
    {
      name: "short key",
      replace: { 25: `    ed25519_pubkey: ${SHORT_KEY}` },
      warning: [
        `config ${PATH}:25: clients.bob.ed25519_pubkey: key is 16 bytes, expected 32 bytes`,
      ],
    },
    {
      name: "missing key",
      replace: { 25: null },
      warning: [`config ${PATH}:24: clients.bob.ed25519_pubkey: missing key`],
    },
    {
      name: "date-only expiry",
      replace: { 26: '    expires: "2026-12-31"' },
      warning: [
        `config ${PATH}:26: clients.bob.expires: invalid timestamp "2026-12-31"`,
        "full RFC 3339 timestamp with time zone",
      ],
    },
    {
      name: "expiry without zone, unquoted",
      replace: { 26: "    expires: 2026-12-31T23:59:59" },
      warning: [
        `config ${PATH}:26: clients.bob.expires: invalid timestamp "2026-12-31T23:59:59"`,
      ],
    },
    {
      name: "expiry as a number",
      replace: { 26: "    expires: 2026" },
      warning: ["clients.bob.expires: expected a timestamp, got 2026"],
    },
    {
      name: "allowed_ports as text",
      replace: { 26: "    allowed_ports: 22/tcp" },
      warning: ['clients.bob.allowed_ports: expected a list, got "22/tcp"'],
    },
    {
      name: "allowed_ports entry is a map after an unknown group",
      replace: { 26: "    allowed_ports: [dev0ps, {a: 1}]" },
      warning: [
        "clients.bob.allowed_ports[1]: expected a port group name or port spec, got a map",
      ],
    },
    {
      name: "allowed_ports entry is a map",
      replace: { 26: "    allowed_ports: [{a: 1}]" },
      warning: [
        "clients.bob.allowed_ports[0]: expected a port group name or port spec, got a map",
      ],
    },
    {
      name: "disable_health_port as text",
      replace: { 26: "    disable_health_port: no" },
      warning: [
        'clients.bob.disable_health_port: expected true or false, got "no"',
      ],
    },
    {
      name: "entry is a string",
      replace: { 24: "  bob: yes", 25: null, 26: null },
      warning: [
        'config /etc/openme/config.yaml:24: clients.bob: expected a map, got "yes"',
      ],
    },
  ];
  for (const c of cases) {
    const config = parse(configText(c.replace));
    assert.deepEqual(
      config.clients.map((client) => client.name),
      ["alice"],
      c.name,
    );
    assert.deepEqual(config.skippedClients, ["bob"], c.name);
    const skipWarning = config.warnings.find((w) =>
      w.includes('client "bob" skipped')
    );
    assert.ok(skipWarning !== undefined, `${c.name}: ${config.warnings}`);
    for (const part of c.warning) {
      assert.ok(
        skipWarning.includes(part),
        `${c.name}: "${skipWarning}" lacks "${part}"`,
      );
    }
  }
});

Deno.test("a client with an invalid name is skipped and the others load", () => {
  const config = parse(configText({ 24: '  "bad name!":' }));
  assert.deepEqual(config.clients.map((c) => c.name), ["alice"]);
  assert.deepEqual(config.skippedClients, ["bad name!"]);
  assert.ok(
    config.warnings.some((w) =>
      w.includes('clients["bad name!"]: invalid client name')
    ),
  );
});

Deno.test("an unquoted full RFC 3339 expiry stays a string and is accepted", () => {
  const config = parse(
    configText({ 22: "    expires: 2099-12-31T23:59:59+02:00" }),
  );
  assert.equal(
    config.clients[0].expires?.toISOString(),
    "2099-12-31T21:59:59.000Z",
  );
});

Deno.test("replay_window shorter than knock_timeout is a warning, not an error", () => {
  const config = parse(configText({ 8: "  replay_window: 10s" }));
  assert.equal(config.replayWindowMs, 10_000);
  assert.equal(config.clients.length, 2);
  assert.equal(config.warnings.length, 1);
  assert.ok(
    config.warnings[0].startsWith(`config ${PATH}:8: server.replay_window: `),
    config.warnings[0],
  );
  assert.ok(
    config.warnings[0].includes(
      "replay_window (10s) is shorter than knock_timeout (30s)",
    ),
  );
  assert.deepEqual(
    parse(configText({ 8: "  replay_window: 30s" })).warnings,
    [],
  );
});

Deno.test("unknown keys are warned about and otherwise ignored", () => {
  const config = parse(
    configText({ 10: "  knock_timout: 10s", 23: "    colour: blue" }),
  );
  assert.equal(config.knockTimeoutMs, 30_000);
  assert.equal(config.clients.length, 2);
  assert.ok(
    config.warnings.some((w) =>
      w.startsWith(`config ${PATH}:10: server.knock_timout: unknown key`)
    ),
  );
  assert.ok(
    config.warnings.some((w) =>
      w.startsWith(`config ${PATH}:23: clients.alice.colour: unknown key`)
    ),
  );
});

Deno.test("allowed_ports resolves groups and inline specs, dedupes, and falls back to the default group", () => {
  const cases: { entries: string; want: string[] }[] = [
    {
      entries: "default, devops, 22/tcp, 8085/tcp",
      want: ["22/tcp", "443/tcp", "8080-8090/tcp"],
    },
    { entries: "22", want: ["22/tcp", "22/udp"] },
    { entries: "80-82, 81/tcp", want: ["80-82/tcp", "80-82/udp"] },
    { entries: "", want: ["22/tcp"] },
    {
      entries: '" devops ", 444/tcp',
      want: ["22/tcp", "443-444/tcp", "8080-8090/tcp"],
    },
  ];
  for (const { entries, want } of cases) {
    const config = parse(configText({ 26: `    allowed_ports: [${entries}]` }));
    assert.deepEqual(config.skippedClients, [], entries);
    assert.deepEqual(portsText(config.clients[1].ports), want, entries);
  }
  const noGroups = parse(
    configText({
      15: null,
      16: null,
      17: null,
      21: null,
      26: "    allowed_ports: [x]",
    }),
  );
  assert.match(
    noGroups.warnings.join("\n"),
    /clients\.bob\.allowed_ports\[0\]: unknown port group "x" \(no port groups are defined under ports:; use a port spec such as 22\/tcp or define the group\)/,
  );
});

Deno.test("empty, null or missing allowed_ports in the file mean the default group, or nothing without one", () => {
  for (const line of ["    allowed_ports: []", "    allowed_ports:", null]) {
    const config = parse(configText({ 26: line }));
    assert.deepEqual(
      portsText(config.clients[1].ports),
      ["22/tcp"],
      String(line),
    );
    const withoutDefault = parse(
      configText({ 16: null, 21: "    allowed_ports: [2222/tcp]", 26: line }),
    );
    assert.deepEqual(withoutDefault.clients[1].ports, [], String(line));
  }
});

Deno.test("allManagedPorts unions every group and every client's inline specs", () => {
  const config = parse(
    configText({ 26: "    allowed_ports: [53/udp, 2222/tcp, 9000-9001]" }),
  );
  assert.deepEqual(portsText(allManagedPorts(config)), [
    "22/tcp",
    "443/tcp",
    "2222/tcp",
    "8080-8090/tcp",
    "9000-9001/tcp",
    "53/udp",
    "9000-9001/udp",
  ]);
});

Deno.test("parseRfc3339Timestamp accepts full RFC 3339 timestamps with a zone only, refusing the other forms Temporal reads", () => {
  const good: { text: string; iso: string }[] = [
    { text: "2026-12-31T23:59:59Z", iso: "2026-12-31T23:59:59.000Z" },
    { text: "2026-12-31t23:59:59z", iso: "2026-12-31T23:59:59.000Z" },
    { text: "2026-06-01T12:00:00.5+02:00", iso: "2026-06-01T10:00:00.500Z" },
    {
      text: "2026-06-01T12:00:00.123456789-01:30",
      iso: "2026-06-01T13:30:00.123Z",
    },
    { text: "2028-02-29T00:00:00Z", iso: "2028-02-29T00:00:00.000Z" },
    // More than the nine fraction digits Temporal reads: RFC 3339 allows them.
    {
      text: "2026-06-01T12:00:00.1234567891Z",
      iso: "2026-06-01T12:00:00.123Z",
    },
    { text: " 2026-12-31T23:59:59-00:00 ", iso: "2026-12-31T23:59:59.000Z" },
    // A leap second: Temporal reads :60 as :59.
    { text: "2026-12-31T23:59:60Z", iso: "2026-12-31T23:59:59.000Z" },
  ];
  for (const { text, iso } of good) {
    assert.equal(parseRfc3339Timestamp(text)?.toISOString(), iso, text);
  }
  const bad = [
    "2026-12-31",
    "2026-12-31T23:59:59",
    "2026-12-31 23:59:59Z",
    "2026-13-01T00:00:00Z",
    "2027-02-29T00:00:00Z",
    "2026-04-31T00:00:00Z",
    "2026-12-31T24:00:00Z",
    "2026-12-31T23:60:00Z",
    "2026-12-31T23:59:59+2:00",
    "2026-12-31T23:59:59+24:00",
    "2026-12-31T23:59:59+23:60",
    "tomorrow",
    "",
    // ISO 8601 and RFC 9557 forms Temporal.Instant.from accepts, RFC 3339 does not.
    "20261231T235959Z",
    "2026-12-31T23:59Z",
    "2026-12-31T23Z",
    "2026-12-31T23:59:59,5Z",
    "2026-12-31T23:59:59Z[UTC]",
    "2026-12-31T23:59:59+0100",
    "2026-12-31T23:59:59+01:00:00",
    "+002026-12-31T23:59:59Z",
  ];
  for (const text of bad) assert.equal(parseRfc3339Timestamp(text), null, text);
});

Deno.test("renderInitialServerConfig parses back with every server key set and commented", () => {
  const text = renderInitialServerConfig({
    host: "2001:db8::1",
    udpPort: 6000,
    firewall: "iptables",
    interface: "eth0",
    privateKeyB64: SERVER_PRIVATE,
    publicKeyB64: SERVER_PUBLIC,
  });
  const config = parse(text);
  assert.equal(config.host, "2001:db8::1");
  assert.equal(config.udpPort, 6000);
  assert.equal(config.healthPort, 6000);
  assert.equal(config.firewall, "iptables");
  assert.equal(config.interface, "eth0");
  assert.equal(encodeBase64(config.privateKey), SERVER_PRIVATE);
  assert.equal(encodeBase64(config.publicKey), SERVER_PUBLIC);
  assert.deepEqual(portsText(config.portGroups.get("default")!), ["22/tcp"]);
  assert.deepEqual(config.clients, []);
  assert.deepEqual(config.warnings, []);
  assert.ok(text.includes("  default: [22/tcp]\n"));
  assert.ok(text.includes("\nclients: {}\n"));

  const lines = text.split("\n");
  const keyLines = lines.map((line, index) => ({ line, index }))
    .filter(({ line }) => /^ *[a-z_]+:/.test(line));
  const seen = new Set<string>();
  for (const { line, index } of keyLines) {
    seen.add(line.trim().split(":")[0]);
    let previous = index - 1;
    while (previous >= 0 && lines[previous].trim() === "") previous--;
    assert.ok(
      previous >= 0 && lines[previous].trim().startsWith("#"),
      `no comment above "${line}"`,
    );
  }
  for (
    const key of [
      "server",
      ...SERVER_SECTION_KEYS,
      "ports",
      "default",
      "clients",
    ]
  ) {
    assert.ok(seen.has(key), `key ${key} missing from the initial config`);
  }
});

Deno.test("renderInitialServerConfig uses the defaults and refuses an invalid host", () => {
  const config = parse(renderInitialServerConfig({
    host: "myserver.example.com",
    privateKeyB64: SERVER_PRIVATE,
    publicKeyB64: SERVER_PUBLIC,
  }));
  assert.equal(config.udpPort, 54154);
  assert.equal(config.firewall, "nft");
  assert.equal(config.interface, null);
  assert.throws(
    () =>
      renderInitialServerConfig({
        host: "bad host",
        privateKeyB64: SERVER_PRIVATE,
        publicKeyB64: SERVER_PUBLIC,
      }),
    (error: unknown) =>
      error instanceof ConfigError && error.message.includes("server.host"),
  );
  assert.throws(
    () =>
      renderInitialServerConfig({
        host: "h",
        privateKeyB64: SHORT_KEY,
        publicKeyB64: SERVER_PUBLIC,
      }),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.message.includes("server.private_key"),
  );
});

Deno.test("loadServerConfig warns when the file is readable by others", async () => {
  if (IS_WINDOWS) return;
  await withTempConfig(configText(), async (path) => {
    const config = await loadServerConfig(path);
    assert.ok(
      config.warnings.some((w) =>
        w.includes("mode 0644") && w.includes(`chmod 600 ${path}`)
      ),
      String(config.warnings),
    );
    await Deno.chmod(path, 0o600);
    assert.deepEqual((await loadServerConfig(path)).warnings, []);
  });
});

Deno.test("any value in any key gives a config or a one-line ConfigError, never another error", () => {
  const values = fc.oneof(
    fc.anything(),
    fc.string(),
    fc.integer(),
    fc.double(),
    fc.constantFrom(
      "1e400",
      "-0",
      "NaN",
      ".inf",
      "~",
      "2026-12-31",
      "0x10",
      "😀",
      "ǅ",
      "\u0000",
    ),
  );
  fc.assert(
    fc.property(
      fc.constantFrom(...SERVER_SECTION_KEYS),
      values,
      fc.constantFrom("server", "client", "group"),
      (key, value, where) => {
        const valueYaml = stringify(value ?? null, { lineWidth: 0 }).trimEnd()
          .replaceAll("\n", "\n    ");
        let text: string;
        if (where === "server") {
          const lines = baseLines().filter((line) =>
            !line.startsWith(`  ${key}:`)
          );
          lines.splice(2, 0, `  ${key}:`, `    ${valueYaml}`);
          text = lines.join("\n") + "\n";
        } else if (where === "client") {
          text = configText() +
            `  carol:\n    ed25519_pubkey: ${ALICE_KEY}\n    allowed_ports:\n      ${
              valueYaml.replaceAll("\n", "\n  ")
            }\n`;
        } else {
          text = configText({ 17: `  devops:\n    ${valueYaml}` });
        }
        try {
          const config = parse(text);
          assert.ok(config.clients.length >= 1);
        } catch (error) {
          assert.ok(error instanceof ConfigError, `${String(error)}\n${text}`);
          assert.ok(!error.message.includes("\n"));
          assert.ok(error.message.startsWith(`config ${PATH}`));
        }
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("a client key of 32 bytes that is not an Ed25519 curve point is skipped with a warning naming the client", () => {
  let notAPoint: Uint8Array | null = null;
  for (let i = 0; i < 256 && notAPoint === null; i++) {
    const bytes = new Uint8Array(32);
    bytes[0] = i;
    bytes[31] = 0x7f;
    try {
      prepareEd25519VerifyKey(bytes);
    } catch {
      notAPoint = bytes;
    }
  }
  assert.ok(notAPoint !== null);
  const aliceKey = encodeBase64(generateEd25519KeyPair().publicKey);
  const config = parse(configText({
    20: `    ed25519_pubkey: ${aliceKey}`,
    25: `    ed25519_pubkey: ${encodeBase64(notAPoint)}`,
  }));
  assert.deepEqual(config.clients.map((c) => c.name), ["alice"]);
  assert.deepEqual(config.skippedClients, ["bob"]);
  const warning = config.warnings.find((w) => w.includes('client "bob"'));
  assert.ok(warning !== undefined, config.warnings.join("\n"));
  assert.match(
    warning,
    /^config \/etc\/openme\/config\.yaml:25: clients\.bob\.ed25519_pubkey: not a valid Ed25519 public key .*; client "bob" skipped, the other clients are served$/,
  );
});

Deno.test("knock_rate_limit is a count 1-999 per s, m or h and knock_burst an integer 1-999; anything else names the key and value", () => {
  const config = (lines: string) =>
    `server:\n  host: h.example\n  private_key: ${SERVER_PRIVATE}\n  public_key: ${SERVER_PUBLIC}\n${lines}`;
  assert.deepEqual(
    parse(config("  knock_rate_limit: 30/m\n  knock_burst: 5\n"))
      .knockRateLimit,
    { count: 30, unit: "minute", burst: 5 },
  );
  assert.deepEqual(
    parse(config("  knock_rate_limit: 1/h\n")).knockRateLimit,
    { count: 1, unit: "hour", burst: 40 },
  );
  const bad: [string, RegExp][] = [
    [
      "knock_rate_limit: 20",
      /:5: server\.knock_rate_limit: invalid rate 20 \(a count 1-999 per s, m or h, e\.g\. 20\/s or 30\/m\)/,
    ],
    [
      "knock_rate_limit: 20/d",
      /server\.knock_rate_limit: invalid rate "20\/d"/,
    ],
    ["knock_rate_limit: 0/s", /server\.knock_rate_limit: invalid rate "0\/s"/],
    [
      "knock_rate_limit: 1000/s",
      /server\.knock_rate_limit: invalid rate "1000\/s"/,
    ],
    ["knock_rate_limit: 20/second", /invalid rate "20\/second"/],
    [
      "knock_burst: 0",
      /:5: server\.knock_burst: invalid burst 0 \(an integer 1-999/,
    ],
    ["knock_burst: 1000", /server\.knock_burst: invalid burst 1000/],
    ["knock_burst: 2.5", /server\.knock_burst: invalid burst 2\.5/],
    ['knock_burst: "40"', /server\.knock_burst: invalid burst "40"/],
  ];
  for (const [line, message] of bad) {
    assert.throws(() => parse(config(`  ${line}\n`)), message, line);
  }
});

Deno.test("buildServerConfig gives every client the line of its name, for a long client list", () => {
  const base = configText().replace(/^clients:\n(?: {2}.*\n|\n)*/m, "");
  const names = Array.from({ length: 300 }, (_, i) => `c${i}`);
  const entries = names.map((name, i) =>
    `  ${name}:\n    ed25519_pubkey: ${ALICE_KEY}\n` +
    (i % 2 === 0 ? "    # a comment\n" : "") +
    "    allowed_ports: [default]\n"
  );
  const text = `${base}clients:\n${entries.join("")}`;
  const config = parse(text);
  assert.equal(config.clients.length, names.length);
  const textLines = text.split("\n");
  for (const client of config.clients) {
    assert.equal(textLines[client.line! - 1], `  ${client.name}:`);
  }
});
