/**
 * Atomic writes (lib/config/atomic_write.ts): text and mode, no temporary
 * file left, fsync before the rename, symlinks, and the owner a replaced or
 * new file keeps, as root and as another user.
 */
import assert from "node:assert/strict";
import { type FileHandle, open as openNodeFile } from "node:fs/promises";
import {
  atomicWriteFile,
  writeFileNoFollow,
} from "../../lib/config/atomic_write.ts";
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
import { listDir, withTempDir } from "../support/files.ts";

const IS_WINDOWS = Deno.build.os === "windows";
/** Prefix of this file's temporary directories. */
const TEMP_PREFIX = "openme-atomic-write-";

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
/** The module under test; it imports only `node:` modules, so a copy of it runs anywhere. */
const ATOMIC_WRITE_URL = new URL(
  "../../lib/config/atomic_write.ts",
  import.meta.url,
);
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
/** Options for initServerConfig with fresh keys, without a group that may read the config (as on a host without the openme group). */
function initOptions(): {
  host: string;
  privateKeyB64: string;
  publicKeyB64: string;
  readerGroup: number | null;
} {
  const keys = generateX25519KeyPair();
  return {
    host: "192.0.2.1",
    privateKeyB64: encodeBase64(keys.privateKey),
    publicKeyB64: encodeBase64(keys.publicKey),
    readerGroup: null,
  };
}

interface ScriptResult {
  code: number;
  stderr: string;
}

/**
 * Runs a script that calls atomicWriteFile(path, text) in a new Deno with only
 * the file permissions the release binary has (no --allow-sys), optionally as
 * another user through setpriv. The script and a copy of the module sit in
 * `dir`, which that user can read wherever the checkout is.
 */
async function runAtomicWrite(
  dir: string,
  path: string,
  options: { setpriv?: string[] } = {},
): Promise<ScriptResult> {
  const code = `${dir}/code`;
  await Deno.mkdir(code, { recursive: true, mode: 0o755 });
  await Deno.copyFile(ATOMIC_WRITE_URL, `${code}/atomic_write.ts`);
  await Deno.writeTextFile(
    `${code}/write.ts`,
    `import { atomicWriteFile } from "./atomic_write.ts";\n` +
      `await atomicWriteFile(${JSON.stringify(path)}, "written\\n");\n`,
  );
  for (const name of ["atomic_write.ts", "write.ts"]) {
    await Deno.chmod(`${code}/${name}`, 0o644);
  }
  // A Deno directory of the user's own for the compiled-code cache.
  const denoDir = `${dir}/deno_dir`;
  await Deno.mkdir(denoDir, { recursive: true });
  const denoArgs = [
    "run",
    "--no-prompt",
    "--no-config",
    "--allow-read",
    "--allow-write",
    `${code}/write.ts`,
  ];
  let command = Deno.execPath();
  let args = denoArgs;
  if (options.setpriv !== undefined) {
    await chownTree(denoDir, NOBODY);
    command = "setpriv";
    args = [...options.setpriv, "--", Deno.execPath(), ...denoArgs];
  }
  const out = await new Deno.Command(command, {
    args,
    env: {
      PATH: Deno.env.get("PATH") ?? "",
      DENO_DIR: denoDir,
      HOME: denoDir,
    },
    clearEnv: true,
    cwd: code,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    signal: AbortSignal.timeout(SUBPROCESS_TIMEOUT_MS),
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
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

      assert.deepEqual(await removeServerClient(path, "alice"), [
        { file: path, deleted: false },
      ]);
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
    "openme init run as root with a service group makes the directory root:group 0750 and the config root:group 0640; add and revoke keep both",
  ignore: !isRoot,
  fn: async () => {
    await withSharedTempDir(async (dir) => {
      const group = 4242;
      const etc = `${dir}/etc/openme`;
      const path = `${etc}/config.yaml`;
      await initServerConfig(path, { ...initOptions(), readerGroup: group });
      assert.deepEqual(ownerOf(await Deno.stat(etc)), [0, group]);
      assert.equal(modeOf(await Deno.stat(etc)), 0o750);
      const expectRootGroup0640 = async (): Promise<void> => {
        const info = await Deno.stat(path);
        assert.deepEqual(ownerOf(info), [0, group]);
        assert.equal(modeOf(info), 0o640);
      };
      await expectRootGroup0640();
      await addServerClient(path, {
        name: "alice",
        ed25519PublicKeyB64: encodeBase64(generateEd25519KeyPair().publicKey),
        allowedPorts: [],
        expires: null,
      }, { readerGroup: group });
      await expectRootGroup0640();
      await removeServerClient(path, "alice", { readerGroup: group });
      await expectRootGroup0640();
      // Over a config the service user owns (the old layout), init --force gives it to root.
      await Deno.chown(path, NOBODY, NOBODY);
      await initServerConfig(path, {
        ...initOptions(),
        readerGroup: group,
        force: true,
      });
      await expectRootGroup0640();
      assert.deepEqual(await listDir(etc), ["config.yaml", "config.yaml.lock"]);
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

Deno.test({
  name:
    "writeFileNoFollow creates mode 0600 under any umask, refuses an existing file or symlink, and with force replaces the link itself",
  ignore: IS_WINDOWS,
  fn: async () => {
    await withTempDir(TEMP_PREFIX, async (dir) => {
      const path = `${dir}/secret`;
      const previous = Deno.umask(0);
      try {
        await writeFileNoFollow(path, "key\n");
      } finally {
        Deno.umask(previous);
      }
      assert.equal(await Deno.readTextFile(path), "key\n");
      assert.equal(modeOf(await Deno.stat(path)), 0o600);
      await assert.rejects(
        writeFileNoFollow(path, "x"),
        Deno.errors.AlreadyExists,
      );
      assert.equal(await Deno.readTextFile(path), "key\n");

      const victim = `${dir}/victim`;
      await Deno.writeTextFile(victim, "victim\n", { mode: 0o644 });
      const link = `${dir}/link`;
      await Deno.symlink(victim, link);
      await Deno.symlink(`${dir}/nowhere`, `${dir}/dangling`);
      for (const target of [link, `${dir}/dangling`]) {
        await assert.rejects(
          writeFileNoFollow(target, "x"),
          Deno.errors.AlreadyExists,
        );
      }
      await assert.rejects(Deno.lstat(`${dir}/nowhere`), Deno.errors.NotFound);
      await writeFileNoFollow(link, new Uint8Array([1, 2]), { force: true });
      assert.equal(await Deno.readTextFile(victim), "victim\n");
      const info = await Deno.lstat(link);
      assert.ok(info.isFile);
      assert.equal(modeOf(info), 0o600);
      assert.deepEqual(await Deno.readFile(link), new Uint8Array([1, 2]));
      assert.deepEqual(await listDir(dir), [
        "dangling",
        "link",
        "secret",
        "victim",
      ]);
    });
  },
});
