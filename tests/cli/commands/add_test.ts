/**
 * `openme add` (lib/cli/commands/add.ts), run in-process through runCli: the
 * printed client block (first line `profiles:`, then the fingerprint), what
 * lands in the server config, name and group checks, --ports, --expires,
 * --profile, the QR outputs, and the safe key hand-off (--out, --force, the
 * warning about a readable standard output).
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import jsQR from "jsqr";
import { PNG } from "pngjs";
import {
  type ClientProfile,
  parseClientConfig,
} from "../../../lib/config/client_config.ts";
import { loadServerConfig } from "../../../lib/config/server_config.ts";
import { formatPortRange } from "../../../lib/config/ports.ts";
import {
  ed25519KeyPairFromPrivateKey,
  generateEd25519KeyPair,
  keyFingerprint,
} from "../../../lib/protocol/crypto.ts";
import { encodeBase64 } from "../../../lib/encoding.ts";
import { setLogSink } from "../../../lib/log.ts";
import {
  type Captured,
  mainCommand,
  openme,
  openmeOk,
  withServerConfig,
} from "../../support/cli.ts";
import { run } from "../../../scripts/testbed.ts";
import { withTempDir } from "../../support/files.ts";

setLogSink(() => {});

const ADD_USAGE =
  "Usage: openme add NAME [--out FILE] [--ports CSV] [--expires RFC3339] [--profile NAME] [--qr] [--qr-out FILE] [--force]";

/** Runs fn with a fresh `openme init` config in a temp dir; `edit` may change its text first. */
async function withServer(
  fn: (path: string, dir: string) => Promise<void>,
  edit?: (text: string) => string,
): Promise<void> {
  await withServerConfig({
    prefix: "openme-cli-add-",
    initArgs: ["--server", "vpn.example.com"],
    edit,
  }, fn);
}

/** Runs `openme --config PATH add ARGS` in-process. */
function addTo(path: string, ...args: string[]): Promise<Captured> {
  return openme(["--config", path, "add", ...args]);
}

function withDevopsGroup(text: string): string {
  const edited = text.replace(
    "  default: [22/tcp]\n",
    "  default: [22/tcp]\n  devops: [22/tcp, 443/tcp, 8080-8090/tcp]\n",
  );
  assert.notEqual(edited, text, "the init config has a default group line");
  return edited;
}

/** The single profile of a printed client block. */
function onlyProfile(block: string): ClientProfile {
  const config = parseClientConfig(block, { path: "(add output)" });
  assert.equal(config.profiles.size, 1);
  return [...config.profiles.values()][0];
}

Deno.test("add prints a client config block starting with `profiles:`, then the key fingerprint", async () => {
  await withServer(async (path) => {
    const result = await addTo(path, "alice");
    assert.equal(result.code, 0, result.err);
    const lines = result.out.split("\n");
    assert.equal(lines[0], "profiles:");
    const server = await loadServerConfig(path);
    const profile = onlyProfile(result.out);
    assert.equal(profile.name, "default");
    assert.equal(profile.serverHost, "vpn.example.com");
    assert.equal(profile.serverUdpPort, 54154);
    assert.deepEqual(profile.serverPublicKey, server.publicKey);
    assert.equal(profile.privateKey.length, 64, "64-byte Ed25519 private key");
    assert.deepEqual(
      ed25519KeyPairFromPrivateKey(profile.privateKey).publicKey,
      profile.publicKey,
    );
    const fingerprint = keyFingerprint(profile.publicKey!);
    assert.match(fingerprint, /^[0-9a-f]{16}$/);
    assert.equal(lines[lines.length - 1], `# fingerprint: ${fingerprint}`);
    const fingerprintAt = lines.findIndex((l) => l.includes("fingerprint"));
    assert.ok(
      lines.slice(1, fingerprintAt).every((l) => l.startsWith("  ")),
      "the block's other lines are indented under profiles:",
    );
    assert.match(result.err, /added client alice to /);
  });
});

