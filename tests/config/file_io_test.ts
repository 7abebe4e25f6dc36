import assert from "node:assert/strict";
import { type FileHandle, open as openNodeFile } from "node:fs/promises";
import { ConfigError } from "../../lib/config/errors.ts";
import { loadServerConfig } from "../../lib/config/server_config.ts";
import {
  addServerClient,
  initServerConfig,
  removeServerClient,
} from "../../lib/config/server_config_edit.ts";
import {
  generateEd25519KeyPair,
  generateX25519KeyPair,
} from "../../lib/protocol/crypto.ts";
import { encodeBase64 } from "../../lib/encoding.ts";
import {
  atomicWriteFile,
  ensureConfigDir,
  ensureDir,
  lineOfKeyPath,
  MAX_CONFIG_FILE_BYTES,
  parseYamlSource,
  readYamlDocument,
  setSectionEntry,
  spliceInsertMapEntry,
  spliceRemoveMapEntry,
  withFileLock,
  yamlToValue,
} from "../../lib/config/file_io.ts";
import { listDir, withTempDir } from "../support/files.ts";

const IS_WINDOWS = Deno.build.os === "windows";
/** Prefix of this file's temporary directories. */
const TEMP_PREFIX = "openme-file-io-";

function modeOf(info: Deno.FileInfo): number {
  return (info.mode ?? 0) & 0o777;
}

Deno.test("atomicWriteFile writes the text with the requested mode and leaves no temp file", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/config.yaml`;
    await Deno.writeTextFile(path, "old\n", { mode: 0o644 });
    await Deno.chmod(path, 0o644);
    await atomicWriteFile(path, "new: text\n", { mode: 0o600 });
    assert.equal(await Deno.readTextFile(path), "new: text\n");
    if (!IS_WINDOWS) assert.equal(modeOf(await Deno.stat(path)), 0o600);
    await atomicWriteFile(`${dir}/other.json`, "{}", { mode: 0o640 });
    if (!IS_WINDOWS) {
      assert.equal(modeOf(await Deno.stat(`${dir}/other.json`)), 0o640);
    }
    assert.deepEqual(await listDir(dir), ["config.yaml", "other.json"]);
  });
});

Deno.test("atomicWriteFile defaults to mode 0600 even under a permissive umask", async () => {
  if (IS_WINDOWS) return;
  const dir = await Deno.makeTempDir();
  const previous = Deno.umask(0);
  try {
    await atomicWriteFile(`${dir}/a`, "x");
    assert.equal(modeOf(await Deno.stat(`${dir}/a`)), 0o600);
  } finally {
    Deno.umask(previous);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("atomicWriteFile removes its temp file when the rename fails", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    // The target is a non-empty directory: rename onto it fails.
    await Deno.mkdir(`${dir}/target`);
    await Deno.writeTextFile(`${dir}/target/keep`, "x");
    await assert.rejects(atomicWriteFile(`${dir}/target`, "text"));
    assert.deepEqual(await listDir(dir), ["target"]);
  });
});

Deno.test("atomicWriteFile fails cleanly when the directory does not exist", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    await assert.rejects(
      atomicWriteFile(`${dir}/missing/config.yaml`, "x"),
      Deno.errors.NotFound,
    );
    assert.deepEqual(await listDir(dir), []);
  });
});

Deno.test("atomicWriteFile through a symlink replaces the real file and keeps the link", async () => {
  if (IS_WINDOWS) return;
  await withTempDir(TEMP_PREFIX, async (dir) => {
    await Deno.writeTextFile(`${dir}/real.yaml`, "old");
    await Deno.symlink(`${dir}/real.yaml`, `${dir}/link.yaml`);
    await atomicWriteFile(`${dir}/link.yaml`, "new");
    assert.ok((await Deno.lstat(`${dir}/link.yaml`)).isSymlink);
    assert.equal(await Deno.readTextFile(`${dir}/real.yaml`), "new");
  });
});

Deno.test({
  name:
    "atomicWriteFile syncs the temp file's full text before the rename, and the directory after it",
  // Reads which file a descriptor is through /proc.
  ignore: Deno.build.os !== "linux",
}, async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/config.yaml`;
    const text = "server:\n  udp_port: 54154\n";
    const events: string[] = [];
    const probe = await openNodeFile(`${dir}/probe`, "w");
    const handleProto = Object.getPrototypeOf(probe) as FileHandle;
    await probe.close();
    await Deno.remove(`${dir}/probe`);
    const realHandleSync = handleProto.sync;
    const realFsFileSync = Deno.FsFile.prototype.sync;
    const realRename = Deno.rename;
    handleProto.sync = async function (this: FileHandle) {
      const file = Deno.readLinkSync(`/proc/self/fd/${this.fd}`);
      await realHandleSync.call(this);
      events.push(
        `fsync ${file}: ${JSON.stringify(Deno.readTextFileSync(file))}`,
      );
    };
    Deno.FsFile.prototype.sync = async function (this: Deno.FsFile) {
      const info = await this.stat();
      await realFsFileSync.call(this);
      const isDir = info.isDirectory && info.ino === Deno.statSync(dir).ino;
      events.push(isDir ? "fsync directory" : "fsync other");
    };
    Deno.rename = async (from: string | URL, to: string | URL) => {
      await realRename(from, to);
      events.push(`rename ${from} -> ${to}`);
    };
    try {
      await atomicWriteFile(path, text);
    } finally {
      handleProto.sync = realHandleSync;
      Deno.FsFile.prototype.sync = realFsFileSync;
      Deno.rename = realRename;
    }
    assert.equal(events.length, 3, events.join("\n"));
    const temp = /^fsync (\/.+\.tmp): /.exec(events[0])?.[1];
    assert.ok(temp !== undefined && temp.startsWith(`${dir}/`), events[0]);
    assert.deepEqual(events, [
      `fsync ${temp}: ${JSON.stringify(text)}`,
      `rename ${temp} -> ${path}`,
      "fsync directory",
    ]);
  });
});

