import assert from "node:assert/strict";
import { encodeBase64 } from "../../lib/encoding.ts";
import { ConfigError } from "../../lib/config/errors.ts";
import {
  defaultClientConfigPath,
  loadClientConfig,
  type NewClientProfile,
  parseClientConfig,
  renderClientConfig,
  upsertClientProfile,
} from "../../lib/config/client_config.ts";
import { assertConfigErrorMessage, replaceLines } from "../support/config.ts";
import { listDir, withTempDir } from "../support/files.ts";

const IS_WINDOWS = Deno.build.os === "windows";
/** Prefix of this file's temporary directories. */
const TEMP_PREFIX = "openme-client-config-";
const PATH = "/home/me/.openme/config.yaml";

function randomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  crypto.getRandomValues(bytes);
  return bytes;
}

const SERVER_PUBLIC = encodeBase64(randomBytes(32));
const CLIENT_PRIVATE_BYTES = randomBytes(64);
const CLIENT_PRIVATE = encodeBase64(CLIENT_PRIVATE_BYTES);
const CLIENT_PUBLIC = encodeBase64(CLIENT_PRIVATE_BYTES.subarray(32));
const CLIENT_SEED = encodeBase64(randomBytes(32));

function baseLines(): string[] {
  return [
    "profiles:", //                                     1
    "  default:", //                                    2
    "    server_host: myserver.example.com", //         3
    "    server_udp_port: 54154", //                    4
    `    server_pubkey: ${SERVER_PUBLIC}`, //           5
    `    private_key: ${CLIENT_PRIVATE}`, //            6
    `    public_key: ${CLIENT_PUBLIC}`, //              7
    '    post_knock: "ssh me@myserver.example.com"', // 8
  ];
}

function configText(replace: Record<number, string | null> = {}): string {
  return replaceLines(baseLines(), replace);
}

function newProfile(
  name: string,
  overrides: Partial<NewClientProfile> = {},
): NewClientProfile {
  const privateBytes = randomBytes(64);
  return {
    name,
    serverHost: "myserver.example.com",
    serverUdpPort: 54154,
    serverPubkeyB64: SERVER_PUBLIC,
    privateKeyB64: encodeBase64(privateBytes),
    publicKeyB64: encodeBase64(privateBytes.subarray(32)),
    ...overrides,
  };
}

Deno.test({
  name:
    "defaultClientConfigPath without a home directory says to pass --client-config",
  ignore: IS_WINDOWS,
  fn: () => {
    const home = Deno.env.get("HOME");
    Deno.env.delete("HOME");
    try {
      assert.throws(
        () => defaultClientConfigPath(),
        (error: unknown) =>
          error instanceof ConfigError &&
          error.message.includes("HOME is not set") &&
          error.message.includes("--client-config PATH"),
      );
    } finally {
      if (home !== undefined) Deno.env.set("HOME", home);
    }
  },
});

Deno.test("defaultClientConfigPath defaults to this platform and environment", () => {
  const home = Deno.env.get(IS_WINDOWS ? "USERPROFILE" : "HOME");
  if (home === undefined) return;
  assert.ok(defaultClientConfigPath().startsWith(home.replace(/[\\/]+$/, "")));
});

Deno.test("parseClientConfig reads a full profile", () => {
  const config = parseClientConfig(configText(), { path: PATH });
  assert.equal(config.path, PATH);
  const profile = config.profiles.get("default");
  assert.ok(profile !== undefined);
  assert.equal(profile.name, "default");
  assert.equal(profile.serverHost, "myserver.example.com");
  assert.equal(profile.serverUdpPort, 54154);
  assert.equal(encodeBase64(profile.serverPublicKey), SERVER_PUBLIC);
  assert.equal(encodeBase64(profile.privateKey), CLIENT_PRIVATE);
  assert.equal(encodeBase64(profile.publicKey!), CLIENT_PUBLIC);
  assert.equal(profile.postKnock, "ssh me@myserver.example.com");
});

