/**
 * The validation helpers shared by the server and client config files
 * (lib/config/validate.ts): errors at a key path with the line from the
 * YAML, base64 keys, ports, names and hosts, the loose file mode warning, the
 * error of generated text and the check of an edited file.
 */
import assert from "node:assert/strict";
import { encodeBase64 } from "../../lib/encoding.ts";
import { ConfigError } from "../../lib/config/errors.ts";
import { parseYamlSource, type YamlSource } from "../../lib/config/file_io.ts";
import {
  configErrorAt,
  HOST_PATTERN,
  isRecord,
  looseModeWarning,
  NAME_PATTERN,
  optionalPort,
  passesCheck,
  PORT_HINT,
  requireKey,
  withoutGeneratedLine,
} from "../../lib/config/validate.ts";

const PATH = "/etc/openme/test.yaml";

function source(text: string): YamlSource {
  return parseYamlSource(text, { path: PATH });
}

const TEXT = [
  "server:", //                 1
  "  udp_port: 54154", //       2
  "clients:", //                3
  "  bob:", //                  4
  "    allowed_ports:", //      5
  "      - 22/tcp", //          6
  "      - devops", //          7
  "",
].join("\n");

Deno.test("configErrorAt takes the line of the deepest existing key and formats the key path", () => {
  const src = source(TEXT);
  const port = configErrorAt(src, {
    keyPath: ["clients", "bob", "allowed_ports", 1],
    problem: 'unknown port group "devops"',
    expected: "defined: default",
  });
  assert.ok(port instanceof ConfigError);
  assert.equal(port.file, PATH);
  assert.equal(port.line, 7);
  assert.equal(port.keyPath, "clients.bob.allowed_ports[1]");
  assert.equal(
    port.message,
    `config ${PATH}:7: clients.bob.allowed_ports[1]: unknown port group "devops" (defined: default)`,
  );
  const missing = configErrorAt(src, {
    keyPath: ["server", "host"],
    problem: "missing server host",
  });
  assert.equal(missing.line, 1, "a missing key reports its parent's line");
  assert.equal(missing.expected, undefined);
  const whole = configErrorAt(src, { keyPath: [], problem: "the file" });
  assert.equal(whole.keyPath, undefined);
  assert.equal(whole.message, `config ${PATH}: the file`);
});

Deno.test("isRecord is true for maps only", () => {
  assert.equal(isRecord({ a: 1 }), true);
  assert.equal(isRecord({}), true);
  for (const value of [null, undefined, [], [1], "x", 1, new Uint8Array(2)]) {
    assert.equal(isRecord(value), false, String(value));
  }
});

Deno.test("requireKey decodes a key of an accepted size and names the key path otherwise", () => {
  const src = source(TEXT);
  const key = new Uint8Array(32).fill(7);
  const field = {
    keyPath: ["server", "public_key"],
    sizes: [32],
    hint: "the base64 X25519 public key",
  };
  assert.deepEqual(
    requireKey(src, { ...field, value: encodeBase64(key) }),
    key,
  );
  assert.deepEqual(
    requireKey(src, {
      ...field,
      value: encodeBase64(new Uint8Array(64)),
      sizes: [64, 32],
    }),
    new Uint8Array(64),
  );
  for (const value of [undefined, null, "", "not base64!", 42, ["a"]]) {
    assert.throws(
      () => requireKey(src, { ...field, value }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError, String(value));
        assert.equal(error.keyPath, "server.public_key");
        assert.equal(error.line, 1);
        assert.equal(error.expected, "the base64 X25519 public key");
        return true;
      },
    );
  }
  assert.throws(
    () => requireKey(src, { ...field, value: 42 }),
    /expected base64 text, got 42/,
  );
  assert.throws(
    () =>
      requireKey(src, { ...field, value: encodeBase64(new Uint8Array(16)) }),
    /16 bytes/,
  );
});

