/**
 * Writes to the server config (lib/config/server_config_edit.ts): `openme
 * add` and `openme revoke` keep the comments, key order and unknown keys of
 * a hand-written file and the bytes of one `openme init` wrote,
 * refuse bad input before touching it and serialise concurrent writers;
 * `openme init` creates the directory and file with their modes and refuses
 * to overwrite without force.
 */
import assert from "node:assert/strict";
import { ConfigError } from "../../lib/config/errors.ts";
import { parseYamlFile } from "../../lib/config/yaml_file.ts";
import {
  buildServerConfig,
  loadServerConfig,
  renderInitialServerConfig,
  type ServerConfig,
} from "../../lib/config/server_config.ts";
import {
  addServerClient,
  initServerConfig,
  removeServerClient,
} from "../../lib/config/server_config_edit.ts";
import { listDir, withTempDir } from "../support/files.ts";
import {
  ALICE_KEY,
  BOB_KEY,
  configText,
  portsText,
  randomClientKey,
  SERVER_PRIVATE,
  SERVER_PUBLIC,
  SHORT_KEY,
  withTempConfig,
} from "../support/server_config_fixture.ts";

const IS_WINDOWS = Deno.build.os === "windows";
/** How long the concurrent writers wait for the lock: far longer than 16 writes take on a loaded machine. */
const LOCK_WAIT_MS = 120_000;
/** Prefix of this file's temporary directories. */
const TEMP_PREFIX = "openme-server-config-edit-";

function parse(text: string): ServerConfig {
  return buildServerConfig(parseYamlFile(text, { path: "/hand.yaml" }));
}

/** A hand-written config: comments everywhere, unknown keys, odd spacing and key order. */
function handWrittenConfig(): string {
  return [
    "# Managed by hand -- do not reformat",
    "clients:   # people",
    "",
    "    # Alice's laptop",
    "    alice:",
    `        ed25519_pubkey: ${ALICE_KEY}   # from her laptop`,
    "        allowed_ports: [ devops ,2222/tcp]",
    "        note: keep this unknown key",
    "",
    "    bob: {ed25519_pubkey: " + BOB_KEY + ", allowed_ports: [default]}",
    "    # end of clients",
    "ports:",
    "  devops:   [22/tcp,  443/tcp]   # ops",
    "  default: [22/tcp]",
    "server:",
    "  private_key: " + SERVER_PRIVATE,
    "  public_key: '" + SERVER_PUBLIC + "'",
    "  host: myserver.example.com   # public name",
    "  x-extension: {a: 1}",
    "custom_section:",
    "  - keep",
    "  - me",
    "",
  ].join("\n");
}

/** A message without its `config FILE:LINE: ` start. */
function withoutPlace(message: string): string {
  return message.replace(/^config [^ ]+:\d+: /, "");
}