Deno.test("add registers the client's public key in the server config, never its private key", async () => {
  await withServer(async (path) => {
    const result = await addTo(path, "alice");
    assert.equal(result.code, 0, result.err);
    const profile = onlyProfile(result.out);
    const server = await loadServerConfig(path);
    assert.deepEqual(server.clients.map((c) => c.name), ["alice"]);
    const alice = server.clients[0];
    assert.deepEqual(alice.ed25519PublicKey, profile.publicKey);
    assert.deepEqual(
      alice.ports,
      [{ port: 22, proto: "tcp" }],
      "the default group",
    );
    assert.equal(alice.expires, null);
    const text = await Deno.readTextFile(path);
    assert.ok(!text.includes(encodeBase64(profile.privateKey)));
    assert.ok(!text.includes(encodeBase64(profile.privateKey.slice(0, 32))));
  });
});

Deno.test("two adds make two different key pairs", async () => {
  await withServer(async (path) => {
    const a = onlyProfile(
      (await addTo(path, "a")).out,
    );
    const b = onlyProfile(
      (await addTo(path, "b")).out,
    );
    assert.notDeepEqual(a.privateKey, b.privateKey);
    assert.notDeepEqual(a.publicKey, b.publicKey);
    const server = await loadServerConfig(path);
    assert.deepEqual(server.clients.map((c) => c.name), ["a", "b"]);
  });
});

Deno.test("add keeps the config's comments and other keys", async () => {
  await withServer(async (path) => {
    const before = await Deno.readTextFile(path);
    await openmeOk(["--config", path, "add", "alice"]);
    const after = await Deno.readTextFile(path);
    const comments = before.split("\n").filter((l) =>
      l.trimStart().startsWith("#")
    );
    assert.ok(comments.length > 20);
    for (const line of comments) assert.ok(after.includes(line), line);
    assert.ok(after.includes("  knock_timeout: 30s"));
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
  });
});

Deno.test("add refuses an existing name with exit 1 and leaves the config unchanged", async () => {
  await withServer(async (path) => {
    await openmeOk(["--config", path, "add", "alice"]);
    const before = await Deno.readTextFile(path);
    const again = await addTo(path, "alice");
    assert.equal(again.code, 1);
    assert.match(again.err, /client "alice" already exists/);
    assert.match(again.err, /openme revoke alice/);
    assert.equal(again.out, "", "no client block for a refused add");
    assert.equal(await Deno.readTextFile(path), before);
  });
});

