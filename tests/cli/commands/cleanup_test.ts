/**
 * Tests of `openme cleanup` as a subprocess with a PATH of fake firewall
 * tools: a tool that is not installed is skipped, any other failure of one
 * tool fails the command after the other tool was tried.
 */

import assert from "node:assert/strict";
import { withTempDir } from "../../support/files.ts";
import { MAIN_TS } from "../../../scripts/testbed.ts";

/** Runs `openme cleanup` with PATH set to dir only. */
async function cleanup(
  dir: string,
): Promise<{ code: number; out: string; err: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-prompt", MAIN_TS, "cleanup"],
    env: { PATH: dir, NO_COLOR: "1" },
    stdin: "null",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return {
    code: output.code,
    out: text(output.stdout),
    err: text(output.stderr),
  };
}

Deno.test({
  name:
    "openme cleanup skips firewall tools that are not installed and exits 0",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    await withTempDir("openme-cleanup-", async (dir) => {
      const result = await cleanup(dir);
      assert.equal(result.code, 0, result.err);
      assert.deepEqual(result.out.trim().split("\n"), [
        "nft: not installed, nothing to remove",
        "iptables: not installed, nothing to remove",
      ]);
    });
  },
});

Deno.test({
  name:
    "openme cleanup tries iptables when nft fails, then exits 1 with nft's error",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    await withTempDir("openme-cleanup-", async (dir) => {
      await Deno.writeTextFile(
        `${dir}/nft`,
        "#!/bin/sh\necho 'Error: Operation not permitted' >&2\nexit 1\n",
        { mode: 0o755 },
      );
      await Deno.writeTextFile(
        `${dir}/iptables`,
        `#!/bin/sh\necho "$0 $*" >> ${dir}/iptables.log\necho '-P INPUT ACCEPT'\n`,
        { mode: 0o755 },
      );
      await Deno.copyFile(`${dir}/iptables`, `${dir}/ip6tables`);
      const result = await cleanup(dir);
      assert.equal(result.code, 1);
      assert.match(
        result.err,
        /nft -t -j list table inet filter failed \(exit 1\): Error: Operation not permitted/,
      );
      const listed = await Deno.readTextFile(`${dir}/iptables.log`);
      assert.match(listed, /iptables -w -v -S INPUT/);
      assert.match(listed, /ip6tables -w -v -S INPUT/);
    });
  },
});
