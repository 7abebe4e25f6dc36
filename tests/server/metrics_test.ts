/**
 * The metrics file: its text (names, labels, histogram) checked line by line
 * and by promtool, a server in this process that writes it on its timer and
 * at shutdown, and the README's node_exporter setup and alert rules.
 */
import assert from "node:assert/strict";
import denoConfig from "../../deno.json" with { type: "json" };
import { renderMetrics } from "../../lib/server/metrics.ts";
import { OpenmeServer } from "../../lib/server/daemon.ts";
import {
  FIREWALL_BUCKETS_SECONDS,
  KnockStats,
} from "../../lib/server/stats.ts";
import { buildKnock } from "../../lib/protocol/packet.ts";
import { run, waitFor } from "../../scripts/testbed.ts";
import { withTempDir } from "../support/files.ts";
import {
  assertPromtoolMetrics,
  PROMTOOL_MISSING,
} from "../support/promtool.ts";
import {
  captureLog,
  freshKeys,
  type LogCapture,
  RecordingBackend,
  renderTestConfig,
  sendDatagrams,
  writeByRename,
} from "./recording_backend.ts";

/** Generous bound on what the server does within a second or two. */
const WAIT_MS = 20_000;

const INPUT = { backend: "nft", startTimeSeconds: 1767225600.25 };

/** The sample lines of a metrics text (no comments), as "name{labels}" → value text. */
function samples(text: string): Map<string, string> {
  const lines = text.split("\n").filter((l) => l !== "" && !l.startsWith("#"));
  return new Map(lines.map((line) => {
    const space = line.lastIndexOf(" ");
    return [line.slice(0, space), line.slice(space + 1)];
  }));
}

/** Stats with two clients, drops, and three timed `open` calls: 3 ms, 200 ms and a failed one of 7 s. */
function busyStats(): KnockStats {
  const stats = new KnockStats();
  const log = captureLog("warn");
  try {
    stats.accept("alice");
    stats.accept("alice");
    stats.accept("bob");
    stats.drop("decrypt", "192.0.2.2");
    stats.drop("decrypt", "192.0.2.2");
    stats.drop("size", "198.51.100.7");
  } finally {
    log.restore();
  }
  stats.firewallCall("open", true, 0.003);
  stats.firewallCall("open", true, 0.2);
  stats.firewallCall("open", false, 7);
  stats.reloads.ok += 2;
  stats.reloads.error++;
  return stats;
}

Deno.test("the metrics text counts datagrams by outcome and reason, knocks by client, sessions, reloads and build info", () => {
  const got = samples(
    renderMetrics(busyStats(), { ...INPUT, openSessions: 2 }),
  );
  assert.equal(got.get('openme_datagrams_total{outcome="accepted"}'), "3");
  assert.equal(
    got.get('openme_datagrams_total{outcome="dropped",reason="decrypt"}'),
    "2",
  );
  assert.equal(
    got.get('openme_datagrams_total{outcome="dropped",reason="size"}'),
    "1",
  );
  assert.equal(got.get('openme_knocks_accepted_total{client="alice"}'), "2");
  assert.equal(got.get('openme_knocks_accepted_total{client="bob"}'), "1");
  assert.equal(got.get("openme_open_sessions"), "2");
  assert.equal(got.get('openme_config_reloads_total{result="ok"}'), "2");
  assert.equal(got.get('openme_config_reloads_total{result="error"}'), "1");
  assert.equal(
    got.get(
      `openme_build_info{version="${denoConfig.version}",backend="nft"}`,
    ),
    "1",
  );
  assert.equal(got.get("openme_start_time_seconds"), "1767225600.25");
});