/** The comments of a YAML text, in order. */
function commentsOf(text: string): string[] {
  return [...text.matchAll(/#[^\n]*/g)].map((match) => match[0]);
}

Deno.test("addServerClient then removeServerClient keep the comments, key order and unknown keys of a hand-written config", async () => {
  const original = handWrittenConfig();
  await withTempConfig(original, async (path, dir) => {
    const carolKey = randomClientKey();
    await addServerClient(path, {
      name: "carol",
      ed25519PublicKeyB64: carolKey,
      allowedPorts: ["devops", "8080/tcp"],
      expires: "2099-01-02T03:04:05Z",
    });
    const afterAdd = await Deno.readTextFile(path);
    assert.deepEqual(commentsOf(afterAdd), commentsOf(original));
    assert.ok(
      afterAdd.includes(
        [
          `  bob: {ed25519_pubkey: ${BOB_KEY}, allowed_ports: [default]}`,
          "  carol:",
          `    ed25519_pubkey: ${carolKey}`,
          "    allowed_ports: [devops, 8080/tcp]",
          '    expires: "2099-01-02T03:04:05Z"',
          "  # end of clients",
          "ports:",
        ].join("\n"),
      ),
      afterAdd,
    );
    const before = parse(original);
    const config = await loadServerConfig(path);
    assert.deepEqual(config.clients.map((c) => c.name), [
      "alice",
      "bob",
      "carol",
    ]);
    const carol = config.clients[2];
    assert.deepEqual(portsText(carol.ports), ["22/tcp", "443/tcp", "8080/tcp"]);
    assert.equal(carol.expires?.toISOString(), "2099-01-02T03:04:05.000Z");
    assert.deepEqual(
      config.warnings.map(withoutPlace),
      before.warnings.map(withoutPlace),
      "unknown keys kept",
    );
    assert.deepEqual(
      afterAdd.match(/^[a-z_]+:/gm),
      ["clients:", "ports:", "server:", "custom_section:"],
    );
    if (!IS_WINDOWS) assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);

    assert.deepEqual(await removeServerClient(path, "carol"), [
      { file: path, deleted: false },
    ]);
    assert.equal(
      await Deno.readTextFile(path),
      afterAdd.replace(
        / {2}carol:\n.*\n.*\n.*\n/,
        "",
      ),
    );
    assert.deepEqual(await removeServerClient(path, "alice"), [
      { file: path, deleted: false },
    ]);
    const withoutAlice = await Deno.readTextFile(path);
    assert.ok(!withoutAlice.includes("alice"), withoutAlice);
    assert.ok(!withoutAlice.includes("# from her laptop"), withoutAlice);
    assert.deepEqual(
      commentsOf(withoutAlice),
      commentsOf(original).filter((c) => c !== "# from her laptop"),
    );
    assert.deepEqual(
      (await loadServerConfig(path)).clients.map((c) => c.name),
      ["bob"],
    );
    assert.deepEqual(await listDir(dir), ["config.yaml", "config.yaml.lock"]);
  });
});

Deno.test("addServerClient then removeServerClient give back the bytes openme init wrote", async () => {
  const text = renderInitialServerConfig({
    host: "h.example",
    privateKeyB64: SERVER_PRIVATE,
    publicKeyB64: SERVER_PUBLIC,
  });
  await withTempConfig(text, async (path) => {
    await addServerClient(path, {
      name: "alice",
      ed25519PublicKeyB64: ALICE_KEY,
      allowedPorts: ["22", "default"],
      expires: "2099-01-01T00:00:00Z",
    });
    assert.equal(
      await Deno.readTextFile(path),
      text.replace(
        "clients: {}\n",
        `clients:\n  alice:\n    ed25519_pubkey: ${ALICE_KEY}\n    allowed_ports: [22, default]\n    expires: "2099-01-01T00:00:00Z"\n`,
      ),
    );
    assert.deepEqual(await removeServerClient(path, "alice"), [
      { file: path, deleted: false },
    ]);
    assert.equal(await Deno.readTextFile(path), text);
  });
});

Deno.test("removeServerClient returns false for an unknown client and leaves the file alone", async () => {
  const original = configText();
  await withTempConfig(original, async (path) => {
    assert.deepEqual(await removeServerClient(path, "mallory"), []);
    assert.equal(await Deno.readTextFile(path), original);
  });
});

Deno.test("removing the last client leaves clients: {} and the file still loads", async () => {
  const text = renderInitialServerConfig({
    host: "h.example",
    privateKeyB64: SERVER_PRIVATE,
    publicKeyB64: SERVER_PUBLIC,
  });
  await withTempConfig(text, async (path) => {
    await addServerClient(path, {
      name: "solo",
      ed25519PublicKeyB64: ALICE_KEY,
      allowedPorts: [],
      expires: null,
    });
    assert.deepEqual(
      (await loadServerConfig(path)).clients.map((c) => c.name),
      ["solo"],
    );
    assert.deepEqual(await removeServerClient(path, "solo"), [
      { file: path, deleted: false },
    ]);
    assert.equal(await Deno.readTextFile(path), text);
  });
});

Deno.test("addServerClient refuses bad input with a ConfigError and leaves the file unchanged", async () => {
  const original = configText();
  await withTempConfig(original, async (path) => {
    const cases: {
      name: string;
      client: Parameters<typeof addServerClient>[1];
      parts: string[];
    }[] = [
      {
        name: "existing name",
        client: {
          name: "alice",
          ed25519PublicKeyB64: randomClientKey(),
          allowedPorts: [],
          expires: null,
        },
        parts: [
          `config ${path}:19: clients.alice: client "alice" already exists`,
          'revoke it first with "openme revoke alice"',
          "pick another name",
        ],
      },
      {
        name: "unknown group",
        client: {
          name: "carol",
          ed25519PublicKeyB64: randomClientKey(),
          allowedPorts: ["22/tcp", "dev0ps"],
          expires: null,
        },
        parts: [
          `config ${path}: clients.carol.allowed_ports[1]: unknown port group "dev0ps" (defined: default, devops)`,
        ],
      },
      {
        name: "bad port spec",
        client: {
          name: "carol",
          ed25519PublicKeyB64: randomClientKey(),
          allowedPorts: ["99999/tcp"],
          expires: null,
        },
        parts: [
          "clients.carol.allowed_ports[0]: port 99999 out of range 1-65535",
        ],
      },
      {
        name: "short key",
        client: {
          name: "carol",
          ed25519PublicKeyB64: SHORT_KEY,
          allowedPorts: [],
          expires: null,
        },
        parts: [
          "clients.carol.ed25519_pubkey: key is 16 bytes, expected 32 bytes",
        ],
      },
      {
        name: "bad expiry",
        client: {
          name: "carol",
          ed25519PublicKeyB64: randomClientKey(),
          allowedPorts: [],
          expires: "2099-01-01",
        },
        parts: [
          'clients.carol.expires: invalid timestamp "2099-01-01"',
          "RFC 3339",
        ],
      },
      {
        name: "bad name",
        client: {
          name: "carol smith",
          ed25519PublicKeyB64: randomClientKey(),
          allowedPorts: [],
          expires: null,
        },
        parts: ['clients["carol smith"]: invalid client name'],
      },
    ];
    for (const c of cases) {
      await assert.rejects(
        addServerClient(path, c.client),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError, `${c.name}: ${error}`);
          for (const part of c.parts) {
            assert.ok(
              error.message.includes(part),
              `${c.name}: "${error.message}" lacks "${part}"`,
            );
          }
          return true;
        },
      );
      assert.equal(await Deno.readTextFile(path), original, c.name);
    }
  });
});

