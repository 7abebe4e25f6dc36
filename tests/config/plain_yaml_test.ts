import assert from "node:assert/strict";
import fc from "fast-check";
import { parseYamlSource, yamlToValue } from "../../lib/config/file_io.ts";
import { readPlainYaml } from "../../lib/config/plain_yaml.ts";

/** What the full loader makes of the text: its value, or that it throws or warns. */
function fullRead(
  text: string,
): { ok: true; value: unknown } | { ok: false; why: string } {
  try {
    const source = parseYamlSource(text, { path: "test.yaml" });
    if (source.warnings.length > 0) {
      return { ok: false, why: source.warnings.join("; ") };
    }
    return { ok: true, value: yamlToValue(source) };
  } catch (error) {
    return { ok: false, why: (error as Error).message };
  }
}

/** Asserts the plain reader gives up, and says why it was expected to. */
function assertUnsupported(text: string): void {
  const result = readPlainYaml(text);
  assert.equal(
    result.ok,
    false,
    `expected unsupported: ${JSON.stringify(text)}`,
  );
}

/** Asserts the plain reader reads the text, to what the yaml package reads. */
function assertSameAsYaml(text: string): void {
  const plain = readPlainYaml(text);
  assert.ok(
    plain.ok,
    `plain reader refused ${JSON.stringify(text)}: ${
      plain.ok ? "" : plain.reason
    }`,
  );
  const full = fullRead(text);
  assert.ok(full.ok, `yaml refused ${JSON.stringify(text)}`);
  assert.deepEqual(plain.value, full.value);
}

const KEY_B64 = "3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

Deno.test("readPlainYaml reads the profile block openme add prints, as yaml does", () => {
  assertSameAsYaml(
    [
      "profiles:",
      "  default:",
      "    server_host: myserver.example.com",
      "    server_udp_port: 54154",
      `    server_pubkey: ${KEY_B64}`,
      `    private_key: ${KEY_B64}`,
      '    post_knock: "ssh me@myserver.example.com"',
      "",
    ].join("\n"),
  );
});

Deno.test("readPlainYaml reads comments, blank lines, CRLF, quotes and IP hosts as yaml does", () => {
  assertSameAsYaml(
    [
      "# my profiles",
      "profiles:   # all of them",
      "",
      "  work:",
      "    server_host: 198.51.100.7 # office",
      "    server_udp_port: 0",
      "    note: 'it''s here' # quoted",
      '    other: "a # not a comment"',
      "    path: C:/x#y",
      "  home.lan:",
      "      server_host: 2001:db8::1",
      "      empty:",
      "  buero_1:",
      "    server_host: fe80::1%eth0",
      "extra: 12",
    ].join("\r\n"),
  );
});

Deno.test("readPlainYaml keeps white space other than U+0020 as content, as yaml does", () => {
  assertSameAsYaml("a: ssh me\u00a0\n");
  assertSameAsYaml("a: x\u3000 # c\n");
  assertSameAsYaml("a: \u2003x\n");
});

Deno.test("readPlainYaml reads an empty or comment-only file as null, as yaml does", () => {
  assert.deepEqual(readPlainYaml(""), { ok: true, value: null });
  assert.deepEqual(readPlainYaml("# nothing\n\n"), { ok: true, value: null });
  assert.deepEqual(fullRead("# nothing\n\n"), { ok: true, value: null });
});

Deno.test("readPlainYaml gives up on YAML beyond plain maps", () => {
  const cases = [
    "profiles:\n  - a\n", // sequence
    "a: [1, 2]\n", // flow sequence
    "a: {b: 1}\n", // flow map
    "a: &x b\nc: *x\n", // anchor and alias
    "a: !!str 1\n", // tag
    'a: "x\\ty"\n', // escape
    "a: 'unclosed\n", // unclosed quote
    'a: "x" y\n', // text after a string
    "a: |\n  text\n", // block scalar
    "a: b\n  c\n", // multi-line plain value
    "a:\n    b: 1\n  c: 2\n", // indentation between levels
    "  a: 1\n", // indented root
    "a: 1\na: 2\n", // duplicate key
    "a:\n\tb: 1\n", // tab
    "\uFEFFa: 1\n", // byte order mark
    "a: 1\u2028b: 2\n", // line separator
    "---\na: 1\n", // document marker
    "a: yes: no\n", // colon in a plain value
    "a: true\n",
    "a: null\n",
    "a: ~\n",
    "a: 1.5\n",
    "a: 1e3\n",
    "a: 0x1f\n",
    "a: 0o17\n",
    "a: .inf\n",
    "a: -1\n",
    "a: 007\n",
    "a: 1234567890123456\n", // more digits than a double keeps
    "true: 1\n", // special key
    "__proto__: 1\n",
    "1: a\n", // numeric key
    '"a": 1\n', // quoted key
    "a:b\n", // no space after the colon
    "? a\n: b\n", // complex key
    "a: ::1\n", // a plain value starting with an indicator YAML allows there
    "büro: 1\n", // a key beyond ASCII
    "a:\n\u00a0\u00a0b: 1\n", // indented with no-break spaces
    "a: x \r", // a carriage return outside CRLF
    "a:      \r",
    "a: 'x'    \rb: 1\n",
  ];
  for (const text of cases) assertUnsupported(text);
});

