/**
 * The `openme serve` end-to-end scenario shared by serve_nft_test.ts and
 * serve_iptables_test.ts: the real CLI, run from source as root in two
 * network namespaces (scripts/testbed.ts) under the README's default-deny
 * ruleset with a TCP listener on port 22. One testbed per backend; the
 * steps run in order and share it, and the first failing step ends the
 * scenario. The testbed (namespaces, processes, files) is always destroyed.
 *
 * @module
 */

import assert from "node:assert/strict";
import { parse as parseYaml, parseDocument } from "yaml";
import { decodeBase64 } from "../../lib/encoding.ts";
import { buildKnock, KNOCK_PACKET_BYTES } from "../../lib/protocol/packet.ts";
import type { StateFile } from "../../lib/server/state_file.ts";
import {
  CLIENT_V4,
  CLIENT_V4_ALT,
  type NsProcess,
  openmeCommand,
  type RunResult,
  SERVER_V4,
  SERVER_V6,
  Testbed,
  type TestbedBackend,
  testbedUnavailable,
  waitFor,
} from "../../scripts/testbed.ts";

/** Knock (UDP) and health (TCP) port of the test server: the default. */
const KNOCK_PORT = 54154;
/** The protected service port (testbed listener). */
const SSH_PORT = 22;
/**
 * Deadline for anything the server should do soon (start, open or close a
 * port, reload its config, count a drop, stop): generous, since other tests
 * share the machine; the slowest expected event, a session's 3 s
 * knock_timeout, fits in it ten times.
 */
const EVENT_TIMEOUT_MS = 60_000;
/** replay_window of the test server: far longer than the scenario runs. */
const REPLAY_WINDOW = "10m";
/** Clock offset of the stale knocks: twice the replay window. */
const STALE_OFFSET_MS = 20 * 60_000;

/** Sends datagrams (base64 list in a JSON file) to HOST PORT from the namespace it runs in. */
const SENDER_SCRIPT = `import { createSocket } from "node:dgram";
const [file, host, port] = Deno.args;
const list = JSON.parse(await Deno.readTextFile(file));
const socket = createSocket(host.includes(":") ? "udp6" : "udp4");
for (const b64 of list) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  await new Promise((resolve, reject) =>
    socket.send(bytes, Number(port), host, (err) => err ? reject(err) : resolve(undefined))
  );
  await new Promise((resolve) => setTimeout(resolve, 20));
}
socket.close();
console.log("sent " + list.length);
`;

interface ClientKeys {
  serverPublicKey: Uint8Array;
  clientPrivateKey: Uint8Array;
}

/** The running scenario: testbed, files and helpers around the CLI. */
class ServeScenario {
  readonly bed: Testbed;
  readonly backend: TestbedBackend;
  readonly config: string;
  readonly stateFile: string;
  /** Client config file of each client added with `openme add`. */
  readonly profiles = new Map<string, string>();
  #exited = new WeakSet<NsProcess>();

  constructor(bed: Testbed) {
    this.bed = bed;
    this.backend = bed.backend;
    this.config = `${bed.dir}/config.yaml`;
    this.stateFile = `${bed.dir}/sessions.json`;
  }

  /** Runs the openme CLI in the server namespace with the server config. */
  async server(args: string[]): Promise<RunResult> {
    return await this.bed.openme(this.bed.serverNs, [
      "--config",
      this.config,
      ...args,
    ]);
  }

  /** Runs the openme CLI in the client namespace with a client's config. */
  async client(name: string, args: string[]): Promise<RunResult> {
    const profile = this.profiles.get(name);
    assert.ok(profile !== undefined, `no client config for ${name}`);
    return await this.bed.openme(this.bed.clientNs, [
      "--client-config",
      profile,
      ...args,
    ]);
  }

  /** `openme knock` from the client namespace; asserts exit 0. */
  async knock(name: string, args: string[] = []): Promise<void> {
    const result = await this.client(name, ["knock", ...args]);
    assert.equal(
      result.code,
      0,
      `knock ${name} ${args.join(" ")}: ${result.stderr}`,
    );
  }

