/**
 * YAML config files (lib/config/yaml_file.ts): read and parse errors with
 * their lines, duplicate keys, alias bombs, the line of a key path, the
 * loose mode warning, and changes through the Document API.
 */
import assert from "node:assert/strict";
import { ConfigError } from "../../lib/config/errors.ts";
import {
  changedFile,
  ensureConfigDir,
  errorAt,
  fileExists,
  keyLinesOf,
  lineOf,
  looseModeWarning,
  MAX_CONFIG_FILE_BYTES,
  parseYamlFile,
  readYamlFile,
  writeConfigFile,
  type YamlFile,
  yamlValue,
} from "../../lib/config/yaml_file.ts";
import { withTempDir } from "../support/files.ts";

const IS_WINDOWS = Deno.build.os === "windows";
/** Prefix of this file's temporary directories. */
const TEMP_PREFIX = "openme-yaml-file-";

function parse(text: string): YamlFile {
  return parseYamlFile(text, { path: "/t.yaml" });
}

Deno.test("readYamlFile reports missing, directory, non-UTF-8, oversized and malformed files", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const cases: {
      name: string;
      setup: (path: string) => Promise<void>;
      parts: string[];
    }[] = [
      {
        name: "missing.yaml",
        setup: async () => {},
        parts: ["file not found", "run init"],
      },
      {
        name: "adir",
        setup: (path) => Deno.mkdir(path),
        parts: ["is a directory"],
      },
      {
        name: "latin1.yaml",
        setup: (path) =>
          Deno.writeFile(path, new Uint8Array([0x61, 0x3a, 0x20, 0xe9, 0x0a])),
        parts: ["not UTF-8"],
      },
      {
        name: "huge.yaml",
        setup: (path) =>
          Deno.writeTextFile(path, "#".repeat(MAX_CONFIG_FILE_BYTES + 1)),
        parts: ["larger than"],
      },
      {
        name: "bad.yaml",
        setup: (path) => Deno.writeTextFile(path, "a: 1\nb: [1, 2]]\nc: 3\n"),
        parts: ["invalid YAML", "fix the YAML syntax"],
      },
      {
        name: "open.yaml",
        setup: (path) => Deno.writeTextFile(path, "a: 1\nb: [1, 2\nc: 3\n"),
        parts: [":2: invalid YAML: the [ opened on this line is never closed"],
      },
    ];
    for (const { name, setup, parts } of cases) {
      const path = `${dir}/${name}`;
      await setup(path);
      await assert.rejects(
        readYamlFile(path, { missingHint: "run init" }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError, name);
          assert.ok(error.message.startsWith(`config ${path}`), error.message);
          for (const part of parts) {
            assert.ok(
              error.message.includes(part),
              `${name}: ${error.message}`,
            );
          }
          return true;
        },
      );
    }
  });
});

Deno.test("parseYamlFile gives the line of a syntax error", () => {
  const cases: { text: string; line: number }[] = [
    { text: "a:\n  b: 1\n c: 2\n", line: 3 },
    { text: "a: 1\n---\nb: 2\n", line: 2 },
  ];
  for (const { text, line } of cases) {
    assert.throws(
      () => parseYamlFile(text, { path: "/t.yaml" }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.ok(
          error.message.startsWith(`config /t.yaml:${line}: invalid YAML`),
          error.message,
        );
        assert.ok(!error.message.includes("parseAllDocuments"), error.message);
        return true;
      },
    );
  }
});

