/**
 * Drop-in client files end to end, with nft and with iptables: the real CLI
 * as root in two network namespaces (scripts/testbed.ts). A client from a
 * clients.d file opens its ports; deleting the file closes them and refuses
 * the next knock; a world-writable file is refused while config.yaml and
 * the other files keep working; a duplicate name is an error naming both
 * places; a broken file keeps its last good clients.
 */
import assert from "node:assert/strict";
import { upsertClientProfile } from "../../lib/config/client_config.ts";
import { loadServerConfig } from "../../lib/config/server_config.ts";
import { generateEd25519KeyPair } from "../../lib/protocol/crypto.ts";
import type { StateFile } from "../../lib/server/state_file.ts";
import {
  CLIENT_V4_ALT,
  openmeCommand,
  SERVER_V4,
  Testbed,
  type TestbedBackend,
  testbedUnavailable,
  waitFor,
} from "../../scripts/testbed.ts";

/** Deadline for anything the server should do soon (a reload takes under 2 s when idle). */
const EVENT_TIMEOUT_MS = 60_000;

for (const backend of ["nft", "iptables"] as TestbedBackend[]) {
  const skip = testbedUnavailable(backend);
  if (skip !== null) {
    console.warn(`SKIP clients.d end-to-end with ${backend}: ${skip}`);
  }
  Deno.test({
    name:
      `clients.d with ${backend}: a drop-in client opens its ports, deleting its file closes them and refuses it, an unsafe file is refused alone, a duplicate names both places`,
    ignore: skip !== null,
    fn: async () => {
      const bed = await Testbed.create({
        prefix: `om-cd-${backend === "nft" ? "nft" : "ipt"}`,
        backend,
      });
      try {
        await scenario(bed);
      } finally {
        await bed.destroy();
      }
    },
  });
}

