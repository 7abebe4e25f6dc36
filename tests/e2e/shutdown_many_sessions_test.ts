/**
 * Shutdown with hundreds of sessions against the real firewall: an
 * OpenmeServer whose nft or iptables backend runs the tools in a network
 * namespace of its own (backend `netns` option), 504 sessions (63 clients,
 * 8 target addresses each, IPv4 and IPv6; set up by bench/harness.ts), then
 * stop(). It must remove them in a few tool runs (as many as for one
 * session, so shutdown does not grow with the session count) and leave no
 * rule tagged openme, with the base ruleset as it was. How long that takes
 * is a figure for bench/ (`bench/server_load.ts shutdown`), not a test.
 * Root only; skipped visibly otherwise.
 */
import assert from "node:assert/strict";
import {
  type ManySessionsServer,
  startServerWithSessions,
} from "../../bench/harness.ts";
import { getLogLevel, setLogLevel, setLogSink } from "../../lib/log.ts";
import { MAX_SESSIONS_PER_CLIENT } from "../../lib/server/session_manager.ts";
import {
  applyDefaultDeny,
  findOnPath,
  run,
  runOk,
  type TestbedBackend,
  testbedUnavailable,
} from "../../scripts/testbed.ts";

/** Clients × MAX_SESSIONS_PER_CLIENT sessions: 504. */
const CLIENTS = 63;
/**
 * Most firewall tool runs a stop may take, whatever the session count: a
 * listing and one transaction for nft, the same for each of iptables and
 * ip6tables. One run per session would be what makes a stop slow.
 */
const MAX_TEARDOWN_TOOL_RUNS = 4;

let namespaceCounter = 0;

async function ruleset(ns: string, backend: TestbedBackend): Promise<string> {
  if (backend === "nft") {
    return (await runOk(["ip", "netns", "exec", ns, "nft", "list", "ruleset"]))
      .stdout;
  }
  let text = "";
  for (const tool of ["iptables-save", "ip6tables-save"]) {
    const out = (await runOk(["ip", "netns", "exec", ns, tool])).stdout;
    // Drop the comment and counter lines, which change on every save.
    text += out.split("\n").filter((line) =>
      !line.startsWith("#") && !line.startsWith(":")
    ).join("\n");
  }
  return text;
}

function skipReason(backend: TestbedBackend): string | null {
  const reason = testbedUnavailable(backend);
  if (reason !== null) return reason;
  if (backend === "iptables") {
    for (const tool of ["iptables-save", "iptables-restore"]) {
      if (findOnPath(tool) === null) return `needs ${tool}`;
    }
  }
  return null;
}

for (const backendKind of ["nft", "iptables"] as const) {
  const skip = skipReason(backendKind);
  if (skip !== null) {
    console.warn(
      `SKIP shutdown with 504 sessions (${backendKind}): ${skip}`,
    );
  }
  Deno.test({
    name:
      `${backendKind}: stop with 504 sessions removes every openme rule in at most ${MAX_TEARDOWN_TOOL_RUNS} tool runs`,
    ignore: skip !== null,
    fn: async () => {
      const ns = `om-shut-${Deno.pid}-${++namespaceCounter}`;
      const dir = await Deno.makeTempDir({ prefix: "openme-shutdown-" });
      const logs: string[] = [];
      const previousSink = setLogSink((line) => logs.push(line));
      const previousLevel = getLogLevel();
      setLogLevel("debug");
      let server: ManySessionsServer | null = null;
      await runOk(["ip", "netns", "add", ns]);
      try {
        await applyDefaultDeny(ns, backendKind);
        const baseline = await ruleset(ns, backendKind);
        assert.ok(!baseline.includes("openme"));
        server = await startServerWithSessions(backendKind, {
          netns: ns,
          dir,
          clients: CLIENTS,
        });
        const running = server;
        assert.equal(
          running.sessionCount(),
          CLIENTS * MAX_SESSIONS_PER_CLIENT,
        );
        const before = await ruleset(ns, backendKind);
        const perKnock = before.split("\n").filter((line) =>
          /comment "?openme"?( |$)/.test(line) && !/openme-/.test(line)
        );
        // 504 sessions × 22/tcp.
        assert.equal(perKnock.length, CLIENTS * MAX_SESSIONS_PER_CLIENT);

        const mark = logs.length;
        await running.stop();
        // Removing 504 sessions takes as many tool runs as removing one: a
        // listing and one transaction per rule table.
        const toolRuns = logs.slice(mark).filter((line) =>
          line.includes("firewall: running ")
        );
        assert.ok(
          toolRuns.length >= 1 && toolRuns.length <= MAX_TEARDOWN_TOOL_RUNS,
          `stop ran ${toolRuns.length} firewall tool(s):\n${
            toolRuns.map((line) => line.slice(0, 200)).join("\n")
          }`,
        );
        const after = await ruleset(ns, backendKind);
        assert.ok(!after.includes("openme"), after);
        assert.equal(after, baseline);
        assert.equal(
          logs.filter((line) => line.endsWith(": shutdown")).length,
          CLIENTS * MAX_SESSIONS_PER_CLIENT,
        );
        assert.ok(
          logs.some((line) => line.includes("every rule it added is removed")),
        );
      } finally {
        await server?.stop().catch(() => {});
        setLogSink(previousSink);
        setLogLevel(previousLevel);
        await run(["ip", "netns", "del", ns]);
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