  /** `openme add NAME` and saves the printed client config. */
  async addClient(name: string): Promise<void> {
    const result = await this.server(["add", name]);
    assert.equal(result.code, 0, `add ${name}: ${result.stderr}`);
    assert.ok(result.stdout.startsWith("profiles:"), result.stdout);
    const path = `${this.bed.dir}/${name}.yaml`;
    await Deno.writeTextFile(path, result.stdout, { mode: 0o600 });
    this.profiles.set(name, path);
  }

  /** A copy of a client's config that knocks at the server's IPv6 address. */
  async addIpv6Profile(name: string, as: string): Promise<void> {
    const text = await Deno.readTextFile(this.profiles.get(name)!);
    const path = `${this.bed.dir}/${as}.yaml`;
    const changed = text.replace(
      `server_host: ${SERVER_V4}`,
      `server_host: "${SERVER_V6}"`,
    );
    assert.notEqual(changed, text, "server_host line not found");
    await Deno.writeTextFile(path, changed, { mode: 0o600 });
    this.profiles.set(as, path);
  }

  /** The keys a client config holds, to build packets by hand. */
  async clientKeys(name: string): Promise<ClientKeys> {
    const data = parseYaml(
      await Deno.readTextFile(this.profiles.get(name)!),
    ) as { profiles: { default: Record<string, string> } };
    const profile = data.profiles.default;
    return {
      serverPublicKey: decodeBase64(profile.server_pubkey)!,
      clientPrivateKey: decodeBase64(profile.private_key)!,
    };
  }

  /** Replaces text in the server config, in place (like an editor that writes in place). */
  async editConfig(from: string, to: string): Promise<void> {
    const text = await Deno.readTextFile(this.config);
    assert.ok(text.includes(from), `config has no ${JSON.stringify(from)}`);
    await Deno.writeTextFile(this.config, text.replace(from, to));
  }

  /** Sets a key of a client in the server config (YAML document edit, written in place). */
  async setClientKey(name: string, key: string, value: string): Promise<void> {
    const doc = parseDocument(await Deno.readTextFile(this.config));
    doc.setIn(["clients", name, key], value);
    await Deno.writeTextFile(this.config, doc.toString());
  }

