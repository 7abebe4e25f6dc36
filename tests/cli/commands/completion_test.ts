/**
 * Tests of shell completion: what `openme __complete` offers for commands,
 * flags, flag values and positional arguments (all from the command table
 * and the client config), and that the bash, zsh and fish scripts load and
 * hand the shell those candidates (each shell only when installed).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  COMPLETE_FILES,
  completeWords,
} from "../../../lib/cli/commands/completion.ts";
import { COMMANDS, findCommand, GLOBAL_FLAGS } from "../../../lib/cli/spec.ts";
import { findOnPath, MAIN_TS, run } from "../../../scripts/testbed.ts";
import { openme, writeTestProfile } from "../../support/cli.ts";
import { withTempDir } from "../../support/files.ts";

const SHELLS = { bash: findOnPath("bash"), zsh: findOnPath("zsh") };
const FISH = findOnPath("fish");
for (const [shell, path] of Object.entries({ ...SHELLS, fish: FISH })) {
  if (path === null) {
    console.warn(`SKIP ${shell} completion tests: ${shell} is not installed`);
  }
}

/** The words of the candidates, without their descriptions, sorted. */
async function complete(...words: string[]): Promise<string[]> {
  return (await completeWords(words)).map((c) => c.split("\t")[0]).sort();
}

/**
 * Runs fn with a temporary directory holding a client config with the
 * profiles work and home-1 (also at HOME/.openme/config.yaml, HOME being the
 * directory) and an `openme` on PATH that runs main.ts; env is what the
 * shells need.
 */
async function withCompletionHome(
  fn: (
    env: Record<string, string>,
    config: string,
    dir: string,
  ) => Promise<void>,
): Promise<void> {
  await withTempDir("openme-completion-", async (dir) => {
    const config = join(dir, ".openme", "config.yaml");
    await writeTestProfile(config, {
      name: "work",
      host: "192.0.2.1",
      port: 1,
    });
    await writeTestProfile(config, {
      name: "home-1",
      host: "192.0.2.2",
      port: 1,
    });
    await Deno.mkdir(join(dir, "bin"));
    await Deno.writeTextFile(
      join(dir, "bin", "openme"),
      `#!/bin/sh\nexec '${Deno.execPath()}' run -A --no-prompt '${MAIN_TS}' "$@"\n`,
      { mode: 0o755 },
    );
    const env = {
      HOME: dir,
      PATH: `${join(dir, "bin")}:${Deno.env.get("PATH")}`,
    };
    await fn(env, config, dir);
  });
}

Deno.test("__complete offers commands, and a command's own and the global flags", async () => {
  assert.deepEqual(
    await complete(""),
    [
      ...COMMANDS.map((c) => c.name),
      "help",
    ].sort(),
  );
  assert.deepEqual(await complete("kn"), ["knock"]);
  assert.deepEqual(await complete("help", "st"), ["status"]);
  assert.deepEqual(await complete("knock", "--i"), [
    "--interval",
    "--ip",
    "--ipv4",
    "--ipv6",
  ]);
  const all = await complete("knock", "-");
  for (const flag of [...GLOBAL_FLAGS, ...findCommand("knock")!.flags]) {
    assert.ok(all.includes(`--${flag.name}`), `--${flag.name}`);
    if (flag.short !== undefined) assert.ok(all.includes(`-${flag.short}`));
  }
  assert.ok(!all.includes("--force"), "another command's flag");
  const described = await completeWords(["sessions", "--w"]);
  assert.deepEqual(described, ["--watch\trefresh every second until Ctrl-C"]);
});

Deno.test("__complete offers flag values: fixed choices, files for paths, nothing for free text", async () => {
  assert.deepEqual(await complete("--log-level", "w"), ["warn"]);
  assert.deepEqual(await complete("init", "--firewall", ""), [
    "iptables",
    "nft",
  ]);
  assert.deepEqual(await completeWords(["--config", ""]), [COMPLETE_FILES]);
  assert.deepEqual(await completeWords(["add", "x", "--qr-out", "a"]), [
    COMPLETE_FILES,
  ]);
  assert.deepEqual(await completeWords(["add", "x", "--out", ""]), [
    COMPLETE_FILES,
  ]);
  assert.deepEqual(await complete("knock", "--ip", ""), []);
});

Deno.test("__complete offers profile names from --client-config, shells, files, and nothing past the positionals", async () => {
  await withCompletionHome(async (_env, config) => {
    for (const command of ["knock", "status", "profiles"]) {
      assert.deepEqual(
        await complete("--client-config", config, command, ""),
        ["home-1", "work"],
        command,
      );
    }
    assert.deepEqual(
      await complete(
        "knock",
        "--client-config",
        config,
        "--ip",
        "192.0.2.9",
        "w",
      ),
      ["work"],
      "flag values are not counted as positionals",
    );
    assert.deepEqual(
      await complete("--client-config", config, "status", "work", ""),
      [],
    );
    assert.deepEqual(
      await complete("--client-config", config, "knock", "work", ""),
      ["home-1", "work"],
      "knock takes several profiles",
    );
    assert.deepEqual(
      await complete("--client-config", join(config, "missing"), "knock", ""),
      [],
    );
  });
  assert.deepEqual(await complete("completion", ""), ["bash", "fish", "zsh"]);
  assert.deepEqual(await completeWords(["import", ""]), [COMPLETE_FILES]);
  assert.deepEqual(await complete("revoke", ""), []);
});