// --- Ownership: root keeps a replaced file's owner, a new file takes its directory's.

/** uid and gid of nobody/nogroup on Debian, the "other user" of these tests. */
const NOBODY = 65534;
const REPO = new URL("../../", import.meta.url);
const FILE_IO_URL = new URL("lib/config/file_io.ts", REPO).href;
const SUBPROCESS_TIMEOUT_MS = 60_000;

const isRoot = !IS_WINDOWS && Deno.uid() === 0;
if (!isRoot) {
  console.warn(
    "SKIP atomicWriteFile ownership tests: need root (and Linux) to chown files to uid 65534",
  );
}

function which(name: string): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir === "") continue;
    try {
      if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
    } catch {
      // Not here.
    }
  }
  return null;
}

const canRunAsNobody = isRoot && which("setpriv") !== null;
if (isRoot && !canRunAsNobody) {
  console.warn(
    "SKIP atomicWriteFile as a non-root user: setpriv (util-linux) is not installed",
  );
}

function ownerOf(info: Deno.FileInfo): [number | null, number | null] {
  return [info.uid, info.gid];
}

/** Runs fn with a directory the test can hand to uid 65534 (mode 0755 so that user can reach into it); removes it afterwards. */
async function withSharedTempDir(
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  await withTempDir("openme-file-io-test-", async (dir) => {
    await Deno.chmod(dir, 0o755);
    await fn(dir);
  });
}

/** Valid `openme init` options with fresh keys. */
function initOptions(): {
  host: string;
  privateKeyB64: string;
  publicKeyB64: string;
} {
  const keys = generateX25519KeyPair();
  return {
    host: "192.0.2.1",
    privateKeyB64: encodeBase64(keys.privateKey),
    publicKeyB64: encodeBase64(keys.publicKey),
  };
}

interface ScriptResult {
  code: number;
  stderr: string;
}

/**
 * Runs a script that calls atomicWriteFile(path, text) in a new Deno with only
 * the file permissions the release binary has (no --allow-sys), optionally as
 * another user through setpriv.
 */
