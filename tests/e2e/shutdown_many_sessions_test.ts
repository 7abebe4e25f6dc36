/**
 * Shutdown with hundreds of sessions against the real firewall: an
 * OpenmeServer whose nft or iptables backend runs the tools in a network
 * namespace of its own (backend `netns` option), 504 sessions (63 clients,
 * 8 target addresses each, IPv4 and IPv6), then stop(). It must remove them
 * in a few tool runs (as for one session, so shutdown does not grow with the
 * session count) and leave no rule tagged openme, with the base ruleset as it
 * was. How long that takes is a figure for bench/, not a test.
 * Root only; skipped visibly otherwise.
 */
import assert from "node:assert/strict";
import {
  type Ed25519KeyPair,
  generateEd25519KeyPair,
  generateX25519KeyPair,
} from "../../lib/protocol/crypto.ts";
import { encodeBase64 } from "../../lib/encoding.ts";
import type { FirewallBackend } from "../../lib/firewall/backend.ts";
import { IptablesBackend } from "../../lib/firewall/iptables.ts";
import { NftBackend } from "../../lib/firewall/nft.ts";
import type { IpAddress } from "../../lib/ip.ts";
import { getLogLevel, setLogLevel, setLogSink } from "../../lib/log.ts";
import { buildKnock } from "../../lib/protocol/packet.ts";
import { OpenmeServer } from "../../lib/server/daemon.ts";
import { MAX_SESSIONS_PER_CLIENT } from "../../lib/server/session_manager.ts";
import {
  applyDefaultDeny,
  findOnPath,
  run,
  runOk,
  type TestbedBackend,
  testbedUnavailable,
  waitFor,
} from "../../scripts/testbed.ts";

/** Clients × MAX_SESSIONS_PER_CLIENT sessions: 504. */
const CLIENTS = 63;
/** How many first knocks are handed to the server before waiting for their opens (below its bound of 64 in flight). */
const BATCH = 48;
/**
 * Most firewall tool runs a stop may take, whatever the session count: a
 * listing and one transaction for nft, the same for each of iptables and
 * ip6tables. One run per session would be what makes a stop slow.
 */
const MAX_TEARDOWN_TOOL_RUNS = 4;

let namespaceCounter = 0;

/** Target address number n (0-503): IPv4 from two documentation ranges, then IPv6. */
function target(n: number): IpAddress {
  if (n < 250) return { family: 4, text: `192.0.2.${n + 1}` };
  if (n < 500) return { family: 4, text: `198.51.100.${n - 249}` };
  return { family: 6, text: `2001:db8::${(n + 1).toString(16)}` };
}

function configText(
  server: { privateKey: Uint8Array; publicKey: Uint8Array },
  clients: Map<string, Ed25519KeyPair>,
  firewall: TestbedBackend,
): string {
  const lines = [
    "server:",
    "  host: 192.0.2.1",
    "  udp_port: 54154",
    `  firewall: ${firewall}`,
    "  knock_timeout: 5m",
    "  replay_window: 60s",
    "  open_knock_port: true",
    "  drop_ports: true",
    `  private_key: ${encodeBase64(server.privateKey)}`,
    `  public_key: ${encodeBase64(server.publicKey)}`,
    "ports:",
    "  default: [22/tcp]",
    "clients:",
  ];
  for (const [name, keys] of clients) {
    lines.push(`  ${name}:`);
    lines.push(`    ed25519_pubkey: ${encodeBase64(keys.publicKey)}`);
    lines.push("    allowed_ports: [default]");
    lines.push("    disable_health_port: true");
  }
  return lines.join("\n") + "\n";
}

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
      let server: OpenmeServer | null = null;
      await runOk(["ip", "netns", "add", ns]);
      try {
        await applyDefaultDeny(ns, backendKind);
        const baseline = await ruleset(ns, backendKind);
        assert.ok(!baseline.includes("openme"));
        const serverKeys = generateX25519KeyPair();
        const clients = new Map<string, Ed25519KeyPair>();
        for (let i = 0; i < CLIENTS; i++) {
          clients.set(`c${i}`, generateEd25519KeyPair());
        }
        const configPath = `${dir}/config.yaml`;
        await Deno.writeTextFile(
          configPath,
          configText(serverKeys, clients, backendKind),
          { mode: 0o600 },
        );
        const backend: FirewallBackend = backendKind === "nft"
          ? new NftBackend({ netns: ns })
          : new IptablesBackend({ netns: ns });
        server = await OpenmeServer.start(configPath, {
          stateFile: `${dir}/state.json`,
          backend,
          hostname: "127.0.0.1",
          udpPort: 0,
          healthPort: 0,
          rateLimit: null,
          firewallCheckMs: 600_000,
        });
        const running = server;
        const knocks: Uint8Array[] = [];
        let n = 0;
        for (const keys of clients.values()) {
          for (let j = 0; j < MAX_SESSIONS_PER_CLIENT; j++) {
            knocks.push(buildKnock({
              serverPublicKey: serverKeys.publicKey,
              clientPrivateKey: keys.privateKey,
            }, { target: target(n++) }));
          }
        }
        for (let start = 0; start < knocks.length; start += BATCH) {
          for (const knock of knocks.slice(start, start + BATCH)) {
            running.handleDatagram(knock, "127.0.0.1");
          }
          const want = Math.min(start + BATCH, knocks.length);
          await waitFor(() => running.sessions().length === want, {
            timeoutMs: 30_000,
            what: `${want} sessions`,
          });
        }
        assert.equal(
          running.sessions().length,
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