Deno.test("addServerClient refuses a name present in the file even when that entry is invalid", async () => {
  const original = configText({ 25: `    ed25519_pubkey: ${SHORT_KEY}` });
  await withTempConfig(original, async (path) => {
    await assert.rejects(
      addServerClient(path, {
        name: "bob",
        ed25519PublicKeyB64: randomClientKey(),
        allowedPorts: [],
        expires: null,
      }),
      /client "bob" already exists/,
    );
  });
});

Deno.test("addServerClient works when clients is missing, null or a non-empty flow map", async () => {
  const header =
    `server:\n  host: h\n  private_key: ${SERVER_PRIVATE}\n  public_key: ${SERVER_PUBLIC}\n`;
  const cases = [
    { name: "missing", text: header },
    { name: "null", text: `${header}clients:\n` },
    {
      name: "flow map with entries",
      text:
        `# top\n${header}clients: {alice: {ed25519_pubkey: ${ALICE_KEY}}} # flow\n`,
    },
  ];
  for (const c of cases) {
    await withTempConfig(c.text, async (path) => {
      await addServerClient(path, {
        name: "carol",
        ed25519PublicKeyB64: BOB_KEY,
        allowedPorts: ["22/tcp"],
        expires: null,
      });
      const after = await Deno.readTextFile(path);
      const config = await loadServerConfig(path);
      assert.ok(
        config.clients.some((client) => client.name === "carol"),
        c.name,
      );
      assert.ok(
        after.startsWith(c.text.split("clients")[0].trimEnd()),
        `${c.name}: header changed:\n${after}`,
      );
      if (c.name === "flow map with entries") {
        assert.ok(after.includes("# top") && after.includes("# flow"), after);
        assert.ok(config.clients.some((client) => client.name === "alice"));
      }
    });
  }
});

Deno.test("addServerClient on a missing file says to run init", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    await assert.rejects(
      addServerClient(`${dir}/config.yaml`, {
        name: "a",
        ed25519PublicKeyB64: ALICE_KEY,
        allowedPorts: [],
        expires: null,
      }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message.includes("file not found") &&
        error.message.includes("openme init"),
    );
  });
});

