/**
 * Tests of lib/platform.ts: every platform difference answered for an
 * injected platform and environment.
 */

import assert from "node:assert/strict";
import {
  clientConfigPathDisplay,
  defaultClientConfigPathFor,
  type Platform,
  serverSupported,
  shellCommand,
} from "../lib/platform.ts";

Deno.test("serverSupported accepts Linux only and names the platform otherwise", () => {
  assert.deepEqual(serverSupported({ platform: "linux" }), { ok: true });
  for (const platform of ["darwin", "windows", "freebsd"] as Platform[]) {
    const result = serverSupported({ platform });
    assert.equal(result.ok, false);
    if (!result.ok) {
      assert.match(result.message, /needs Linux/);
      assert.ok(result.message.includes(platform), result.message);
    }
  }
});

Deno.test("shellCommand uses sh -c on Linux and macOS, cmd.exe /c on Windows", () => {
  assert.deepEqual(shellCommand("ssh me@host", { platform: "linux" }), {
    program: "sh",
    args: ["-c", "ssh me@host"],
    windowsRawArguments: false,
  });
  assert.deepEqual(shellCommand("ssh me@host", { platform: "darwin" }), {
    program: "sh",
    args: ["-c", "ssh me@host"],
    windowsRawArguments: false,
  });
  // cmd.exe gets the command line verbatim inside one pair of quotes (/s),
  // so quotes in post_knock reach the program unchanged.
  assert.deepEqual(
    shellCommand('ssh "me@host" -p 22', { platform: "windows" }),
    {
      program: "cmd.exe",
      args: ["/d", "/s", "/c", '"ssh "me@host" -p 22"'],
      windowsRawArguments: true,
    },
  );
});

Deno.test("shellCommand defaults to the running platform", () => {
  const shell = shellCommand("true");
  assert.equal(shell.program, Deno.build.os === "windows" ? "cmd.exe" : "sh");
});

Deno.test("defaultClientConfigPathFor follows HOME, or USERPROFILE on Windows", () => {
  const cases: {
    platform: Platform;
    env: Record<string, string>;
    want: string;
  }[] = [
    {
      platform: "linux",
      env: { HOME: "/home/me" },
      want: "/home/me/.openme/config.yaml",
    },
    {
      platform: "darwin",
      env: { HOME: "/Users/me/" },
      want: "/Users/me/.openme/config.yaml",
    },
    {
      platform: "windows",
      env: { USERPROFILE: "C:\\Users\\me\\", HOME: "/ignored" },
      want: "C:\\Users\\me\\.openme\\config.yaml",
    },
    {
      platform: "windows",
      env: { HOMEDRIVE: "D:", HOMEPATH: "\\Users\\me" },
      want: "D:\\Users\\me\\.openme\\config.yaml",
    },
  ];
  for (const { platform, env, want } of cases) {
    assert.deepEqual(
      defaultClientConfigPathFor({ platform, env: (name) => env[name] }),
      { ok: true, path: want },
    );
  }
});

Deno.test("defaultClientConfigPathFor names the missing variable", () => {
  assert.deepEqual(
    defaultClientConfigPathFor({ platform: "linux", env: () => undefined }),
    { ok: false, variable: "HOME", display: "~/.openme/config.yaml" },
  );
  assert.deepEqual(
    defaultClientConfigPathFor({ platform: "windows", env: () => "" }),
    {
      ok: false,
      variable: "USERPROFILE",
      display: "%USERPROFILE%\\.openme\\config.yaml",
    },
  );
});

Deno.test("clientConfigPathDisplay writes the path the way each platform's docs do", () => {
  assert.equal(
    clientConfigPathDisplay({ platform: "linux" }),
    "~/.openme/config.yaml",
  );
  assert.equal(
    clientConfigPathDisplay({ platform: "windows" }),
    "%USERPROFILE%\\.openme\\config.yaml",
  );
});