async function runAtomicWrite(
  dir: string,
  path: string,
  options: { setpriv?: string[] } = {},
): Promise<ScriptResult> {
  const script = `${dir}/write.ts`;
  await Deno.writeTextFile(
    script,
    `import { atomicWriteFile } from ${JSON.stringify(FILE_IO_URL)};\n` +
      `await atomicWriteFile(${JSON.stringify(path)}, "written\\n");\n`,
  );
  await Deno.chmod(script, 0o644);
  const denoArgs = [
    "run",
    "--no-prompt",
    "--cached-only",
    "--allow-read",
    "--allow-write",
    "--config",
    decodeURIComponent(new URL("deno.json", REPO).pathname),
    script,
  ];
  const env: Record<string, string> = { PATH: Deno.env.get("PATH") ?? "" };
  let command = Deno.execPath();
  let args = denoArgs;
  if (options.setpriv !== undefined) {
    // The other user cannot read root's Deno cache: give it a copy of the npm part.
    const denoDir = `${dir}/deno_dir`;
    await copyNpmCache(denoDir);
    await chownTree(denoDir, NOBODY);
    env.DENO_DIR = denoDir;
    env.HOME = denoDir;
    command = "setpriv";
    args = [...options.setpriv, "--", Deno.execPath(), ...denoArgs];
  }
  const out = await new Deno.Command(command, {
    args,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    signal: AbortSignal.timeout(SUBPROCESS_TIMEOUT_MS),
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

/** Copies the npm packages of this Deno's cache to `into/npm`. */
async function copyNpmCache(into: string): Promise<void> {
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
    signal: AbortSignal.timeout(SUBPROCESS_TIMEOUT_MS),
  }).output();
  const denoDir = JSON.parse(new TextDecoder().decode(info.stdout)).denoDir;
  assert.equal(typeof denoDir, "string", "deno info --json gave no denoDir");
  await Deno.mkdir(into, { recursive: true });
  const copied = await new Deno.Command("cp", {
    args: ["-a", `${denoDir}/npm`, `${into}/npm`],
    signal: AbortSignal.timeout(SUBPROCESS_TIMEOUT_MS),
  }).output();
  assert.equal(copied.code, 0, `cannot copy ${denoDir}/npm`);
}

async function chownTree(path: string, id: number): Promise<void> {
  const out = await new Deno.Command("chown", {
    args: ["-R", `${id}:${id}`, path],
    signal: AbortSignal.timeout(SUBPROCESS_TIMEOUT_MS),
  }).output();
  assert.equal(out.code, 0, `chown -R ${path} failed`);
}

Deno.test({
  name:
    "atomicWriteFile run by root keeps the owner and group of the file it replaces",
  ignore: !isRoot,
  fn: async () => {
    await withSharedTempDir(async (dir) => {
      const path = `${dir}/config.yaml`;
      await Deno.writeTextFile(path, "old\n", { mode: 0o600 });
      await Deno.chown(path, NOBODY, NOBODY);
      await atomicWriteFile(path, "new\n");
      const info = await Deno.stat(path);
      assert.deepEqual(ownerOf(info), [NOBODY, NOBODY]);
      assert.equal(modeOf(info), 0o600);
      assert.equal(await Deno.readTextFile(path), "new\n");

      // Owner and group are kept each on its own (here: nobody, group root).
      await Deno.chown(path, NOBODY, 0);
      await atomicWriteFile(path, "newer\n", { mode: 0o640 });
      assert.deepEqual(ownerOf(await Deno.stat(path)), [NOBODY, 0]);
      assert.equal(modeOf(await Deno.stat(path)), 0o640);

      // A root-owned file stays root's.
      await Deno.chown(path, 0, 0);
      await atomicWriteFile(path, "root\n");
      assert.deepEqual(ownerOf(await Deno.stat(path)), [0, 0]);
      assert.deepEqual(await listDir(dir), ["config.yaml"]);
    });
  },
});

Deno.test({
  name:
    "atomicWriteFile run by root gives a new file its directory's owner and group",
  ignore: !isRoot,
  fn: async () => {
    await withSharedTempDir(async (dir) => {
      await Deno.mkdir(`${dir}/service`, { mode: 0o750 });
      await Deno.chown(`${dir}/service`, NOBODY, NOBODY);
      await atomicWriteFile(`${dir}/service/config.yaml`, "x: 1\n");
      const info = await Deno.stat(`${dir}/service/config.yaml`);
      assert.deepEqual(ownerOf(info), [NOBODY, NOBODY]);
      assert.equal(modeOf(info), 0o600);

      // Control: in root's directory a new file is root's.
      await Deno.mkdir(`${dir}/root`, { mode: 0o750 });
      await atomicWriteFile(`${dir}/root/config.yaml`, "x: 1\n");
      assert.deepEqual(ownerOf(await Deno.stat(`${dir}/root/config.yaml`)), [
        0,
        0,
      ]);
    });
  },
});

Deno.test({
  name:
    "openme init, add and revoke run as root keep /etc/openme/config.yaml owned by the service user",
  ignore: !isRoot,
  fn: async () => {
    await withSharedTempDir(async (dir) => {
      // What install.sh --server sets up: /etc/openme owned by the service user, 0750.
      await Deno.mkdir(`${dir}/etc`, { mode: 0o755 });
      const etc = `${dir}/etc/openme`;
      await Deno.mkdir(etc, { mode: 0o750 });
      await Deno.chown(etc, NOBODY, NOBODY);
      const path = `${etc}/config.yaml`;
      await initServerConfig(path, initOptions());
      assert.deepEqual(ownerOf(await Deno.stat(path)), [NOBODY, NOBODY]);

      const clientKey = encodeBase64(generateEd25519KeyPair().publicKey);
      await addServerClient(path, {
        name: "alice",
        ed25519PublicKeyB64: clientKey,
        allowedPorts: [],
        expires: null,
      });
      let info = await Deno.stat(path);
      assert.deepEqual(ownerOf(info), [NOBODY, NOBODY]);
      assert.equal(modeOf(info), 0o600);
      assert.deepEqual(
        (await loadServerConfig(path)).clients.map((c) => c.name),
        ["alice"],
      );

      assert.equal(await removeServerClient(path, "alice"), true);
      info = await Deno.stat(path);
      assert.deepEqual(ownerOf(info), [NOBODY, NOBODY]);
      assert.equal(modeOf(info), 0o600);
      assert.deepEqual((await loadServerConfig(path)).clients, []);

      await initServerConfig(path, { ...initOptions(), force: true });
      assert.deepEqual(ownerOf(await Deno.stat(path)), [NOBODY, NOBODY]);
    });
  },
});

Deno.test({
  name:
    "atomicWriteFile keeps owners with only --allow-read --allow-write (no --allow-sys, as the release binary)",
  ignore: !isRoot,
  fn: async () => {
    await withSharedTempDir(async (dir) => {
      const path = `${dir}/config.yaml`;
      await Deno.writeTextFile(path, "old\n", { mode: 0o600 });
      await Deno.chown(path, NOBODY, NOBODY);
      const result = await runAtomicWrite(dir, path);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(await Deno.readTextFile(path), "written\n");
      assert.deepEqual(ownerOf(await Deno.stat(path)), [NOBODY, NOBODY]);
    });
  },
});

Deno.test({
  name:
    "atomicWriteFile run by a non-root user keeps a file's group only when it is one of its groups, and never fails over it",
  ignore: !canRunAsNobody,
  fn: async () => {
    await withSharedTempDir(async (dir) => {
      const work = `${dir}/work`;
      await Deno.mkdir(work);
      await Deno.chown(work, NOBODY, NOBODY);
      const path = `${work}/config.yaml`;
      const asNobody = [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
      ];

      // Group root, which nobody is not in: the rewrite works, the group becomes nobody's.
      await Deno.writeTextFile(path, "old\n", { mode: 0o600 });
      await Deno.chown(path, NOBODY, 0);
      let result = await runAtomicWrite(dir, path, { setpriv: asNobody });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(await Deno.readTextFile(path), "written\n");
      assert.deepEqual(ownerOf(await Deno.stat(path)), [NOBODY, NOBODY]);
      assert.equal(modeOf(await Deno.stat(path)), 0o600);

      // With root as a supplementary group, the group is kept.
      await Deno.chown(path, NOBODY, 0);
      result = await runAtomicWrite(dir, path, {
        setpriv: ["--reuid=65534", "--regid=65534", "--groups=0"],
      });
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(ownerOf(await Deno.stat(path)), [NOBODY, 0]);

      // A file nobody may not replace: a permission error, as a Deno error class.
      await Deno.chmod(work, 0o555);
      result = await runAtomicWrite(dir, path, { setpriv: asNobody });
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /PermissionDenied/);
    });
  },
});

