/**
 * The knock gate end to end, on both backends, IPv4 and IPv6: `openme
 * serve` (from source, in a testbed) with knock_rate_limit 1/h and
 * knock_burst 2, so that the rate verdicts do not depend on how fast the
 * datagrams go out (a token comes back once an hour). Asserts what the
 * kernel's counters and the server's state file say, never a timing: junk of
 * the wrong size or version never reaches the socket; a source over its
 * budget is dropped while another gets in; IPv6 sources share a budget per
 * /64; knocks within the budget open; the gate is repaired after a flush and
 * gone after SIGTERM and after the clean-up that follows a kill -9.
 */

import assert from "node:assert/strict";
import { KNOCK_PORT, ServerBed } from "../../bench/harness.ts";
import { decodeBase64 } from "../../lib/encoding.ts";
import { buildKnock } from "../../lib/protocol/packet.ts";
import type { StateFile } from "../../lib/server/state_file.ts";
import {
  CLIENT_V4,
  CLIENT_V4_ALT,
  CLIENT_V6,
  DENO_RUN,
  runOk,
  SERVER_V4,
  SERVER_V6,
  type TestbedBackend,
  testbedUnavailable,
  waitFor,
} from "../../scripts/testbed.ts";

/** Deadline for anything the server does soon (its firewall check runs every 5 s). */
const EVENT_TIMEOUT_MS = 60_000;
/** A second IPv6 source in the /64 of CLIENT_V6, and one in another /64. */
const SAME_64 = "2001:db8::3";
const OTHER_64 = "2001:db8:1::2";
/** The burst of the test config; knock_rate_limit is 1/h. */
const BURST = 2;

/** Sends the datagrams (a JSON file of {from, to, b64}) in order, each from its own bound socket. */
const SENDER_SCRIPT = `import { createSocket } from "node:dgram";
const [file, port] = Deno.args;
for (const { from, to, b64 } of JSON.parse(await Deno.readTextFile(file))) {
  const socket = createSocket(from.includes(":") ? "udp6" : "udp4");
  await new Promise((resolve) => socket.bind({ address: from, port: 0 }, resolve));
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  await new Promise((resolve, reject) =>
    socket.send(bytes, Number(port), to, (err) => err ? reject(err) : resolve(0))
  );
  socket.close();
}
`;

class GateBed {
  constructor(readonly sb: ServerBed, readonly stateFile: string) {}

  /** Sends datagrams from the client namespace, in order. */
  async send(datagrams: { from: string; bytes: Uint8Array }[]): Promise<void> {
    const dir = this.sb.bed.dir;
    await Deno.writeTextFile(`${dir}/sender.ts`, SENDER_SCRIPT);
    const list = datagrams.map(({ from, bytes }) => ({
      from,
      to: from.includes(":") ? SERVER_V6 : SERVER_V4,
      b64: bytes.toBase64(),
    }));
    await Deno.writeTextFile(`${dir}/datagrams.json`, JSON.stringify(list));
    await this.sb.bed.execOk(this.sb.bed.clientNs, [
      ...DENO_RUN,
      `${dir}/sender.ts`,
      `${dir}/datagrams.json`,
      String(KNOCK_PORT),
    ], { timeoutMs: EVENT_TIMEOUT_MS });
  }

  /** A valid knock of alice's for the address it comes from. */
  knock(): Uint8Array {
    return buildKnock({
      serverPublicKey: decodeBase64(this.sb.serverPublicKey)!,
      clientPrivateKey: decodeBase64(this.sb.clientPrivateKey)!,
    }, { target: null });
  }

  async state(): Promise<StateFile> {
    try {
      return JSON.parse(await Deno.readTextFile(this.stateFile)) as StateFile;
    } catch {
      return { updated_at: "", active_sessions: [], last_seen: {} };
    }
  }

  /** Waits until the state file says what `holds` checks; returns it. */
  async waitState(
    what: string,
    holds: (state: StateFile) => boolean,
  ): Promise<StateFile> {
    let state = await this.state();
    await waitFor(async () => holds(state = await this.state()), {
      timeoutMs: EVENT_TIMEOUT_MS,
      what,
    });
    return state;
  }

  /** How many gate rules the server namespace holds. */
  async gateRules(): Promise<number> {
    const rules = await this.sb.bed.serverRules();
    return rules.split("\n").filter((line) => line.includes("openme-gate"))
      .length;
  }
}

function junk(size: number, version: number): Uint8Array {
  const bytes = crypto.getRandomValues(new Uint8Array(size));
  bytes[0] = version;
  return bytes;
}

function sessionFor(state: StateFile, ip: string): boolean {
  return state.active_sessions.some((s) => s.ip === ip);
}