Deno.test("add rejects an unknown port group, listing the defined groups, and changes nothing", async () => {
  await withServer(async (path) => {
    const before = await Deno.readTextFile(path);
    const result = await addTo(path, "bob", "--ports", "dev0ps,2222/tcp");
    assert.equal(result.code, 2, result.err);
    assert.match(
      result.err,
      /unknown port group "dev0ps" \(defined: default, devops;/,
    );
    assert.ok(result.err.split("\n").includes(ADD_USAGE));
    assert.equal(result.out, "");
    assert.equal(await Deno.readTextFile(path), before);
  }, withDevopsGroup);
});

Deno.test("add with an unknown group when no group is defined says so", async () => {
  await withServer(
    async (path) => {
      const result = await addTo(path, "bob", "--ports", "web");
      assert.equal(result.code, 2);
      assert.match(
        result.err,
        /unknown port group "web" \(no groups are defined;/,
      );
    },
    (text) =>
      text.replace("  default: [22/tcp]\n", "").replace(
        /^ports:$/m,
        "ports: {}",
      ),
  );
});

Deno.test("add --ports stores groups and specs; the client's effective ports resolve them", async () => {
  await withServer(async (path) => {
    const result = await addTo(path, "bob", "--ports", "devops, 2222/tcp,53");
    assert.equal(result.code, 0, result.err);
    const server = await loadServerConfig(path);
    const bob = server.clients.find((c) => c.name === "bob")!;
    assert.deepEqual(bob.allowedPorts, ["devops", "2222/tcp", "53"]);
    assert.deepEqual(
      bob.ports.map(formatPortRange).sort(),
      [
        "22/tcp",
        "53/tcp",
        "443/tcp",
        "2222/tcp",
        "8080-8090/tcp",
        "53/udp",
      ].sort(),
    );
    const text = await Deno.readTextFile(path);
    assert.match(text, /allowed_ports: \[\s*devops,\s*2222\/tcp,\s*53\s*\]/);
  }, withDevopsGroup);
});

Deno.test("add --expires stores the expiry; past or malformed times exit 2", async () => {
  await withServer(async (path) => {
    const ok = await addTo(path, "carol", "--expires", "2099-12-31T23:59:59Z");
    assert.equal(ok.code, 0, ok.err);
    const carol = (await loadServerConfig(path)).clients.find((c) =>
      c.name === "carol"
    )!;
    assert.equal(carol.expires?.toISOString(), "2099-12-31T23:59:59.000Z");
    const offset = await addTo(
      path,
      "dave",
      "--expires",
      "2099-06-01T12:00:00+02:00",
    );
    assert.equal(offset.code, 0, offset.err);
    const dave = (await loadServerConfig(path)).clients.find((c) =>
      c.name === "dave"
    )!;
    assert.equal(dave.expires?.toISOString(), "2099-06-01T10:00:00.000Z");
    const before = await Deno.readTextFile(path);
    for (
      const [value, message] of [
        ["2000-01-01T00:00:00Z", /is in the past/],
        ["2099-12-31", /is not an RFC 3339 time/],
        ["2099-12-31T23:59:59", /is not an RFC 3339 time/],
        ["2099-13-01T00:00:00Z", /is not an RFC 3339 time/],
        ["soon", /is not an RFC 3339 time/],
      ] as const
    ) {
      const bad = await addTo(path, "eve", "--expires", value);
      assert.equal(bad.code, 2, value);
      assert.match(bad.err, message, value);
      assert.ok(bad.err.split("\n").includes(ADD_USAGE));
    }
    assert.equal(await Deno.readTextFile(path), before);
  });
});

Deno.test("add --profile names the printed profile; without it server.default_profile is used", async () => {
  await withServer(
    async (path) => {
      const named = await addTo(path, "alice", "--profile", "work");
      assert.equal(named.code, 0, named.err);
      assert.equal(onlyProfile(named.out).name, "work");
      const fallback = await addTo(path, "bob");
      assert.equal(fallback.code, 0, fallback.err);
      assert.equal(onlyProfile(fallback.out).name, "office");
      const bad = await addTo(path, "carol", "--profile", "a b");
      assert.equal(bad.code, 2);
      assert.match(bad.err, /--profile: invalid profile name "a b"/);
    },
    (text) =>
      text.replace("default_profile: default", "default_profile: office"),
  );
});

Deno.test("add accepts the client names the config accepts and refuses the others with exit 2", async () => {
  await withServer(async (path) => {
    for (
      const name of [
        "alice-laptop",
        "bob.phone",
        "carol_2",
        "dave@home",
        "Ünal",
      ]
    ) {
      const result = await addTo(path, name);
      assert.equal(result.code, 0, `${name}: ${result.err}`);
    }
    const server = await loadServerConfig(path);
    assert.equal(server.clients.length, 5);
    assert.deepEqual(server.skippedClients, []);
    for (const name of [".hidden", "a b", "x/y", "a".repeat(65), 'q"uote']) {
      const result = await addTo(path, name);
      assert.equal(result.code, 2, name);
      assert.ok(result.err.split("\n").includes(ADD_USAGE), name);
    }
    assert.equal((await loadServerConfig(path)).clients.length, 5);
  });
});

Deno.test("add without a server config exits 1 and says how to create one", async () => {
  await withTempDir("openme-cli-add-", async (dir) => {
    const result = await addTo(`${dir}/missing.yaml`, "alice");
    assert.equal(result.code, 1);
    assert.match(result.err, /missing\.yaml/);
    assert.match(result.err, /openme init --server HOST/);
    assert.equal(result.out, "");
  });
});

function decodePng(bytes: Uint8Array): string | null {
  const png = PNG.sync.read(Buffer.from(bytes));
  const result = jsQR.default(
    new Uint8ClampedArray(png.data),
    png.width,
    png.height,
  );
  return result === null ? null : result.data;
}

Deno.test("add --qr-out writes a PNG QR code holding the SPEC §6 payload of the printed profile", async () => {
  await withServer(async (path, dir) => {
    const png = `${dir}/alice.png`;
    const result = await addTo(
      path,
      "alice",
      "--qr-out",
      png,
      "--profile",
      "phone",
    );
    assert.equal(result.code, 0, result.err);
    const profile = onlyProfile(
      result.out.split("\n").filter((l) => !l.startsWith("#")).join("\n"),
    );
    const payload = JSON.parse(decodePng(await Deno.readFile(png)) ?? "null");
    assert.deepEqual(Object.keys(payload), [
      "profile",
      "host",
      "udp_port",
      "server_pubkey",
      "client_privkey",
      "client_pubkey",
    ]);
    assert.deepEqual(payload, {
      profile: "phone",
      host: "vpn.example.com",
      udp_port: 54154,
      server_pubkey: encodeBase64(profile.serverPublicKey),
      client_privkey: encodeBase64(profile.privateKey),
      client_pubkey: encodeBase64(profile.publicKey!),
    });
    assert.match(result.err, /wrote QR code to .*alice\.png/);
  });
});

Deno.test("add --qr prints a terminal QR code after the fingerprint", async () => {
  await withServer(async (path) => {
    const result = await addTo(path, "alice", "--qr");
    assert.equal(result.code, 0, result.err);
    const lines = result.out.split("\n");
    assert.equal(lines[0], "profiles:");
    const fingerprintAt = lines.findIndex((l) =>
      l.startsWith("# fingerprint: ")
    );
    assert.ok(fingerprintAt > 0);
    const qr = lines.slice(fingerprintAt + 1).join("\n");
    assert.ok(qr.length > 200, "a QR code follows");
    assert.match(qr, /[█▀▄]/);
  });
});

const IS_ROOT = Deno.build.os === "linux" &&
  Deno.statSync("/proc/self").uid === 0;

/** The names of the clients a server config holds. */
async function clientNames(path: string): Promise<string[]> {
  return (await loadServerConfig(path)).clients.map((c) => c.name);
}

Deno.test("add --out writes the client block and fingerprint to a new 0600 file and prints only the fingerprint", async () => {
  await withServer(async (path, dir) => {
    const out = `${dir}/alice.yaml`;
    const previous = Deno.umask(0);
    let result: Captured;
    try {
      result = await addTo(path, "alice", "--out", out);
    } finally {
      Deno.umask(previous);
    }
    assert.equal(result.code, 0, result.err);
    const text = await Deno.readTextFile(out);
    assert.ok(text.startsWith("profiles:\n"), text);
    const profile = onlyProfile(text);
    const fingerprint = `# fingerprint: ${keyFingerprint(profile.publicKey!)}`;
    assert.ok(text.endsWith(`${fingerprint}\n`), text);
    assert.equal(result.out, fingerprint, "no private key on standard output");
    assert.match(
      result.err,
      /wrote its client config to .*alice\.yaml \(mode 0600\)/,
    );
    assert.equal((await Deno.stat(out)).mode! & 0o777, 0o600);
    assert.deepEqual(await clientNames(path), ["alice"]);
  });
});

Deno.test("add --out refuses an existing file or symlink without --force and registers nothing", async () => {
  await withServer(async (path, dir) => {
    const existing = `${dir}/existing.yaml`;
    await Deno.writeTextFile(existing, "keep me\n");
    const victim = `${dir}/victim`;
    await Deno.writeTextFile(victim, "victim\n");
    const link = `${dir}/link.yaml`;
    await Deno.symlink(victim, link);
    const dangling = `${dir}/dangling.yaml`;
    await Deno.symlink(`${dir}/nowhere`, dangling);
    const before = await Deno.readTextFile(path);
    for (const out of [existing, link, dangling]) {
      for (const flag of ["--out", "--qr-out"]) {
        const result = await addTo(path, "alice", flag, out);
        assert.equal(result.code, 1, `${flag} ${out}`);
        assert.match(
          result.err,
          /already exists; nothing was added \(pass --force/,
        );
        assert.equal(result.out, "");
      }
    }
    assert.equal(await Deno.readTextFile(path), before, "nothing registered");
    assert.equal(await Deno.readTextFile(existing), "keep me\n");
    assert.equal(await Deno.readTextFile(victim), "victim\n");
    await assert.rejects(Deno.lstat(`${dir}/nowhere`), Deno.errors.NotFound);
  });
});

Deno.test("add --out --force replaces a file, and a symlink itself without writing through it", async () => {
  await withServer(async (path, dir) => {
    const victim = `${dir}/victim`;
    await Deno.writeTextFile(victim, "victim\n", { mode: 0o644 });
    const link = `${dir}/link.yaml`;
    await Deno.symlink(victim, link);
    const result = await addTo(path, "alice", "--out", link, "--force");
    assert.equal(result.code, 0, result.err);
    assert.equal(await Deno.readTextFile(victim), "victim\n");
    const info = await Deno.lstat(link);
    assert.ok(info.isFile, "the link was replaced by a regular file");
    assert.equal(info.mode! & 0o777, 0o600);
    assert.ok((await Deno.readTextFile(link)).startsWith("profiles:\n"));
  });
});

Deno.test({
  name:
    "add --qr-out never writes a key into a file another user planted in a sticky directory",
  ignore: !IS_ROOT,
  fn: async () => {
    await withServer(async (path, dir) => {
      // The reproduction: /tmp-like sticky directory, a file pre-created by nobody.
      const sticky = `${dir}/tmp`;
      await Deno.mkdir(sticky);
      await Deno.chmod(sticky, 0o1777);
      const planted = `${sticky}/bob.png`;
      await Deno.writeTextFile(planted, "", { mode: 0o666 });
      await Deno.chown(planted, 65534, 65534);
      const refused = await addTo(path, "bob", "--qr-out", planted);
      assert.equal(refused.code, 1, refused.err);
      assert.deepEqual(await clientNames(path), [], "nothing registered");
      assert.equal((await Deno.stat(planted)).size, 0, "left empty");

      const forced = await addTo(path, "bob", "--qr-out", planted, "--force");
      assert.equal(forced.code, 0, forced.err);
      const info = await Deno.stat(planted);
      assert.deepEqual([info.uid, info.mode! & 0o777], [0, 0o600]);
      assert.ok(info.size > 0);
      assert.deepEqual(await clientNames(path), ["bob"]);
    });
  },
});

Deno.test({
  name:
    "add warns on stderr, naming the chmod, when standard output is a file other users can read",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    await withServer(async (path, dir) => {
      const out = `${dir}/alice.yaml`;
      const script = `umask 022; exec "$@" > ${out}`;
      const result = await run([
        "sh",
        "-c",
        script,
        "sh",
        ...mainCommand(["--config", path, "add", "alice"]),
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.ok((await Deno.readTextFile(out)).startsWith("profiles:\n"));
      assert.match(
        result.stderr,
        new RegExp(
          `standard output is a file other users can read \\(mode 0644\\).* run chmod 600 ${out}`,
        ),
      );
      // A private file, or a pipe: no warning.
      const quiet = await run([
        "sh",
        "-c",
        `umask 077; exec "$@" > ${dir}/bob.yaml`,
        "sh",
        ...mainCommand(["--config", path, "add", "bob"]),
      ]);
      assert.equal(quiet.code, 0, quiet.stderr);
      assert.doesNotMatch(quiet.stderr, /warning/);
      const piped = await run(mainCommand(["--config", path, "add", "carol"]));
      assert.doesNotMatch(piped.stderr, /warning/);
    });
  },
});

Deno.test("add --help and the README hand the key over with --out, never with a shell redirect", async () => {
  const help = await openmeOk(["add", "--help"]);
  assert.match(help.out, /sudo openme add alice --out alice\.yaml/);
  const readme = await Deno.readTextFile(
    new URL("../../../README.md", import.meta.url),
  );
  assert.match(readme, /openme add alice --out alice\.yaml/);
  assert.doesNotMatch(readme, /openme add \S+[^\n|]*> *\S+\.yaml/);
});

Deno.test("add refuses a name a clients_dir file defines, naming the file", async () => {
  await withServer(async (path, dir) => {
    await Deno.mkdir(`${dir}/clients.d`, { mode: 0o755 });
    const key = encodeBase64(generateEd25519KeyPair().publicKey);
    await Deno.writeTextFile(
      `${dir}/clients.d/team.yaml`,
      `clients:\n  bob:\n    ed25519_pubkey: ${key}\n`,
    );
    const before = await Deno.readTextFile(path);
    const result = await addTo(path, "bob");
    assert.equal(result.code, 1);
    assert.match(
      result.err,
      /client "bob" already exists in .*clients\.d\/team\.yaml:2/,
    );
    assert.equal(await Deno.readTextFile(path), before);
  });
});