async function scenario(bed: Testbed): Promise<void> {
  const config = `${bed.dir}/config.yaml`;
  const clientsDir = `${bed.dir}/clients.d`;
  const stateFile = `${bed.dir}/sessions.json`;
  const server = (args: string[]) =>
    bed.openme(bed.serverNs, ["--config", config, ...args]);
  const init = await server([
    "init",
    "--server",
    SERVER_V4,
    "--firewall",
    bed.backend,
  ]);
  assert.equal(init.code, 0, init.stderr);
  const add = await server(["add", "alice", "--out", `${bed.dir}/alice.yaml`]);
  assert.equal(add.code, 0, add.stderr);
  await Deno.mkdir(clientsDir);
  await Deno.chmod(clientsDir, 0o755);

  const serverKey = (await loadServerConfig(config)).publicKey.toBase64();
  /** A client: its client config file, and the drop-in text that registers it. */
  async function client(name: string): Promise<string> {
    const keys = generateEd25519KeyPair();
    await upsertClientProfile(`${bed.dir}/${name}.yaml`, {
      name: "default",
      serverHost: SERVER_V4,
      serverUdpPort: 54154,
      serverPubkeyB64: serverKey,
      privateKeyB64: keys.privateKey.toBase64(),
      publicKeyB64: keys.publicKey.toBase64(),
    });
    return `# ${name}\nclients:\n  ${name}:\n    ed25519_pubkey: ${keys.publicKey.toBase64()}\n    allowed_ports: [default]\n`;
  }
  async function writeDropIn(file: string, text: string, mode = 0o644) {
    await Deno.writeTextFile(`${clientsDir}/${file}`, text);
    await Deno.chmod(`${clientsDir}/${file}`, mode);
  }
  async function knock(name: string, args: string[] = []): Promise<void> {
    const result = await bed.openme(bed.clientNs, [
      "--client-config",
      `${bed.dir}/${name}.yaml`,
      "knock",
      ...args,
    ]);
    assert.equal(result.code, 0, `knock ${name}: ${result.stderr}`);
  }
  async function state(): Promise<StateFile | null> {
    return JSON.parse(await Deno.readTextFile(stateFile).catch(() => "null"));
  }
  const sessions = async (name: string): Promise<number> =>
    ((await state())?.active_sessions ?? []).filter((s) =>
      s.client_name === name
    ).length;
  const refused = async (): Promise<number> =>
    (await state())?.drops?.unknown_client ?? 0;
  const reachable = (from?: string): Promise<boolean> =>
    bed.tcpOpen(SERVER_V4, 22, { timeoutMs: 700, from });

  await writeDropIn("bob.yaml", await client("bob"));
  await writeDropIn("dave.yaml", await client("dave"));
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
  assert.match(serve.output(), /openme serving: .* 3 client\(s\)/);

  // A drop-in client opens its ports.
  assert.equal(await reachable(), false);
  await knock("bob");
  await waitFor(() => reachable(), {
    timeoutMs: EVENT_TIMEOUT_MS,
    what: "port 22 open after bob's knock",
  });
  await waitFor(async () => await sessions("bob") === 1, {
    timeoutMs: EVENT_TIMEOUT_MS,
    what: "bob's session in the state file",
  });

  // Deleting its file closes them and refuses the next knock.
  await Deno.remove(`${clientsDir}/bob.yaml`);
  await waitFor(async () => await sessions("bob") === 0 && !await reachable(), {
    timeoutMs: EVENT_TIMEOUT_MS,
    what: "bob's session closed after his file was deleted",
  });
  assert.match(serve.output(), /\(client bob\): client revoked/);
  let before = await refused();
  await knock("bob");
  await waitFor(async () => await refused() === before + 1, {
    timeoutMs: EVENT_TIMEOUT_MS,
    what: "bob's knock refused",
  });
  assert.equal(await reachable(), false);

  // A world-writable file is refused on its own; the others keep working.
  await writeDropIn("carol.yaml", await client("carol"), 0o666);
  const unsafe = new RegExp(
    `carol\\.yaml: mode 0666 lets other users change it \\(run chmod go-w ${clientsDir}/carol\\.yaml\\); file refused`,
  );
  await waitFor(() => unsafe.test(serve.output()), {
    timeoutMs: EVENT_TIMEOUT_MS,
    what: "the world-writable file refused",
  });
  before = await refused();
  await knock("carol");
  await waitFor(async () => await refused() === before + 1, {
    timeoutMs: EVENT_TIMEOUT_MS,
    what: "carol's knock refused",
  });
  assert.equal(await reachable(), false);
  await knock("dave", ["--ip", CLIENT_V4_ALT]);
  await waitFor(() => reachable(CLIENT_V4_ALT), {
    timeoutMs: EVENT_TIMEOUT_MS,
    what: "dave's knock (another drop-in file) opens",
  });
  await knock("alice");
  await waitFor(() => reachable(), {
    timeoutMs: EVENT_TIMEOUT_MS,
    what: "alice's knock (config.yaml) opens",
  });

  // A duplicate name is an error naming both places; the first stays.
  await writeDropIn("zz.yaml", "clients:\n  dave:\n    ed25519_pubkey: x\n");
  const duplicate = new RegExp(
    `zz\\.yaml:2: clients\\.dave: client "dave" is also defined at ${clientsDir}/dave\\.yaml:3`,
  );
  await waitFor(() => duplicate.test(serve.output()), {
    timeoutMs: EVENT_TIMEOUT_MS,
    what: "the duplicate name reported with both places",
  });
  // dave, defined first, is still served; so is he from his last good
  // entry once his own file breaks.
  const daveAccepted = async (): Promise<void> => {
    const accepted = (await state())?.accepted ?? 0;
    await knock("dave", ["--ip", CLIENT_V4_ALT]);
    await waitFor(async () => (await state())?.accepted === accepted + 1, {
      timeoutMs: EVENT_TIMEOUT_MS,
      what: "dave's knock accepted",
    });
  };
  await daveAccepted();
  await writeDropIn("dave.yaml", "clients:\n  dave: [\n");
  const broken = /dave\.yaml:2: invalid YAML: the \[ opened/;
  await waitFor(() => broken.test(serve.output()), {
    timeoutMs: EVENT_TIMEOUT_MS,
    what: "the broken file reported",
  });
  await daveAccepted();
  assert.equal(await serve.stop("SIGTERM", EVENT_TIMEOUT_MS), 0);
}