Deno.test("ensureDir creates missing directories with the given mode and leaves existing ones alone", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    await ensureDir(`${dir}/etc/openme`, { mode: 0o750 });
    await ensureDir(`${dir}/home/.openme`, { mode: 0o700 });
    assert.ok((await Deno.stat(`${dir}/etc/openme`)).isDirectory);
    if (!IS_WINDOWS) {
      assert.equal(modeOf(await Deno.stat(`${dir}/etc/openme`)), 0o750);
      assert.equal(modeOf(await Deno.stat(`${dir}/home/.openme`)), 0o700);
      await Deno.mkdir(`${dir}/existing`);
      await Deno.chmod(`${dir}/existing`, 0o755);
      await ensureDir(`${dir}/existing`, { mode: 0o700 });
      assert.equal(modeOf(await Deno.stat(`${dir}/existing`)), 0o755);
    }
    await Deno.writeTextFile(`${dir}/file`, "x");
    await assert.rejects(
      ensureDir(`${dir}/file`, { mode: 0o700 }),
      /not a directory/,
    );
  });
});

Deno.test("ensureConfigDir creates the file's directory and names the file when it cannot", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    await ensureConfigDir(`${dir}/etc/openme/config.yaml`, {
      mode: 0o750,
      expected: "pass --config PATH",
    });
    assert.ok((await Deno.stat(`${dir}/etc/openme`)).isDirectory);
    if (!IS_WINDOWS) {
      assert.equal(modeOf(await Deno.stat(`${dir}/etc/openme`)), 0o750);
    }
    await Deno.writeTextFile(`${dir}/file`, "x");
    await assert.rejects(
      ensureConfigDir(`${dir}/file/config.yaml`, {
        mode: 0o700,
        expected: "pass --config PATH",
      }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message.startsWith(`config ${dir}/file/config.yaml: `) &&
        error.message.includes(`cannot create directory ${dir}/file`) &&
        error.message.includes("pass --config PATH"),
    );
  });
});

