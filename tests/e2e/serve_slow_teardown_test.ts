/**
 * `openme serve` on SIGTERM with a firewall slower than the 2 s shutdown
 * budget: it must warn and finish the teardown, then exit 0, never exit
 * before the rules are removed. The real CLI runs in a network namespace of
 * its own (for its ports) with fake `iptables`/`ip6tables` first in PATH,
 * whose listing takes 1.5 s each once the test asks for it. Root only.
 */
import assert from "node:assert/strict";
import {
  openmeCommand,
  run,
  runOk,
  testbedUnavailable,
  waitFor,
} from "../../scripts/testbed.ts";

/** Fake iptables: logs each call; `-S` sleeps 1.5 s once the file `slow` exists. */
const FAKE_TOOL = `#!/bin/sh
echo "$(basename "$0") $*" >> "$FAKE_DIR/calls.log"
case " $* " in
  *" -S "*) [ -f "$FAKE_DIR/slow" ] && sleep 1.5 ;;
esac
exit 0
`;

const skip = testbedUnavailable("iptables");
if (skip !== null) {
  console.warn(`SKIP serve shutdown with a slow firewall: ${skip}`);
}

Deno.test({
  name:
    "serve with a firewall slower than the shutdown budget warns, finishes the teardown and exits 0",
  ignore: skip !== null,
  fn: async () => {
    const ns = `om-slowtd-${Deno.pid}`;
    const dir = await Deno.makeTempDir({ prefix: "openme-slow-teardown-" });
    const config = `${dir}/config.yaml`;
    const stateFile = `${dir}/state.json`;
    let child: Deno.ChildProcess | null = null;
    await runOk(["ip", "netns", "add", ns]);
    try {
      for (const tool of ["iptables", "ip6tables"]) {
        await Deno.writeTextFile(`${dir}/${tool}`, FAKE_TOOL);
        await Deno.chmod(`${dir}/${tool}`, 0o755);
      }
      const init = await run(openmeCommand([
        "--config",
        config,
        "init",
        "--server",
        "192.0.2.1",
        "--firewall",
        "iptables",
      ]));
      assert.equal(init.code, 0, init.stderr);
      const path = `${dir}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`;
      child = new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          ns,
          ...openmeCommand([
            "--config",
            config,
            "serve",
            "--state-file",
            stateFile,
          ]),
        ],
        env: { NO_COLOR: "1", PATH: path, FAKE_DIR: dir },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const output = child.output();
      const started = child;
      await waitFor(async () => {
        try {
          const state = JSON.parse(await Deno.readTextFile(stateFile));
          return state.pid === started.pid;
        } catch {
          return false;
        }
      }, { timeoutMs: 60_000, what: "openme serve to start" });
      await Deno.writeTextFile(`${dir}/slow`, "");
      const callsBefore = (await Deno.readTextFile(`${dir}/calls.log`))
        .trimEnd().split("\n").length;
      const stopAt = performance.now();
      child.kill("SIGTERM");
      const result = await output;
      child = null;
      const took = performance.now() - stopAt;
      const stderr = new TextDecoder().decode(result.stderr);
      assert.equal(result.code, 0, stderr);
      assert.ok(took >= 3000, `teardown ran (took ${Math.round(took)} ms)`);
      assert.match(
        stderr,
        /WARN {2}shutdown is taking longer than 2000 ms \(slow firewall\?\); still removing openme's rules/,
      );
      assert.match(stderr, /openme stopped; every rule it added is removed/);
      const teardown = (await Deno.readTextFile(`${dir}/calls.log`))
        .trimEnd().split("\n").slice(callsBefore);
      assert.deepEqual(
        teardown.filter((call) => call.includes(" -S ")),
        ["iptables -w -v -S INPUT", "ip6tables -w -v -S INPUT"],
      );
    } finally {
      if (child !== null) {
        try {
          child.kill("SIGKILL");
        } catch {
          // already gone
        }
        await child.status;
      }
      await run(["ip", "netns", "del", ns]);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