async function gateScenario(backend: TestbedBackend): Promise<void> {
  const sb = await ServerBed.create({
    prefix: `om-gate-${backend[0]}`,
    backend,
  });
  try {
    const text = await Deno.readTextFile(sb.configPath);
    const edited = text.replace(
      "knock_rate_limit: 20/s",
      "knock_rate_limit: 1/h",
    )
      .replace("knock_burst: 40", `knock_burst: ${BURST}`);
    assert.notEqual(edited, text);
    await Deno.writeTextFile(sb.configPath, edited);
    const { clientNs, serverNs } = sb.bed;
    for (const address of [SAME_64, OTHER_64]) {
      await runOk([
        "ip",
        "-n",
        clientNs,
        "addr",
        "add",
        `${address}/64`,
        "dev",
        sb.clientIf,
        "nodad",
      ]);
    }
    await runOk([
      "ip",
      "-n",
      serverNs,
      "route",
      "add",
      "2001:db8:1::/64",
      "dev",
      sb.serverIf,
    ]);
    // Both families' gates: 4 nft rules, or 3 per iptables family.
    const fullGate = backend === "nft" ? 4 : 6;

    let server = await sb.startServer();
    const g = new GateBed(sb, server.stateFile);
    assert.equal(await g.gateRules(), fullGate);

    // Wrong size, wrong version, then burst + 10 junk knocks from one source.
    await g.send([
      { from: CLIENT_V4_ALT, bytes: junk(40, 1) },
      { from: CLIENT_V4_ALT, bytes: junk(165, 2) },
      ...Array.from({ length: BURST + 10 }, () => ({
        from: CLIENT_V4_ALT,
        bytes: junk(165, 1),
      })),
    ]);
    // A token comes back once an hour: at most one more of the ten got in.
    let state = await g.waitState(
      "the gate's drops",
      (s) =>
        s.kernel_drops !== undefined && s.kernel_drops.size === 1 &&
        s.kernel_drops.version === 1 && s.kernel_drops.rate >= 9,
    );
    const rate = state.kernel_drops!.rate;
    assert.ok(rate <= 10);
    assert.equal(
      state.drops?.size,
      undefined,
      "a short datagram reached openme",
    );
    assert.equal(
      state.drops?.version,
      undefined,
      "a version 2 datagram reached openme",
    );

    // Another source gets in, with as many knocks as its burst.
    await g.send([{ from: CLIENT_V4, bytes: g.knock() }, {
      from: CLIENT_V4,
      bytes: g.knock(),
    }]);
    state = await g.waitState("two knocks accepted", (s) => s.accepted === 2);
    assert.ok(sessionFor(state, CLIENT_V4));

    // IPv6: CLIENT_V6 spends its /64's budget; once openme has seen that,
    // a knock from the same /64 is dropped and one from another /64 opens.
    const decrypt = state.drops?.decrypt ?? 0;
    await g.send([{ from: CLIENT_V6, bytes: junk(165, 1) }, {
      from: CLIENT_V6,
      bytes: junk(165, 1),
    }]);
    await g.waitState(
      "CLIENT_V6's junk seen",
      (s) => (s.drops?.decrypt ?? 0) === decrypt + 2,
    );
    await g.send([{ from: SAME_64, bytes: g.knock() }, {
      from: OTHER_64,
      bytes: g.knock(),
    }]);
    state = await g.waitState(
      "the other /64's session and the drop",
      (s) => sessionFor(s, OTHER_64) && s.kernel_drops!.rate === rate + 1,
    );
    assert.ok(
      !sessionFor(state, SAME_64),
      "a knock over its /64's budget opened",
    );
    assert.equal(state.accepted, 3);

    // A flush takes the gate away; the periodic check puts it back.
    if (backend === "nft") {
      await sb.bed.execOk(serverNs, ["nft", "flush", "ruleset"]);
    } else await sb.bed.execOk(serverNs, ["iptables", "-w", "-F"]);
    await waitFor(async () => (await g.gateRules()) === fullGate, {
      timeoutMs: EVENT_TIMEOUT_MS,
      what: "the gate put back",
    });

    assert.equal(await server.proc.stop("SIGTERM", EVENT_TIMEOUT_MS), 0);
    assert.equal(await g.gateRules(), 0, "gate rules left after SIGTERM");
    assert.doesNotMatch(await sb.bed.serverRules(), /openme_gate/);

    // kill -9 leaves the gate; the next start cleans it up and sets it up once.
    server = await sb.startServer();
    await server.proc.stop("SIGKILL");
    assert.equal(await g.gateRules(), fullGate);
    server = await sb.startServer();
    assert.equal(await g.gateRules(), fullGate);
    assert.equal(await server.proc.stop("SIGTERM", EVENT_TIMEOUT_MS), 0);
    assert.equal(await g.gateRules(), 0);
  } finally {
    await sb.destroy();
  }
}

for (const backend of ["nft", "iptables"] as const) {
  const skip = testbedUnavailable(backend);
  if (skip !== null) console.warn(`SKIP gate e2e (${backend}): ${skip}`);
  Deno.test({
    name:
      `gate (${backend}): wrong sizes and versions never reach openme, a source over its budget is dropped in the kernel while others get in, IPv6 shares a budget per /64, and the gate lives and dies with the base rules`,
    ignore: skip !== null,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: () => gateScenario(backend),
  });
}