Deno.test("setSectionEntry adds to a section, creating it or turning {} into a block map", () => {
  const cases: { text: string; expected: string }[] = [
    {
      text: "# keep\nclients:\n  a: 1\n",
      expected: "# keep\nclients:\n  a: 1\n  b: 2\n",
    },
    { text: "clients: {}\n", expected: "clients:\n  b: 2\n" },
    { text: "clients: 7\n", expected: "clients:\n  b: 2\n" },
    { text: "other: x\n", expected: "other: x\nclients:\n  b: 2\n" },
  ];
  for (const c of cases) {
    const doc = parseYamlSource(c.text, { path: "t.yaml" }).doc.clone();
    setSectionEntry(doc, "clients", "b", doc.createNode(2));
    assert.equal(doc.toString(), c.expected, c.text);
  }
});

Deno.test("withFileLock runs holders one at a time and returns their result", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/config.yaml`;
    let inside = 0;
    let maxInside = 0;
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        withFileLock(path, async () => {
          inside++;
          maxInside = Math.max(maxInside, inside);
          await new Promise((resolve) => setTimeout(resolve, 15));
          inside--;
          return i;
        })),
    );
    assert.deepEqual(results, [0, 1, 2, 3, 4, 5]);
    assert.equal(maxInside, 1);
  });
});

Deno.test("withFileLock gives up with a ConfigError after its timeout and releases after a throw", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const path = `${dir}/config.yaml`;
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const holder = withFileLock(path, () => held);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const started = Date.now();
    await assert.rejects(
      withFileLock(path, () => Promise.resolve(1), { timeoutMs: 200 }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message.includes("config.yaml.lock") &&
        error.message.includes("wait for it to finish"),
    );
    assert.ok(Date.now() - started < 3000);
    release();
    await holder;
    await assert.rejects(
      withFileLock(path, () => Promise.reject(new Error("boom"))),
      /boom/,
    );
    assert.equal(
      await withFileLock(path, () => Promise.resolve("free"), {
        timeoutMs: 500,
      }),
      "free",
    );
  });
});

Deno.test("readYamlDocument reports missing, directory, non-UTF-8, oversized and malformed files", async () => {
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const cases: {
      name: string;
      setup: (path: string) => Promise<void>;
      parts: string[];
    }[] = [
      {
        name: "missing.yaml",
        setup: async () => {},
        parts: ["file not found", "run init"],
      },
      {
        name: "adir",
        setup: (path) => Deno.mkdir(path),
        parts: ["is a directory"],
      },
      {
        name: "latin1.yaml",
        setup: (path) =>
          Deno.writeFile(path, new Uint8Array([0x61, 0x3a, 0x20, 0xe9, 0x0a])),
        parts: ["not UTF-8"],
      },
      {
        name: "huge.yaml",
        setup: (path) =>
          Deno.writeTextFile(path, "#".repeat(MAX_CONFIG_FILE_BYTES + 1)),
        parts: ["larger than"],
      },
      {
        name: "bad.yaml",
        setup: (path) => Deno.writeTextFile(path, "a: 1\nb: [1, 2\nc: 3\n"),
        parts: ["invalid YAML", "fix the YAML syntax"],
      },
    ];
    for (const { name, setup, parts } of cases) {
      const path = `${dir}/${name}`;
      await setup(path);
      await assert.rejects(
        readYamlDocument(path, { missingHint: "run init" }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError, name);
          assert.ok(error.message.startsWith(`config ${path}`), error.message);
          for (const part of parts) {
            assert.ok(
              error.message.includes(part),
              `${name}: ${error.message}`,
            );
          }
          return true;
        },
      );
    }
  });
});

Deno.test("parseYamlSource gives the line of a syntax error", () => {
  const cases: { text: string; line: number }[] = [
    { text: "a:\n  b: 1\n c: 2\n", line: 3 },
    { text: "a: 1\n---\nb: 2\n", line: 2 },
  ];
  for (const { text, line } of cases) {
    assert.throws(
      () => parseYamlSource(text, { path: "/t.yaml" }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.equal(error.line, line, error.message);
        assert.ok(
          error.message.startsWith(`config /t.yaml:${line}: invalid YAML`),
          error.message,
        );
        assert.ok(!error.message.includes("parseAllDocuments"), error.message);
        return true;
      },
    );
  }
});

Deno.test("parseYamlSource refuses a duplicate key with the line and key path of its second occurrence", () => {
  const cases: { text: string; line: number; keyPath: string; key: string }[] =
    [
      { text: "a: 1\nb: 2\nb: 3\n", line: 3, keyPath: "b", key: "b" },
      {
        text: "server:\n  host: a\n  port: 1\n  host: b\n",
        line: 4,
        keyPath: "server.host",
        key: "host",
      },
      {
        text: "list:\n  - x: 1\n  - {y: 1, y: 2}\n",
        line: 3,
        keyPath: "list[1].y",
        key: "y",
      },
      // Keys that become the same object key: 1 and "1", null and "".
      { text: 'm:\n  1: a\n  "1": b\n', line: 3, keyPath: "m.1", key: "1" },
      { text: 'm:\n  ~: a\n  "": b\n', line: 3, keyPath: 'm[""]', key: "" },
      // The first duplicate in the file is reported, inner map or outer.
      {
        text: "a:\n  x: 1\n  x: 2\na: 3\n",
        line: 3,
        keyPath: "a.x",
        key: "x",
      },
      {
        text: "a: 1\na: 2\nb:\n  x: 1\n  x: 2\n",
        line: 2,
        keyPath: "a",
        key: "a",
      },
    ];
  for (const c of cases) {
    assert.throws(
      () => parseYamlSource(c.text, { path: "/t.yaml" }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError, String(error));
        assert.equal(error.line, c.line, error.message);
        assert.equal(error.keyPath, c.keyPath, error.message);
        assert.equal(
          error.message,
          `config /t.yaml:${c.line}: ${c.keyPath}: invalid YAML: duplicate key ${
            JSON.stringify(c.key)
          } (map keys must be unique: remove or rename one of them)`,
        );
        return true;
      },
    );
  }
});

Deno.test("parseYamlSource accepts the same key in different maps and through aliases", () => {
  const text = [
    "a: &shared {x: 1, y: 2}",
    "b: {x: 1, y: 2}",
    "c: *shared",
    "d:",
    "  - {x: 1}",
    "  - {x: 2}",
    "",
  ].join("\n");
  const source = parseYamlSource(text, { path: "/t.yaml" });
  assert.deepEqual(yamlToValue(source), {
    a: { x: 1, y: 2 },
    b: { x: 1, y: 2 },
    c: { x: 1, y: 2 },
    d: [{ x: 1 }, { x: 2 }],
  });
});

Deno.test("parseYamlSource shortens a long duplicate key in the message", () => {
  const key = "k".repeat(70_000);
  assert.throws(
    // Explicit keys: an implicit key may be at most 1024 characters long.
    () =>
      parseYamlSource(`? ${key}\n: 1\n? ${key}\n: 2\n`, {
        path: "/t.yaml",
      }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.equal(error.line, 3);
      assert.ok(error.message.length < 400, error.message);
      assert.ok(error.message.includes("(70000 characters)"), error.message);
      return true;
    },
  );
});

/**
 * Longest a 20,000-key parse may take: the yaml package's own quadratic
 * duplicate-key check took about 6 s; a linear parse takes 150-600 ms on a
 * busy two-core machine.
 */
const LINEAR_PARSE_LIMIT_MS = 1000;

Deno.test("parseYamlSource checks 20,000 keys of one map in linear time", () => {
  const lines: string[] = [];
  for (let i = 0; i < 20_000; i++) lines.push(`k${i}: ${i}`);
  const unique = lines.join("\n") + "\n";
  let start = performance.now();
  const source = parseYamlSource(unique, { path: "/t.yaml" });
  const uniqueMs = performance.now() - start;
  assert.equal(Object.keys(yamlToValue(source) as object).length, 20_000);
  // A duplicate as the very last key: every key is looked at.
  start = performance.now();
  assert.throws(
    () => parseYamlSource(unique + "k0: again\n", { path: "/t.yaml" }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.equal(error.line, 20_001);
      assert.equal(error.keyPath, "k0");
      return true;
    },
  );
  const duplicateMs = performance.now() - start;
  assert.ok(
    uniqueMs < LINEAR_PARSE_LIMIT_MS,
    `unique keys took ${uniqueMs.toFixed(0)} ms`,
  );
  assert.ok(
    duplicateMs < LINEAR_PARSE_LIMIT_MS,
    `duplicate check took ${duplicateMs.toFixed(0)} ms`,
  );
});

Deno.test("yaml package messages that quote a long alias, tag or version are cut", () => {
  const long = "k".repeat(70_000);
  const warned = parseYamlSource(`a: !${long} x\n`, { path: "/t.yaml" });
  assert.equal(warned.warnings.length, 1);
  assert.ok(warned.warnings[0].length < 400, warned.warnings[0].slice(0, 400));
  assert.match(warned.warnings[0], /…\(\d+ characters\)$/);
  for (
    const run of [
      () => yamlToValue(parseYamlSource(`a: *${long}\n`, { path: "/t.yaml" })),
      () => parseYamlSource(`%YAML ${long}\n---\na: 1\n`, { path: "/t.yaml" }),
    ]
  ) {
    assert.throws(run, (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.ok(error.message.length < 400, error.message.slice(0, 400));
      assert.match(error.message, /^config \/t\.yaml(:\d+)?: invalid YAML: /);
      assert.match(error.message, /…\(\d+ characters\)/);
      return true;
    });
  }
});

Deno.test("yamlToValue refuses an alias bomb quickly with a ConfigError", () => {
  const levels = ["a: &a [x, x, x, x, x, x, x, x, x]"];
  for (let i = 1; i < 9; i++) {
    const prev = String.fromCharCode(96 + i);
    const name = String.fromCharCode(97 + i);
    levels.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(", ")}]`);
  }
  const source = parseYamlSource(levels.join("\n") + "\n", {
    path: "/bomb.yaml",
  });
  const started = Date.now();
  assert.throws(() => yamlToValue(source), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.ok(error.message.includes("alias"), error.message);
    return true;
  });
  assert.ok(Date.now() - started < 2000);
});

