import assert from "node:assert/strict";
import fc from "fast-check";
import type { CliIo } from "../lib/cli/io.ts";
import { runCli } from "../lib/cli/mod.ts";
import { COMMANDS, GLOBAL_FLAGS } from "../lib/cli/spec.ts";

// Random command lines, run in-process. Every generated argv contains an
// option no command knows (or names no command at all), so the parser
// rejects it before any command runs: nothing here touches the network, the
// firewall or a config file. The per-command usage cases live in
// tests/cli/mod_test.ts; this checks the parser's behaviour on anything.

const DEFAULT_CONFIG_EXISTED = await Deno.stat("/etc/openme/config.yaml").then(
  () => true,
  () => false,
);

/** Options no command accepts. */
const UNKNOWN_OPTIONS = [
  "--bogus",
  "--no-such-option=1",
  "-Z",
  "--CONFIG",
  "--ip6",
  "---",
  "--\u00e9",
];

interface Captured {
  code: number;
  out: string;
  err: string;
}

async function runCaptured(argv: string[]): Promise<Captured> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = {
    out: (text) => out.push(text),
    err: (text) => err.push(text),
  };
  const code = await runCli(argv, io);
  return { code, out: out.join("\n"), err: err.join("\n") };
}

function knownFlags(): string[] {
  const flags = new Set<string>();
  for (const flag of [...GLOBAL_FLAGS, ...COMMANDS.flatMap((c) => c.flags)]) {
    flags.add(`--${flag.name}`);
    if (flag.short !== undefined) flags.add(`-${flag.short}`);
  }
  return [...flags];
}

const commandName = fc.constantFrom(...COMMANDS.map((c) => c.name));
const token = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...knownFlags()) },
  { weight: 2, arbitrary: commandName },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "alice",
      "192.0.2.7",
      "2001:db8::7",
      "22/tcp",
      "30s",
      "-",
      "",
      " ",
      "help",
      "debug",
      "=",
      "-1",
      "\u0000",
      "\u202e",
      "\u{1F600}",
    ),
  },
  // "--" would end option parsing and turn the unknown option into an argument.
  {
    weight: 1,
    arbitrary: fc.string({ maxLength: 12 }).filter((t) => t !== "--"),
  },
);
const unknownOption = fc.constantFrom(...UNKNOWN_OPTIONS);

/** Checks what the CLI printed for a rejected or help command line. */
function checkOutput(argv: string[], result: Captured): void {
  const shown = JSON.stringify(argv);
  assert.ok(
    result.code === 0 || result.code === 2,
    `exit ${result.code} for ${shown}: ${result.err}`,
  );
  const all = `${result.out}\n${result.err}`;
  assert.ok(
    !/^\s+at .+[:(]\d+/m.test(all),
    `stack trace for ${shown}:\n${all}`,
  );
  assert.ok(!all.includes("Uncaught"), `uncaught error for ${shown}`);
  if (result.code === 2) {
    assert.match(
      result.err,
      /^openme: /,
      `usage error without "openme:" for ${shown}`,
    );
    assert.match(
      result.err,
      /Usage: openme /,
      `usage error without a usage hint for ${shown}`,
    );
    assert.equal(result.out, "", `usage error wrote to stdout for ${shown}`);
  } else {
    assert.ok(result.out.length > 0, `exit 0 printed nothing for ${shown}`);
  }
}

Deno.test("random command lines with an unknown option exit 2 with a usage hint, or 0 for help/version, never with a stack trace", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(token, { maxLength: 6 }),
      unknownOption,
      fc.nat(),
      async (tokens, unknown, at) => {
        const argv = [...tokens];
        argv.splice(at % (argv.length + 1), 0, unknown);
        checkOutput(argv, await runCaptured(argv));
      },
    ),
    { numRuns: 400 },
  );
});

Deno.test("every command with an unknown option exits 2 and names the option", async () => {
  for (const command of COMMANDS) {
    for (const unknown of ["--bogus", "-Z"]) {
      const argv = [command.name, unknown];
      const result = await runCaptured(argv);
      checkOutput(argv, result);
      assert.equal(result.code, 2, `${argv.join(" ")}: ${result.err}`);
      assert.ok(
        result.err.includes(unknown),
        `${argv.join(" ")}: message does not name ${unknown}: ${result.err}`,
      );
      assert.match(
        result.err,
        new RegExp(`openme ${command.name} --help`),
        `${argv.join(" ")}: hint does not point at the command's help`,
      );
    }
  }
});

Deno.test("every command's --help exits 0 whatever positional arguments are on the line", async () => {
  await fc.assert(
    fc.asyncProperty(
      commandName,
      fc.array(
        fc.constantFrom("alice", "192.0.2.7", "22/tcp", "x", "-"),
        { maxLength: 3 },
      ),
      async (name, extra) => {
        const argv = [name, ...extra, "--help"];
        const result = await runCaptured(argv);
        checkOutput(argv, result);
        assert.equal(result.code, 0, `${argv.join(" ")}: ${result.err}`);
        assert.match(result.out, new RegExp(`openme ${name}`));
      },
    ),
    { numRuns: 100 },
  );
});

Deno.test("command lines that name no command exit 2 with a usage hint unless they ask for help or the version", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.constantFrom(
          "--config",
          "--client-config",
          "--log-level",
          "-v",
          "--version",
          "-h",
          "--help",
          "--bogus",
        ),
        { maxLength: 5 },
      ),
      async (argv) => {
        const result = await runCaptured(argv);
        checkOutput(argv, result);
        const asks = argv.some((a) =>
          a === "-v" || a === "--version" || a === "-h" || a === "--help"
        );
        if (argv.length > 0 && !asks) assert.equal(result.code, 2);
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("the fuzzing above ran no command: no server config appeared at the default path", async () => {
  // A guard for the guarantee the generators rely on: had a random command
  // line slipped through to `init`, it would have written this file.
  const existedBefore = DEFAULT_CONFIG_EXISTED;
  const existsNow = await Deno.stat("/etc/openme/config.yaml").then(
    () => true,
    () => false,
  );
  assert.ok(existedBefore || !existsNow);
});