Deno.test("firewall operations are counted by result from zero, with a cumulative duration histogram, its _sum and _count", () => {
  const text = renderMetrics(busyStats(), { ...INPUT, openSessions: 0 });
  const got = samples(text);
  const total = 'openme_firewall_operations_total{operation="open",result=';
  assert.equal(got.get(`${total}"ok"}`), "2");
  assert.equal(got.get(`${total}"error"}`), "1");
  // Operations that never ran are there too, so the first failure is a change.
  for (const op of ["setup", "update", "close", "check", "teardown"]) {
    const zero = `openme_firewall_operations_total{operation="${op}",result=`;
    assert.equal(got.get(`${zero}"error"}`), "0", op);
    assert.equal(got.get(`${zero}"ok"}`), "0", op);
  }
  const name = "openme_firewall_operation_duration_seconds";
  const bucket = (le: string): string | undefined =>
    got.get(`${name}_bucket{operation="open",le="${le}"}`);
  // 3 ms is in every bucket, 200 ms from 0.25 on, 7 s only in 10 and +Inf.
  assert.equal(bucket("0.005"), "1");
  assert.equal(bucket("0.1"), "1");
  assert.equal(bucket("0.25"), "2");
  assert.equal(bucket("5"), "2");
  assert.equal(bucket("10"), "3");
  assert.equal(bucket("+Inf"), "3");
  assert.equal(got.get(`${name}_count{operation="open"}`), "3");
  const sum = Number(got.get(`${name}_sum{operation="open"}`));
  assert.ok(Math.abs(sum - 7.203) < 1e-9, `${sum}`);
  const les = text.split("\n").filter((l) =>
    l.startsWith(`${name}_bucket{operation="open"`)
  ).map((l) => l.match(/le="([^"]+)"/)![1]);
  assert.deepEqual(les, [...FIREWALL_BUCKETS_SECONDS.map(String), "+Inf"]);
  const counts = les.map((le) => Number(bucket(le)));
  assert.deepEqual(counts, counts.toSorted((a, b) => a - b), "cumulative");
});

Deno.test("label values are escaped: backslash, double quote and line feed", () => {
  const stats = new KnockStats();
  stats.accept('q"uo\\te\nx');
  const text = renderMetrics(stats, { ...INPUT, openSessions: 0 });
  assert.ok(
    text.includes(
      'openme_knocks_accepted_total{client="q\\"uo\\\\te\\nx"} 1\n',
    ),
    text,
  );
});

Deno.test("kernel gate drops are shown by reason when the firewall reports them, and not otherwise", () => {
  const stats = new KnockStats();
  const without = renderMetrics(stats, { ...INPUT, openSessions: 0 });
  assert.ok(!without.includes("openme_kernel_gate"), without);
  stats.kernelDrops = { size: 4, version: 5, rate: 6 };
  const got = samples(renderMetrics(stats, { ...INPUT, openSessions: 0 }));
  const name = "openme_kernel_gate_drops_total";
  assert.equal(got.get(`${name}{reason="size"}`), "4");
  assert.equal(got.get(`${name}{reason="version"}`), "5");
  assert.equal(got.get(`${name}{reason="rate"}`), "6");
});

Deno.test("every metric has HELP and TYPE, the openme_ prefix, and _total on counters", () => {
  const stats = busyStats();
  stats.kernelDrops = { size: 1, version: 0, rate: 0 };
  const text = renderMetrics(stats, { ...INPUT, openSessions: 1 });
  const types = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)];
  assert.equal(types.length, 9);
  for (const [, name, type] of types) {
    assert.match(name, /^openme_[a-z_]+$/);
    assert.ok(text.includes(`# HELP ${name} `), name);
    assert.equal(name.endsWith("_total"), type === "counter", name);
  }
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const name = line.match(/^[a-z_]+/)![0];
    assert.ok(
      types.some(([, family]) =>
        name === family || name.startsWith(`${family}_`)
      ),
      `${line} has no TYPE line`,
    );
  }
});

Deno.test({
  name: "promtool check metrics accepts the metrics text",
  ignore: PROMTOOL_MISSING !== null,
  fn: async () => {
    const stats = busyStats();
    stats.accept('q"uo\\te\nx');
    stats.kernelDrops = { size: 1, version: 2, rate: 3 };
    await assertPromtoolMetrics(
      renderMetrics(stats, { ...INPUT, openSessions: 1 }),
    );
  },
});

