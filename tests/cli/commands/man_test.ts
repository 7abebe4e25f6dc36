/**
 * Tests of `openme man`: the page has every section, every command and every
 * flag of the command table (so a flag added to the table without reaching
 * the page fails here), and groff formats it without a warning.
 */

import assert from "node:assert/strict";
import { manPage } from "../../../lib/cli/commands/man.ts";
import {
  COMMANDS,
  type FlagSpec,
  GLOBAL_FLAGS,
} from "../../../lib/cli/spec.ts";
import { findOnPath, run } from "../../../scripts/testbed.ts";
import { openmeOk } from "../../support/cli.ts";

const PAGE = manPage();

/** The page's sections (`.SH`) and their lines, in order. */
function sections(page: string): [string, string[]][] {
  const result: [string, string[]][] = [];
  for (const line of page.split("\n")) {
    const heading = /^\.SH "?([^"]+)"?$/.exec(line);
    if (heading !== null) result.push([heading[1], []]);
    else result.at(-1)?.[1].push(line);
  }
  return result;
}

/** The `.TP` label the page gives a flag, in roff. */
function flagLabel(flag: FlagSpec): string {
  const short = flag.short === undefined ? "" : `\\fB\\-${flag.short}\\fR, `;
  const name = flag.name.replaceAll("-", "\\-");
  const value = flag.value === undefined
    ? ""
    : ` \\fI${flag.value.replaceAll("-", "\\-")}\\fR`;
  return `${short}\\fB\\-\\-${name}\\fR${value}`;
}

/** The flags a block of lines documents: the line after each `.TP`. */
function labels(lines: string[]): string[] {
  return lines.flatMap((line, i) =>
    i > 0 && lines[i - 1] === ".TP" ? [line] : []
  );
}

Deno.test("openme man prints the page, with the sections a manual page has, in order", async () => {
  assert.equal((await openmeOk(["man"])).out, PAGE);
  assert.match(
    PAGE,
    /^\.TH OPENME 1 "" "openme \d+\.\d+\.\d+" "User Commands"$/m,
  );
  assert.deepEqual(sections(PAGE).map(([name]) => name), [
    "NAME",
    "SYNOPSIS",
    "DESCRIPTION",
    "OPTIONS",
    "COMMANDS",
    "FILES",
    "ENVIRONMENT",
    "EXIT STATUS",
    "EXAMPLES",
    "SECURITY",
    "SEE ALSO",
  ]);
  const seeAlso = sections(PAGE).find(([name]) => name === "SEE ALSO")?.[1];
  for (const ref of ["nft (8)", "iptables (8)", "systemd.service (5)"]) {
    assert.ok(seeAlso?.includes(`.BR ${ref},`), `SEE ALSO lacks ${ref}`);
  }
});

Deno.test("openme man: every command of the table has its subsection, usage and every flag; every global flag is under OPTIONS", () => {
  const [, options] = sections(PAGE).find(([name]) => name === "OPTIONS")!;
  assert.deepEqual(labels(options), GLOBAL_FLAGS.map(flagLabel));
  const [, commands] = sections(PAGE).find(([name]) => name === "COMMANDS")!;
  // Split COMMANDS into its subsections (`.SS name`).
  const bySubsection = new Map<string, string[]>();
  let current: string[] = [];
  for (const line of commands) {
    const name = /^\.SS (\S+)$/.exec(line)?.[1];
    if (name !== undefined) bySubsection.set(name, current = []);
    else current.push(line);
  }
  assert.deepEqual([...bySubsection.keys()], COMMANDS.map((c) => c.name));
  for (const spec of COMMANDS) {
    const lines = bySubsection.get(spec.name) ?? [];
    assert.deepEqual(labels(lines), spec.flags.map(flagLabel), spec.name);
    assert.ok(
      lines.some((l) =>
        l.startsWith("\\fBopenme\\fR ") && l.includes(spec.name)
      ),
      `${spec.name}: no usage line`,
    );
  }
  // Every example of the table is in EXAMPLES.
  const [, examples] = sections(PAGE).find(([name]) => name === "EXAMPLES")!;
  for (const example of COMMANDS.flatMap((c) => c.examples)) {
    assert.ok(
      examples.includes(example.replaceAll("-", "\\-")),
      `EXAMPLES lacks ${example}`,
    );
  }
});

Deno.test("openme man: roff escapes keep a text line from being read as a request", () => {
  for (const line of PAGE.split("\n")) {
    if (!line.startsWith(".") && !line.startsWith("'")) continue;
    assert.match(
      line,
      /^\.(\\"|[A-Z]{1,2}\b|nh|nf|fi)/,
      `not a request: ${line}`,
    );
  }
  // Only ASCII: other characters are roff escapes.
  assert.match(PAGE, /^[\x20-\x7e\n]*$/);
});

const groff = findOnPath("groff");
if (groff === null) {
  console.warn("SKIP groff checks of the man page: groff is not installed");
}

Deno.test({
  name:
    "openme man: `groff -man -ww -z` prints nothing, and the formatted page shows every flag",
  ignore: groff === null,
  fn: async () => {
    const checked = await run(["groff", "-man", "-ww", "-z"], { stdin: PAGE });
    assert.equal(checked.code, 0, checked.stderr);
    assert.equal(checked.stdout + checked.stderr, "");
    const text = (await run(["groff", "-man", "-Tascii", "-P", "-cbou"], {
      stdin: PAGE,
    })).stdout;
    for (const flag of [...GLOBAL_FLAGS, ...COMMANDS.flatMap((c) => c.flags)]) {
      assert.ok(
        text.includes(`--${flag.name}`),
        `--${flag.name} is not in the formatted page`,
      );
    }
  },
});
