/**
 * The field tables shared by the config files (lib/config/validate.ts): a
 * section read in table order with defaults and one error path, unknown
 * keys, and the shared checks of hosts, ports, keys, booleans and names.
 */
import assert from "node:assert/strict";
import { encodeBase64 } from "../../lib/encoding.ts";
import { ConfigError } from "../../lib/config/errors.ts";
import { parseYamlFile, yamlValue } from "../../lib/config/yaml_file.ts";
import {
  booleanField,
  type Fail,
  type Field,
  hostField,
  isRecord,
  keyField,
  nameProblem,
  portField,
  readSection,
  unknownKeyWarnings,
} from "../../lib/config/validate.ts";

const PATH = "/etc/openme/test.yaml";

/** Reads `server:` of the text with the fields; returns the values or the ConfigError. */
function read<F extends Record<string, Field<unknown>>>(
  text: string,
  fields: F,
): unknown {
  const file = parseYamlFile(text, { path: PATH });
  const root = yamlValue(file) as { server: Record<string, unknown> };
  try {
    return readSection(file, { keyPath: ["server"], map: root.server, fields });
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error;
  }
}

/** The ConfigError a field's check gives for a value on line 2, or its result. */
function check(field: Field<unknown>, valueYaml: string): unknown {
  const result = read(`server:\n  key: ${valueYaml}\n`, { key: field });
  return result instanceof ConfigError
    ? result
    : (result as { key: unknown }).key;
}

/** The problem in the message of the ConfigError `check` gave, which must end with the hint. */
function problemOf(result: unknown, hint: string): string {
  assert.ok(result instanceof ConfigError, `expected an error, got ${result}`);
  const prefix = `config ${PATH}:2: server.key: `;
  const suffix = ` (${hint})`;
  assert.ok(result.message.startsWith(prefix), result.message);
  assert.ok(result.message.endsWith(suffix), result.message);
  return result.message.slice(prefix.length, -suffix.length);
}

Deno.test("readSection checks the fields in table order and fills in defaults for absent or null keys", () => {
  const order: string[] = [];
  function recording(name: string): Field<string> {
    return {
      hint: "",
      check(value: unknown): string {
        order.push(name);
        return `${name}=${value}`;
      },
    };
  }
  const values = read("server:\n  b: 1\n  a: 2\n  c: ~\n", {
    a: recording("a"),
    b: recording("b"),
    c: { ...recording("c"), default: "fallback" },
    d: { ...recording("d"), default: "absent" },
    e: recording("e"),
  });
  assert.deepEqual(values, {
    a: "a=2",
    b: "b=1",
    c: "fallback",
    d: "absent",
    e: "e=null",
  });
  assert.deepEqual(
    order,
    ["a", "b", "e"],
    "a field without default is checked even when absent",
  );
});

Deno.test("a failed check is a ConfigError at the key's line, with the field's hint unless told otherwise", () => {
  function failing(options?: Parameters<Fail>[1]): Field<never> {
    return {
      hint: "the hint",
      check(_value: unknown, fail: Fail): never {
        fail("bad value", options);
      },
    };
  }
  const text = "server:\n  host: h\n  ports:\n    - 1\n    - 2\n";
  const cases: { field: Field<never>; key: string; message: string }[] = [
    {
      field: failing(),
      key: "host",
      message: `config ${PATH}:2: server.host: bad value (the hint)`,
    },
    {
      field: failing({ expected: "other" }),
      key: "host",
      message: `config ${PATH}:2: server.host: bad value (other)`,
    },
    {
      field: failing({ expected: "" }),
      key: "host",
      message: `config ${PATH}:2: server.host: bad value`,
    },
    {
      field: failing({ index: 1 }),
      key: "ports",
      message: `config ${PATH}:5: server.ports[1]: bad value (the hint)`,
    },
    {
      field: failing(),
      key: "missing",
      message: `config ${PATH}:1: server.missing: bad value (the hint)`,
    },
  ];
  for (const c of cases) {
    const error = read(text, { [c.key]: c.field });
    assert.ok(error instanceof ConfigError);
    assert.equal(error.message, c.message);
  }
});

Deno.test("unknownKeyWarnings names each key the table lacks, with the known keys", () => {
  const file = parseYamlFile("server:\n  host: h\n  colour: blue\n", {
    path: PATH,
  });
  const root = yamlValue(file) as { server: Record<string, unknown> };
  assert.deepEqual(
    unknownKeyWarnings(file, {
      keyPath: ["server"],
      map: root.server,
      fields: { host: booleanField(true), port: portField(1) },
    }),
    [
      `config ${PATH}:3: server.colour: unknown key, ignored (known keys: host, port)`,
    ],
  );
});

