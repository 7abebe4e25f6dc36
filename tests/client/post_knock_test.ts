/**
 * Tests of lib/client/post_knock.ts: the command runs with the platform
 * shell, sees OPENME_PROFILE/OPENME_SERVER/OPENME_PORT, and its exit code is
 * returned.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { runPostKnock } from "../../lib/client/post_knock.ts";

const canRun = Deno.build.os !== "windows";
if (!canRun) console.warn("SKIP post_knock shell tests: need sh (not Windows)");

Deno.test({
  name:
    "runPostKnock exports the profile, server and port and returns the exit code",
  ignore: !canRun,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "openme-post-" });
    try {
      const out = join(dir, "env.txt");
      const code = await runPostKnock(
        `printf '%s|%s|%s|%s' "$OPENME_PROFILE" "$OPENME_SERVER" "$OPENME_PORT" "$HOME" > '${out}'; exit 7`,
        { profile: "work", server: "vpn.example.com", port: 40000 },
      );
      assert.equal(code, 7);
      assert.equal(
        await Deno.readTextFile(out),
        `work|vpn.example.com|40000|${Deno.env.get("HOME") ?? ""}`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "runPostKnock returns 0 for a command that succeeds",
  ignore: !canRun,
  fn: async () => {
    assert.equal(
      await runPostKnock("true", { profile: "p", server: "s", port: 1 }),
      0,
    );
  },
});

Deno.test({
  name: "runPostKnock on Windows starts cmd.exe, and says so when it cannot",
  ignore: !canRun,
  fn: async () => {
    await assert.rejects(
      () =>
        runPostKnock("echo hi", {
          profile: "p",
          server: "s",
          port: 1,
          platform: "windows",
        }),
      /post_knock: cannot start cmd\.exe/,
    );
  },
});