Deno.test("yamlToValue reports an unknown alias as a ConfigError", () => {
  const source = parseYamlSource("a: *nope\n", { path: "/t.yaml" });
  assert.throws(() => yamlToValue(source), ConfigError);
});

Deno.test("lineOfKeyPath finds keys, list items and falls back to the parent for missing keys", () => {
  const source = parseYamlSource(
    [
      "server:", //            1
      "  host: h", //          2
      "clients:", //           3
      "  bob:", //             4
      "    allowed_ports:", // 5
      "      - default", //    6
      "      - dev0ps", //     7
      "  carol: {allowed_ports: [a, b]}", // 8
    ].join("\n") + "\n",
    { path: "/t.yaml" },
  );
  const cases: { keyPath: (string | number)[]; line: number | undefined }[] = [
    { keyPath: ["server", "host"], line: 2 },
    { keyPath: ["server", "private_key"], line: 1 },
    { keyPath: ["clients", "bob", "allowed_ports", 1], line: 7 },
    { keyPath: ["clients", "bob", "allowed_ports", 9], line: 5 },
    { keyPath: ["clients", "carol", "allowed_ports", 1], line: 8 },
    { keyPath: ["missing"], line: undefined },
    { keyPath: [], line: undefined },
  ];
  for (const { keyPath, line } of cases) {
    assert.equal(lineOfKeyPath(source, keyPath), line, keyPath.join("."));
  }
});

