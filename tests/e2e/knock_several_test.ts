/**
 * `openme knock web1 db --check` end to end: one client namespace knocks two
 * real servers at once, each in its own network namespace with the
 * default-deny ruleset (scripts/testbed.ts plus a second server namespace on
 * a link of its own), then again with one server stopped.
 */
import assert from "node:assert/strict";
import {
  applyDefaultDeny,
  openmeCommand,
  runOk,
  SERVER_V4,
  Testbed,
  testbedUnavailable,
  waitFor,
} from "../../scripts/testbed.ts";

/** The second server and the client's address on its link (documentation range). */
const SERVER_B = "198.51.100.1";
const CLIENT_B = "198.51.100.2";
/** Deadline for anything a server should do soon. */
const EVENT_TIMEOUT_MS = 60_000;

const skip = testbedUnavailable("nft");
if (skip !== null) console.warn(`SKIP knock several servers: ${skip}`);

Deno.test({
  name:
    "knock web1 db --check knocks two servers in one command, one ✓ line each; with one down it exits 1 naming it",
  ignore: skip !== null,
  fn: async () => {
    const bed = await Testbed.create({ prefix: "om-k2" });
    const nsB = `${bed.serverNs}b`.slice(-40);
    try {
      await buildSecondServer(bed, nsB);
      await scenario(bed, nsB);
    } finally {
      await bed.destroy();
      await runOk(["ip", "netns", "del", nsB]).catch(() => {});
    }
  },
});

/** A second server namespace linked to the testbed's client namespace, with the default-deny ruleset and a listener on port 22. */
async function buildSecondServer(bed: Testbed, nsB: string): Promise<void> {
  const tag = `${Deno.pid % 100000}`;
  const [vs, vc] = [`omb${tag}s`, `omb${tag}c`];
  await runOk(["ip", "netns", "add", nsB]);
  await runOk([
    "ip",
    "link",
    "add",
    vs,
    "netns",
    nsB,
    "type",
    "veth",
    "peer",
    "name",
    vc,
    "netns",
    bed.clientNs,
  ]);
  await runOk(["ip", "-n", nsB, "link", "set", "lo", "up"]);
  await runOk(["ip", "-n", nsB, "addr", "add", `${SERVER_B}/24`, "dev", vs]);
  await runOk([
    "ip",
    "-n",
    bed.clientNs,
    "addr",
    "add",
    `${CLIENT_B}/24`,
    "dev",
    vc,
  ]);
  await runOk(["ip", "-n", nsB, "link", "set", vs, "up"]);
  await runOk(["ip", "-n", bed.clientNs, "link", "set", vc, "up"]);
  await applyDefaultDeny(nsB, "nft");
  const listener = bed.spawn(nsB, [
    "deno",
    "eval",
    "--no-config",
    `const l = Deno.listen({ hostname: "::", port: 22 }); console.log("ready"); for await (const c of l) c.close();`,
  ]);
  await waitFor(() => listener.output().includes("ready"), {
    timeoutMs: EVENT_TIMEOUT_MS,
    what: "TCP listener on port 22 of the second server",
  });
}

async function scenario(bed: Testbed, nsB: string): Promise<void> {
  const servers = [
    { ns: bed.serverNs, host: SERVER_V4, profile: "web1", dir: `${bed.dir}/a` },
    { ns: nsB, host: SERVER_B, profile: "db", dir: `${bed.dir}/b` },
  ];
  const clientConfig = `${bed.dir}/client.yaml`;
  const running = [];
  for (const s of servers) {
    const config = `${s.dir}/config.yaml`;
    const server = (args: string[]) =>
      bed.openme(s.ns, ["--config", config, ...args]);
    assert.equal((await server(["init", "--server", s.host])).code, 0);
    const out = `${s.dir}/${s.profile}.yaml`;
    const add = await server([
      "add",
      "me",
      "--out",
      out,
      "--profile",
      s.profile,
    ]);
    assert.equal(add.code, 0, add.stderr);
    const imported = await bed.openme(bed.clientNs, [
      "--client-config",
      clientConfig,
      "import",
      out,
    ]);
    assert.equal(imported.code, 0, imported.stderr);
    const state = `${s.dir}/sessions.json`;
    const serve = bed.spawn(
      s.ns,
      openmeCommand(["--config", config, "serve", "--state-file", state]),
    );
    await waitFor(async () => {
      const text = await Deno.readTextFile(state).catch(() => "{}");
      return JSON.parse(text).pid === serve.child.pid;
    }, { timeoutMs: EVENT_TIMEOUT_MS, what: `openme serve on ${s.host}` });
    running.push(serve);
  }
  const knock = (args: string[]) =>
    bed.openme(bed.clientNs, [
      "--client-config",
      clientConfig,
      "knock",
      ...args,
    ]);
  for (const s of servers) {
    assert.equal(await bed.tcpOpen(s.host, 22), false, `${s.host} closed`);
  }

  const both = await knock(["web1", "db", "--check"]);
  assert.equal(both.code, 0, both.stdout + both.stderr);
  const lines = both.stdout.trim().split("\n");
  assert.equal(lines.length, 2, both.stdout);
  assert.match(
    lines[0],
    /^✓ web1: knocked 192\.0\.2\.1:54154; ✓ health port tcp 192\.0\.2\.1:54154 open after \d+ ms$/,
  );
  assert.match(
    lines[1],
    /^✓ db: knocked 198\.51\.100\.1:54154; ✓ health port tcp 198\.51\.100\.1:54154 open after \d+ ms$/,
  );
  for (const s of servers) {
    assert.equal(
      await bed.tcpOpen(s.host, 22, { timeoutMs: 5000 }),
      true,
      `${s.host} open`,
    );
  }

  // One server down: the other still opens, the output says which failed.
  assert.equal(await running[1].stop("SIGTERM", EVENT_TIMEOUT_MS), 0);
  const one = await knock(["--all", "--check"]);
  assert.equal(one.code, 1, one.stdout + one.stderr);
  const [web1, db] = one.stdout.trim().split("\n");
  assert.match(web1, /^✓ web1: knocked 192\.0\.2\.1:54154; ✓ health port/);
  assert.match(
    db,
    /^✗ db: knocked 198\.51\.100\.1:54154; ✗ health port tcp 198\.51\.100\.1:54154 still closed/,
  );
  assert.match(one.stderr, /^openme: 1 of 2 profiles failed: db$/m);
}
