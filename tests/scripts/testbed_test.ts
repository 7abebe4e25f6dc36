import assert from "node:assert/strict";
import {
  run,
  SERVER_V4,
  SERVER_V6,
  Testbed,
  testbedUnavailable,
  waitFor,
} from "../../scripts/testbed.ts";

const unavailable = testbedUnavailable("nft");
if (unavailable !== null) {
  console.warn(`SKIP testbed namespaces: ${unavailable}`);
}

/** Exit code of a process killed by SIGKILL (128 + 9). */
const KILLED_BY_SIGKILL = 137;

Deno.test("run collects exit code and output, and kills a command at its timeout", async () => {
  const ok = await run(["sh", "-c", "echo out; echo err >&2; exit 3"]);
  assert.deepEqual(ok, { code: 3, stdout: "out\n", stderr: "err\n" });
  // Left alone, the command would exit 0 after 20 s.
  const slow = await run(["sleep", "20"], { timeoutMs: 200 });
  assert.equal(slow.code, KILLED_BY_SIGKILL);
});

Deno.test("waitFor returns once the condition holds and throws naming what it waited for", async () => {
  let n = 0;
  await waitFor(() => ++n >= 3, {
    timeoutMs: 60_000,
    intervalMs: 10,
    what: "n",
  });
  assert.equal(n, 3);
  await assert.rejects(
    () =>
      waitFor(() => false, { timeoutMs: 50, intervalMs: 10, what: "never" }),
    /waiting for never/,
  );
});

Deno.test({
  name:
    "a testbed keeps port 22 closed under default deny, opens it for an accept rule, and leaves no namespace",
  ignore: unavailable !== null,
  fn: async () => {
    const bed = await Testbed.create({ prefix: "om-tbt" });
    try {
      assert.equal(await bed.tcpOpen(SERVER_V4, 22), false);
      await bed.exec(bed.serverNs, [
        "nft",
        "add",
        "rule",
        "inet",
        "filter",
        "input",
        "tcp",
        "dport",
        "22",
        "accept",
      ]);
      assert.equal(await bed.tcpOpen(SERVER_V4, 22), true);
      assert.equal(await bed.tcpOpen(SERVER_V6, 22), true);
    } finally {
      await bed.destroy();
    }
    const left = (await run(["ip", "netns", "list"])).stdout;
    assert.doesNotMatch(left, new RegExp(bed.serverNs));
    assert.doesNotMatch(left, new RegExp(bed.clientNs));
  },
});