  /** Starts `openme serve` in the server namespace and waits until it wrote its state file. */
  async serve(logLevel: string, extra: string[] = []): Promise<NsProcess> {
    const proc = this.bed.spawn(
      this.bed.serverNs,
      openmeCommand([
        "--config",
        this.config,
        "--log-level",
        logLevel,
        "serve",
        "--state-file",
        this.stateFile,
        ...extra,
      ]),
    );
    proc.child.status.then(() => this.#exited.add(proc));
    await waitFor(async () => {
      if (this.#exited.has(proc)) {
        throw new Error(`openme serve exited early:\n${proc.output()}`);
      }
      return (await this.state())?.pid === proc.child.pid;
    }, { timeoutMs: EVENT_TIMEOUT_MS, what: "openme serve to start" });
    return proc;
  }

  /** Whether the process is still running. */
  running(proc: NsProcess): boolean {
    return !this.#exited.has(proc);
  }

  /** The state file, or null while it does not exist or is being replaced. */
  async state(): Promise<StateFile | null> {
    try {
      return JSON.parse(await Deno.readTextFile(this.stateFile)) as StateFile;
    } catch {
      return null;
    }
  }

  /** The state file; fails when missing. */
  async mustState(): Promise<StateFile> {
    const state = await this.state();
    assert.ok(state !== null, `no state file ${this.stateFile}`);
    return state;
  }

  /** Lines of the server ruleset that are per-knock accept rules (tagged exactly `openme`). */
  async perKnockRules(): Promise<string[]> {
    const rules = await this.bed.serverRules();
    return rules.split("\n").map((line) => line.trim()).filter((line) =>
      this.backend === "nft"
        ? /comment "openme"$/.test(line)
        : /--comment "?openme"?( |$)/.test(line)
    );
  }

  /** Lines mentioning openme other than the knock rule and its gate, the jump and the chain itself. */
  async openmeRulesBeyondKnockAndJump(): Promise<string[]> {
    const rules = await this.bed.serverRules();
    return rules.split("\n").map((line) => line.trim()).filter((line) =>
      line.includes("openme") && !/openme-(knock|gate)/.test(line) &&
      !/^set openme_gate[46] \{$/.test(line) &&
      line !== "chain openme {" && !/^jump openme( |$)/.test(line)
    );
  }

  /** Whether TCP port 22 (or another) of an address is reachable from the client namespace. */
  async reachable(
    address: string,
    options: { port?: number; from?: string; timeoutMs?: number } = {},
  ): Promise<boolean> {
    return await this.bed.tcpOpen(address, options.port ?? SSH_PORT, {
      timeoutMs: options.timeoutMs ?? 700,
      from: options.from,
    });
  }

  /** Sends raw datagrams to the knock port from the client namespace. */
  async sendRaw(datagrams: Uint8Array[], to = SERVER_V4): Promise<void> {
    const script = `${this.bed.dir}/send.ts`;
    await Deno.writeTextFile(script, SENDER_SCRIPT);
    const file = `${this.bed.dir}/datagrams-${crypto.randomUUID()}.json`;
    await Deno.writeTextFile(
      file,
      JSON.stringify(datagrams.map((d) => btoa(String.fromCharCode(...d)))),
    );
    const result = await this.bed.exec(this.bed.clientNs, [
      "deno",
      "run",
      "--allow-read",
      "--allow-net",
      "--no-config",
      "--no-prompt",
      script,
      file,
      to,
      String(KNOCK_PORT),
    ]);
    assert.equal(result.code, 0, `sending datagrams: ${result.stderr}`);
  }

  /** The name of the server's veth interface. */
  async serverInterface(): Promise<string> {
    const result = await this.bed.exec(this.bed.serverNs, [
      "ip",
      "-o",
      "link",
      "show",
    ]);
    const names = result.stdout.split("\n")
      .map((line) => line.split(": ")[1]?.split("@")[0])
      .filter((name) => name !== undefined && name !== "lo");
    assert.equal(names.length, 1, result.stdout);
    return names[0];
  }

  /** Sets the INPUT policy of the base ruleset (drop_ports test without default-deny). */
  async setInputPolicy(policy: "accept" | "drop"): Promise<void> {
    if (this.backend === "nft") {
      const result = await this.bed.exec(this.bed.serverNs, [
        "nft",
        "chain",
        "inet",
        "filter",
        "input",
        `{ policy ${policy}; }`,
      ]);
      assert.equal(result.code, 0, result.stderr);
      return;
    }
    for (const tool of ["iptables", "ip6tables"]) {
      const result = await this.bed.exec(this.bed.serverNs, [
        tool,
        "-w",
        "-P",
        "INPUT",
        policy.toUpperCase(),
      ]);
      assert.equal(result.code, 0, result.stderr);
    }
  }
}

function drops(state: StateFile | null, reason: string): number {
  return state?.drops?.[reason] ?? 0;
}

function sessionsOf(state: StateFile | null, name: string) {
  return (state?.active_sessions ?? []).filter((s) => s.client_name === name);
}

/** Counts of the lines of a process output that match. */
function countLines(text: string, pattern: RegExp): number {
  return text.split("\n").filter((line) => pattern.test(line)).length;
}

/** Edits knock_timeout in the config (in place) and waits until the server has reloaded with it. */
async function editKnockTimeout(
  s: ServeScenario,
  serve: NsProcess,
  from: string,
  to: string,
): Promise<void> {
  const reloaded = new RegExp(
    `config reloaded \\(config file changed\\).*knock_timeout ${to}\\b`,
  );
  const reloads = countLines(serve.output(), reloaded);
  await s.editConfig(`knock_timeout: ${from}`, `knock_timeout: ${to}`);
  await waitFor(() => countLines(serve.output(), reloaded) > reloads, {
    timeoutMs: EVENT_TIMEOUT_MS,
    what: `the reload with knock_timeout ${to}`,
  });
}

function flipByte(packet: Uint8Array, offset: number): Uint8Array {
  const copy = packet.slice();
  copy[offset] ^= 0x01;
  return copy;
}

function randomDatagram(size: number, version: number | null): Uint8Array {
  const bytes = crypto.getRandomValues(new Uint8Array(size));
  if (version !== null) bytes[0] = version;
  return bytes;
}

function nowNs(offsetMs = 0): bigint {
  return BigInt(Date.now() + offsetMs) * 1_000_000n;
}

/** Why the scenario cannot run here (not root, tools missing), or null. */
export function serveScenarioSkipReason(
  backend: TestbedBackend,
): string | null {
  return testbedUnavailable(backend);
}

/** Registers the end-to-end `openme serve` test for a backend (skipped visibly when it cannot run). */
export function defineServeScenario(backend: TestbedBackend): void {
  const skip = serveScenarioSkipReason(backend);
  if (skip !== null) {
    console.warn(`SKIP openme serve end-to-end with ${backend}: ${skip}`);
  }
  Deno.test({
    name:
      `openme serve with ${backend}: knock, status, sessions, expiry, bad datagrams, IPv6, --ip, revoke, SIGTERM, kill -9, drop_ports, interface`,
    ignore: skip !== null,
    fn: async (t) => {
      const bed = await Testbed.create({
        prefix: `om-e2e-${backend === "nft" ? "nft" : "ipt"}`,
        backend,
      });
      try {
        await runScenario(t, new ServeScenario(bed));
      } finally {
        await bed.destroy();
      }
    },
  });
}

async function runScenario(
  t: Deno.TestContext,
  s: ServeScenario,
): Promise<void> {
  const step = async (
    name: string,
    fn: () => Promise<void>,
  ): Promise<void> => {
    const ok = await t.step(name, fn);
    if (!ok) throw new Error(`step failed: ${name} (later steps skipped)`);
  };

  const init = await s.server([
    "init",
    "--server",
    SERVER_V4,
    "--firewall",
    s.backend,
  ]);
  assert.equal(init.code, 0, init.stderr);
  // Sessions last 30 s (the default) except in the expiry step, so no step
  // sees its session end while it looks at it, however slow the machine;
  // the long replay window keeps the knock replayed in a later step inside
  // it.
  await s.editConfig("replay_window: 60s", `replay_window: ${REPLAY_WINDOW}`);
  await s.addClient("alice");
  await s.addClient("bob");
  await s.addIpv6Profile("alice", "alice6");
  const baseline = await s.bed.serverRules();
  assert.ok(!baseline.includes("openme"));

  let serve: NsProcess = await s.serve("debug");
  let replayPacket: Uint8Array = new Uint8Array(0);
  const aliceKeys = await s.clientKeys("alice");

  await step(
    "port 22 and the health port are closed before a knock",
    async () => {
      assert.equal((await s.perKnockRules()).length, 0);
      assert.match(await s.bed.serverRules(), /openme-knock/);
      assert.equal(await s.reachable(SERVER_V4), false);
      assert.equal(await s.reachable(SERVER_V4, { port: KNOCK_PORT }), false);
    },
  );

  await step(
    "openme knock opens port 22; status exits 0; sessions shows the client",
    async () => {
      await s.knock("alice");
      await waitFor(() => s.reachable(SERVER_V4, { timeoutMs: 500 }), {
        timeoutMs: EVENT_TIMEOUT_MS,
        what: "port 22 open after the knock",
      });
      const status = await s.client("alice", ["status"]);
      assert.equal(status.code, 0, status.stdout + status.stderr);
      const sessions = await s.bed.openme(s.bed.serverNs, [
        "sessions",
        "--state-file",
        s.stateFile,
      ]);
      assert.equal(sessions.code, 0, sessions.stderr);
      assert.match(
        sessions.stdout,
        new RegExp(
          `alice\\s+${
            CLIENT_V4.replaceAll(".", "\\.")
          }\\s+22/tcp,${KNOCK_PORT}/tcp`,
        ),
      );
      assert.match(
        serve.output(),
        /INFO {2}opened 22\/tcp,54154\/tcp for 192\.0\.2\.2 \(client alice key [0-9a-f]{16} from 192\.0\.2\.2\)/,
      );
      // A knock built here, sent once now (accepted: refresh) and replayed later.
      replayPacket = buildKnock(aliceKeys);
      await s.sendRaw([replayPacket]);
      await waitFor(async () => (await s.state())?.accepted === 2, {
        timeoutMs: EVENT_TIMEOUT_MS,
        what: "the hand-built knock accepted",
      });
      assert.equal(
        (await s.perKnockRules()).length,
        2,
        "a refresh adds no rule",
      );
    },
  );

  await step(
    "a knock_timeout edit (file written in place) applies without restart; port 22 closes again after knock_timeout",
    async () => {
      await editKnockTimeout(s, serve, "30s", "3s");
      // A knock again refreshes the session: its deadline moves to 3 s from now.
      const accepted = (await s.mustState()).accepted ?? 0;
      await s.knock("alice");
      await waitFor(
        async () => (await s.state())?.accepted === accepted + 1,
        { timeoutMs: EVENT_TIMEOUT_MS, what: "the knock accepted" },
      );
      const session = sessionsOf(await s.mustState(), "alice")[0];
      assert.ok(session !== undefined);
      // The state file has whole seconds (truncated): the deadline is in [shown, shown + 1 s).
      const shown = Date.parse(session.expires_at);
      await waitFor(async () => (await s.perKnockRules()).length === 0, {
        timeoutMs: EVENT_TIMEOUT_MS,
        intervalMs: 100,
        what: "the rules removed at the deadline",
      });
      // Never before the deadline; how long after it depends on the machine.
      const closedAt = Date.now();
      assert.ok(closedAt >= shown, `closed ${shown - closedAt} ms early`);
      assert.equal(await s.reachable(SERVER_V4), false);
      await waitFor(
        async () => (await s.state())?.active_sessions.length === 0,
        { timeoutMs: EVENT_TIMEOUT_MS, what: "state file without sessions" },
      );
      assert.match(
        serve.output(),
        /closed 22\/tcp,54154\/tcp for 192\.0\.2\.2 \(client alice\): timeout/,
      );
    },
  );

  await step(
    "knock_timeout edited back to 30s without restart; SIGHUP reloads",
    async () => {
      await editKnockTimeout(s, serve, "3s", "30s");
      serve.child.kill("SIGHUP");
      await waitFor(
        () => countLines(serve.output(), /config reloaded \(SIGHUP\)/) === 1,
        { timeoutMs: EVENT_TIMEOUT_MS, what: "the reload on SIGHUP" },
      );
      assert.ok(s.running(serve), "SIGHUP does not stop the server");
    },
  );

  await step(
    "replayed, tampered, stale, future and junk datagrams change nothing",
    async () => {
      const before = await s.mustState();
      const fresh = () => buildKnock(aliceKeys);
      await s.sendRaw([
        replayPacket, // replay
        flipByte(fresh(), KNOCK_PACKET_BYTES - 1), // signature tampered: unknown_client
        flipByte(fresh(), 60), // ciphertext tampered: decrypt
        buildKnock(aliceKeys, { timestampNs: nowNs(-STALE_OFFSET_MS) }), // stale
        buildKnock(aliceKeys, { timestampNs: nowNs(STALE_OFFSET_MS) }), // future: stale
        randomDatagram(KNOCK_PACKET_BYTES, 1), // junk of the right size: decrypt
        randomDatagram(64, null), // junk: size, dropped by the knock gate
        randomDatagram(KNOCK_PACKET_BYTES, 2), // junk: version, by the gate
      ]);
      const expected: Record<string, number> = {
        replay: 1,
        unknown_client: 1,
        decrypt: 2,
        stale: 2,
        size: 0,
        version: 0,
      };
      const gate = (state: StateFile | null, reason: "size" | "version") =>
        state?.kernel_drops?.[reason] ?? 0;
      await waitFor(async () => {
        const now = await s.state();
        return Object.entries(expected).every(([reason, n]) =>
          drops(now, reason) >= drops(before, reason) + n
        ) && gate(now, "size") === gate(before, "size") + 1 &&
          gate(now, "version") === gate(before, "version") + 1;
      }, {
        timeoutMs: EVENT_TIMEOUT_MS,
        what: "the drop counters in the state file",
      });
      const after = await s.mustState();
      for (const [reason, n] of Object.entries(expected)) {
        assert.equal(
          drops(after, reason) - drops(before, reason),
          n,
          `drops.${reason}`,
        );
      }
      assert.equal(after.accepted, before.accepted);
      assert.deepEqual(after.active_sessions, []);
      assert.equal((await s.perKnockRules()).length, 0);
      assert.equal(await s.reachable(SERVER_V4), false);
      assert.ok(s.running(serve), "the server is still running");
      // --log-level debug: one line per dropped datagram.
      assert.equal(
        countLines(
          serve.output(),
          /^DEBUG dropped datagram from 192\.0\.2\.2: replay$/,
        ),
        1,
      );
      assert.equal(
        countLines(
          serve.output(),
          /^DEBUG dropped datagram from 192\.0\.2\.2: stale$/,
        ),
        2,
      );
    },
  );

  await step("an IPv6 knock opens port 22 over IPv6", async () => {
    await s.knock("alice6", ["-6"]);
    await waitFor(() => s.reachable(SERVER_V6, { timeoutMs: 500 }), {
      timeoutMs: EVENT_TIMEOUT_MS,
      what: "port 22 open over IPv6",
    });
    const rules = await s.perKnockRules();
    assert.ok(
      rules.length > 0 && rules.every((r) => r.includes("2001:db8::2")),
      rules.join("\n"),
    );
    assert.equal(await s.reachable(SERVER_V4), false, "IPv4 stays closed");
  });

  await step("--ip opens for the named address only", async () => {
    await s.knock("alice", ["--ip", CLIENT_V4_ALT]);
    await waitFor(
      () => s.reachable(SERVER_V4, { from: CLIENT_V4_ALT, timeoutMs: 1000 }),
      {
        timeoutMs: EVENT_TIMEOUT_MS,
        what: `port 22 open for ${CLIENT_V4_ALT}`,
      },
    );
    assert.equal(
      await s.reachable(SERVER_V4, { from: CLIENT_V4, timeoutMs: 1000 }),
      false,
      `closed for ${CLIENT_V4}`,
    );
    const ips = sessionsOf(await s.mustState(), "alice").map((x) => x.ip);
    assert.ok(
      ips.includes(CLIENT_V4_ALT) && !ips.includes(CLIENT_V4),
      ips.join(),
    );
  });

  await step(
    "revoke while serving closes the client's session and refuses its knocks",
    async () => {
      await s.knock("bob", ["--ip", CLIENT_V4_ALT]);
      await s.knock("alice");
      await waitFor(async () => {
        const state = await s.state();
        return sessionsOf(state, "bob").length === 1 &&
          sessionsOf(state, "alice").some((x) => x.ip === CLIENT_V4);
      }, { timeoutMs: EVENT_TIMEOUT_MS, what: "sessions of alice and bob" });
      assert.equal(
        await s.reachable(SERVER_V4, { timeoutMs: EVENT_TIMEOUT_MS }),
        true,
      );
      const bobDeadline = sessionsOf(await s.mustState(), "bob")[0].expires_at;
      const revoke = await s.server(["revoke", "alice"]);
      assert.equal(revoke.code, 0, revoke.stderr);
      await waitFor(async () => {
        const rules = await s.perKnockRules();
        return !rules.some((r) => /192\.0\.2\.2[ /]/.test(r));
      }, {
        timeoutMs: EVENT_TIMEOUT_MS,
        intervalMs: 100,
        what: "alice's rules removed",
      });
      assert.equal(await s.reachable(SERVER_V4), false);
      await waitFor(
        async () => sessionsOf(await s.state(), "alice").length === 0,
        { timeoutMs: EVENT_TIMEOUT_MS, what: "alice gone from the state file" },
      );
      assert.match(serve.output(), /\(client alice\): client revoked/);
      const state = await s.mustState();
      assert.equal(sessionsOf(state, "bob")[0]?.expires_at, bobDeadline);
      const refused = drops(state, "unknown_client");
      await s.knock("alice");
      await waitFor(
        async () => drops(await s.state(), "unknown_client") === refused + 1,
        { timeoutMs: EVENT_TIMEOUT_MS, what: "alice's knock refused" },
      );
      assert.equal(await s.reachable(SERVER_V4), false);
    },
  );

  await step(
    "an expires edit in the past closes the client's session and refuses its knocks",
    async () => {
      await s.setClientKey("bob", "expires", "2001-01-01T00:00:00Z");
      await waitFor(async () => {
        const rules = await s.perKnockRules();
        return !rules.some((r) => /192\.0\.2\.3[ /]/.test(r));
      }, {
        timeoutMs: EVENT_TIMEOUT_MS,
        intervalMs: 100,
        what: "bob's rules removed",
      });
      // The close is logged once nft has returned, a moment after the rules went.
      await waitFor(
        () => /\(client bob\): client expired/.test(serve.output()),
        {
          timeoutMs: EVENT_TIMEOUT_MS,
          what: "the close logged as client expired",
        },
      );
      const expired = drops(await s.state(), "expired");
      await s.knock("bob");
      await waitFor(
        async () => drops(await s.state(), "expired") === expired + 1,
        { timeoutMs: EVENT_TIMEOUT_MS, what: "bob's knock refused as expired" },
      );
      assert.equal(await s.reachable(SERVER_V4), false);
    },
  );

  await step(
    "a client added while serving can knock without restart",
    async () => {
      const reloads = countLines(serve.output(), /config reloaded/);
      await s.addClient("carol");
      await waitFor(
        () => countLines(serve.output(), /config reloaded/) > reloads,
        {
          timeoutMs: EVENT_TIMEOUT_MS,
          what: "the reload after add",
        },
      );
      await s.knock("carol");
      await waitFor(() => s.reachable(SERVER_V4, { timeoutMs: 500 }), {
        timeoutMs: EVENT_TIMEOUT_MS,
        what: "port 22 open for carol",
      });
      // Port 22 answers as soon as its rule is in; the session is recorded
      // once the whole open (health port too) finished.
      await waitFor(
        async () => sessionsOf(await s.state(), "carol").length === 1,
        { timeoutMs: EVENT_TIMEOUT_MS, what: "carol's session recorded" },
      );
    },
  );

  await step(
    "SIGTERM exits 0, removes every openme rule and leaves the base ruleset as it was",
    async () => {
      const code = await serve.stop("SIGTERM", EVENT_TIMEOUT_MS);
      assert.equal(code, 0, serve.output());
      assert.equal(await s.bed.serverRules(), baseline);
      assert.equal(await s.reachable(SERVER_V4), false);
      assert.deepEqual((await s.mustState()).active_sessions, []);
      assert.match(serve.output(), /\(client carol\): shutdown/);
    },
  );

  await step(
    "--log-level warn hides the open lines; after kill -9 a restart removes the stale rules",
    async () => {
      serve = await s.serve("warn");
      await s.knock("carol");
      await waitFor(() => s.reachable(SERVER_V4, { timeoutMs: 500 }), {
        timeoutMs: EVENT_TIMEOUT_MS,
        what: "port 22 open for carol",
      });
      assert.ok(!/opened|INFO/.test(serve.output()), serve.output());
      // Port 22 answers after its rule went in; the health port rule comes
      // next: kill only once both are in (the session is then in the state).
      await waitFor(
        async () => sessionsOf(await s.state(), "carol").length > 0,
        {
          timeoutMs: EVENT_TIMEOUT_MS,
          what: "carol's session (all its rules) in the state file",
        },
      );
      await serve.stop("SIGKILL");
      assert.ok((await s.perKnockRules()).length > 0, "kill -9 left the rules");
      assert.equal(
        await s.reachable(SERVER_V4, { timeoutMs: EVENT_TIMEOUT_MS }),
        true,
      );
      serve = await s.serve("info");
      assert.deepEqual(await s.openmeRulesBeyondKnockAndJump(), []);
      assert.equal(await s.reachable(SERVER_V4), false);
      assert.match(serve.output(), /removed 2 stale per-knock/);
      const code = await serve.stop("SIGTERM", EVENT_TIMEOUT_MS);
      assert.equal(code, 0, serve.output());
      assert.equal(await s.bed.serverRules(), baseline);
    },
  );

  await step(
    "drop_ports and interface: drops close the ports under an accept policy; rules match the interface",
    async () => {
      const iface = await s.serverInterface();
      await s.editConfig("drop_ports: false", "drop_ports: true");
      await s.editConfig('interface: ""', `interface: ${iface}`);
      await s.setInputPolicy("accept");
      try {
        const acceptBaseline = await s.bed.serverRules();
        assert.equal(
          await s.reachable(SERVER_V4, { timeoutMs: EVENT_TIMEOUT_MS }),
          true,
          "policy accept",
        );
        serve = await s.serve("info");
        const rules = (await s.bed.serverRules()).split("\n");
        const drop = rules.filter((r) => r.includes("openme-drop"));
        // 22/tcp and the health port: nft one inet rule each; iptables one
        // each in iptables and in ip6tables.
        assert.equal(
          drop.length,
          s.backend === "nft" ? 2 : 4,
          drop.join("\n"),
        );
        assert.ok(
          drop.every((r) =>
            r.includes(iface) &&
            new RegExp(`dport (22|${KNOCK_PORT})\\b`).test(r)
          ),
          drop.join("\n"),
        );
        assert.ok(
          drop.some((r) => new RegExp(`dport ${KNOCK_PORT}\\b`).test(r)),
          "the health port is dropped too",
        );
        const knockRule = rules.filter((r) => r.includes("openme-knock"));
        assert.ok(
          knockRule.length > 0 && knockRule.every((r) => r.includes(iface)),
        );
        assert.equal(
          await s.reachable(SERVER_V4),
          false,
          "closed by the drop rule",
        );
        assert.equal(
          await s.reachable(SERVER_V4, { port: KNOCK_PORT }),
          false,
          "the health port is closed by its drop rule: status needs a knock",
        );
        await s.knock("carol");
        await waitFor(() => s.reachable(SERVER_V4, { timeoutMs: 500 }), {
          timeoutMs: EVENT_TIMEOUT_MS,
          what: "port 22 open for carol despite the drop rule",
        });
        const perKnock = await s.perKnockRules();
        assert.ok(
          perKnock.length > 0 && perKnock.every((r) => r.includes(iface)),
          perKnock.join("\n"),
        );
        assert.equal(await serve.stop("SIGTERM", EVENT_TIMEOUT_MS), 0);
        assert.equal(await s.bed.serverRules(), acceptBaseline);
        assert.equal(
          await s.reachable(SERVER_V4, { timeoutMs: EVENT_TIMEOUT_MS }),
          true,
          "drop rule removed",
        );
      } finally {
        await s.setInputPolicy("drop");
      }
      assert.equal(await s.bed.serverRules(), baseline);
    },
  );

  await step(
    "serve --interface overrides the config: knocks on another interface never arrive",
    async () => {
      serve = await s.serve("info", ["--interface", "lo"]);
      const knockRule = (await s.bed.serverRules()).split("\n").filter((r) =>
        r.includes("openme-knock")
      );
      assert.ok(
        knockRule.length > 0 && knockRule.every((r) => /\blo\b/.test(r)),
        knockRule.join("\n"),
      );
      await s.knock("carol");
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.equal((await s.mustState()).accepted, 0);
      assert.equal(await s.reachable(SERVER_V4), false);
      assert.equal(await serve.stop("SIGTERM", EVENT_TIMEOUT_MS), 0);
      assert.equal(await s.bed.serverRules(), baseline);
    },
  );
}