Deno.test("concurrent adds from this process and two other processes all land", async () => {
  const text = renderInitialServerConfig({
    host: "h.example",
    privateKeyB64: SERVER_PRIVATE,
    publicKeyB64: SERVER_PUBLIC,
  });
  await withTempConfig(text, async (path, dir) => {
    const moduleUrl =
      new URL("../../lib/config/server_config_edit.ts", import.meta.url).href;
    const configFile = new URL("../../deno.json", import.meta.url).pathname;
    const script = `${dir}/adder.ts`;
    await Deno.writeTextFile(
      script,
      [
        `import { addServerClient } from ${JSON.stringify(moduleUrl)};`,
        "const [path, prefix, key, dir] = Deno.args;",
        "await Deno.writeTextFile(`${dir}/ready-${prefix}`, '');",
        "const deadline = Date.now() + 20000;",
        "while (Date.now() < deadline) {",
        "  try { await Deno.stat(`${dir}/go`); break; } catch { await new Promise((r) => setTimeout(r, 5)); }",
        "}",
        "await Promise.all([0, 1, 2, 3].map((i) =>",
        "  addServerClient(path, { name: `${prefix}${i}`, ed25519PublicKeyB64: key, allowedPorts: ['default'], expires: null }, { timeoutMs: " +
        LOCK_WAIT_MS + " })));",
      ].join("\n"),
    );
    const children = ["proca", "procb"].map((prefix) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--no-lock",
          "--config",
          configFile,
          script,
          path,
          prefix,
          randomClientKey(),
          dir,
        ],
        stdout: "piped",
        stderr: "piped",
      }).spawn()
    );
    try {
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        const names = await listDir(dir);
        if (names.includes("ready-proca") && names.includes("ready-procb")) {
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await Deno.writeTextFile(`${dir}/go`, "");
      await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          addServerClient(path, {
            name: `local${i}`,
            ed25519PublicKeyB64: randomClientKey(),
            allowedPorts: i % 2 === 0
              ? ["default"]
              : ["22/tcp", "8080-8081/tcp"],
            expires: null,
          }, { timeoutMs: LOCK_WAIT_MS })),
      );
    } finally {
      for (const child of children) {
        const output = await child.output();
        assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
      }
    }
    const config = await loadServerConfig(path);
    const names = config.clients.map((c) => c.name).sort();
    const expected = [
      ...Array.from({ length: 8 }, (_, i) => `local${i}`),
      ...[0, 1, 2, 3].map((i) => `proca${i}`),
      ...[0, 1, 2, 3].map((i) => `procb${i}`),
    ].sort();
    assert.deepEqual(names, expected);
    assert.deepEqual(config.skippedClients, []);
    if (!IS_WINDOWS) assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.deepEqual(
      (await listDir(dir)).filter((n) => n.endsWith(".tmp")),
      [],
    );
  });
});

Deno.test("initServerConfig creates the directory 0750 and file 0600 and refuses to overwrite without force", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/etc/openme/config.yaml`;
    const options = {
      host: "myserver.example.com",
      privateKeyB64: SERVER_PRIVATE,
      publicKeyB64: SERVER_PUBLIC,
      readerGroup: null,
    };
    const { text, mode } = await initServerConfig(path, options);
    assert.equal(mode, 0o600);
    assert.equal(await Deno.readTextFile(path), text);
    assert.equal((await loadServerConfig(path)).host, "myserver.example.com");
    if (!IS_WINDOWS) {
      assert.equal((await Deno.stat(`${dir}/etc/openme`)).mode! & 0o777, 0o750);
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    }
    await assert.rejects(
      initServerConfig(path, { ...options, host: "other.example.com" }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message.startsWith(
          `config ${path}: a config file already exists`,
        ) &&
        error.message.includes("--force"),
    );
    assert.equal(await Deno.readTextFile(path), text);
    await initServerConfig(path, {
      ...options,
      host: "other.example.com",
      force: true,
    });
    assert.equal((await loadServerConfig(path)).host, "other.example.com");
    await assert.rejects(
      initServerConfig(`${dir}/x.yaml`, { ...options, host: "bad host" }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message.startsWith(
          `config ${dir}/x.yaml: server.host: invalid host`,
        ),
    );
  });
});
