/**
 * Runs the server-level measurements (bench/server_load.ts) as part of
 * `deno task bench`, when root with `ip`, `nft` and `iptables` available:
 * they need network namespaces and real firewall rules, take a few minutes,
 * and are not `Deno.bench` loops, so they run once, in a child process, while
 * this module loads, and print Markdown tables (see bench/RESULTS.md).
 *
 * - `OPENME_BENCH_LOAD=0` skips them (only the in-process benches run).
 * - `OPENME_BENCH_LOAD=quick` runs them with small counts (about a minute).
 *
 * The one `Deno.bench` here measures the load generator's packet building,
 * so that this file is also an ordinary bench file.
 *
 * @module
 */

import {
  generateEd25519KeyPair,
  generateX25519KeyPair,
} from "../lib/protocol/crypto.ts";
import { buildKnock } from "../lib/protocol/packet.ts";
import { testbedUnavailable } from "../scripts/testbed.ts";

const SERVER_LOAD_TS = new URL("./server_load.ts", import.meta.url).pathname;

async function runServerLoad(): Promise<void> {
  const mode = Deno.env.get("OPENME_BENCH_LOAD") ?? "full";
  if (mode === "0") {
    console.log("server load measurements skipped (OPENME_BENCH_LOAD=0)");
    return;
  }
  const why = testbedUnavailable("nft") ?? testbedUnavailable("iptables");
  if (why !== null) {
    console.log(`SKIP server load measurements: ${why}`);
    return;
  }
  const args = ["run", "--allow-all", "--no-prompt", SERVER_LOAD_TS];
  if (mode === "quick") args.push("--quick");
  console.log(
    `server load measurements (${mode}; progress on stderr), deno ${
      args.join(" ")
    }:`,
  );
  const status = await new Deno.Command("deno", {
    args,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn().status;
  if (!status.success) {
    throw new Error(`bench/server_load.ts exited ${status.code}`);
  }
}

await runServerLoad();

const server = generateX25519KeyPair();
const client = generateEd25519KeyPair();

Deno.bench({
  name: "client: build one knock (X25519 key pair + agreement, seal, sign)",
  fn(): void {
    buildKnock({
      serverPublicKey: server.publicKey,
      clientPrivateKey: client.privateKey,
    });
  },
});
