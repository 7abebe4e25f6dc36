/**
 * Tests of `openme knock` through the CLI: single knocks, `--check` against
 * a local TCP listener, `--continuous` stopped by SIGINT, failed sends that
 * are retried, dual-stack knocking captured on loopback inside a network
 * namespace whose /etc/hosts maps a name to 127.0.0.1 and ::1, post_knock's
 * environment and exit code, and the error messages.
 */

import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { join } from "node:path";
import { KNOCK_PACKET_BYTES } from "../../../lib/protocol/packet.ts";
import {
  acceptingTcpListener,
  freeTcpPort,
  openme,
  runMain,
  spawnMain,
  writeTestProfile,
} from "../../support/cli.ts";
import {
  canRunNetnsTests,
  IP_TOOL,
  withNamespace,
} from "../../support/netns.ts";
import { withTempDir } from "../../support/files.ts";

/** Prefix of this file's temporary directories. */
const TEMP_PREFIX = "openme-knock-cmd-";
const PROCESS_TIMEOUT_MS = 60_000;

const canUseNetns = await canRunNetnsTests("knock namespace tests", {
  rootFor: "ip netns add, /etc/netns",
  tools: [IP_TOOL],
});
const canSignal = Deno.build.os !== "windows";
if (!canSignal) console.warn("SKIP knock SIGINT test: no SIGINT on Windows");

/** A long-running CLI process whose output is collected while it runs. */
interface Running {
  output(): { out: string; err: string };
  waitFor(pattern: RegExp, what: string): Promise<void>;
  stop(signal: Deno.Signal): Promise<number>;
}

/** A child's standard output and error as collected so far, and the promise that ends with them. */
interface CollectedOutput {
  output(): { out: string; err: string };
  pumps: Promise<unknown>;
}

/** Collects a child's piped standard output and error as they arrive. */
function collectOutput(child: Deno.ChildProcess): CollectedOutput {
  let out = "";
  let err = "";
  const decoder = new TextDecoder();
  const pumps = Promise.all([
    (async () => {
      for await (const chunk of child.stdout) out += decoder.decode(chunk);
    })(),
    (async () => {
      for await (const chunk of child.stderr) err += decoder.decode(chunk);
    })(),
  ]);
  return { output: () => ({ out, err }), pumps };
}

function spawnProcess(args: string[], netns?: string): Running {
  const child = spawnMain(args, { netns });
  const { output, pumps } = collectOutput(child);
  const killer = setTimeout(() => child.kill("SIGKILL"), PROCESS_TIMEOUT_MS);
  return {
    output,
    waitFor: async (pattern, what) => {
      const deadline = Date.now() + 20_000;
      while (!pattern.test(output().out + output().err)) {
        if (Date.now() > deadline) {
          const { out, err } = output();
          throw new Error(
            `timed out waiting for ${what}; output:\n${out}\n${err}`,
          );
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    stop: async (signal) => {
      child.kill(signal);
      const status = await child.status;
      clearTimeout(killer);
      await pumps;
      return status.code;
    },
  };
}

/** Runs fn in a fresh namespace with lo up and the given /etc/netns files; removes both afterwards. */
async function withEtcNamespace(
  etcFiles: Record<string, string>,
  fn: (ns: string) => Promise<void>,
): Promise<void> {
  await withNamespace("knock", async (ns) => {
    const etcDir = `/etc/netns/${ns}`;
    try {
      if (Object.keys(etcFiles).length > 0) {
        await Deno.mkdir(etcDir, { recursive: true });
        for (const [name, text] of Object.entries(etcFiles)) {
          await Deno.writeTextFile(join(etcDir, name), text);
        }
      }
      await fn(ns);
    } finally {
      await Deno.remove(etcDir, { recursive: true }).catch(() => {});
      await Deno.remove("/etc/netns").catch(() => {}); // only when empty
    }
  }, { loopbackUp: true });
}

Deno.test("knock sends one 165-byte datagram to the profile's server and says where", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const socket = createSocket("udp4");
    const received: number[] = [];
    socket.on("message", (msg) => received.push(msg.length));
    await new Promise<void>((r) => socket.bind(0, "127.0.0.1", () => r()));
    try {
      const port = socket.address().port;
      const config = join(dir, "client.yaml");
      await writeTestProfile(config, { host: "127.0.0.1", port });
      const result = await openme(["--client-config", config, "knock"]);
      assert.equal(result.code, 0, result.err);
      assert.equal(result.out, `knocked 127.0.0.1:${port}`);
      const deadline = Date.now() + 20_000;
      while (received.length === 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.deepEqual(received, [KNOCK_PACKET_BYTES]);
    } finally {
      await new Promise<void>((r) => socket.close(() => r()));
    }
  });
});

Deno.test("knock --check prints ✓ with the time when the health port answers", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const listener = acceptingTcpListener();
    try {
      const config = join(dir, "client.yaml");
      await writeTestProfile(config, {
        host: "127.0.0.1",
        port: listener.port,
      });
      const result = await openme([
        "--client-config",
        config,
        "knock",
        "--check",
      ]);
      assert.equal(result.code, 0, result.err);
      assert.match(
        result.out,
        new RegExp(
          `^knocked 127\\.0\\.0\\.1:${listener.port}\\n✓ health port tcp 127\\.0\\.0\\.1:${listener.port} open after \\d+ ms$`,
        ),
      );
    } finally {
      await listener.close();
    }
  });
});

