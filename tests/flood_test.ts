import assert from "node:assert/strict";
import {
  cpuUtilisationUnder,
  processAlive,
  runFlood,
  type RunningServer,
  ServerBed,
  sleep,
  sourceAddresses,
} from "../bench/harness.ts";
import {
  CLIENT_V4,
  CLIENT_V4_ALT,
  testbedUnavailable,
} from "../scripts/testbed.ts";

// Floods `openme serve` (real nft, inside a testbed) with 165-byte junk that
// has the version byte right, so every datagram that passes the per-source
// limit costs an X25519 and an AEAD open. The rates come from a short
// calibration in this run (a loaded machine saturates earlier); the numbers
// worth keeping are in bench/RESULTS.md. Here we assert what must hold on any
// machine: the server survives, its memory stays bounded, and legitimate
// knocks from another address get through.

const skip = testbedUnavailable("nft");
if (skip !== null) console.warn(`SKIP flood tests: ${skip}`);

/** Flood sources: 700 documentation addresses (each under the 20/s limit at half saturation). */
const FLOOD_SOURCES = sourceAddresses(700);
/** Sets of ten addresses the legitimate knocks open, one per flood (never flood sources). */
const PROBE_TARGETS = [
  sourceAddresses(10, 713),
  sourceAddresses(10, 723),
  sourceAddresses(10, 733),
  sourceAddresses(10, 743),
];
/** Rate of the calibration flood. */
const CALIBRATION_RATE = 3000;
/** Longest any flood runs (longer than any probe); each is stopped as soon as its probe is done. */
const FLOOD_MAX_MS = 30_000;
/** How long a legitimate knock may take at twice the saturating rate. */
const DOUBLE_RATE_PROBE_TIMEOUT_MS = 2000;
/** Bound on the server's resident memory under any flood (the bench's target is 150 MiB; see RESULTS.md). */
const RSS_LIMIT_MIB = 300;

function opened(latencies: (number | null)[]): number {
  return latencies.filter((v) => v !== null).length;
}

/** Junk rate that fills one core, from the CPU used at a moderate rate. */
async function calibrate(
  sb: ServerBed,
  server: RunningServer,
): Promise<number> {
  const { utilisation } = await cpuUtilisationUnder(
    sb,
    server.pid,
    sb.loadSpec("junk165", {
      rate: CALIBRATION_RATE,
      durationMs: 2000,
      sources: FLOOD_SOURCES,
    }),
  );
  const saturation = Math.round(CALIBRATION_RATE / Math.max(utilisation, 0.05));
  // Keep the floods within what a 2-core test machine can generate.
  return Math.min(Math.max(saturation, 1000), 20_000);
}