Deno.test("parseYamlFile refuses a duplicate key with the line and key path of its second occurrence", () => {
  const cases: { text: string; line: number; keyPath: string; key: string }[] =
    [
      { text: "a: 1\nb: 2\nb: 3\n", line: 3, keyPath: "b", key: "b" },
      {
        text: "server:\n  host: a\n  port: 1\n  host: b\n",
        line: 4,
        keyPath: "server.host",
        key: "host",
      },
      {
        text: "list:\n  - x: 1\n  - {y: 1, y: 2}\n",
        line: 3,
        keyPath: "list[1].y",
        key: "y",
      },
      // Keys that become the same object key: 1 and "1", null and "".
      { text: 'm:\n  1: a\n  "1": b\n', line: 3, keyPath: "m.1", key: "1" },
      { text: 'm:\n  ~: a\n  "": b\n', line: 3, keyPath: 'm[""]', key: "" },
      // After a key without a value, yaml reports the duplicate on the line before it.
      {
        text: "m:\n  x: 1\n  empty:\n  x: 2\n",
        line: 4,
        keyPath: "m.x",
        key: "x",
      },
      // The first duplicate in the file is reported, inner map or outer.
      {
        text: "a:\n  x: 1\n  x: 2\na: 3\n",
        line: 3,
        keyPath: "a.x",
        key: "x",
      },
      {
        text: "a: 1\na: 2\nb:\n  x: 1\n  x: 2\n",
        line: 2,
        keyPath: "a",
        key: "a",
      },
    ];
  for (const c of cases) {
    assert.throws(
      () => parseYamlFile(c.text, { path: "/t.yaml" }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError, String(error));
        assert.equal(
          error.message,
          `config /t.yaml:${c.line}: ${c.keyPath}: invalid YAML: duplicate key ${
            JSON.stringify(c.key)
          } (map keys must be unique: remove or rename one of them)`,
        );
        return true;
      },
    );
  }
});

Deno.test("parseYamlFile reports a syntax error before a duplicate key", () => {
  assert.throws(
    () => parse("a: 1\na: 2\nb: [1\n"),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.message.startsWith("config /t.yaml:3: invalid YAML") &&
      !error.message.includes("duplicate"),
  );
});

Deno.test("parseYamlFile accepts the same key in different maps and through aliases", () => {
  const text = [
    "a: &shared {x: 1, y: 2}",
    "b: {x: 1, y: 2}",
    "c: *shared",
    "d:",
    "  - {x: 1}",
    "  - {x: 2}",
    "",
  ].join("\n");
  const source = parseYamlFile(text, { path: "/t.yaml" });
  assert.deepEqual(yamlValue(source), {
    a: { x: 1, y: 2 },
    b: { x: 1, y: 2 },
    c: { x: 1, y: 2 },
    d: [{ x: 1 }, { x: 2 }],
  });
});

Deno.test("parseYamlFile shortens a long duplicate key in the message", () => {
  const key = "k".repeat(70_000);
  assert.throws(
    // Explicit keys: an implicit key may be at most 1024 characters long.
    () =>
      parseYamlFile(`? ${key}\n: 1\n? ${key}\n: 2\n`, {
        path: "/t.yaml",
      }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.ok(error.message.startsWith("config /t.yaml:3: "), error.message);
      assert.ok(error.message.length < 400, error.message);
      assert.ok(error.message.includes("(70000 characters)"), error.message);
      return true;
    },
  );
});

Deno.test("yaml package messages that quote a long alias, tag or version are cut", () => {
  const long = "k".repeat(70_000);
  const warned = parseYamlFile(`a: !${long} x\n`, { path: "/t.yaml" });
  assert.equal(warned.warnings.length, 1);
  assert.ok(warned.warnings[0].length < 400, warned.warnings[0].slice(0, 400));
  assert.match(warned.warnings[0], /…\(\d+ characters\)$/);
  for (
    const run of [
      () => yamlValue(parseYamlFile(`a: *${long}\n`, { path: "/t.yaml" })),
      () => parseYamlFile(`%YAML ${long}\n---\na: 1\n`, { path: "/t.yaml" }),
    ]
  ) {
    assert.throws(run, (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.ok(error.message.length < 400, error.message.slice(0, 400));
      assert.match(error.message, /^config \/t\.yaml(:\d+)?: invalid YAML: /);
      assert.match(error.message, /…\(\d+ characters\)/);
      return true;
    });
  }
});