Deno.test("spliceInsertMapEntry inserts text without changing any other byte", () => {
  const entry = "carol:\n  key: 3\n";
  const cases: { name: string; before: string; after: string }[] = [
    {
      name: "block map, custom indent, trailing comment",
      before:
        "clients:\n    alice:\n        key: 1   # c\n    # end\nother: [1,2]\n",
      after:
        "clients:\n    alice:\n        key: 1   # c\n    carol:\n      key: 3\n    # end\nother: [1,2]\n",
    },
    {
      name: "empty flow map with a comment",
      before: "a: 1\nclients: {}   # none yet\nb: 2\n",
      after: "a: 1\nclients:    # none yet\n  carol:\n    key: 3\nb: 2\n",
    },
    {
      name: "empty flow map at end without newline",
      before: "a: 1\nclients: {}",
      after: "a: 1\nclients:\n  carol:\n    key: 3\n",
    },
    {
      name: "null value",
      before: "clients:\n# note\nb: 2\n",
      after: "clients:\n  carol:\n    key: 3\n# note\nb: 2\n",
    },
    {
      name: "missing section",
      before: "a: 1 # x\n",
      after: "a: 1 # x\nclients:\n  carol:\n    key: 3\n",
    },
    {
      name: "CRLF line endings",
      before: "clients:\r\n  alice:\r\n    key: 1\r\n",
      after: "clients:\r\n  alice:\r\n    key: 1\r\n  carol:\r\n    key: 3\r\n",
    },
  ];
  for (const { name, before, after } of cases) {
    const source = parseYamlSource(before, { path: "/t.yaml" });
    const result = spliceInsertMapEntry(source, {
      section: "clients",
      text: entry,
    });
    assert.equal(result, after, name);
    const value = yamlToValue(
      parseYamlSource(result!, { path: "/t.yaml" }),
    ) as Record<string, Record<string, unknown>>;
    assert.deepEqual(value.clients.carol, { key: 3 }, name);
  }
});

