/**
 * The command table (lib/cli/spec.ts): every command's usage, flags, help
 * lines and examples agree with each other, and every example is a command
 * line the parser accepts.
 */
import assert from "node:assert/strict";
import { parseCommandLine } from "../../lib/cli/mod.ts";
import {
  commandHelp,
  COMMANDS,
  findCommand,
  GLOBAL_FLAGS,
  topLevelHelp,
} from "../../lib/cli/spec.ts";

/** The SPEC §8 commands; the table may have more, never fewer. */
const SPEC_COMMANDS = [
  "init",
  "serve",
  "sessions",
  "add",
  "list",
  "revoke",
  "knock",
  "status",
  "profiles",
];

/** Every `openme ...` invocation in an example line, as argument lists (shell operators split the line). */
function invocations(example: string): string[][] {
  const result: string[][] = [];
  for (const segment of example.split(/&&|\|\||\||;|>/)) {
    const words = segment.trim().split(/\s+/);
    const at = words.indexOf("openme");
    if (at < 0) continue;
    result.push(words.slice(at + 1));
  }
  return result;
}

Deno.test("command names are unique and include every SPEC §8 command", () => {
  const names = COMMANDS.map((c) => c.name);
  assert.equal(new Set(names).size, names.length);
  for (const name of SPEC_COMMANDS) {
    assert.ok(names.includes(name), `missing command ${name}`);
  }
});

Deno.test("SPEC §8 usage lines and flags are in the table", () => {
  const expected: Record<string, string[]> = {
    init: ["server", "port", "firewall", "interface", "force"],
    serve: ["state-file", "interface"],
    sessions: ["state-file", "watch"],
    add: ["ports", "expires", "profile", "qr", "qr-out"],
    list: [],
    revoke: [],
    knock: ["ip", "continuous", "interval", "check"],
    status: ["knock"],
    profiles: [],
  };
  for (const [name, flags] of Object.entries(expected)) {
    const spec = findCommand(name)!;
    for (const flag of flags) {
      assert.ok(spec.flags.some((f) => f.name === flag), `${name} --${flag}`);
      assert.ok(spec.usage.includes(`--${flag}`), `${name} usage --${flag}`);
    }
  }
  assert.equal(
    findCommand("sessions")!.flags.find((f) => f.name === "watch")!.short,
    "w",
  );
  assert.deepEqual(findCommand("add")!.positionals, ["NAME"]);
  assert.deepEqual(findCommand("revoke")!.positionals, ["NAME"]);
  assert.deepEqual(findCommand("knock")!.positionals, ["PROFILE"]);
});

Deno.test("every usage line starts with the command name and shows its positionals", () => {
  for (const spec of COMMANDS) {
    assert.ok(
      spec.usage === spec.name || spec.usage.startsWith(`${spec.name} `),
      spec.usage,
    );
    assert.ok(spec.requiredPositionals <= spec.positionals.length, spec.name);
    for (let i = 0; i < spec.positionals.length; i++) {
      const name = spec.positionals[i];
      if (i < spec.requiredPositionals) {
        assert.ok(
          new RegExp(`(^| )${name}( |$)`).test(spec.usage) ||
            spec.usage.includes(` ${name.toLowerCase()}`) ||
            name === "SHELL",
          `${spec.name}: required ${name} in usage`,
        );
      } else {
        assert.ok(
          spec.usage.includes(`[${name}`),
          `${spec.name}: optional ${name} in brackets in usage`,
        );
      }
    }
  }
});

Deno.test("every flag has help text, is in its command's usage line and does not shadow a global flag", () => {
  const globals = GLOBAL_FLAGS.map((f) => f.name);
  for (const spec of COMMANDS) {
    const names = spec.flags.map((f) => f.name);
    assert.equal(new Set(names).size, names.length, `${spec.name}: unique`);
    for (const flag of spec.flags) {
      assert.ok(flag.text.length > 0, `${spec.name} --${flag.name} help text`);
      assert.ok(
        spec.usage.includes(`--${flag.name}`) ||
          (flag.short !== undefined && spec.usage.includes(`-${flag.short}`)),
        `${spec.name}: --${flag.name} in the usage line`,
      );
      assert.ok(
        !globals.includes(flag.name),
        `${spec.name} --${flag.name} shadows a global flag`,
      );
    }
  }
});

Deno.test("every command has a summary, a description and at least one example", () => {
  for (const spec of COMMANDS) {
    assert.ok(spec.summary.length > 0, spec.name);
    assert.ok(spec.description.length > 20, spec.name);
    assert.ok(spec.examples.length >= 1, spec.name);
  }
});

Deno.test("every example is a command line the parser accepts, and runs its own command", () => {
  for (const spec of COMMANDS) {
    let ownSeen = false;
    for (const example of spec.examples) {
      const calls = invocations(example);
      assert.ok(calls.length > 0, `example without openme: ${example}`);
      for (const argv of calls) {
        let parsed;
        try {
          parsed = parseCommandLine(argv);
        } catch (error) {
          assert.fail(`${example}: ${(error as Error).message}`);
        }
        assert.ok(!("topLevel" in parsed), example);
        if (parsed.spec.name === spec.name) ownSeen = true;
      }
    }
    assert.ok(ownSeen, `${spec.name}: no example runs ${spec.name}`);
  }
});

Deno.test("server commands' examples use sudo; client commands' do not", () => {
  for (const spec of COMMANDS) {
    for (const example of spec.examples) {
      const own = example.split(/&&|\||>/).find((s) =>
        new RegExp(`openme ${spec.name}( |$)`).test(s.trim())
      );
      if (own === undefined) continue;
      const sudo = /(^|\s)sudo openme /.test(own);
      if (spec.serverSide && spec.name !== "sessions") {
        assert.ok(sudo, `${spec.name} example needs root: ${example}`);
      }
      if (!spec.serverSide) {
        assert.ok(!sudo, `${spec.name} is a client command: ${example}`);
      }
    }
  }
});

Deno.test("findCommand finds by exact name only", () => {
  assert.equal(findCommand("add")?.name, "add");
  assert.equal(findCommand("ADD"), undefined);
  assert.equal(findCommand("ad"), undefined);
  assert.equal(findCommand(""), undefined);
});

Deno.test("commandHelp shows usage, description, options, global options and examples in that order", () => {
  const spec = findCommand("add")!;
  const text = commandHelp(spec);
  const order = [
    `Usage: openme ${spec.usage}`,
    spec.description,
    "Options:",
    "--ports CSV",
    "Global options:",
    "--client-config PATH",
    "Examples:",
    spec.examples[0],
  ];
  let at = 0;
  for (const part of order) {
    const found = text.indexOf(part, at);
    assert.ok(found >= at, `${JSON.stringify(part)} missing or out of order`);
    at = found + part.length;
  }
  const list = commandHelp(findCommand("list")!);
  assert.ok(!list.includes("Options:\n"), "no empty Options section");
});

Deno.test("topLevelHelp lists server and client commands in their sections", () => {
  const text = topLevelHelp();
  const server = text.indexOf("Server commands");
  const client = text.indexOf("Client commands:");
  assert.ok(server >= 0 && client > server);
  for (const spec of COMMANDS) {
    const at = text.search(
      new RegExp(`^  ${spec.name} +${escape(spec.summary)}$`, "m"),
    );
    assert.ok(at >= 0, `${spec.name} listed with its summary`);
    assert.equal(
      at > client,
      !spec.serverSide,
      `${spec.name} in the right section`,
    );
  }
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
