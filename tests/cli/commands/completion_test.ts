/**
 * Tests of `openme completion`: the scripts name every command and flag of
 * the command table, load in bash (`bash -n`, `complete -p openme`) and
 * complete commands, flags and profile names when driven the way bash, zsh
 * and fish drive them (zsh and fish only when installed).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  bashCompletionScript,
  commandCompletionFlags,
  fishCompletionScript,
  globalCompletionFlags,
  PROFILE_NAMES_AWK,
  zshCompletionScript,
} from "../../../lib/cli/commands/completion.ts";
import { COMMANDS } from "../../../lib/cli/spec.ts";
import { runTool } from "../../../lib/firewall/exec.ts";
import { openme } from "../../support/cli.ts";
import { withTempDir } from "../../support/files.ts";

const MAIN_TS = new URL("../../../main.ts", import.meta.url).pathname;

async function available(tool: string): Promise<boolean> {
  const result = await runTool(tool, ["--version"]);
  return result.success;
}
const hasBash = await available("bash");
const hasZsh = await available("zsh");
const hasFish = await available("fish");
const hasAwk = (await runTool("awk", ["BEGIN { exit 0 }"])).success;
for (
  const [ok, what] of [[hasBash, "bash"], [hasZsh, "zsh"], [hasFish, "fish"], [
    hasAwk,
    "awk",
  ]] as const
) {
  if (!ok) {
    console.warn(`SKIP completion tests that need ${what}: not installed`);
  }
}

const CLIENT_CONFIG = `# profiles of mine
profiles:
  # the office
  work:
    server_host: vpn.example.com
  "home-1":
    server_host: 198.51.100.7
  lab: {server_host: lab.example.com}
other:
  notaprofile:
    x: 1
`;

async function withClientConfig(
  text: string,
  fn: (path: string, dir: string) => Promise<void>,
): Promise<void> {
  await withTempDir("openme-completion-", async (dir) => {
    const path = join(dir, "config.yaml");
    await Deno.writeTextFile(path, text);
    await fn(path, dir);
  });
}

async function run(
  command: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<string> {
  const result = await runTool(command, args, { env, timeoutMs: 20_000 });
  assert.ok(result.success, `${command} ${args.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

Deno.test("every script names every command and every flag of the command table", () => {
  const scripts = {
    bash: bashCompletionScript(),
    zsh: zshCompletionScript(),
    fish: fishCompletionScript(),
  };
  for (const [shell, script] of Object.entries(scripts)) {
    for (const spec of COMMANDS) {
      assert.ok(script.includes(spec.name), `${shell}: ${spec.name}`);
      for (const flag of commandCompletionFlags(spec)) {
        const needle = shell === "fish" ? `-l ${flag.long}` : `--${flag.long}`;
        assert.ok(script.includes(needle), `${shell}: ${spec.name} ${needle}`);
      }
    }
    for (const flag of globalCompletionFlags()) {
      const needle = shell === "fish" ? `-l ${flag.long}` : `--${flag.long}`;
      assert.ok(script.includes(needle), `${shell}: global ${needle}`);
    }
  }
});

Deno.test("openme completion prints the script and rejects an unknown shell with exit 2", async () => {
  const bash = await openme(["completion", "bash"]);
  assert.equal(bash.code, 0);
  assert.equal(bash.out, bashCompletionScript().trimEnd());
  const bad = await openme(["completion", "tcsh"]);
  assert.equal(bad.code, 2);
  assert.match(
    bad.err,
    /no completion for shell "tcsh" \(shells: bash, zsh, fish\)/,
  );
});

Deno.test({
  name: "the awk program lists the keys one level under profiles:",
  ignore: !hasAwk,
  fn: async () => {
    await withClientConfig(CLIENT_CONFIG, async (path) => {
      const out = await run("awk", [PROFILE_NAMES_AWK, path]);
      assert.deepEqual(out.trim().split("\n"), ["work", "home-1", "lab"]);
    });
    await withClientConfig(
      "profiles:\n    deep:\n        server_host: a\n    other:\n        server_host: b\n",
      async (path) => {
        const out = await run("awk", [PROFILE_NAMES_AWK, path]);
        assert.deepEqual(out.trim().split("\n"), ["deep", "other"]);
      },
    );
  },
});

Deno.test({
  name:
    "the bash script passes bash -n and registers `complete -F _openme openme` when sourced from the CLI",
  ignore: !hasBash,
  fn: async () => {
    await withClientConfig("", async (_path, dir) => {
      const script = join(dir, "openme.bash");
      await Deno.writeTextFile(script, bashCompletionScript());
      await run("bash", ["-n", script]);
      const out = await run("bash", [
        "-c",
        `source <(deno run -A --no-prompt ${MAIN_TS} completion bash) && complete -p openme`,
      ]);
      assert.equal(out.trim(), "complete -F _openme openme");
    });
  },
});

Deno.test({
  name:
    "bash completes commands, flags, flag values and profile names from --client-config",
  ignore: !hasBash || !hasAwk,
  fn: async () => {
    await withClientConfig(CLIENT_CONFIG, async (path, dir) => {
      const script = join(dir, "openme.bash");
      await Deno.writeTextFile(script, bashCompletionScript());
      const complete = async (words: string[]): Promise<string[]> => {
        const quoted = words.map((w) => `'${w}'`).join(" ");
        const out = await run("bash", [
          "-c",
          `source '${script}'; COMP_WORDS=(${quoted}); COMP_CWORD=${
            words.length - 1
          }; _openme; printf '%s\\n' "\${COMPREPLY[@]}"`,
        ], { HOME: dir });
        return out.split("\n").filter((l) => l !== "").sort();
      };
      assert.deepEqual(await complete(["openme", "kn"]), ["knock"]);
      assert.deepEqual(await complete(["openme", "knock", "--i"]), [
        "--interval",
        "--ip",
        "--ipv4",
        "--ipv6",
      ]);
      assert.deepEqual(
        await complete(["openme", "--client-config", path, "knock", ""]),
        ["home-1", "lab", "work"],
      );
      assert.deepEqual(
        await complete(["openme", "--client-config", path, "status", "w"]),
        ["work"],
      );
      // A second positional gets nothing; flag values are skipped when counting.
      assert.deepEqual(
        await complete([
          "openme",
          "--client-config",
          path,
          "knock",
          "work",
          "",
        ]),
        [],
      );
      assert.deepEqual(
        await complete([
          "openme",
          "--client-config",
          path,
          "knock",
          "--ip",
          "192.0.2.9",
          "",
        ]),
        ["home-1", "lab", "work"],
      );
      assert.deepEqual(await complete(["openme", "completion", ""]), [
        "bash",
        "fish",
        "zsh",
      ]);
      assert.deepEqual(await complete(["openme", "--log-level", "w"]), [
        "warn",
      ]);
      assert.deepEqual(await complete(["openme", "init", "--firewall", ""]), [
        "iptables",
        "nft",
      ]);
      // Without --client-config the default ~/.openme/config.yaml is read.
      await Deno.mkdir(join(dir, ".openme"));
      await Deno.writeTextFile(
        join(dir, ".openme", "config.yaml"),
        "profiles:\n  default:\n    server_host: a\n",
      );
      assert.deepEqual(await complete(["openme", "profiles", ""]), ["default"]);
    });
  },
});

Deno.test({
  name:
    "the zsh script parses, registers _openme with compinit and lists profile names",
  ignore: !hasZsh || !hasAwk,
  fn: async () => {
    await withClientConfig(CLIENT_CONFIG, async (path, dir) => {
      const script = join(dir, "_openme");
      await Deno.writeTextFile(script, zshCompletionScript());
      await run("zsh", ["-n", script]);
      const out = await run("zsh", [
        "-c",
        `autoload -U compinit && compinit -u -d '${
          join(dir, "zcompdump")
        }' && source '${script}' && print -- \$_comps[openme] && words=(openme --client-config '${path}' knock '') && CURRENT=5 && _openme_profiles`,
      ], { HOME: dir });
      assert.deepEqual(out.trim().split("\n"), [
        "_openme",
        "work",
        "home-1",
        "lab",
      ]);
    });
  },
});

Deno.test({
  name:
    "the fish script parses and completes commands, flags and profile names",
  ignore: !hasFish || !hasAwk,
  fn: async () => {
    await withClientConfig(CLIENT_CONFIG, async (path, dir) => {
      const script = join(dir, "openme.fish");
      await Deno.writeTextFile(script, fishCompletionScript());
      await run("fish", ["-n", script]);
      const complete = async (line: string): Promise<string[]> => {
        const out = await run("fish", [
          "--no-config",
          "-c",
          `source '${script}'; complete -C '${line}'`,
        ], { HOME: dir });
        return out.split("\n").filter((l) => l !== "").map((l) =>
          l.split("\t")[0]
        ).sort();
      };
      assert.deepEqual(await complete("openme kn"), ["knock"]);
      assert.deepEqual(
        await complete(`openme --client-config ${path} knock `),
        ["home-1", "lab", "work"],
      );
      assert.deepEqual(
        await complete(`openme --client-config ${path} knock work `),
        [],
      );
      assert.deepEqual(await complete("openme completion "), [
        "bash",
        "fish",
        "zsh",
      ]);
      assert.ok((await complete("openme knock --i")).includes("--interval"));
    });
  },
});