Deno.test("spliceInsertMapEntry declines flow maps with entries", () => {
  const source = parseYamlSource("clients: {alice: {key: 1}}\n", {
    path: "/t.yaml",
  });
  assert.equal(
    spliceInsertMapEntry(source, {
      section: "clients",
      text: "carol:\n  key: 3\n",
    }),
    null,
  );
});

Deno.test("spliceRemoveMapEntry deletes exactly the entry's lines", () => {
  const cases: {
    name: string;
    key: string;
    before: string;
    after: string | null;
  }[] = [
    {
      name: "middle entry",
      key: "bob",
      before:
        "clients:\n  alice:\n    k: 1\n  # about bob\n  bob:\n    k: 2   # two\n\n  carol: {k: 3}\nz: 1\n",
      after:
        "clients:\n  alice:\n    k: 1\n  # about bob\n\n  carol: {k: 3}\nz: 1\n",
    },
    {
      name: "last remaining entry becomes {}",
      key: "alice",
      before: "clients: # all\n  alice:\n    k: 1\nz: 1\n",
      after: "clients: {} # all\nz: 1\n",
    },
    {
      name: "entry with a null value",
      key: "bob",
      before: "clients:\n  bob:\n  carol: 1\n",
      after: "clients:\n  carol: 1\n",
    },
    {
      name: "missing entry",
      key: "dave",
      before: "clients:\n  bob: 1\n",
      after: null,
    },
  ];
  for (const { name, key, before, after } of cases) {
    const source = parseYamlSource(before, { path: "/t.yaml" });
    assert.equal(
      spliceRemoveMapEntry(source, { section: "clients", key }),
      after,
      name,
    );
  }
});