Deno.test("knock --check prints ✗ after 3 s and exits 1 when the health port never opens", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const port = freeTcpPort();
    const config = join(dir, "client.yaml");
    await writeTestProfile(config, {
      host: "127.0.0.1",
      port,
      postKnock: `touch '${join(dir, "ran")}'`,
    });
    const started = performance.now();
    const result = await openme([
      "--client-config",
      config,
      "knock",
      "--check",
    ]);
    // It waits the whole 3 s (a lower bound: a busy machine only adds).
    const elapsed = performance.now() - started;
    assert.equal(result.code, 1);
    assert.match(
      result.out,
      new RegExp(
        `✗ health port tcp 127\\.0\\.0\\.1:${port} still closed after \\d+ ms \\(ECONNREFUSED\\)`,
      ),
    );
    assert.ok(elapsed >= 2900, `gave up after ${elapsed} ms`);
    // post_knock runs only after a successful check.
    await assert.rejects(
      () => Deno.stat(join(dir, "ran")),
      Deno.errors.NotFound,
    );
  });
});

Deno.test({
  name:
    "knock --continuous prints a timestamped line per knock and exits 0 on SIGINT",
  ignore: !canSignal,
  fn: async () => {
    await withTempDir(TEMP_PREFIX, async (dir) => {
      const config = join(dir, "client.yaml");
      await writeTestProfile(config, {
        host: "127.0.0.1",
        port: freeTcpPort(),
      });
      const proc = spawnProcess([
        "--client-config",
        config,
        "knock",
        "--continuous",
        "--interval",
        "1s",
      ]);
      await proc.waitFor(/Z knocked .*\n[\s\S]*Z knocked /, "two knock lines");
      const code = await proc.stop("SIGINT");
      const { out } = proc.output();
      assert.equal(code, 0, out);
      const knocks = out.split("\n").filter((l) =>
        /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ knocked 127\.0\.0\.1:\d+$/.test(l)
      );
      assert.ok(knocks.length >= 2, out);
      assert.match(out, /^knocking default every 1s; Ctrl-C to stop$/m);
      assert.match(out, /Z stopped\n$/);
    });
  },
});

Deno.test({
  name:
    "knock --continuous knocks every 25 s by default and does not run post_knock, saying so on stderr",
  ignore: !canSignal,
  fn: async () => {
    await withTempDir(TEMP_PREFIX, async (dir) => {
      const config = join(dir, "client.yaml");
      const marker = join(dir, "post_knock_ran");
      await writeTestProfile(config, {
        host: "127.0.0.1",
        port: freeTcpPort(),
        postKnock: `touch ${marker}`,
      });
      const proc = spawnProcess([
        "--client-config",
        config,
        "knock",
        "--continuous",
      ]);
      await proc.waitFor(/Z knocked /, "the first knock line");
      const code = await proc.stop("SIGINT");
      const { out, err } = proc.output();
      assert.equal(code, 0, out + err);
      assert.match(out, /^knocking default every 25s; Ctrl-C to stop$/m);
      assert.match(
        err,
        /post_knock of profile default is not run with --continuous/,
      );
      await assert.rejects(Deno.stat(marker), Deno.errors.NotFound);
    });
  },
});