Deno.test("optional profile keys: port defaults, public key from the 64-byte private key, bare seed gives null", () => {
  const noPort = parseClientConfig(configText({ 4: null, 7: null, 8: null }), {
    path: PATH,
  }).profiles.get("default")!;
  assert.equal(noPort.serverUdpPort, 54154, "the SPEC's default port");
  assert.equal(encodeBase64(noPort.publicKey!), CLIENT_PUBLIC);
  assert.equal(noPort.postKnock, null);
  const seed = parseClientConfig(
    configText({ 6: `    private_key: ${CLIENT_SEED}`, 7: null }),
    { path: PATH },
  )
    .profiles.get("default")!;
  assert.equal(seed.privateKey.length, 32);
  assert.equal(seed.publicKey, null);
});

Deno.test("profiles keep their file order", () => {
  const text = configText() + configText().replace("profiles:\n", "")
    .replace("  default:", "  aaa:");
  const config = parseClientConfig(text, { path: PATH });
  assert.deepEqual([...config.profiles.keys()], ["default", "aaa"]);
});

Deno.test("empty file or empty profiles section gives no profiles", () => {
  for (const text of ["", "# nothing yet\n", "profiles:\n", "profiles: {}\n"]) {
    assert.equal(
      parseClientConfig(text, { path: PATH }).profiles.size,
      0,
      JSON.stringify(text),
    );
  }
});

Deno.test("an invalid profile throws a ConfigError with file, line and key path", () => {
  const cases: {
    name: string;
    text: string;
    line?: number;
    keyPath?: string;
    parts: string[];
  }[] = [
    {
      name: "missing host",
      text: configText({ 3: null }),
      line: 2,
      keyPath: "profiles.default.server_host",
      parts: ["missing server_host"],
    },
    {
      name: "host with a space",
      text: configText({ 3: "    server_host: my server" }),
      line: 3,
      keyPath: "profiles.default.server_host",
      parts: ['invalid host "my server"'],
    },
    {
      name: "port out of range",
      text: configText({ 4: "    server_udp_port: 70000" }),
      line: 4,
      keyPath: "profiles.default.server_udp_port",
      parts: ["port 70000 out of range 1-65535"],
    },
    {
      name: "port as text",
      text: configText({ 4: '    server_udp_port: "54154"' }),
      line: 4,
      keyPath: "profiles.default.server_udp_port",
      parts: ['expected a port number, got "54154"'],
    },
    {
      name: "short server key",
      text: configText({
        5: `    server_pubkey: ${encodeBase64(randomBytes(31))}`,
      }),
      line: 5,
      keyPath: "profiles.default.server_pubkey",
      parts: ["key is 31 bytes, expected 32 bytes"],
    },
    {
      name: "private key of 48 bytes",
      text: configText({
        6: `    private_key: ${encodeBase64(randomBytes(48))}`,
      }),
      line: 6,
      keyPath: "profiles.default.private_key",
      parts: ["key is 48 bytes, expected 64 or 32 bytes"],
    },
    {
      name: "non-base64 private key",
      text: configText({ 6: "    private_key: hello world" }),
      line: 6,
      keyPath: "profiles.default.private_key",
      parts: ["not valid base64"],
    },
    {
      name: "public key not matching the private key",
      text: configText({
        7: `    public_key: ${encodeBase64(randomBytes(32))}`,
      }),
      line: 7,
      keyPath: "profiles.default.public_key",
      parts: ["does not match"],
    },
    {
      name: "post_knock as a list",
      text: configText({ 8: "    post_knock: [ssh, me]" }),
      line: 8,
      keyPath: "profiles.default.post_knock",
      parts: ["expected a command line, got a list"],
    },
    {
      name: "profile is text",
      text: "profiles:\n  default: yes\n",
      line: 2,
      keyPath: "profiles.default",
      parts: ['expected a map, got "yes"'],
    },
    {
      name: "profiles is a list",
      text: "profiles: [a]\n",
      line: 1,
      keyPath: "profiles",
      parts: ["expected a map of profile names"],
    },
    {
      name: "bad YAML",
      text: "profiles:\n  default: {server_host: x\n",
      line: 2,
      parts: ["invalid YAML", "the { opened on this line is never closed"],
    },
    {
      name: "invalid profile name",
      text: configText({ 2: "  -bad:" }),
      line: 2,
      keyPath: "profiles.-bad",
      parts: ['invalid profile name "-bad"', "starting with a letter or digit"],
    },
    {
      name: "host of the wrong type",
      text: configText({ 3: "    server_host: [a]" }),
      line: 3,
      keyPath: "profiles.default.server_host",
      parts: ["expected a host name, got a list"],
    },
    {
      name: "top level is a list",
      text: "- a\n",
      parts: ["the top level is a list"],
    },
  ];
  for (const c of cases) {
    assert.throws(
      () => parseClientConfig(c.text, { path: PATH }),
      (error: unknown) => {
        assertConfigErrorMessage(error, { ...c, file: PATH });
        return true;
      },
    );
  }
});

