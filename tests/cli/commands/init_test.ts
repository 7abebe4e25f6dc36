/**
 * `openme init` (lib/cli/commands/init.ts), run in-process through runCli:
 * the annotated config it writes, file and directory modes, the refusal to
 * overwrite without --force, and flag validation.
 */
import assert from "node:assert/strict";
import { loadServerConfig } from "../../../lib/config/server_config.ts";
import { accountIds, processUid } from "../../../lib/config/ownership.ts";
import {
  clampX25519Scalar,
  x25519PublicKey,
} from "../../../lib/protocol/crypto.ts";
import { encodeBase64 } from "../../../lib/encoding.ts";
import { setLogSink } from "../../../lib/log.ts";
import { openme, openmeOk } from "../../support/cli.ts";
import { SERVER_SECTION_KEYS } from "../../support/config.ts";
import { withTempDir } from "../../support/files.ts";

setLogSink(() => {});

/** Prefix of this file's temporary directories. */
const TEMP_PREFIX = "openme-cli-init-";

const IS_POSIX = Deno.build.os !== "windows";

const INIT_USAGE =
  "Usage: openme init --server HOST [--port N] [--firewall nft|iptables] [--interface IF] [--force]";

Deno.test("init writes a config that loads, with fresh matching X25519 keys and defaults", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/config.yaml`;
    const result = await openme([
      "--config",
      path,
      "init",
      "--server",
      "vpn.example.com",
    ]);
    assert.equal(result.code, 0, result.err);
    const config = await loadServerConfig(path);
    assert.equal(config.host, "vpn.example.com");
    assert.equal(config.udpPort, 54154);
    assert.equal(config.healthPort, 54154);
    assert.equal(config.firewall, "nft");
    assert.equal(config.interface, null);
    assert.equal(config.knockTimeoutMs, 30_000);
    assert.equal(config.replayWindowMs, 60_000);
    assert.equal(config.openKnockPort, true);
    assert.equal(config.dropPorts, false);
    assert.deepEqual(config.clients, []);
    assert.deepEqual(config.warnings, []);
    assert.deepEqual(config.portGroups.get("default"), [{
      port: 22,
      proto: "tcp",
    }]);
    assert.deepEqual(config.privateKey, clampX25519Scalar(config.privateKey));
    assert.deepEqual(x25519PublicKey(config.privateKey), config.publicKey);
    assert.ok(
      result.out.includes(
        `server public key: ${encodeBase64(config.publicKey)}`,
      ),
      result.out,
    );
    assert.ok(result.out.includes(`wrote ${path}`));
    assert.ok(
      !result.out.includes(encodeBase64(config.privateKey)),
      "private key not printed",
    );
  });
});

Deno.test("init --port, --firewall and --interface end up in the config", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/config.yaml`;
    const result = await openme([
      "init",
      "--server",
      "203.0.113.7",
      "--port",
      "40000",
      "--firewall",
      "iptables",
      "--interface",
      "eth0",
      "--config",
      path,
    ]);
    assert.equal(result.code, 0, result.err);
    const config = await loadServerConfig(path);
    assert.equal(config.host, "203.0.113.7");
    assert.equal(config.udpPort, 40000);
    assert.equal(config.healthPort, 40000);
    assert.equal(config.firewall, "iptables");
    assert.equal(config.interface, "eth0");
  });
});

Deno.test("init annotates every key with a comment line above it", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/config.yaml`;
    await openmeOk(["--config", path, "init", "--server", "h.example"]);
    const lines = (await Deno.readTextFile(path)).split("\n");
    for (const key of SERVER_SECTION_KEYS) {
      const at = lines.findIndex((l) => l.startsWith(`  ${key}:`));
      assert.ok(at > 0, `server.${key} present`);
      assert.match(lines[at - 1], /^ {2}# \S/, `comment above server.${key}`);
    }
    for (const section of ["server", "ports", "clients"]) {
      const at = lines.findIndex((l) => l.startsWith(`${section}:`));
      assert.ok(at > 0, `${section}: present`);
      const above = lines.slice(Math.max(0, at - 2), at);
      assert.ok(
        above.some((l) => /^#/.test(l)),
        `comment above ${section}:`,
      );
    }
    const defaultGroup = lines.findIndex((l) => l.startsWith("  default:"));
    assert.match(lines[defaultGroup - 1], /^ {2}# /);
  });
});

Deno.test({
  name:
    "init writes the file with mode 0600 (0640 for root where group openme exists) and creates its directory with mode 0750",
  ignore: !IS_POSIX,
  fn: async () => {
    await withTempDir(TEMP_PREFIX, async (dir) => {
      const path = `${dir}/etc/openme/config.yaml`;
      const result = await openme([
        "--config",
        path,
        "init",
        "--server",
        "h.example",
      ]);
      assert.equal(result.code, 0, result.err);
      // The openme group reads the config when root writes it and the group exists.
      const group = (await accountIds("openme")).gid;
      const mode = processUid() === 0 && group !== null ? 0o640 : 0o600;
      assert.equal((await Deno.stat(path)).mode! & 0o777, mode);
      assert.match(
        result.out,
        new RegExp(`\\(mode 0${mode.toString(8)}\\)`),
      );
      assert.equal((await Deno.stat(`${dir}/etc/openme`)).mode! & 0o777, 0o750);
      // The lock file stays (it is locked, never replaced); no temp file may.
      const leftovers = [...Deno.readDirSync(`${dir}/etc/openme`)]
        .map((e) => e.name)
        .filter((name) => name !== "config.yaml.lock");
      assert.deepEqual(leftovers, ["config.yaml"], "no temp file left");
    });
  },
});

Deno.test("init refuses to overwrite an existing config without --force and leaves it unchanged", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/config.yaml`;
    await openmeOk(["--config", path, "init", "--server", "one.example"]);
    const before = await Deno.readTextFile(path);
    const again = await openme([
      "--config",
      path,
      "init",
      "--server",
      "two.example",
    ]);
    assert.equal(again.code, 1);
    assert.match(again.err, /already exists/);
    assert.match(again.err, /--force/);
    assert.doesNotMatch(again.err, /^\s+at /m);
    assert.equal(await Deno.readTextFile(path), before);
  });
});