Deno.test({
  name:
    "knock --continuous reports a failed send, retries it, and still stops with 0 on SIGINT",
  ignore: !canUseNetns || !canSignal,
  fn: async () => {
    // A namespace with only lo has no route to 192.0.2.1: every send fails.
    await withEtcNamespace({}, async (ns) => {
      await withTempDir(TEMP_PREFIX, async (dir) => {
        const config = join(dir, "client.yaml");
        await writeTestProfile(config, { host: "192.0.2.1", port: 54154 });
        const proc = spawnProcess([
          "--client-config",
          config,
          "knock",
          "--continuous",
          "--interval",
          "1s",
        ], ns);
        await proc.waitFor(
          /knock failed[\s\S]*knock failed/,
          "two failed knocks",
        );
        const code = await proc.stop("SIGINT");
        const { out, err } = proc.output();
        assert.equal(code, 0, err);
        assert.match(
          err,
          /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ knock failed: sending the knock to 192\.0\.2\.1 port 54154 failed \(ENETUNREACH\): is the network up and the address reachable\? \(retrying in 1s\)$/m,
        );
        assert.match(out, /Z stopped\n$/);
      });
    });
  },
});

Deno.test({
  name: "knock on a closed network exits 1 and says the network is unreachable",
  ignore: !canUseNetns,
  fn: async () => {
    await withEtcNamespace({}, async (ns) => {
      await withTempDir(TEMP_PREFIX, async (dir) => {
        const config = join(dir, "client.yaml");
        await writeTestProfile(config, { host: "192.0.2.1", port: 54154 });
        const result = await runMain(["--client-config", config, "knock"], {
          netns: ns,
        });
        assert.equal(result.code, 1);
        assert.match(
          result.err,
          /openme: sending the knock to 192\.0\.2\.1 port 54154 failed \(ENETUNREACH\): is the network up/,
        );
      });
    });
  },
});

Deno.test({
  name:
    "knock to an unresolvable host name exits 1 with the name and what to check",
  ignore: !canUseNetns,
  fn: async () => {
    // No DNS server answers in the namespace: the lookup fails at once.
    await withEtcNamespace({
      "hosts": "127.0.0.1 localhost\n",
      "resolv.conf": "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
    }, async (ns) => {
      await withTempDir(TEMP_PREFIX, async (dir) => {
        const config = join(dir, "client.yaml");
        await writeTestProfile(config, {
          host: "nowhere.invalid",
          port: 54154,
        });
        const result = await runMain(["--client-config", config, "knock"], {
          netns: ns,
        });
        assert.equal(result.code, 1);
        assert.match(
          result.err,
          /openme: cannot resolve server host "nowhere\.invalid" \(\w+\): check the name in your profile \(server_host\)/,
        );
      });
    });
  },
});

