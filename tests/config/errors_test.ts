import assert from "node:assert/strict";
import {
  ConfigError,
  describeValue,
  formatConfigMessage,
  formatKeyPath,
} from "../../lib/config/errors.ts";

Deno.test("formatConfigMessage puts file, line, key path, problem and hint in order", () => {
  const cases: {
    parts: Parameters<typeof formatConfigMessage>[0];
    want: string;
  }[] = [
    {
      parts: {
        file: "/etc/openme/config.yaml",
        line: 12,
        keyPath: "clients.bob.allowed_ports[1]",
        problem: 'unknown port group "dev0ps"',
        expected: "defined: default, devops",
      },
      want:
        'config /etc/openme/config.yaml:12: clients.bob.allowed_ports[1]: unknown port group "dev0ps" (defined: default, devops)',
    },
    {
      parts: { file: "/x.yaml", problem: "file not found", expected: "check" },
      want: "config /x.yaml: file not found (check)",
    },
    {
      parts: { file: "/x.yaml", line: 3, problem: "invalid YAML" },
      want: "config /x.yaml:3: invalid YAML",
    },
    {
      parts: { file: "/x.yaml", keyPath: "server.host", problem: "missing" },
      want: "config /x.yaml: server.host: missing",
    },
  ];
  for (const { parts, want } of cases) {
    assert.equal(formatConfigMessage(parts), want);
  }
});

Deno.test("formatConfigMessage keeps a message on one line even with newlines in values", () => {
  const message = formatConfigMessage({
    file: "/x.yaml",
    problem: 'bad value "a\nb"',
    expected: "one\r\nline",
  });
  assert.ok(!message.includes("\n"));
  assert.ok(!message.includes("\r"));
});

Deno.test("formatKeyPath joins keys with dots, indexes with brackets and quotes odd keys", () => {
  const cases: { segments: (string | number)[]; want: string }[] = [
    {
      segments: ["clients", "bob", "allowed_ports", 1],
      want: "clients.bob.allowed_ports[1]",
    },
    { segments: ["server", "udp_port"], want: "server.udp_port" },
    { segments: ["clients", "a.b"], want: 'clients["a.b"]' },
    { segments: ["clients", "bad name"], want: 'clients["bad name"]' },
    { segments: [], want: "" },
    // The longest valid client name is shown whole.
    {
      segments: ["clients", "n".repeat(64)],
      want: `clients.${"n".repeat(64)}`,
    },
    {
      segments: ["clients", "k".repeat(70_000), "ed25519_pubkey"],
      want: `clients["${
        "k".repeat(64)
      }"\u2026(70000 characters)].ed25519_pubkey`,
    },
    {
      segments: ["ports", "a b".repeat(30_000)],
      want: `ports["${"a b".repeat(21)}a"\u2026(90000 characters)]`,
    },
  ];
  for (const { segments, want } of cases) {
    assert.equal(formatKeyPath(segments), want);
  }
});

Deno.test("describeValue names values shortly and on one line", () => {
  const cases: { value: unknown; want: string }[] = [
    { value: "dev0ps", want: '"dev0ps"' },
    { value: 70000, want: "70000" },
    { value: Infinity, want: "infinity" },
    { value: true, want: "true" },
    { value: null, want: "nothing" },
    { value: [1], want: "a list" },
    { value: { a: 1 }, want: "a map" },
    { value: "x".repeat(64), want: `"${"x".repeat(64)}"` },
    {
      value: "x".repeat(100),
      want: `"${"x".repeat(64)}"\u2026(100 characters)`,
    },
    {
      value: "x".repeat(70_000),
      want: `"${"x".repeat(64)}"\u2026(70000 characters)`,
    },
    // Cut before a surrogate pair that would be split; count code points.
    {
      value: "x".repeat(63) + "\u{1f642}".repeat(10),
      want: `"${"x".repeat(63)}"\u2026(73 characters)`,
    },
    { value: "a\nb", want: '"a\\nb"' },
  ];
  for (const { value, want } of cases) {
    assert.equal(describeValue(value), want);
  }
});

Deno.test("ConfigError exposes its parts as fields and its name", () => {
  const error = new ConfigError({
    file: "/etc/openme/config.yaml",
    line: 5,
    keyPath: "server.firewall",
    problem: 'unknown firewall "pf"',
    expected: "expected nft or iptables",
  });
  assert.ok(error instanceof Error);
  assert.equal(error.name, "ConfigError");
  assert.equal(error.file, "/etc/openme/config.yaml");
  assert.equal(error.line, 5);
  assert.equal(error.keyPath, "server.firewall");
  assert.equal(
    error.message,
    'config /etc/openme/config.yaml:5: server.firewall: unknown firewall "pf" (expected nft or iptables)',
  );
});