Deno.test("hostField trims a host and refuses missing, non-text and odd hosts", () => {
  const field = hostField("a host", "missing host");
  assert.equal(check(field, '" vpn.example.com "'), "vpn.example.com");
  assert.equal(check(field, "2001:db8::1"), "2001:db8::1");
  assert.equal(problemOf(check(field, '""'), "a host"), "missing host");
  assert.equal(problemOf(check(field, "~"), "a host"), "missing host");
  assert.equal(
    problemOf(check(field, "5"), "a host"),
    "expected a host name, got 5",
  );
  assert.equal(
    problemOf(check(field, '"a b"'), "a host"),
    'invalid host "a b"',
  );
  for (const host of ["", "a b", 'a"b', "a'b", "a`b", "a\\b", "a\u0000b"]) {
    assert.ok(check(field, JSON.stringify(host)) instanceof ConfigError, host);
  }
  assert.equal(check(field, "a".repeat(253)), "a".repeat(253));
  assert.ok(check(field, "a".repeat(254)) instanceof ConfigError);
});

Deno.test("portField returns the port or its default and refuses the rest", () => {
  const field = portField(9);
  assert.equal(check(field, "40000"), 40000);
  assert.equal(check(field, "1"), 1);
  assert.equal(check(field, "65535"), 65535);
  assert.equal(check(field, "~"), 9);
  const cases: [string, string][] = [
    ['"22"', 'expected a port number, got "22"'],
    ["22.5", "expected a port number, got 22.5"],
    ["0", "port 0 out of range 1-65535"],
    ["65536", "port 65536 out of range 1-65535"],
    ["-1", "port -1 out of range 1-65535"],
  ];
  for (const [value, problem] of cases) {
    const hint = "an integer 1-65535, e.g. 54154";
    assert.equal(problemOf(check(field, value), hint), problem);
  }
});

Deno.test("keyField decodes a key of an accepted size and refuses missing, non-text and other sizes", () => {
  const field = keyField("a key", [64, 32]);
  const key = new Uint8Array(32).fill(7);
  assert.deepEqual(check(field, encodeBase64(key)), key);
  assert.deepEqual(
    check(field, encodeBase64(new Uint8Array(64))),
    new Uint8Array(64),
  );
  const cases: [string, RegExp][] = [
    ["~", /^missing key: expected base64 of 64 or 32 bytes$/],
    ['""', /^missing key/],
    ["42", /^expected base64 text, got 42$/],
    ["[a]", /^expected base64 text, got a list$/],
    ['"not base64!"', /^not valid base64/],
    [
      encodeBase64(new Uint8Array(16)),
      /^key is 16 bytes, expected 64 or 32 bytes$/,
    ],
  ];
  for (const [value, problem] of cases) {
    assert.match(problemOf(check(field, value), "a key"), problem);
  }
});

Deno.test("booleanField takes true or false only, and its default when absent", () => {
  assert.equal(check(booleanField(false), "true"), true);
  assert.equal(check(booleanField(true), "false"), false);
  assert.equal(check(booleanField(true), "~"), true);
  assert.equal(
    problemOf(check(booleanField(true), "yes"), "true or false"),
    'expected true or false, got "yes"',
  );
});

Deno.test("nameProblem accepts plain names up to 64 characters and explains what it refuses", () => {
  for (const name of ["alice", "büro.lan_1@x-y", "0", "x".repeat(64), "ä@x"]) {
    assert.equal(nameProblem(name, "client"), null, name);
  }
  assert.equal(nameProblem("", "client"), "empty client name");
  assert.equal(
    nameProblem("x".repeat(65), "profile"),
    "profile name is 65 characters, longer than 64",
  );
  assert.equal(nameProblem("a b", "profile"), 'invalid profile name "a b"');
  for (const name of ["-x", ".x", "a/b", "a:b", 'a"b', "a\nb"]) {
    assert.equal(
      nameProblem(name, "client"),
      `invalid client name ${JSON.stringify(name)}`,
    );
  }
});

Deno.test("isRecord is true for maps only", () => {
  assert.equal(isRecord({ a: 1 }), true);
  assert.equal(isRecord({}), true);
  for (const value of [null, undefined, [], [1], "x", 1, new Uint8Array(2)]) {
    assert.equal(isRecord(value), false, String(value));
  }
});