Deno.test({
  name:
    "junk floods: legitimate knocks from another address open within 1 s at half the saturating rate, the server survives twice that rate with bounded memory, and one noisy source locks out nobody",
  ignore: skip !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(): Promise<void> {
    const started = performance.now();
    const sb = await ServerBed.create({ prefix: "om-flood" });
    try {
      await sb.addClientAddresses([...FLOOD_SOURCES, ...PROBE_TARGETS.flat()]);
      const server = await sb.startServer();
      const saturation = await calibrate(sb, server);
      console.log(`flood: one core saturates at about ${saturation}/s`);

      // Half rate: every knock must open within 1 s. Other suites share this
      // 2-core machine; if the kernel had to drop datagrams during the
      // flood, the machine was busier than at calibration and the flood was
      // not really at half rate, so it is run once more (on new addresses).
      let halfOpened = 0;
      for (const attempt of [0, 3]) {
        const half = await runFlood(sb, server, {
          rate: Math.round(saturation / 2),
          sources: FLOOD_SOURCES,
          durationMs: FLOOD_MAX_MS,
          probeFrom: CLIENT_V4,
          probeTargets: PROBE_TARGETS[attempt],
        });
        halfOpened = opened(half.latenciesMs);
        console.log(
          `flood at half (${
            Math.round(saturation / 2)
          }/s): ${halfOpened}/10 opened, ${half.kernelDrops} dropped by the kernel, latencies ${
            JSON.stringify(
              half.latenciesMs.map((v) => v === null ? null : Math.round(v)),
            )
          } ms, server CPU ${half.cpuUtilisation.toFixed(2)}, RSS ${
            half.rssAfterMiB.toFixed(0)
          } MiB`,
        );
        assert.ok(half.alive, "the server died during the flood at half rate");
        if (halfOpened === 10 || half.kernelDrops === 0) break;
      }
      assert.equal(
        halfOpened,
        10,
        "legitimate knocks during the flood at half rate (see the output)",
      );

      const double = await runFlood(sb, server, {
        rate: saturation * 2,
        sources: FLOOD_SOURCES,
        durationMs: FLOOD_MAX_MS,
        probeFrom: CLIENT_V4,
        probeTargets: PROBE_TARGETS[1],
        probeDelayMs: 2000,
        // Past saturation knocks queue behind junk, and on a 2-core machine
        // the load generator takes the other core from the firewall tool.
        probeTimeoutMs: DOUBLE_RATE_PROBE_TIMEOUT_MS,
      });
      console.log(
        `flood at twice (${saturation * 2}/s): ${
          opened(double.latenciesMs)
        }/10 opened within ${DOUBLE_RATE_PROBE_TIMEOUT_MS} ms (${
          double.latenciesMs.filter((v) => v !== null && v <= 1000).length
        } within 1 s), server CPU ${
          double.cpuUtilisation.toFixed(2)
        }, ${double.kernelDrops} dropped by the kernel, RSS ${
          double.rssBeforeMiB.toFixed(0)
        } -> ${double.rssAfterMiB.toFixed(0)} MiB`,
      );
      assert.ok(
        double.alive,
        "the server died during the flood at twice the rate",
      );
      assert.ok(
        double.rssAfterMiB < RSS_LIMIT_MIB,
        `server RSS ${double.rssAfterMiB} MiB under the flood`,
      );
      assert.ok(
        opened(double.latenciesMs) >= 1,
        `no legitimate knock opened its port within ${DOUBLE_RATE_PROBE_TIMEOUT_MS} ms at twice the saturating rate: ${
          JSON.stringify(double.latenciesMs)
        }`,
      );

      const noisy = await runFlood(sb, server, {
        rate: saturation * 2,
        sources: [CLIENT_V4_ALT],
        durationMs: FLOOD_MAX_MS,
        probeFrom: CLIENT_V4,
        probeTargets: PROBE_TARGETS[2],
      });
      console.log(
        `one noisy source at ${saturation * 2}/s: ${
          opened(noisy.latenciesMs)
        }/10 opened, server CPU ${
          noisy.cpuUtilisation.toFixed(2)
        }, ${noisy.kernelDrops} dropped by the kernel`,
      );
      assert.ok(noisy.alive, "the server died beside a noisy source");
      // The noisy source costs little (it is rate limited before any
      // crypto), but all sources share the socket's receive buffer: when the
      // event loop pauses (a firewall call, a GC) at this rate the kernel
      // drops datagrams, and a knock can be among them. Locked out would be
      // most knocks failing.
      assert.ok(
        opened(noisy.latenciesMs) >= 8,
        `legitimate knocks beside one noisy source: ${
          JSON.stringify(noisy.latenciesMs)
        }`,
      );

      // Still serving normally, and a clean stop takes every rule out.
      await sleep(200);
      assert.ok(processAlive(server.pid));
      const code = await server.proc.stop("SIGTERM", 10_000);
      assert.equal(code, 0, server.proc.output().slice(-2000));
      const rules = await sb.bed.serverRules();
      assert.ok(
        !rules.includes('comment "openme'),
        `rules left after stop:\n${rules}`,
      );
      console.log(
        `flood test took ${
          ((performance.now() - started) / 1000).toFixed(1)
        } s`,
      );
    } finally {
      await sb.destroy();
    }
  },
});
