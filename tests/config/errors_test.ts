import assert from "node:assert/strict";
import {
  ConfigError,
  type ConfigErrorOptions,
  describeValue,
  errorText,
  formatKeyPath,
  shortenText,
} from "../../lib/config/errors.ts";

Deno.test("a ConfigError message puts file, line, key path, problem and hint in order", () => {
  const cases: { parts: ConfigErrorOptions; want: string }[] = [
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
    {
      parts: { file: "/x.yaml", keyPath: "", problem: "p", expected: "" },
      want: "config /x.yaml: p",
    },
  ];
  for (const { parts, want } of cases) {
    assert.equal(new ConfigError(parts).message, want);
  }
});

Deno.test("a ConfigError message stays on one line even with newlines in values", () => {
  const message = new ConfigError({
    file: "/x.yaml",
    problem: 'bad value "a\nb"',
    expected: "one\r\nline",
  }).message;
  assert.equal(message, 'config /x.yaml: bad value "a b" (one line)');
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

Deno.test("a ConfigError is an Error named ConfigError, which the CLI reports without a stack", () => {
  const error = new ConfigError({ file: "/x.yaml", problem: "p" });
  assert.ok(error instanceof Error);
  assert.equal(error.name, "ConfigError");
});

Deno.test("a ConfigError keeps its cause only when given one", () => {
  const cause = new Error("disk");
  assert.equal(
    new ConfigError({ file: "/x", problem: "p", cause }).cause,
    cause,
  );
  assert.ok(!("cause" in new ConfigError({ file: "/x", problem: "p" })));
});

Deno.test("shortenText cuts long text, never inside a surrogate pair, and notes its length", () => {
  assert.equal(shortenText("short", 10), "short");
  assert.equal(shortenText("abcdefghij", 4), "abcd\u2026(10 characters)");
  assert.equal(
    shortenText("abc\u{1f642}\u{1f642}", 4),
    "abc\u2026(5 characters)",
  );
});

Deno.test("errorText gives the first line of any thrown value's message", () => {
  assert.equal(errorText(new Error("first\nsecond")), "first");
  assert.equal(errorText("  plain  "), "plain");
  assert.equal(errorText(42), "42");
});