// --- differential property test against the yaml package ---

const KEYS = [
  "profiles",
  "default",
  "server_host",
  "server_udp_port",
  "a",
  "b",
  "_x",
  "é",
  "k.1",
  "true",
  "no",
  "1",
  "a b",
  "x-",
];

const VALUES = [
  "",
  " ",
  "# c",
  "myserver.example.com",
  "198.51.100.7",
  "2001:db8::1",
  "[::1]",
  KEY_B64,
  "3q2+7w==",
  "54154",
  "0",
  "007",
  "-1",
  "+1",
  "1.5",
  "1e5",
  ".5",
  "0x10",
  "0o7",
  ".nan",
  "null",
  "Null",
  "~",
  "true",
  "False",
  "yes",
  "on",
  '"ssh me@host"',
  '"a # b"',
  '"a\\"b"',
  '"a" # c',
  '"a"#c',
  "'it''s'",
  "'a' x",
  "'",
  "value # comment",
  "value#x",
  "a: b",
  "a:",
  "- a",
  "&a x",
  "*a",
  "!t x",
  "|",
  ">",
  "{a: 1}",
  "[1]",
  "%x",
  "@x",
  "`x",
  "x y z",
  "ünï",
  "a\tb",
  "a\u0085b",
  "x\u00a0",
  "\u00a0x",
  "x \r",
  "\r",
  "'a#b'    \r",
  "x\u3000",
];

const lineArbitrary = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      indent: fc.integer({ min: 0, max: 6 }),
      key: fc.constantFrom(...KEYS),
      value: fc.constantFrom(...VALUES),
    }).map(({ indent, key, value }) =>
      `${" ".repeat(indent)}${key}:${value === "" ? "" : ` ${value}`}`
    ),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "",
      "# comment",
      "   # indented comment",
      "  ",
      "\u00a0\u00a0a: 1",
      "\u00a0",
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
);

Deno.test("readPlainYaml, whenever it reads a document, reads what the yaml package reads, without warnings", () => {
  let accepted = 0;
  fc.assert(
    fc.property(
      fc.array(lineArbitrary, { minLength: 0, maxLength: 12 }),
      fc.constantFrom("\n", "\r\n"),
      (lines, newline) => {
        const text = lines.join(newline);
        const plain = readPlainYaml(text);
        if (!plain.ok) return;
        accepted++;
        const full = fullRead(text);
        assert.ok(
          full.ok,
          `plain reader accepted what yaml refuses: ${JSON.stringify(text)}: ${
            full.ok ? "" : full.why
          }`,
        );
        assert.deepEqual(plain.value, full.value, JSON.stringify(text));
      },
    ),
    { numRuns: 3000 },
  );
  // The comparison means something only if the reader accepted a fair share.
  assert.ok(accepted > 300, `only ${accepted} of 3000 documents were read`);
});

Deno.test("readPlainYaml reads nested maps of plain strings and integers the same as yaml, always", () => {
  const plainKey = fc.stringMatching(/^[a-z_][a-z0-9_.-]{0,8}$/).filter((k) =>
    !/^(?:true|false|null|yes|no|on|off|y|n)$/i.test(k)
  );
  const plainString = fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9.+\/=@:-]{0,40}$/)
    .filter((s) => !s.endsWith(":") && !/^(?:true|false|null)$/i.test(s));
  const leaf = fc.oneof(plainString, fc.integer({ min: 0, max: 65535 }));
  const tree: fc.Arbitrary<Record<string, unknown>> = fc.letrec((tie) => ({
    map: fc.dictionary(
      plainKey,
      fc.oneof({ depthSize: "small" }, leaf, tie("map")),
      { minKeys: 1, maxKeys: 4 },
    ),
  })).map as fc.Arbitrary<Record<string, unknown>>;
  fc.assert(
    fc.property(tree, fc.integer({ min: 1, max: 4 }), (generated, step) => {
      // fast-check builds objects without a prototype; the readers do not.
      const value = JSON.parse(JSON.stringify(generated));
      const text = render(value, 0, step);
      const plain = readPlainYaml(text);
      assert.ok(plain.ok, `refused ${JSON.stringify(text)}`);
      assert.deepEqual(plain.value, value);
      const full = fullRead(text);
      assert.ok(full.ok);
      assert.deepEqual(full.value, value);
    }),
    { numRuns: 500 },
  );
});

function render(
  map: Record<string, unknown>,
  indent: number,
  step: number,
): string {
  let text = "";
  for (const [key, value] of Object.entries(map)) {
    const pad = " ".repeat(indent);
    if (typeof value === "object" && value !== null) {
      text += `${pad}${key}:\n${
        render(value as Record<string, unknown>, indent + step, step)
      }`;
    } else {
      text += `${pad}${key}: ${value}\n`;
    }
  }
  return text;
}