Deno.test("init --force replaces the config with new keys and no clients", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/config.yaml`;
    await openmeOk(["--config", path, "init", "--server", "one.example"]);
    await openmeOk(["--config", path, "add", "alice"]);
    const first = await loadServerConfig(path);
    assert.equal(first.clients.length, 1);
    const forced = await openme([
      "--config",
      path,
      "init",
      "--server",
      "two.example",
      "--force",
    ]);
    assert.equal(forced.code, 0, forced.err);
    const second = await loadServerConfig(path);
    assert.equal(second.host, "two.example");
    assert.notDeepEqual(second.privateKey, first.privateKey);
    assert.deepEqual(second.clients, []);
  });
});

Deno.test("init: bad or missing flags exit 2 with the usage line and write nothing", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/sub/config.yaml`;
    const cases: [string[], RegExp][] = [
      [[], /--server HOST is required/],
      [["--server", ""], /--server HOST is required/],
      [
        ["--server", "h", "--port", "0"],
        /--port "0" is not a port \(expected 1-65535\)/,
      ],
      [["--server", "h", "--port", "65536"], /--port "65536" is not a port/],
      [["--server", "h", "--port", "-1"], /--port|option/],
      [["--server", "h", "--port", "1e3"], /--port "1e3" is not a port/],
      [
        ["--server", "h", "--firewall", "ufw"],
        /--firewall "ufw" is not a backend \(expected nft or iptables\)/,
      ],
      [
        ["--server", "h", "--firewall", "NFT"],
        /--firewall "NFT" is not a backend/,
      ],
      [
        ["--server", "h", "--interface", "eth 0"],
        /--interface "eth 0" is not an interface name \(e\.g\. eth0\)/,
      ],
      [
        ["--server", "h", "--interface", "a/b"],
        /--interface "a\/b" is not an interface name/,
      ],
      [
        ["--server", "h", "--interface", "abcdefghijklmnop"],
        /is not an interface name/,
      ],
      [["--server", "h", "extra"], /unexpected argument\(s\): extra/],
      [["--server", "h", "--force=1"], /does not take an argument/],
    ];
    for (const [args, message] of cases) {
      const result = await openme(["--config", path, "init", ...args]);
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.err}`);
      assert.match(result.err, message, args.join(" "));
      assert.ok(result.err.split("\n").includes(INIT_USAGE), result.err);
      assert.ok(
        result.err.includes(
          "Run `openme init --help` for options and examples.",
        ),
      );
      assert.equal(result.out, "");
    }
    await assert.rejects(() => Deno.stat(`${dir}/sub`), Deno.errors.NotFound);
  });
});

Deno.test("init with a server name YAML would misread keeps it as text", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/config.yaml`;
    const result = await openme(["--config", path, "init", "--server", "yes"]);
    assert.equal(result.code, 0, result.err);
    assert.equal((await loadServerConfig(path)).host, "yes");
  });
});

Deno.test("init's next steps repeat the global options given, so they can be copied", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/my server.yaml`;
    const result = await openmeOk([
      "--config",
      path,
      "--log-level",
      "warn",
      "init",
      "--server",
      "vpn.example.com",
    ]);
    const steps = result.out.split("\n").slice(
      result.out.split("\n").indexOf("next:") + 1,
    );
    const globals = `--config '${path}' --log-level warn`;
    assert.match(
      steps[0],
      new RegExp(
        `^ {2}sudo openme ${escape(globals)} add alice --out alice\\.yaml `,
      ),
    );
    assert.equal(steps[1], `  sudo openme ${globals} serve`);
    // The printed add command works as printed (minus sudo and the comment).
    const add = await openmeOk([
      "--config",
      path,
      "add",
      "alice",
      "--out",
      `${dir}/alice.yaml`,
    ]);
    assert.match(add.out, /^# fingerprint: /);
  });
});

/** Escapes text for a RegExp. */
function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
