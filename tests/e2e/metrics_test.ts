/**
 * The metrics file end to end: the real CLI as root in two network
 * namespaces with nftables (scripts/testbed.ts). `init` writes
 * `metrics_file: ""`, which the test points into the testbed; `serve` writes
 * the file at start, a knock, a revoke and a refused knock later, and at
 * SIGTERM; the final file is checked by value and with `promtool check
 * metrics`.
 */
import assert from "node:assert/strict";
import denoConfig from "../../deno.json" with { type: "json" };
import type { StateFile } from "../../lib/server/state_file.ts";
import {
  openmeCommand,
  SERVER_V4,
  Testbed,
  testbedUnavailable,
  waitFor,
} from "../../scripts/testbed.ts";
import {
  assertPromtoolMetrics,
  PROMTOOL_MISSING,
} from "../support/promtool.ts";

/** Deadline for what the server does within a second or two (start, a knock, a reload, stop). */
const EVENT_TIMEOUT_MS = 60_000;

const skip = testbedUnavailable("nft");
if (skip !== null) console.warn(`SKIP metrics end-to-end: ${skip}`);

Deno.test({
  name:
    "openme serve with nft writes the metrics file: a knock, a refused knock, a reload and the firewall operations, accepted by promtool",
  ignore: skip !== null,
  fn: async () => {
    const bed = await Testbed.create({ prefix: "om-metrics", backend: "nft" });
    try {
      const config = `${bed.dir}/config.yaml`;
      const stateFile = `${bed.dir}/sessions.json`;
      const metricsFile = `${bed.dir}/openme.prom`;
      const server = async (args: string[]): Promise<string> => {
        const result = await bed.openme(bed.serverNs, [
          "--config",
          config,
          ...args,
        ]);
        assert.equal(result.code, 0, `${args.join(" ")}: ${result.stderr}`);
        return result.stdout;
      };
      const knock = async (name: string): Promise<void> => {
        const result = await bed.openme(bed.clientNs, [
          "--client-config",
          `${bed.dir}/${name}.yaml`,
          "knock",
        ]);
        assert.equal(result.code, 0, `knock ${name}: ${result.stderr}`);
      };
      const state = async (): Promise<StateFile | null> => {
        try {
          return JSON.parse(await Deno.readTextFile(stateFile));
        } catch {
          return null; // not written yet, or being replaced
        }
      };

      await server(["init", "--server", SERVER_V4, "--firewall", "nft"]);
      const text = await Deno.readTextFile(config);
      assert.ok(text.includes('\n  metrics_file: ""\n'), "init writes it off");
      await Deno.writeTextFile(
        config,
        text.replace('metrics_file: ""', `metrics_file: ${metricsFile}`),
      );
      for (const name of ["alice", "bob"]) {
        await Deno.writeTextFile(
          `${bed.dir}/${name}.yaml`,
          await server(["add", name]),
          { mode: 0o600 },
        );
      }
      const serve = bed.spawn(
        bed.serverNs,
        openmeCommand([
          "--config",
          config,
          "serve",
          "--state-file",
          stateFile,
        ]),
      );
      await waitFor(async () => (await state())?.pid === serve.child.pid, {
        timeoutMs: EVENT_TIMEOUT_MS,
        what: "openme serve to start",
      });
      const atStart = await Deno.readTextFile(metricsFile);
      assert.match(atStart, /^openme_open_sessions 0$/m, "written at start");

      await knock("alice");
      await waitFor(async () => (await state())?.accepted === 1, {
        timeoutMs: EVENT_TIMEOUT_MS,
        what: "alice's knock accepted",
      });
      await server(["revoke", "bob"]);
      await waitFor(() => serve.output().includes("config reloaded"), {
        timeoutMs: EVENT_TIMEOUT_MS,
        what: "the reload after revoke",
      });
      await knock("bob");
      await waitFor(
        async () => (await state())?.drops?.unknown_client === 1,
        { timeoutMs: EVENT_TIMEOUT_MS, what: "bob's knock refused" },
      );
      // A 40-byte datagram is dropped by the kernel gate; the periodic
      // firewall check reads its counter into the state and the metrics.
      await bed.execOk(bed.clientNs, [
        "bash",
        "-c",
        `printf '%040d' 0 > /dev/udp/${SERVER_V4}/54154`,
      ]);
      await waitFor(
        async () => ((await state())?.kernel_drops?.size ?? 0) >= 1,
        { timeoutMs: EVENT_TIMEOUT_MS, what: "the gate's size counter read" },
      );
      assert.equal(await serve.stop("SIGTERM", EVENT_TIMEOUT_MS), 0);

      const final = await Deno.readTextFile(metricsFile);
      const has = (line: string): void =>
        assert.ok(final.includes(`\n${line}\n`), `${line}\n${final}`);
      has('openme_knocks_accepted_total{client="alice"} 1');
      has('openme_datagrams_total{outcome="accepted"} 1');
      has(
        'openme_datagrams_total{outcome="dropped",reason="unknown_client"} 1',
      );
      has('openme_config_reloads_total{result="ok"} 1');
      assert.match(
        final,
        /^openme_kernel_gate_drops_total\{reason="size"\} [1-9]/m,
      );
      has("openme_open_sessions 0");
      has(`openme_build_info{version="${denoConfig.version}",backend="nft"} 1`);
      for (const op of ["setup", "open", "teardown"]) {
        has(
          `openme_firewall_operations_total{operation="${op}",result="ok"} 1`,
        );
        has(
          `openme_firewall_operation_duration_seconds_count{operation="${op}"} 1`,
        );
      }
      assert.doesNotMatch(final, /result="error"} [1-9]/);
      if (PROMTOOL_MISSING === null) await assertPromtoolMetrics(final);
    } finally {
      await bed.destroy();
    }
  },
});
