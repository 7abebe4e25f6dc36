/**
 * Drop-in client files (lib/config/clients_dir.ts and loadServerConfig):
 * name order after config.yaml, where each client comes from, duplicate
 * names with both places, refused files (broken, unreadable, unsafe) that
 * keep their last good clients, and the stamp the server polls.
 */
import assert from "node:assert/strict";
import { configStamp } from "../../lib/config/clients_dir.ts";
import {
  loadServerConfig,
  type ServerConfig,
} from "../../lib/config/server_config.ts";
import {
  ALICE_KEY,
  BOB_KEY,
  configText,
  randomClientKey,
  withTempConfig,
} from "../support/server_config_fixture.ts";

const IS_LINUX = Deno.build.os === "linux";
const IS_ROOT = IS_LINUX && Deno.statSync("/proc/self").uid === 0;

/** A drop-in file's text: one client per name, each with a fresh key. */
function dropIn(...names: string[]): string {
  const lines = ["# managed by config management", "clients:"];
  for (const name of names) {
    lines.push(`  ${name}:`, `    ed25519_pubkey: ${randomClientKey()}`);
    lines.push("    allowed_ports: [default]");
  }
  return `${lines.join("\n")}\n`;
}

/** Runs fn with the base config (alice, bob) and a clients.d directory (0755) holding the files given. */
async function withDropIns(
  files: Record<string, string>,
  fn: (path: string, dir: string) => Promise<void>,
): Promise<void> {
  await withTempConfig(configText(), async (path, dir) => {
    await Deno.mkdir(`${dir}/clients.d`);
    await Deno.chmod(`${dir}/clients.d`, 0o755);
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/clients.d/${name}`, text);
      await Deno.chmod(`${dir}/clients.d/${name}`, 0o644);
    }
    await fn(path, dir);
  });
}

function names(config: ServerConfig): string[] {
  return config.clients.map((c) => c.name);
}

Deno.test("clients.d files load in name order after config.yaml, each client with its file and line", async () => {
  const files = {
    "b.yaml": dropIn("dave"),
    "a.yaml": dropIn("carol", "carl"),
    "notes.txt": "not yaml",
    ".hidden.yaml": dropIn("ghost"),
    "empty.yaml": "",
  };
  await withDropIns(files, async (path, dir) => {
    const config = await loadServerConfig(path);
    assert.deepEqual(names(config), ["alice", "bob", "carol", "carl", "dave"]);
    assert.deepEqual(config.dropInErrors, []);
    const where = config.clients.map((c) => `${c.file}:${c.line}`);
    assert.deepEqual(where, [
      `${path}:19`,
      `${path}:24`,
      `${dir}/clients.d/a.yaml:3`,
      `${dir}/clients.d/a.yaml:6`,
      `${dir}/clients.d/b.yaml:3`,
    ]);
    assert.deepEqual(config.clients[2].ports, [{ port: 22, proto: "tcp" }]);
  });
});

Deno.test("a missing clients.d is no error; clients_dir may name another directory", async () => {
  await withTempConfig(configText(), async (path, dir) => {
    assert.deepEqual(names(await loadServerConfig(path)), ["alice", "bob"]);
    await Deno.mkdir(`${dir}/team`);
    await Deno.writeTextFile(`${dir}/team/x.yaml`, dropIn("erin"));
    await Deno.writeTextFile(
      path,
      configText({ 12: "  clients_dir: team" }),
    );
    const config = await loadServerConfig(path);
    assert.equal(config.clientsDir, `${dir}/team`);
    assert.deepEqual(names(config), ["alice", "bob", "erin"]);
    // The config's own directory: config.yaml is not read twice.
    await Deno.writeTextFile(path, configText({ 12: "  clients_dir: ./" }));
    const same = await loadServerConfig(path);
    assert.deepEqual(names(same), ["alice", "bob"]);
    assert.deepEqual(same.dropInErrors, []);
  });
});

Deno.test("a name defined twice is an error naming both file:line places, and the later file is refused", async () => {
  const files = {
    "a.yaml": dropIn("carol"),
    "b.yaml": dropIn("dave", "carol"),
    "c.yaml": dropIn("bob"),
  };
  await withDropIns(files, async (path, dir) => {
    const config = await loadServerConfig(path);
    assert.deepEqual(names(config), ["alice", "bob", "carol"]);
    assert.deepEqual(config.dropInErrors, [
      `config ${dir}/clients.d/b.yaml:6: clients.carol: client "carol" is also defined at ${dir}/clients.d/a.yaml:3 (remove one of the two); file refused, the clients it gave before stay in force`,
      `config ${dir}/clients.d/c.yaml:3: clients.bob: client "bob" is also defined at ${path}:24 (remove one of the two); file refused, the clients it gave before stay in force`,
    ]);
  });
});

Deno.test("a broken file is refused on its own, with file:line; its last good clients stay, none on a cold start", async () => {
  await withDropIns(
    { "a.yaml": dropIn("carol"), "b.yaml": dropIn("dave") },
    async (path, dir) => {
      const good = await loadServerConfig(path);
      assert.deepEqual(names(good), ["alice", "bob", "carol", "dave"]);
      const broken = [
        "clients:\n  dave:\n    ed25519_pubkey: [oops\n",
        "clients:\n  dave:\n    ed25519_pubkey: notbase64\n",
        "clients:\n  dave:\n    allowed_ports: [nosuchgroup]\n",
        "- a list\n",
      ];
      for (const text of broken) {
        await Deno.writeTextFile(`${dir}/clients.d/b.yaml`, text);
        const reload = await loadServerConfig(path, { previous: good });
        assert.deepEqual(
          names(reload),
          ["alice", "bob", "carol", "dave"],
          text,
        );
        assert.equal(
          reload.clients[3],
          good.clients[3],
          "dave's last good entry",
        );
        assert.equal(reload.dropInErrors.length, 1, text);
        assert.match(
          reload.dropInErrors[0],
          new RegExp(
            `^config ${dir}/clients\\.d/b\\.yaml(:\\d+)?: .*file refused`,
          ),
        );
        const cold = await loadServerConfig(path);
        assert.deepEqual(names(cold), ["alice", "bob", "carol"], text);
      }
      // Fixed: the file's new content is in force.
      await Deno.writeTextFile(`${dir}/clients.d/b.yaml`, dropIn("erin"));
      const fixed = await loadServerConfig(path, { previous: good });
      assert.deepEqual(names(fixed), ["alice", "bob", "carol", "erin"]);
      // Deleted: its clients are gone.
      await Deno.remove(`${dir}/clients.d/b.yaml`);
      const deleted = await loadServerConfig(path, { previous: fixed });
      assert.deepEqual(names(deleted), ["alice", "bob", "carol"]);
    },
  );
});

Deno.test({
  name:
    "an unsafe file or directory is refused, naming the chmod or chown to run; the others keep working",
  ignore: !IS_LINUX,
  fn: async () => {
    await withDropIns(
      { "a.yaml": dropIn("carol"), "b.yaml": dropIn("dave") },
      async (path, dir) => {
        const file = `${dir}/clients.d/b.yaml`;
        await Deno.chmod(file, 0o666);
        let config = await loadServerConfig(path);
        assert.deepEqual(names(config), ["alice", "bob", "carol"]);
        assert.deepEqual(config.dropInErrors, [
          `config ${file}: mode 0666 lets other users change it (run chmod go-w ${file}); file refused, the clients it gave before stay in force`,
        ]);
        await Deno.chmod(file, 0o644);
        await Deno.chmod(`${dir}/clients.d`, 0o775);
        config = await loadServerConfig(path);
        assert.deepEqual(names(config), ["alice", "bob"]);
        assert.deepEqual(config.dropInErrors, [
          `config ${dir}/clients.d: mode 0775 lets other users change it (run chmod go-w ${dir}/clients.d); file refused, the clients it gave before stay in force`,
        ]);
        await Deno.chmod(`${dir}/clients.d`, 0o755);
        if (!IS_ROOT) return;
        await Deno.chown(file, 12345, 0);
        config = await loadServerConfig(path);
        assert.deepEqual(names(config), ["alice", "bob", "carol"]);
        assert.deepEqual(config.dropInErrors, [
          `config ${file}: it is owned by uid 12345, another user (run chown root ${file}); file refused, the clients it gave before stay in force`,
        ]);
      },
    );
  },
});

Deno.test("a drop-in file warns about keys other than clients:, as config.yaml does for unknown keys", async () => {
  const text =
    `ports:\n  web: [443/tcp]\nclients:\n  carol:\n    ed25519_pubkey: ${ALICE_KEY}x\n`;
  await withDropIns(
    { "a.yaml": text.replace(`${ALICE_KEY}x`, BOB_KEY + "") },
    async (path, dir) => {
      // bob's key under another name: served, like config.yaml's same-key case.
      const config = await loadServerConfig(path);
      assert.deepEqual(names(config), ["alice", "bob", "carol"]);
      assert.ok(
        config.warnings.includes(
          `config ${dir}/clients.d/a.yaml:1: ports: unknown key, ignored (known keys: clients)`,
        ),
        config.warnings.join("\n"),
      );
    },
  );
});

Deno.test("configStamp changes at each change of a clients.d file (added, edited, chmod-ed, removed) and is null without the config", async () => {
  await withDropIns({ "a.yaml": dropIn("carol") }, async (path, dir) => {
    const clientsDir = `${dir}/clients.d`;
    const stamps = [await configStamp(path, clientsDir)];
    await Deno.writeTextFile(`${clientsDir}/b.yaml`, dropIn("dave"));
    stamps.push(await configStamp(path, clientsDir));
    await Deno.writeTextFile(`${clientsDir}/b.yaml`, dropIn("dave", "erin"));
    stamps.push(await configStamp(path, clientsDir));
    if (IS_LINUX) {
      await Deno.chmod(`${clientsDir}/b.yaml`, 0o600);
      stamps.push(await configStamp(path, clientsDir));
    }
    await Deno.remove(`${clientsDir}/b.yaml`);
    stamps.push(await configStamp(path, clientsDir));
    for (let i = 1; i < stamps.length; i++) {
      assert.notEqual(stamps[i], stamps[i - 1], `change ${i}`);
    }
    assert.ok(stamps.every((s) => s !== null));
    assert.equal(
      await configStamp(path, clientsDir),
      stamps.at(-1),
      "no change, same stamp",
    );
    await Deno.remove(path);
    assert.equal(await configStamp(path, clientsDir), null);
  });
});