Deno.test("renderClientConfig starts with profiles: and parses back to the same profile", () => {
  const profile = newProfile("default", {
    postKnock: "ssh me@myserver.example.com",
  });
  const text = renderClientConfig([profile]);
  assert.ok(text.startsWith("profiles:\n"));
  const parsed = parseClientConfig(text, { path: PATH }).profiles.get(
    "default",
  )!;
  assert.equal(parsed.serverHost, profile.serverHost);
  assert.equal(parsed.serverUdpPort, 54154);
  assert.equal(encodeBase64(parsed.serverPublicKey), profile.serverPubkeyB64);
  assert.equal(encodeBase64(parsed.privateKey), profile.privateKeyB64);
  assert.equal(encodeBase64(parsed.publicKey!), profile.publicKeyB64);
  assert.equal(parsed.postKnock, "ssh me@myserver.example.com");
  assert.throws(
    () => renderClientConfig([newProfile("default", { serverUdpPort: 0 })]),
    ConfigError,
  );
});

Deno.test("upsertClientProfile creates the directory 0700 and the file 0600", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/home/.openme/config.yaml`;
    const profile = newProfile("default");
    await upsertClientProfile(path, profile);
    if (!IS_WINDOWS) {
      assert.equal(
        (await Deno.stat(`${dir}/home/.openme`)).mode! & 0o777,
        0o700,
      );
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    }
    const config = await loadClientConfig(path);
    assert.deepEqual([...config.profiles.keys()], ["default"]);
    assert.deepEqual(config.warnings, []);
    assert.deepEqual(await listDir(`${dir}/home/.openme`), [
      "config.yaml",
      "config.yaml.lock",
    ]);
  });
});

Deno.test("upsertClientProfile adds a profile keeping comments, key order and unknown keys, and refuses an existing one without force", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/config.yaml`;
    const original = [
      "# my profiles",
      "editor_setting: vim # unknown top-level key",
      "profiles:",
      "  # the office",
      "  work:",
      "    server_host: work.example.com",
      `    server_pubkey: ${SERVER_PUBLIC}`,
      `    private_key: ${CLIENT_PRIVATE} # secret`,
      "    colour: blue",
      "",
    ].join("\n");
    await Deno.writeTextFile(path, original);
    const home = newProfile("home", { serverUdpPort: 6000 });
    await upsertClientProfile(path, home);
    const after = await Deno.readTextFile(path);
    assert.equal(
      after,
      original +
        [
          "  home:",
          "    server_host: myserver.example.com",
          "    server_udp_port: 6000",
          `    server_pubkey: ${SERVER_PUBLIC}`,
          `    private_key: ${home.privateKeyB64}`,
          `    public_key: ${home.publicKeyB64}`,
          "",
        ].join("\n"),
    );
    if (!IS_WINDOWS) assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);

    await assert.rejects(
      upsertClientProfile(path, newProfile("work")),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.ok(
          error.message.startsWith(
            `config ${path}:5: profiles.work: profile "work" already exists`,
          ),
          error.message,
        );
        assert.ok(error.message.includes("--force"));
        return true;
      },
    );
    assert.equal(await Deno.readTextFile(path), after);
  });
});