Deno.test("openme completion prints a script per shell and rejects an unknown shell with exit 2", async () => {
  for (const shell of ["bash", "zsh", "fish"]) {
    const result = await openme(["completion", shell]);
    assert.equal(result.code, 0);
    assert.match(
      result.out,
      new RegExp(`^#.*${shell} completion for openme`, "m"),
    );
    assert.ok(result.out.includes("openme __complete"), shell);
  }
  const bad = await openme(["completion", "tcsh"]);
  assert.equal(bad.code, 2);
  assert.match(
    bad.err,
    /no completion for shell "tcsh" \(shells: bash, zsh, fish\)/,
  );
  assert.match(bad.err, /^Usage: openme completion bash\|zsh\|fish$/m);
});

Deno.test({
  name:
    "bash: the script loads from `openme completion bash` and fills COMPREPLY with commands, profile names and files",
  ignore: SHELLS.bash === null,
  fn: async () => {
    await withCompletionHome(async (env, _config, dir) => {
      await Deno.writeTextFile(join(dir, "notes.txt"), "");
      const reply = async (words: string[]): Promise<string[]> => {
        const quoted = words.map((w) => `'${w}'`).join(" ");
        const result = await run([
          "bash",
          "-c",
          `source <(openme completion bash) && complete -p openme && COMP_WORDS=(${quoted}) && COMP_CWORD=${
            words.length - 1
          } && _openme && printf '%s\\n' "\${COMPREPLY[@]}"`,
        ], { env, timeoutMs: 60_000 });
        assert.equal(result.code, 0, result.stderr);
        const lines = result.stdout.split("\n").filter((l) => l !== "");
        assert.equal(lines[0], "complete -F _openme openme");
        return lines.slice(1).sort();
      };
      assert.deepEqual(await reply(["openme", "kn"]), ["knock"]);
      assert.deepEqual(await reply(["openme", "knock", ""]), [
        "home-1",
        "work",
      ]);
      assert.deepEqual(await reply(["openme", "import", `${dir}/no`]), [
        `${dir}/notes.txt`,
      ]);
    });
  },
});

Deno.test({
  name:
    "zsh: the script parses, registers _openme with compinit and passes candidates with descriptions to _describe",
  ignore: SHELLS.zsh === null,
  fn: async () => {
    await withCompletionHome(async (env, _config, dir) => {
      const script = join(dir, "_openme");
      await Deno.writeTextFile(
        script,
        (await openme(["completion", "zsh"])).out,
      );
      const result = await run([
        "zsh",
        "-c",
        `autoload -U compinit && compinit -u -d '${dir}/zcompdump' && source '${script}' && print -- $_comps[openme] &&
         _describe() { print -l -- \${(P)2}; } && _files() { print FILES; } &&
         words=(openme knock ''); CURRENT=3; _openme;
         words=(openme sessions --w); CURRENT=3; _openme;
         words=(openme import ''); CURRENT=3; _openme`,
      ], { env, timeoutMs: 60_000 });
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(result.stdout.trim().split("\n"), [
        "_openme",
        "work",
        "home-1",
        "--watch:refresh every second until Ctrl-C",
        "FILES",
      ]);
    });
  },
});

Deno.test({
  name:
    "fish: the script parses and completes commands, profile names and files",
  ignore: FISH === null,
  fn: async () => {
    await withCompletionHome(async (env, _config, dir) => {
      const script = join(dir, "openme.fish");
      await Deno.writeTextFile(
        script,
        (await openme(["completion", "fish"])).out,
      );
      await Deno.writeTextFile(join(dir, "notes.txt"), "");
      const completions = async (line: string): Promise<string[]> => {
        const result = await run([
          "fish",
          "--no-config",
          "-c",
          `source '${script}'; complete -C '${line}'`,
        ], { env, timeoutMs: 60_000 });
        assert.equal(result.code, 0, result.stderr);
        return result.stdout.split("\n").filter((l) => l !== "").map((l) =>
          l.split("\t")[0]
        ).sort();
      };
      assert.deepEqual(await completions("openme kn"), ["knock"]);
      assert.deepEqual(await completions("openme knock "), ["home-1", "work"]);
      assert.deepEqual(await completions(`openme import ${dir}/no`), [
        `${dir}/notes.txt`,
      ]);
    });
  },
});