Deno.test("yamlValue refuses an alias bomb (9^9 nodes) with a ConfigError instead of expanding it", () => {
  const levels = ["a: &a [x, x, x, x, x, x, x, x, x]"];
  for (let i = 1; i < 9; i++) {
    const prev = String.fromCharCode(96 + i);
    const name = String.fromCharCode(97 + i);
    levels.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(", ")}]`);
  }
  const source = parseYamlFile(levels.join("\n") + "\n", {
    path: "/bomb.yaml",
  });
  assert.throws(() => yamlValue(source), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.equal(
      error.message,
      "config /bomb.yaml: YAML aliases expand to more than 100 nodes, refused as a resource exhaustion attack (write the values out instead of using *alias references)",
    );
    return true;
  });
});

Deno.test("yamlValue reports an unknown alias as a ConfigError", () => {
  const source = parseYamlFile("a: *nope\n", { path: "/t.yaml" });
  assert.throws(() => yamlValue(source), ConfigError);
});

Deno.test("lineOf finds keys, list items and falls back to the parent for missing keys", () => {
  const source = parseYamlFile(
    [
      "server:", //            1
      "  host: h", //          2
      "clients:", //           3
      "  bob:", //             4
      "    allowed_ports:", // 5
      "      - default", //    6
      "      - dev0ps", //     7
      "  carol: {allowed_ports: [a, b]}", // 8
    ].join("\n") + "\n",
    { path: "/t.yaml" },
  );
  const cases: { keyPath: (string | number)[]; line: number | undefined }[] = [
    { keyPath: ["server", "host"], line: 2 },
    { keyPath: ["server", "private_key"], line: 1 },
    { keyPath: ["clients", "bob", "allowed_ports", 1], line: 7 },
    { keyPath: ["clients", "bob", "allowed_ports", 9], line: 5 },
    { keyPath: ["clients", "carol", "allowed_ports", 1], line: 8 },
    { keyPath: ["missing"], line: undefined },
    { keyPath: [], line: undefined },
  ];
  for (const { keyPath, line } of cases) {
    assert.equal(lineOf(source, keyPath), line, keyPath.join("."));
  }
});

Deno.test("ensureConfigDir creates the file's directory and names the file when it cannot", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    await ensureConfigDir(`${dir}/etc/openme/config.yaml`, {
      mode: 0o750,
      expected: "pass --config PATH",
    });
    assert.ok((await Deno.stat(`${dir}/etc/openme`)).isDirectory);
    if (!IS_WINDOWS) {
      assert.equal((await Deno.stat(`${dir}/etc/openme`)).mode! & 0o777, 0o750);
      // Under a permissive umask too, and an existing directory is left alone.
      const previous = Deno.umask(0o022);
      try {
        await ensureConfigDir(`${dir}/home/.openme/config.yaml`, {
          mode: 0o700,
          expected: "",
        });
      } finally {
        Deno.umask(previous);
      }
      assert.equal(
        (await Deno.stat(`${dir}/home/.openme`)).mode! & 0o777,
        0o700,
      );
      await Deno.chmod(`${dir}/etc/openme`, 0o755);
      await ensureConfigDir(`${dir}/etc/openme/config.yaml`, {
        mode: 0o700,
        expected: "",
      });
      assert.equal((await Deno.stat(`${dir}/etc/openme`)).mode! & 0o777, 0o755);
    }
    await Deno.writeTextFile(`${dir}/file`, "x");
    await assert.rejects(
      ensureConfigDir(`${dir}/file/config.yaml`, {
        mode: 0o700,
        expected: "pass --config PATH",
      }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message.startsWith(`config ${dir}/file/config.yaml: `) &&
        error.message.includes(
          `cannot create directory ${dir}/file: ${dir}/file exists and is not a directory`,
        ) &&
        error.message.includes("pass --config PATH"),
    );
  });
});

Deno.test("errorAt takes the line of the deepest existing key and formats the key path", () => {
  const file = parse(
    [
      "server:", //                 1
      "  udp_port: 54154", //       2
      "clients:", //                3
      "  bob:", //                  4
      "    allowed_ports:", //      5
      "      - 22/tcp", //          6
      "      - devops", //          7
      "",
    ].join("\n"),
  );
  const port = errorAt(file, {
    keyPath: ["clients", "bob", "allowed_ports", 1],
    problem: 'unknown port group "devops"',
    expected: "defined: default",
  });
  assert.equal(
    port.message,
    'config /t.yaml:7: clients.bob.allowed_ports[1]: unknown port group "devops" (defined: default)',
  );
  const missing = errorAt(file, {
    keyPath: ["server", "host"],
    problem: "missing server host",
  });
  assert.equal(
    missing.message,
    "config /t.yaml:1: server.host: missing server host",
    "a missing key reports its parent's line",
  );
  const whole = errorAt(file, { keyPath: [], problem: "the file" });
  assert.equal(whole.message, "config /t.yaml: the file");
});

Deno.test("generated text gives errors and problems without a line", () => {
  const generated = parseYamlFile("server:\n  udp_port: 0\n", {
    path: "/new.yaml",
    generated: true,
  });
  const error = errorAt(generated, {
    keyPath: ["server", "udp_port"],
    problem: "port 0 out of range 1-65535",
  });
  assert.equal(
    error.message,
    "config /new.yaml: server.udp_port: port 0 out of range 1-65535",
  );
  assert.throws(
    () => parseYamlFile("a: 1\na: 2\n", { path: "/new.yaml", generated: true }),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.message.startsWith("config /new.yaml: a: invalid YAML"),
  );
});

Deno.test("looseModeWarning names the mode, the secret and the chmod, only for loose modes", () => {
  const file = parse("a: 1\n");
  assert.equal(looseModeWarning(file, "your private key"), null, "no mode");
  for (const mode of [0o600, 0o400, 0o700]) {
    file.mode = mode;
    assert.equal(looseModeWarning(file, "your private key"), null);
  }
  file.mode = 0o644;
  assert.equal(
    looseModeWarning(file, "your private key"),
    "config /t.yaml: file mode 0644 lets other users read your private key (run chmod 600 /t.yaml)",
  );
  file.mode = 0o640;
  assert.match(
    looseModeWarning(file, "the server private key") ?? "",
    /file mode 0640 lets other users read the server private key/,
  );
});

/** The failure the changedFile tests give. */
const FAILURE = {
  keyPath: ["clients"],
  problem: "could not",
  expected: "by hand",
};

Deno.test("changedFile adds and removes entries keeping comments, key order and unknown keys", () => {
  const text = [
    "# top comment",
    "clients:",
    "  alice: {key: 1} # flow entry",
    "  # about bob",
    "  bob:",
    "    key: 2",
    "    colour: blue",
    "custom: [1, 2]",
    "",
  ].join("\n");
  const file = parse(text);
  const clients = { alice: { key: 1 }, bob: { key: 2, colour: "blue" } };
  const added = changedFile(file, {
    edits: [{ keyPath: ["clients", "carol"], value: { key: 3 } }],
    expected: { clients: { ...clients, carol: { key: 3 } }, custom: [1, 2] },
    failure: FAILURE,
  });
  assert.equal(
    added.text,
    text.replace("custom:", "  carol:\n    key: 3\ncustom:"),
  );
  const removed = changedFile(file, {
    edits: [{ keyPath: ["clients", "bob"] }],
    expected: { clients: { alice: { key: 1 } }, custom: [1, 2] },
    failure: FAILURE,
  });
  assert.equal(
    removed.text,
    "# top comment\nclients:\n  alice: {key: 1} # flow entry\ncustom: [1, 2]\n",
  );
});

Deno.test("changedFile turns a missing, null, scalar or empty section into a block map", () => {
  for (
    const [before, after] of [
      ["a: 1\n", "a: 1\nclients:\n  b: 2\n"],
      ["clients:\n", "clients:\n  b: 2\n"],
      ["clients: {}\n", "clients:\n  b: 2\n"],
      ["clients: 7\n", "clients:\n  b: 2\n"],
      ["", "clients:\n  b: 2\n"],
      ["clients:\r\n  a: 1\r\n", "clients:\r\n  a: 1\r\n  b: 2\r\n"],
    ]
  ) {
    const file = parse(before);
    const value = yamlValue(file) as Record<string, unknown> | null;
    const clients = typeof value?.clients === "object" ? value.clients : {};
    const changed = changedFile(file, {
      edits: [{ keyPath: ["clients", "b"], value: 2 }],
      expected: { ...value, clients: { ...clients, b: 2 } },
      failure: FAILURE,
    });
    assert.equal(changed.text, after, JSON.stringify(before));
    assert.equal(changed.lineAt(0), undefined, "the result is generated text");
  }
});

Deno.test("changedFile throws its failure at the line of its key path when the result does not hold the expected value", () => {
  const file = parse("a: 1\nclients:\n  alice: &a {key: 1}\n  bob: *a\n");
  const cases = [
    // Removing the anchor's entry leaves bob's alias without it.
    {
      edits: [{ keyPath: ["clients", "alice"] }],
      expected: { a: 1, clients: { bob: { key: 1 } } },
    },
    { edits: [{ keyPath: ["b"], value: 2 }], expected: { a: 1, b: 3 } },
  ];
  for (const c of cases) {
    assert.throws(
      () => changedFile(file, { ...c, failure: FAILURE }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message === "config /t.yaml:2: clients: could not (by hand)",
    );
  }
});

Deno.test("fileExists tells a missing path from an existing file or directory", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    assert.equal(await fileExists(`${dir}/nothing`), false);
    await Deno.writeTextFile(`${dir}/file`, "x");
    assert.equal(await fileExists(`${dir}/file`), true);
    assert.equal(await fileExists(dir), true);
  });
});

Deno.test("writeConfigFile writes with the mode and names the file when it cannot", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    await writeConfigFile(`${dir}/config.yaml`, "a: 1\n", { mode: 0o600 });
    assert.equal(await Deno.readTextFile(`${dir}/config.yaml`), "a: 1\n");
    if (!IS_WINDOWS) {
      assert.equal(
        (await Deno.stat(`${dir}/config.yaml`)).mode! & 0o777,
        0o600,
      );
    }
    await assert.rejects(
      writeConfigFile(`${dir}/missing/config.yaml`, "a: 1\n", { mode: 0o600 }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message.startsWith(
          `config ${dir}/missing/config.yaml: cannot write the file: `,
        ) &&
        error.message.endsWith(
          "(check the directory exists, is writable and the disk is not full)",
        ),
    );
  });
});

Deno.test("an unclosed [, { or quote is reported at the line that opened it, not where the parser noticed", () => {
  // The trial's case: a list left open at line 51, the next client at 52.
  const clients = Array.from(
    { length: 24 },
    (_, i) => `  c${i}:\n    allowed_ports: [22/tcp]`,
  );
  const lines = ["clients:", ...clients.join("\n").split("\n")];
  const cases: [string, string, string][] = [
    ["    allowed_ports: [22/tcp, 443/tcp", "[", "]"],
    ["    allowed_ports: {a: 1", "{", "}"],
    ['    expires: "2026-12-31T23:59:59Z', '"', '"'],
    ["    expires: '2026-12-31T23:59:59Z", "'", "'"],
  ];
  for (const [opened, open, close] of cases) {
    const text = [
      ...lines.slice(0, 49),
      "  late:",
      opened,
      "  next:",
      "    x: 1",
    ]
      .join("\n");
    assert.equal(text.split("\n")[50], opened, "opened at line 51");
    assert.throws(
      () => parse(text),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.ok(error.message.startsWith("config /t.yaml:51: "));
        assert.ok(
          error.message.includes(
            `invalid YAML: the ${open} opened on this line is never closed (add the missing ${close}; the parser noticed at line`,
          ),
          error.message,
        );
        return true;
      },
    );
  }
});

Deno.test("keyLinesOf gives each key of a map the line lineOf gives it, first occurrence, through an alias", () => {
  const text = [
    "# comment",
    "base: &people",
    "  alice:",
    "    n: 1",
    "",
    "  # bob next",
    "  bob: {n: 2}",
    '  "carol": x',
    "  42: y",
    "clients: *people",
    "other: {z: 1}",
    "",
  ].join("\n");
  const file = parse(text);
  const lines = keyLinesOf(file, "base");
  assert.deepEqual([...lines], [["alice", 3], ["bob", 7], ["carol", 8], [
    "42",
    9,
  ]]);
  for (const [key, line] of lines) {
    assert.equal(lineOf(file, ["base", key]), line);
  }
  assert.deepEqual([...keyLinesOf(file, "clients")], [...lines]);
  assert.equal(keyLinesOf(file, "missing").size, 0);
  assert.equal(keyLinesOf(parse("- a\n- b\n"), "a").size, 0);
});
