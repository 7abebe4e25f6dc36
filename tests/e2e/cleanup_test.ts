/**
 * `openme cleanup` as systemd runs it after a crash, on both backends: serve
 * (from source, in a testbed with the README's default-deny ruleset), a
 * knock, kill -9, a broken config, then the unit's ExecStopPost command.
 * Afterwards no openme rule, set, jump or chain is left and the operator's
 * ruleset is exactly what it was before openme started.
 */

import assert from "node:assert/strict";
import { ServerBed } from "../../bench/harness.ts";
import type { StateFile } from "../../lib/server/state_file.ts";
import {
  CLIENT_V4,
  openmeCommand,
  REPO_DIR,
  type TestbedBackend,
  testbedUnavailable,
  waitFor,
} from "../../scripts/testbed.ts";

/** Deadline for the knock to open. */
const EVENT_TIMEOUT_MS = 60_000;

/** The unit's ExecStopPost command line, split into words. */
async function execStopPost(): Promise<string[]> {
  const unit = await Deno.readTextFile(`${REPO_DIR}/openme.service`);
  const line = /^ExecStopPost=(.+)$/m.exec(unit);
  assert.ok(line !== null, "openme.service has no ExecStopPost= line");
  return line[1].trim().split(/\s+/);
}

async function cleanupScenario(backend: TestbedBackend): Promise<void> {
  const [binary, ...args] = await execStopPost();
  assert.match(binary, /\/openme$/);
  const sb = await ServerBed.create({
    prefix: `om-clean-${backend[0]}`,
    backend,
  });
  try {
    const operatorRules = await sb.bed.serverRules();
    const server = await sb.startServer();
    const knock = await sb.knock();
    assert.equal(knock.code, 0, knock.stderr);
    await waitFor(async () => {
      const text = await Deno.readTextFile(server.stateFile).catch(() => "{}");
      const state = JSON.parse(text) as Partial<StateFile>;
      return state.active_sessions?.some((s) => s.ip === CLIENT_V4) === true;
    }, { timeoutMs: EVENT_TIMEOUT_MS, what: "the knock's session" });
    await server.proc.stop("SIGKILL");
    const left = await sb.bed.serverRules();
    assert.match(left, /openme-gate/);
    assert.match(
      left,
      backend === "nft" ? /comment "openme"/ : /--comment openme /,
    );
    // The unit runs it with the default config, which is broken now: so is this one.
    await Deno.writeTextFile(sb.configPath, "server: [not: valid\n");
    const result = await sb.bed.exec(sb.bed.serverNs, [
      ...openmeCommand(args),
      "--config",
      sb.configPath,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await sb.bed.serverRules(), operatorRules);
  } finally {
    await sb.destroy();
  }
}

for (const backend of ["nft", "iptables"] as const) {
  const skip = testbedUnavailable(backend);
  if (skip !== null) console.warn(`SKIP cleanup e2e (${backend}): ${skip}`);
  Deno.test({
    name:
      `cleanup (${backend}): after kill -9 and with a broken config, the unit's ExecStopPost removes every openme rule and leaves the operator's ruleset as it was`,
    ignore: skip !== null,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: () => cleanupScenario(backend),
  });
}
