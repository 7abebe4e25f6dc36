/**
 * The command line's parsing and error handling (lib/cli/mod.ts): version and
 * help, global flags before or after the command, and for every command that
 * wrong arguments exit 2 with the usage line and a hint, never a stack trace.
 * Mostly in-process through runCli with a capturing io; a few runs of main.ts
 * check the real exit codes.
 */
import assert from "node:assert/strict";
import denoConfig from "../../deno.json" with { type: "json" };
import { type CliIo, CommandError, UsageError } from "../../lib/cli/io.ts";
import { parseCommandLine, reportError } from "../../lib/cli/mod.ts";
import { COMMANDS, flagLabel } from "../../lib/cli/spec.ts";
import { ConfigError } from "../../lib/config/errors.ts";
import { setLogSink } from "../../lib/log.ts";
import { type Captured, openme, runMain } from "../support/cli.ts";
import { withTempDir } from "../support/files.ts";

setLogSink(() => {});

const STACK_LINE = /^\s+at .+[:(]/m;

/** Asserts a usage error: exit 2, the message, the command's usage line, the help hint, no stack trace. */
function assertUsageError(
  result: Captured,
  command: string | null,
  message: RegExp,
): void {
  assert.equal(result.code, 2, `exit code; stderr: ${result.err}`);
  assert.match(result.err, message);
  const lines = result.err.split("\n");
  assert.match(lines[0], /^openme: /, "first line is the message");
  if (command === null) {
    assert.ok(lines.includes("Usage: openme COMMAND [options]"), result.err);
    assert.ok(
      lines.includes("Run `openme --help` for the list of commands."),
      result.err,
    );
  } else {
    const spec = COMMANDS.find((c) => c.name === command)!;
    assert.ok(lines.includes(`Usage: openme ${spec.usage}`), result.err);
    assert.ok(
      lines.includes(
        `Run \`openme ${command} --help\` for options and examples.`,
      ),
      result.err,
    );
  }
  assert.doesNotMatch(result.err, STACK_LINE, "no stack trace");
  assert.equal(result.out, "", "nothing on stdout");
}

Deno.test("-v and --version print the version and target, before or after a command", async () => {
  for (
    const argv of [
      ["-v"],
      ["--version"],
      ["list", "-v"],
      ["--version", "list"],
      ["--config", "/nonexistent/config.yaml", "add", "x", "--version"],
    ]
  ) {
    const result = await openme(argv);
    assert.equal(result.code, 0, argv.join(" "));
    assert.equal(
      result.out,
      `openme ${denoConfig.version} (${Deno.build.target})`,
    );
    assert.equal(result.err, "");
  }
});

Deno.test("no arguments, -h, --help and `help` print the top-level help listing every command", async () => {
  for (const argv of [[], ["-h"], ["--help"], ["help"]]) {
    const result = await openme(argv);
    assert.equal(result.code, 0);
    assert.match(result.out, /^Usage: openme COMMAND \[options\]$/m);
    for (const spec of COMMANDS) {
      assert.match(
        result.out,
        new RegExp(`^  ${spec.name} +\\S`, "m"),
        `top-level help lists ${spec.name}`,
      );
    }
  }
});

Deno.test("--help on every command prints its usage, options and examples", async () => {
  for (const spec of COMMANDS) {
    for (
      const argv of [
        [spec.name, "--help"],
        [spec.name, "-h"],
        ["--help", spec.name],
        ["help", spec.name],
      ]
    ) {
      const result = await openme(argv);
      assert.equal(result.code, 0, argv.join(" "));
      assert.equal(result.err, "");
      const lines = result.out.split("\n");
      assert.equal(lines[0], `Usage: openme ${spec.usage}`, argv.join(" "));
      const examples = lines.indexOf("Examples:");
      assert.ok(examples > 0, `${spec.name} help has examples`);
      assert.ok(lines.length > examples + 1);
      assert.match(lines[examples + 1], /^ {2}\S/);
      for (const f of spec.flags) {
        const label = flagLabel(f);
        assert.ok(result.out.includes(label), `${spec.name} help: ${label}`);
      }
      assert.ok(result.out.includes("--config PATH"), "global options listed");
    }
  }
});

Deno.test("--help wins over missing or wrong arguments", async () => {
  const result = await openme(["add", "--help", "--ports", "x"]);
  assert.equal(result.code, 0);
  assert.match(result.out, /^Usage: openme add NAME/);
  const revoke = await openme(["revoke", "--help"]);
  assert.equal(revoke.code, 0, "missing NAME is not an error with --help");
});

Deno.test("global flags are accepted before and after the command", () => {
  const before = parseCommandLine([
    "--config",
    "/srv/a.yaml",
    "--client-config=/srv/c.yaml",
    "--log-level",
    "debug",
    "revoke",
    "alice",
  ]);
  const after = parseCommandLine([
    "revoke",
    "alice",
    "--config=/srv/a.yaml",
    "--client-config",
    "/srv/c.yaml",
    "--log-level=debug",
  ]);
  for (const parsed of [before, after]) {
    assert.ok(!("topLevel" in parsed));
    assert.equal(parsed.spec.name, "revoke");
    assert.deepEqual(parsed.positionals, ["alice"]);
    assert.deepEqual(parsed.globals, {
      config: "/srv/a.yaml",
      clientConfig: "/srv/c.yaml",
    });
    assert.equal(parsed.values["log-level"], "debug");
  }
  const mixed = parseCommandLine([
    "--config",
    "/x.yaml",
    "add",
    "bob",
    "--ports",
    "22",
  ]);
  assert.ok(!("topLevel" in mixed));
  assert.equal(mixed.values.ports, "22");
  assert.equal(mixed.globals.config, "/x.yaml");
});

Deno.test("flag syntax: --name=value, grouped short switches, a dash value only after =, and -- ends the flags", async () => {
  const parse = (argv: string[]) => {
    const parsed = parseCommandLine(argv);
    assert.ok(!("topLevel" in parsed), argv.join(" "));
    return parsed;
  };
  assert.equal(parse(["knock", "--ip=198.51.100.7"]).values.ip, "198.51.100.7");
  assert.equal(parse(["knock", "--ip=-x"]).values.ip, "-x");
  assert.equal(parse(["sessions", "-w"]).values.watch, true);
  const grouped = parse(["knock", "-46"]).values;
  assert.deepEqual([grouped.ipv4, grouped.ipv6], [true, true]);
  assert.deepEqual(parse(["revoke", "--", "-x"]).positionals, ["-x"]);
  assertUsageError(
    await openme(["knock", "--ip", "-4"]),
    "knock",
    /^openme: option '--ip' argument is ambiguous\.\n.*\n.*use '--ip=-XYZ'\.$/m,
  );
  assertUsageError(
    await openme(["sessions", "-w=1"]),
    "sessions",
    /unknown option '-='/,
  );
});

Deno.test("a global flag's value is not taken for the command name", () => {
  const parsed = parseCommandLine(["--config", "list", "revoke", "bob"]);
  assert.ok(!("topLevel" in parsed));
  assert.equal(parsed.spec.name, "revoke");
  assert.equal(parsed.globals.config, "list");
});

Deno.test("top-level usage errors: unknown command, no command, unknown flag, flag without value", async () => {
  assertUsageError(
    await openme(["frobnicate"]),
    null,
    /unknown command "frobnicate" \(commands: init, serve/,
  );
  assertUsageError(
    await openme(["help", "frobnicate"]),
    null,
    /unknown command "frobnicate"/,
  );
  assertUsageError(
    await openme(["--config", "/tmp/x.yaml"]),
    null,
    /no command given/,
  );
  assertUsageError(
    await openme(["--bogus"]),
    null,
    /unknown option '--bogus'/,
  );
  assertUsageError(
    await openme(["--config"]),
    null,
    /option --config needs a value/,
  );
});

Deno.test("every command: an unknown flag exits 2 with its usage line and hint", async () => {
  for (const spec of COMMANDS) {
    const argv = [spec.name, ...requiredArgs(spec.name), "--no-such-flag"];
    assertUsageError(
      await openme(argv),
      spec.name,
      /unknown option '--no-such-flag'/,
    );
    assertUsageError(
      await openme([spec.name, ...requiredArgs(spec.name), "-Z"]),
      spec.name,
      /unknown option '-Z'/,
    );
  }
});

Deno.test("every command: one positional too many exits 2", async () => {
  for (const spec of COMMANDS.filter((c) => c.repeatLast !== true)) {
    const argv = [
      spec.name,
      ...spec.positionals.map((_, i) => `arg${i}`),
      "surplus",
    ];
    assertUsageError(
      await openme(argv),
      spec.name,
      /unexpected argument\(s\): surplus/,
    );
  }
});

Deno.test("every command with a required positional: leaving it out exits 2 naming it", async () => {
  const required = COMMANDS.filter((c) => c.requiredPositionals > 0);
  assert.deepEqual(
    required.map((c) => c.name).sort(),
    ["add", "completion", "revoke"],
  );
  for (const spec of required) {
    assertUsageError(
      await openme([spec.name]),
      spec.name,
      new RegExp(`missing ${spec.positionals[0]}`),
    );
  }
});

Deno.test("every command: a string flag without its value exits 2", async () => {
  for (const spec of COMMANDS) {
    for (const flag of spec.flags) {
      if (flag.value === undefined) continue;
      assertUsageError(
        await openme([spec.name, ...requiredArgs(spec.name), `--${flag.name}`]),
        spec.name,
        new RegExp(`option --${flag.name} needs a value`),
      );
    }
  }
});

Deno.test("every command: a boolean flag given a value exits 2", async () => {
  for (const spec of COMMANDS) {
    for (const flag of spec.flags) {
      if (flag.value !== undefined) continue;
      assertUsageError(
        await openme([
          spec.name,
          ...requiredArgs(spec.name),
          `--${flag.name}=yes`,
        ]),
        spec.name,
        new RegExp(`option '${flagLabel(flag)}' does not take an argument`),
      );
    }
  }
});

Deno.test("every command: a bad --log-level exits 2", async () => {
  for (const spec of COMMANDS) {
    assertUsageError(
      await openme([
        spec.name,
        ...requiredArgs(spec.name),
        "--log-level",
        "loud",
      ]),
      spec.name,
      /--log-level "loud" is not a level \(expected debug, info, warn or error\)/,
    );
  }
});

Deno.test("bad flag values exit 2 with the flag, the value and a good example", async () => {
  await withTempDir("openme-cli-mod-", async (dir) => {
    const config = `${dir}/config.yaml`;
    const cases: [string[], string, RegExp][] = [
      [
        ["init", "--server", "h", "--port", "0"],
        "init",
        /--port "0" is not a port \(expected 1-65535\)/,
      ],
      [["init", "--server", "h", "--port", "65536"], "init", /--port "65536"/],
      [["init", "--server", "h", "--port", "22x"], "init", /--port "22x"/],
      [
        ["init", "--server", "h", "--firewall", "pf"],
        "init",
        /--firewall "pf" is not a backend \(expected nft or iptables\)/,
      ],
      [
        ["init", "--server", "h", "--interface", "a b"],
        "init",
        /--interface "a b" is not an interface name/,
      ],
      [
        ["init", "--server", "h", "--interface", "x".repeat(16)],
        "init",
        /is not an interface name/,
      ],
      [["init"], "init", /--server HOST is required/],
      [["init", "--server", " "], "init", /--server HOST is required/],
      [["add", "bob", "--ports", "70000"], "add", /--ports: .*70000/],
      [["add", "bob", "--ports", "22/sctp"], "add", /--ports: .*sctp/],
      [["add", "bob", "--ports", "90-80/tcp"], "add", /--ports: /],
      [
        ["add", "bob", "--ports", ","],
        "add",
        /--ports "," names no ports or groups/,
      ],
      [
        ["add", "bob", "--expires", "tomorrow"],
        "add",
        /--expires "tomorrow" is not an RFC 3339 time/,
      ],
      [
        ["add", "bob", "--expires", "2099-12-31"],
        "add",
        /--expires "2099-12-31" is not an RFC 3339 time/,
      ],
      [
        ["add", "bob", "--expires", "2099-02-30T00:00:00Z"],
        "add",
        /is not an RFC 3339 time/,
      ],
      [
        ["add", "bob", "--expires", "2001-01-01T00:00:00Z"],
        "add",
        /--expires "2001-01-01T00:00:00Z" is in the past/,
      ],
      [["add", "bad name"], "add", /invalid client name "bad name"/],
      [["add", "-x-"], "add", /unknown option|invalid client name/],
      [
        ["add", "bob", "--profile", "no/slash"],
        "add",
        /--profile: invalid profile name "no\/slash"/,
      ],
      [["knock", "--ip", "nope"], "knock", /--ip "nope" is not an IP address/],
      [["knock", "-4", "-6"], "knock", /-4 and -6 exclude each other/],
      [["completion", "tcsh"], "completion", /no completion for shell "tcsh"/],
    ];
    for (const [argv, command, message] of cases) {
      const result = await openme(["--config", config, ...argv]);
      assertUsageError(result, command, message);
    }
    await assert.rejects(() => Deno.stat(config), Deno.errors.NotFound);
  });
});

Deno.test("a command failure exits 1 with one message line and no stack trace", async () => {
  const result = await openme([
    "--config",
    "/nonexistent/openme/config.yaml",
    "list",
  ]);
  assert.equal(result.code, 1);
  assert.match(
    result.err,
    /^openme: config \/nonexistent\/openme\/config\.yaml: /,
  );
  assert.match(result.err, /openme init --server HOST/);
  assert.doesNotMatch(result.err, STACK_LINE);
  assert.doesNotMatch(result.err, /^Usage:/m, "not a usage error");
});

Deno.test("reportError maps usage errors to 2 and every other error to 1, with one message line", () => {
  const lines: string[] = [];
  const io: CliIo = { out: () => {}, err: (t) => lines.push(t) };
  assert.equal(reportError(new UsageError("bad", "list"), io), 2);
  assert.deepEqual(lines.splice(0), [
    "openme: bad",
    "Usage: openme list\nRun `openme list --help` for options and examples.",
  ]);
  assert.equal(reportError(new CommandError("nope"), io), 1);
  assert.deepEqual(lines.splice(0), ["openme: nope"]);
  const configError = new ConfigError({
    file: "/etc/openme/config.yaml",
    line: 4,
    keyPath: "server.udp_port",
    problem: "port 0 out of range",
    expected: "1-65535",
  });
  assert.equal(reportError(configError, io), 1);
  assert.match(
    lines.splice(0)[0],
    /^openme: config \/etc\/openme\/config\.yaml:4: server\.udp_port: /,
  );
  assert.equal(
    reportError(new Deno.errors.PermissionDenied("open /etc/x"), io),
    1,
  );
  assert.match(lines.splice(0)[0], /permission denied: .*run as root/);
  const previous = Deno.env.get("OPENME_DEBUG");
  Deno.env.delete("OPENME_DEBUG");
  try {
    assert.equal(reportError(new TypeError("boom"), io), 1);
    assert.deepEqual(lines.splice(0), ["openme: boom"], "no stack trace");
  } finally {
    if (previous !== undefined) Deno.env.set("OPENME_DEBUG", previous);
  }
});

Deno.test("main.ts exit codes: 0 for --version, 2 for a usage error, 1 for a failure", async () => {
  const version = await runMain(["--version"]);
  assert.equal(version.code, 0);
  assert.equal(
    version.out.trim(),
    `openme ${denoConfig.version} (${Deno.build.target})`,
  );

  const usage = await runMain(["list", "--bogus"]);
  assert.equal(usage.code, 2);
  assert.match(
    usage.err,
    /^openme: unknown option '--bogus'\nUsage: openme list\n/,
  );
  assert.doesNotMatch(usage.err, STACK_LINE);

  const failure = await runMain([
    "--config",
    "/nonexistent/openme/config.yaml",
    "revoke",
    "alice",
  ]);
  assert.equal(failure.code, 1);
  assert.match(failure.err, /^openme: /);
  assert.doesNotMatch(failure.err, STACK_LINE);

  const help = await runMain(["add", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.out, /^Usage: openme add NAME/);
});

/** Arguments that satisfy a command's required positionals. */
function requiredArgs(command: string): string[] {
  const spec = COMMANDS.find((c) => c.name === command)!;
  return spec.positionals.slice(0, spec.requiredPositionals).map((p) =>
    p === "SHELL" ? "bash" : "someone"
  );
}