/** A server in this process (recording firewall, loopback, free ports) for alice, writing metrics every 20 ms to `metricsFile` when given. */
async function startServer(dir: string, metricsFile: string | null): Promise<{
  server: OpenmeServer;
  keys: ReturnType<typeof freshKeys>;
  configPath: string;
  config: string;
  log: LogCapture;
}> {
  const keys = freshKeys(["alice"]);
  const configPath = `${dir}/config.yaml`;
  const config = renderTestConfig({
    server: keys.server,
    clients: [{ name: "alice", keys: keys.clients.get("alice")! }],
  }).replace(
    "server:\n",
    metricsFile === null
      ? "server:\n"
      : `server:\n  metrics_file: ${metricsFile}\n`,
  );
  await Deno.writeTextFile(configPath, config, { mode: 0o600 });
  const log = captureLog("info");
  try {
    const server = await OpenmeServer.start(configPath, {
      stateFile: `${dir}/state.json`,
      backend: new RecordingBackend(),
      hostname: "127.0.0.1",
      udpPort: 0,
      healthPort: 0,
      rateLimit: null,
      metricsIntervalMs: 20,
    });
    return { server, keys, configPath, config, log };
  } catch (err) {
    log.restore();
    throw err;
  }
}

Deno.test("a server writes the metrics file on its timer and at shutdown: knocks, drops, reloads, firewall operations", async () => {
  await withTempDir("openme-metrics-test-", async (dir) => {
    const metricsFile = `${dir}/openme.prom`;
    const { server, keys, configPath, config, log } = await startServer(
      dir,
      metricsFile,
    );
    const read = async (): Promise<Map<string, string>> =>
      samples(await Deno.readTextFile(metricsFile));
    try {
      const knock = buildKnock({
        serverPublicKey: keys.server.publicKey,
        clientPrivateKey: keys.clients.get("alice")!.privateKey,
      }, { target: null });
      await sendDatagrams(server.udpPort, [knock, new Uint8Array(7)]);
      // Written by the timer while the server runs.
      await waitFor(async () => {
        const got = await read();
        return got.get("openme_open_sessions") === "1" &&
          got.get('openme_datagrams_total{outcome="dropped",reason="size"}') ===
            "1";
      }, { timeoutMs: WAIT_MS, what: "the knock and the drop in the file" });
      assert.equal(
        (await Deno.stat(metricsFile)).mode! & 0o777,
        0o644,
        "node_exporter must be able to read it",
      );
      await writeByRename(configPath, "server: [\n");
      await waitFor(() => log.matching(/reload .* failed/).length === 1, {
        timeoutMs: WAIT_MS,
        what: "the failed reload",
      });
      await writeByRename(configPath, config);
      await waitFor(() => log.matching(/config reloaded/).length === 1, {
        timeoutMs: WAIT_MS,
        what: "the reload",
      });
    } finally {
      await server.stop();
      log.restore();
    }
    const final = await Deno.readTextFile(metricsFile);
    const got = samples(final);
    assert.equal(got.get('openme_knocks_accepted_total{client="alice"}'), "1");
    assert.equal(got.get('openme_datagrams_total{outcome="accepted"}'), "1");
    assert.equal(got.get("openme_open_sessions"), "0");
    assert.equal(got.get('openme_config_reloads_total{result="ok"}'), "1");
    assert.equal(got.get('openme_config_reloads_total{result="error"}'), "1");
    for (const op of ["setup", "open", "teardown"]) {
      assert.equal(
        got.get(
          `openme_firewall_operations_total{operation="${op}",result="ok"}`,
        ),
        "1",
        op,
      );
    }
    assert.equal(
      got.get(
        `openme_build_info{version="${denoConfig.version}",backend="recording"}`,
      ),
      "1",
    );
    if (PROMTOOL_MISSING === null) await assertPromtoolMetrics(final);
  });
});