Deno.test({
  name:
    "knock sends one datagram per family to a name with IPv4 and IPv6 addresses; -4 and -6 restrict it",
  ignore: !canUseNetns,
  fn: async () => {
    await withEtcNamespace({
      "hosts": "127.0.0.1 localhost\n127.0.0.1 dual.test\n::1 dual.test\n",
    }, async (ns) => {
      await withTempDir(TEMP_PREFIX, async (dir) => {
        const port = 40000 + (Deno.pid % 20000);
        // Capture inside the namespace: udp4 127.0.0.1:P and udp6 [::1]:P.
        const capture = spawnCapture(ns, port);
        try {
          await capture.waitFor(/ready/, "capture sockets");
          const config = join(dir, "client.yaml");
          await writeTestProfile(config, { host: "dual.test", port });
          const both = await runMain(
            ["--client-config", config, "knock"],
            { netns: ns },
          );
          assert.equal(both.code, 0, both.err);
          assert.equal(
            both.out.trim(),
            `knocked dual.test (127.0.0.1:${port}, [::1]:${port})`,
          );
          const v4 = await runMain(
            ["--client-config", config, "knock", "-4"],
            { netns: ns },
          );
          assert.equal(v4.code, 0, v4.err);
          const v6 = await runMain(
            ["--client-config", config, "knock", "-6"],
            { netns: ns },
          );
          assert.equal(v6.code, 0, v6.err);
          await capture.waitFor(/(got \d \d+\n[\s\S]*){4}/, "four datagrams");
          await new Promise((r) => setTimeout(r, 200));
        } finally {
          await capture.stop("SIGTERM");
        }
        const lines = capture.output().out.split("\n").filter((l) =>
          l.startsWith("got ")
        );
        // First knock: one per family (either order); then -4, then -6.
        assert.equal(lines.length, 4, lines.join("\n"));
        assert.deepEqual(lines.slice(0, 2).sort(), [
          `got 4 ${KNOCK_PACKET_BYTES}`,
          `got 6 ${KNOCK_PACKET_BYTES}`,
        ]);
        assert.deepEqual(lines.slice(2), [
          `got 4 ${KNOCK_PACKET_BYTES}`,
          `got 6 ${KNOCK_PACKET_BYTES}`,
        ]);
      });
    });
  },
});