Deno.test("upsertClientProfile on a file openme wrote gives what renderClientConfig renders for both profiles", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/config.yaml`;
    const work = newProfile("work", { postKnock: "ssh work" });
    const home = newProfile("home");
    await upsertClientProfile(path, work);
    assert.equal(await Deno.readTextFile(path), renderClientConfig([work]));
    await upsertClientProfile(path, home);
    assert.equal(
      await Deno.readTextFile(path),
      renderClientConfig([work, home]),
    );
  });
});

Deno.test("upsertClientProfile with force replaces the known keys and keeps comments and unknown keys", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/config.yaml`;
    await Deno.writeTextFile(
      path,
      [
        "# my profiles",
        "profiles:",
        "  work:",
        "    server_host: old.example.com # old host",
        `    server_pubkey: ${SERVER_PUBLIC}`,
        `    private_key: ${CLIENT_PRIVATE}`,
        '    post_knock: "ssh work"',
        "    colour: blue",
        "",
      ].join("\n"),
    );
    const replacement = newProfile("work", { serverHost: "new.example.com" });
    await upsertClientProfile(path, replacement, { force: true });
    const text = await Deno.readTextFile(path);
    assert.ok(text.startsWith("# my profiles\n"), text);
    assert.ok(text.includes("colour: blue"), text);
    assert.ok(text.includes("# old host"), text);
    const profile = (await loadClientConfig(path)).profiles.get("work")!;
    assert.equal(profile.serverHost, "new.example.com");
    assert.equal(encodeBase64(profile.privateKey), replacement.privateKeyB64);
    assert.equal(encodeBase64(profile.publicKey!), replacement.publicKeyB64);
    assert.equal(profile.postKnock, "ssh work");

    await upsertClientProfile(path, { ...replacement, postKnock: null }, {
      force: true,
    });
    assert.equal(
      (await loadClientConfig(path)).profiles.get("work")!.postKnock,
      null,
    );
    assert.ok((await Deno.readTextFile(path)).includes("colour: blue"));
  });
});

Deno.test("upsertClientProfile refuses invalid values before touching the file", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/sub/config.yaml`;
    const cases: { profile: NewClientProfile; part: string }[] = [
      { profile: newProfile("bad name"), part: "invalid profile name" },
      {
        profile: newProfile("p", { serverPubkeyB64: "short" }),
        part: "profiles.p.server_pubkey",
      },
      {
        profile: newProfile("p", { serverUdpPort: 70000 }),
        part: "port 70000 out of range",
      },
      {
        profile: newProfile("p", { serverHost: "" }),
        part: "missing server_host",
      },
    ];
    for (const { profile, part } of cases) {
      await assert.rejects(
        upsertClientProfile(path, profile),
        (error: unknown) =>
          error instanceof ConfigError && error.message.includes(part),
      );
    }
    assert.deepEqual(await listDir(dir), []);
  });
});

Deno.test("concurrent upserts of different profiles all land", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/.openme/config.yaml`;
    const names = Array.from({ length: 8 }, (_, i) => `p${i}`);
    await Promise.all(
      names.map((name) => upsertClientProfile(path, newProfile(name))),
    );
    const config = await loadClientConfig(path);
    assert.deepEqual([...config.profiles.keys()].sort(), names);
    assert.deepEqual(
      (await listDir(`${dir}/.openme`)).filter((n) => n.endsWith(".tmp")),
      [],
    );
  });
});

Deno.test("loadClientConfig on a missing file explains where the profile comes from", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    await assert.rejects(
      loadClientConfig(`${dir}/config.yaml`),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message.includes("file not found") &&
        error.message.includes("openme add"),
    );
  });
});

Deno.test("loadClientConfig warns when the file is readable by others", async () => {
  if (IS_WINDOWS) return;
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/config.yaml`;
    await Deno.writeTextFile(path, configText());
    await Deno.chmod(path, 0o644);
    const config = await loadClientConfig(path);
    assert.ok(
      config.warnings.some((w) => w.includes("mode 0644")),
      String(config.warnings),
    );
  });
});

Deno.test("a profile refused before writing names the key path but no line of generated text", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/config.yaml`;
    await assert.rejects(
      upsertClientProfile(path, newProfile("p", { serverPubkeyB64: "short" })),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.ok(
          error.message.startsWith(
            `config ${path}: profiles.p.server_pubkey: `,
          ),
          error.message,
        );
        return true;
      },
    );
  });
});