Deno.test("without metrics_file no file is written; an unwritable one is warned about once and serving goes on", async () => {
  await withTempDir("openme-metrics-test-", async (dir) => {
    const { server, configPath, config, log } = await startServer(dir, null);
    try {
      await server.writeMetrics();
      // Temporary files (a state write) start with a dot.
      const names = [...Deno.readDirSync(dir)].map((e) => e.name)
        .filter((name) => !name.startsWith(".")).sort();
      assert.deepEqual(names, ["config.yaml", "state.json", "state.nonces"]);
      const missing = `${dir}/no-such-dir/openme.prom`;
      await writeByRename(
        configPath,
        config.replace("server:\n", `server:\n  metrics_file: ${missing}\n`),
      );
      await waitFor(() => log.matching(/config reloaded/).length === 1, {
        timeoutMs: WAIT_MS,
        what: "the reload",
      });
      await server.writeMetrics();
      await server.writeMetrics();
      const warnings = log.matching(/cannot write metrics file/);
      assert.equal(warnings.length, 1, warnings.join("\n"));
      assert.ok(warnings[0].includes(missing), warnings[0]);
    } finally {
      await server.stop();
      log.restore();
    }
  });
});

Deno.test("a symlink planted at metrics_file is replaced by the file, never written through", async () => {
  await withTempDir("openme-metrics-test-", async (dir) => {
    const victim = `${dir}/victim`;
    await Deno.writeTextFile(victim, "do not touch\n");
    const metricsFile = `${dir}/openme.prom`;
    await Deno.symlink(victim, metricsFile);
    const { server, log } = await startServer(dir, metricsFile);
    try {
      await server.writeMetrics();
      assert.equal(await Deno.readTextFile(victim), "do not touch\n");
      assert.ok((await Deno.lstat(metricsFile)).isFile);
      assert.match(await Deno.readTextFile(metricsFile), /^openme_/m);
    } finally {
      await server.stop();
      log.restore();
    }
  });
});

/** The README's "Metrics" section. */
async function readmeMetricsSection(): Promise<string> {
  const readme = await Deno.readTextFile(
    new URL("../../README.md", import.meta.url),
  );
  const start = readme.indexOf("\n## Metrics\n");
  assert.ok(start >= 0, "README has a Metrics section");
  const end = readme.indexOf("\n## ", start + 1);
  return readme.slice(start, end);
}

Deno.test("every metric the README's Metrics section names is in the metrics text", async () => {
  const section = await readmeMetricsSection();
  const stats = busyStats();
  stats.kernelDrops = { size: 0, version: 0, rate: 0 };
  const text = renderMetrics(stats, { ...INPUT, openSessions: 0 });
  const named = new Set(section.match(/\bopenme_[a-z_]+/g));
  assert.ok(named.size >= 9, [...named].join(" "));
  for (const name of named) {
    assert.match(text, new RegExp(`^# TYPE ${name} `, "m"), name);
  }
});

Deno.test({
  name: "promtool check rules accepts the README's alert rules",
  ignore: PROMTOOL_MISSING !== null,
  fn: async () => {
    const section = await readmeMetricsSection();
    const rules = [...section.matchAll(/```yaml\n(groups:\n[^`]*)```/g)];
    assert.equal(rules.length, 1, "one rules file in the Metrics section");
    const alerts = rules[0][1].match(/^\s*- alert: /gm) ?? [];
    assert.equal(alerts.length, 2);
    await withTempDir("openme-metrics-rules-", async (dir) => {
      await Deno.writeTextFile(`${dir}/openme.rules.yml`, rules[0][1]);
      const result = await run([
        "promtool",
        "check",
        "rules",
        `${dir}/openme.rules.yml`,
      ]);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      assert.match(result.stdout, /SUCCESS: 2 rules found/);
    });
  },
});