Deno.test("optionalPort returns the port, the fallback when absent, and refuses the rest", () => {
  const src = source(TEXT);
  const keyPath = ["server", "udp_port"];
  assert.equal(
    optionalPort(src, { keyPath, value: 40000, fallback: 1 }),
    40000,
  );
  assert.equal(optionalPort(src, { keyPath, value: 1, fallback: 9 }), 1);
  assert.equal(
    optionalPort(src, { keyPath, value: 65535, fallback: 9 }),
    65535,
  );
  assert.equal(
    optionalPort(src, { keyPath, value: undefined, fallback: 9 }),
    9,
  );
  assert.equal(optionalPort(src, { keyPath, value: null, fallback: 9 }), 9);
  const cases: [unknown, string][] = [
    ["22", 'expected a port number, got "22"'],
    [22.5, "expected a port number, got 22.5"],
    [0, "port 0 out of range 1-65535"],
    [65536, "port 65536 out of range 1-65535"],
    [-1, "port -1 out of range 1-65535"],
  ];
  for (const [value, problem] of cases) {
    assert.throws(
      () => optionalPort(src, { keyPath, value, fallback: 9 }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.equal(error.problem, problem);
        assert.equal(error.expected, PORT_HINT);
        assert.equal(error.line, 2);
        assert.equal(error.keyPath, "server.udp_port");
        return true;
      },
    );
  }
});

Deno.test("NAME_PATTERN and HOST_PATTERN accept plain names and refuse odd ones", () => {
  for (const name of ["default", "work-laptop", "home.v6", "p_1", "ä@x"]) {
    assert.ok(NAME_PATTERN.test(name), name);
  }
  for (const name of ["", "-x", ".x", "a b", "a/b", 'a"b']) {
    assert.ok(!NAME_PATTERN.test(name), name);
  }
  for (const host of ["vpn.example.com", "192.0.2.1", "2001:db8::1"]) {
    assert.ok(HOST_PATTERN.test(host), host);
  }
  for (const host of ["", "a b", 'a"b', "a'b", "a`b", "a\\b", "a\u0000b"]) {
    assert.ok(!HOST_PATTERN.test(host), JSON.stringify(host));
  }
  assert.ok(HOST_PATTERN.test("a".repeat(253)));
  assert.ok(!HOST_PATTERN.test("a".repeat(254)));
});

Deno.test("looseModeWarning names the mode, the secret and the chmod, only for loose modes", () => {
  const src = source(TEXT);
  assert.equal(looseModeWarning(src, "your private key"), null, "no mode");
  src.mode = 0o600;
  assert.equal(looseModeWarning(src, "your private key"), null);
  src.mode = 0o400;
  assert.equal(looseModeWarning(src, "your private key"), null);
  src.mode = 0o644;
  assert.equal(
    looseModeWarning(src, "your private key"),
    `config ${PATH}: file mode 0644 lets other users read your private key (run chmod 600 ${PATH})`,
  );
  src.mode = 0o640;
  assert.match(
    looseModeWarning(src, "the server private key") ?? "",
    /file mode 0640 lets other users read the server private key/,
  );
});

Deno.test("withoutGeneratedLine keeps key path, problem and hint for the named file, without a line", () => {
  const generated = configErrorAt(source(TEXT), {
    keyPath: ["server", "udp_port"],
    problem: "port 0 out of range 1-65535",
    expected: PORT_HINT,
  });
  assert.equal(generated.line, 2);
  const moved = withoutGeneratedLine(generated, "/tmp/new.yaml");
  assert.ok(moved instanceof ConfigError);
  assert.equal(moved.file, "/tmp/new.yaml");
  assert.equal(moved.line, undefined);
  assert.equal(moved.keyPath, "server.udp_port");
  assert.equal(moved.problem, generated.problem);
  assert.equal(moved.expected, PORT_HINT);
  assert.equal(
    moved.message,
    `config /tmp/new.yaml: server.udp_port: port 0 out of range 1-65535 (${PORT_HINT})`,
  );
});

Deno.test("passesCheck returns the check's answer and false when it throws", () => {
  assert.equal(passesCheck((text) => text === "ok", "ok"), true);
  assert.equal(passesCheck((text) => text === "ok", "no"), false);
  assert.equal(
    passesCheck(() => {
      throw new Error("unparsable");
    }, "x"),
    false,
  );
});