/** A deno process in the namespace printing "got FAMILY LENGTH" per datagram on udp4 and udp6. */
function spawnCapture(ns: string, port: number): Running {
  const code = `import { createSocket } from "node:dgram";
const v4 = createSocket("udp4");
const v6 = createSocket({ type: "udp6", ipv6Only: true });
v4.on("message", (m) => console.log("got 4 " + m.length));
v6.on("message", (m) => console.log("got 6 " + m.length));
await new Promise((r) => v4.bind(${port}, "127.0.0.1", r));
await new Promise((r) => v6.bind(${port}, "::1", r));
console.log("ready");
setTimeout(() => Deno.exit(0), 120_000);`;
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", ns, "deno", "eval", "--no-config", code],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const { output, pumps } = collectOutput(child);
  return {
    output,
    waitFor: async (pattern, what) => {
      const deadline = Date.now() + 20_000;
      while (!pattern.test(output().out)) {
        if (Date.now() > deadline) {
          const { out, err } = output();
          throw new Error(`timed out waiting for ${what}: ${out} ${err}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    stop: async (signal) => {
      try {
        child.kill(signal);
      } catch {
        // already exited
      }
      const status = await child.status;
      await pumps;
      return status.code;
    },
  };
}

Deno.test({
  name:
    "post_knock runs after the check with OPENME_* set, inherits the terminal, and its exit code becomes openme's",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await withTempDir(TEMP_PREFIX, async (dir) => {
      const listener = acceptingTcpListener();
      try {
        const config = join(dir, "client.yaml");
        await writeTestProfile(config, {
          name: "work",
          host: "127.0.0.1",
          port: listener.port,
          postKnock:
            'echo "post $OPENME_PROFILE $OPENME_SERVER $OPENME_PORT"; exit 3',
        });
        const result = await runMain([
          "--client-config",
          config,
          "knock",
          "work",
          "--check",
        ]);
        assert.equal(result.code, 3, result.err);
        const lines = result.out.trim().split("\n");
        assert.equal(lines.length, 3, result.out);
        assert.equal(lines[0], `knocked 127.0.0.1:${listener.port}`);
        assert.match(lines[1], /^✓ health port tcp /);
        assert.equal(lines[2], `post work 127.0.0.1 ${listener.port}`);
      } finally {
        await listener.close();
      }
    });
  },
});

Deno.test({
  name:
    "knock waits for post_knock through a Ctrl-C and still exits with its code",
  ignore: !canSignal,
  fn: async () => {
    await withTempDir(TEMP_PREFIX, async (dir) => {
      const config = join(dir, "client.yaml");
      const started = join(dir, "started");
      await writeTestProfile(config, {
        host: "127.0.0.1",
        port: freeTcpPort(),
        postKnock: `touch '${started}'; sleep 1; echo done; exit 5`,
      });
      const proc = spawnProcess(["--client-config", config, "knock"]);
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        try {
          await Deno.stat(started);
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      // SIGINT to openme alone (a terminal would send it to the command too).
      const code = await proc.stop("SIGINT");
      assert.equal(code, 5, proc.output().err);
      assert.match(proc.output().out, /^done$/m);
    });
  },
});

Deno.test("knock with an unknown profile exits 1 and lists the profiles", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const config = join(dir, "client.yaml");
    await writeTestProfile(config, {
      name: "work",
      host: "127.0.0.1",
      port: 9,
    });
    await writeTestProfile(config, {
      name: "home",
      host: "127.0.0.1",
      port: 9,
    });
    const result = await openme(["--client-config", config, "knock", "wrok"]);
    assert.equal(result.code, 1);
    assert.equal(
      result.err,
      `openme: no profile "wrok" in ${config} (profiles: work, home)`,
    );
  });
});

Deno.test("knock without a client config says how to get one", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const config = join(dir, "missing.yaml");
    const result = await openme(["--client-config", config, "knock"]);
    assert.equal(result.code, 1);
    assert.match(
      result.err,
      /no client config at .*missing\.yaml: import one with `openme import FILE`/,
    );
  });
});

Deno.test("knock -6 to an IPv4-only server says there is no IPv6 address", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const config = join(dir, "client.yaml");
    await writeTestProfile(config, { host: "127.0.0.1", port: 9 });
    const result = await openme(["--client-config", config, "knock", "-6"]);
    assert.equal(result.code, 1);
    assert.match(
      result.err,
      /server host "127\.0\.0\.1" has no IPv6 address \(drop -6 to use IPv4\)/,
    );
  });
});

Deno.test("knock rejects bad flag combinations with exit 2", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const config = join(dir, "client.yaml");
    await writeTestProfile(config, { host: "127.0.0.1", port: 9 });
    const cases: [string[], RegExp][] = [
      [["--interval", "10s"], /--interval goes with --continuous/],
      [
        ["--continuous", "--interval", "10"],
        /is not a duration between 1s and 24h/,
      ],
      [["--continuous", "--interval", "500ms"], /between 1s and 24h/],
      [["-4", "-6"], /-4 and -6 exclude each other/],
      [["--ip", "not-an-ip"], /--ip "not-an-ip" is not an IP address/],
    ];
    for (const [args, pattern] of cases) {
      const result = await openme([
        "--client-config",
        config,
        "knock",
        ...args,
      ]);
      assert.equal(result.code, 2, args.join(" "));
      assert.match(result.err, pattern);
    }
  });
});

Deno.test("knock with several profiles knocks each at once and prints one line each; a failed one makes exit 1 and is named", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const web1 = acceptingTcpListener();
    const web2 = acceptingTcpListener();
    try {
      const config = join(dir, "client.yaml");
      const closed = freeTcpPort();
      await writeTestProfile(config, {
        name: "web1",
        host: "127.0.0.1",
        port: web1.port,
      });
      await writeTestProfile(config, {
        name: "web2",
        host: "127.0.0.1",
        port: web2.port,
      });
      await writeTestProfile(config, {
        name: "db",
        host: "127.0.0.1",
        port: closed,
      });
      const ok = await openme([
        "--client-config",
        config,
        "knock",
        "web1",
        "web2",
        "--check",
      ]);
      assert.equal(ok.code, 0, ok.err);
      const lines = ok.out.split("\n");
      assert.equal(lines.length, 2, ok.out);
      assert.match(
        lines[0],
        new RegExp(
          `^✓ web1: knocked 127\\.0\\.0\\.1:${web1.port}; ✓ health port tcp 127\\.0\\.0\\.1:${web1.port} open after \\d+ ms$`,
        ),
      );
      assert.match(
        lines[1],
        new RegExp(
          `^✓ web2: knocked 127\\.0\\.0\\.1:${web2.port}; ✓ health port`,
        ),
      );

      const some = await openme([
        "--client-config",
        config,
        "knock",
        "--all",
        "--check",
      ]);
      assert.equal(some.code, 1, some.err);
      const all = some.out.split("\n");
      assert.deepEqual(all.map((l) => l.slice(0, 7)), [
        "✓ web1:",
        "✓ web2:",
        "✗ db: k",
      ]);
      assert.match(
        all[2],
        new RegExp(
          `^✗ db: knocked 127\\.0\\.0\\.1:${closed}; ✗ health port tcp 127\\.0\\.0\\.1:${closed} still closed`,
        ),
      );
      assert.equal(some.err, "openme: 1 of 3 profiles failed: db");

      // Without --check every knock that was sent is fine.
      const sent = await openme(["--client-config", config, "knock", "--all"]);
      assert.equal(sent.code, 0, sent.err);
      assert.equal(sent.out.split("\n").length, 3);
    } finally {
      await web1.close();
      await web2.close();
    }
  });
});

Deno.test("knock with several profiles names a profile whose knock cannot be sent, and knocks the others", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const config = join(dir, "client.yaml");
    await writeTestProfile(config, {
      name: "a",
      host: "127.0.0.1",
      port: freeTcpPort(),
    });
    await writeTestProfile(config, {
      name: "b",
      host: "no-such-host.invalid",
      port: 54154,
    });
    const result = await openme(["--client-config", config, "knock", "a", "b"]);
    assert.equal(result.code, 1);
    const lines = result.out.split("\n");
    assert.match(lines[0], /^✓ a: knocked 127\.0\.0\.1:/);
    assert.match(lines[1], /^✗ b: knock failed: .*no-such-host\.invalid/);
    assert.equal(result.err, "openme: 1 of 2 profiles failed: b");
  });
});

Deno.test("knock rejects --all with names, --continuous with several profiles, and an unknown one among several", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const config = join(dir, "client.yaml");
    await writeTestProfile(config, {
      name: "a",
      host: "127.0.0.1",
      port: freeTcpPort(),
    });
    const cases: [string[], number, RegExp][] = [
      [["--all", "a"], 2, /--all knocks every profile: name none/],
      [["a", "a", "--continuous"], 2, /--continuous knocks a single profile/],
      [["--all", "--continuous"], 2, /--continuous knocks a single profile/],
      [["a", "zz"], 1, /no profile "zz" in .* \(profiles: a\)/],
    ];
    for (const [args, code, pattern] of cases) {
      const result = await openme([
        "--client-config",
        config,
        "knock",
        ...args,
      ]);
      assert.equal(result.code, code, args.join(" "));
      assert.match(result.err, pattern);
    }
  });
});

Deno.test({
  name:
    "knock does not run a post_knock from a client config other users may change, and says why and what to run",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    await withTempDir(TEMP_PREFIX, async (dir) => {
      const config = join(dir, "client.yaml");
      const marker = join(dir, "ran");
      await writeTestProfile(config, {
        host: "127.0.0.1",
        port: freeTcpPort(),
        postKnock: `touch '${marker}'`,
      });
      await Deno.chmod(config, 0o664);
      const writable = await openme(["--client-config", config, "knock"]);
      assert.equal(writable.code, 1);
      assert.match(writable.out, /^knocked 127\.0\.0\.1:/);
      assert.ok(
        writable.err.includes(
          `post_knock of profile default not run: ${config}: mode 0664 lets other users change it (run chmod go-w ${config}), so another user could have put a command there (the knock was sent)`,
        ),
        writable.err,
      );
      await assert.rejects(Deno.stat(marker), Deno.errors.NotFound);
      if (Deno.statSync("/proc/self").uid === 0) {
        await Deno.chmod(config, 0o600);
        await Deno.chown(config, 65534, 65534);
        const foreign = await openme(["--client-config", config, "knock"]);
        assert.equal(foreign.code, 1);
        assert.match(
          foreign.err,
          /it is owned by uid 65534, another user \(run chown \$\(id -un\) .*client\.yaml\)/,
        );
        await assert.rejects(Deno.stat(marker), Deno.errors.NotFound);
        await Deno.chown(config, 0, 0);
      }
      await Deno.chmod(config, 0o600);
      const safe = await openme(["--client-config", config, "knock"]);
      assert.equal(safe.code, 0, safe.err);
      await Deno.stat(marker); // ran
    });
  },
});
