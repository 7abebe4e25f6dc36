/**
 * End-to-end tests of install.sh against fake releases served on 127.0.0.1:
 * each release holds stub `openme` executables that print their version (and
 * a small manual page for `openme man`), and a SHA256SUMS file.
 */

import assert from "node:assert/strict";
import { assetName, TARGETS } from "../scripts/compile.ts";
import { findOnPath } from "../scripts/testbed.ts";

const REPO = new URL("..", import.meta.url);
const INSTALL_SH = decodeURIComponent(new URL("install.sh", REPO).pathname);
const UNIT_PATH = new URL("openme.service", REPO);
const LINUX_X64 = "openme-x86_64-unknown-linux-gnu";
const RUN_TIMEOUT_MS = 60_000;
/** Tools install.sh needs besides curl/wget and sha256sum/shasum. */
const BASE_TOOLS = [
  "uname",
  "id",
  "mktemp",
  "rm",
  "mkdir",
  "cp",
  "mv",
  "chmod",
  "dirname",
  "awk",
  "sed",
  "cat",
  "stat",
];

/** Files of one fake release, by name. */
type Release = Map<string, Uint8Array>;

interface ReleaseOptions {
  /** Assets to include; default all four Unix assets. */
  assets?: string[];
  /** Leave the asset files out but keep their SHA256SUMS lines. */
  omitFiles?: boolean;
  /** Write a wrong checksum for this asset. */
  corrupt?: string;
  /** Leave this asset out of SHA256SUMS. */
  unlisted?: string;
}

/** What a release holds for Linux and macOS: the assets scripts/compile.ts builds. */
const UNIX_ASSETS = TARGETS.filter((t) => !t.includes("windows")).map(
  assetName,
);
/** What a release holds for Windows. */
const WINDOWS_ASSETS = TARGETS.filter((t) => t.includes("windows")).map(
  assetName,
);

function stub(version: string, asset: string): Uint8Array {
  return new TextEncoder().encode(
    `#!/bin/sh\n[ "$1" = man ] && { echo ".TH OPENME 1"; echo "openme ${version}"; exit 0; }\necho "openme ${version} (${asset})"\n`,
  );
}

async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>),
  );
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function makeRelease(
  version: string,
  options: ReleaseOptions = {},
): Promise<Release> {
  const release: Release = new Map();
  let sums = "";
  for (const asset of options.assets ?? UNIX_ASSETS) {
    const body = stub(version, asset);
    if (!options.omitFiles) release.set(asset, body);
    if (asset === options.unlisted) continue;
    const hash = asset === options.corrupt
      ? "0".repeat(64)
      : await sha256Hex(body);
    sums += `${hash}  ${asset}\n`;
  }
  release.set("SHA256SUMS", new TextEncoder().encode(sums));
  return release;
}

interface Harness {
  /** Temporary directory, removed afterwards. */
  dir: string;
  /** Base URL of a release registered with {@linkcode Harness.publish}. */
  url(name: string): string;
  /** Serves `release` under /name/. */
  publish(name: string, release: Release): void;
}

/** Runs `fn` with a temp dir and a release server, cleaning both up. */
async function withHarness(fn: (h: Harness) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "openme-install-test-" });
  const releases = new Map<string, Release>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen(): void {} },
    (req): Response => {
      const [name, file] = new URL(req.url).pathname.slice(1).split("/");
      const body = releases.get(name)?.get(file);
      return body === undefined
        ? new Response("not found\n", { status: 404 })
        : new Response(body as Uint8Array<ArrayBuffer>);
    },
  );
  try {
    await fn({
      dir,
      url: (name) => `http://127.0.0.1:${server.addr.port}/${name}`,
      publish: (name, release) => void releases.set(name, release),
    });
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `sh install.sh ARGS` with a clean environment plus `env`. */
async function runInstaller(
  h: Harness,
  args: string[],
  env: Record<string, string>,
  options: { sh?: string; uid?: number; script?: string } = {},
): Promise<RunResult> {
  const home = `${h.dir}/home`;
  const tmp = `${h.dir}/tmp`;
  await Deno.mkdir(home, { recursive: true });
  await Deno.mkdir(tmp, { recursive: true });
  const fullEnv: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: home,
    TMPDIR: tmp,
    OPENME_UNAME_S: "Linux",
    OPENME_UNAME_M: "x86_64",
    ...env,
  };
  let program = options.sh ?? "/bin/sh";
  let programArgs = [options.script ?? INSTALL_SH, ...args];
  if (options.uid !== undefined) {
    programArgs = [
      `--reuid=${options.uid}`,
      `--regid=${options.uid}`,
      "--clear-groups",
      program,
      ...programArgs,
    ];
    program = findOnPath("setpriv") ?? "setpriv";
  }
  const out = await new Deno.Command(program, {
    args: programArgs,
    env: fullEnv,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(RUN_TIMEOUT_MS),
  }).output();
  const result = {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
  // Whatever happened, the installer leaves no temporary files behind.
  assert.deepEqual(await listDir(tmp), [], `temp files left in ${tmp}`);
  return result;
}

async function listDir(path: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(path)) names.push(entry.name);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  return names.sort();
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** Output of running an installed binary with --version. */
async function runVersion(binary: string): Promise<string> {
  const out = await new Deno.Command(binary, {
    args: ["--version"],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.equal(out.code, 0, `${binary} --version failed`);
  return new TextDecoder().decode(out.stdout).trim();
}

/** A directory holding symlinks to exactly `tools`, for use as PATH. */
async function toolDir(path: string, tools: string[]): Promise<string> {
  await Deno.mkdir(path, { recursive: true });
  for (const tool of tools) {
    const target = findOnPath(tool);
    assert.ok(target !== null, `test needs ${tool} on PATH`);
    await Deno.symlink(target, `${path}/${tool}`);
  }
  return path;
}

function assertFailed(result: RunResult, pattern: RegExp): void {
  assert.equal(
    result.code,
    1,
    `expected exit 1:\n${result.stdout}${result.stderr}`,
  );
  assert.match(result.stderr, pattern);
}

function assertOk(result: RunResult): void {
  assert.equal(
    result.code,
    0,
    `installer failed:\n${result.stdout}${result.stderr}`,
  );
}

Deno.test("install.sh: fresh install puts a verified, executable binary in PREFIX/bin and its manual page in PREFIX/share/man/man1", async () => {
  await withHarness(async (h) => {
    h.publish("r1", await makeRelease("1.2.3"));
    const prefix = `${h.dir}/prefix`;
    const result = await runInstaller(h, ["--prefix", prefix], {
      OPENME_DOWNLOAD_URL: h.url("r1"),
    });
    assertOk(result);
    const binary = `${prefix}/bin/openme`;
    const info = await Deno.stat(binary);
    assert.equal((info.mode ?? 0) & 0o777, 0o755);
    assert.equal(await runVersion(binary), `openme 1.2.3 (${LINUX_X64})`);
    assert.match(result.stdout, /Verified SHA-256 [0-9a-f]{64}/);
    assert.match(
      result.stdout,
      new RegExp(`Installed openme 1\\.2\\.3 .* to ${binary}`),
    );
    assert.match(result.stdout, /openme import/);
    assert.match(result.stdout, /sudo openme init --server <host>/);
    assert.deepEqual(await listDir(`${prefix}/bin`), ["openme"]);
    const page = `${prefix}/share/man/man1/openme.1.gz`;
    assert.equal(await gunzip(page), ".TH OPENME 1\nopenme 1.2.3\n");
    assert.equal(((await Deno.stat(page)).mode ?? 0) & 0o777, 0o644);
    assert.match(result.stdout, /Installed the manual page .*openme\.1\.gz/);
  });
});

/** The text of a gzip file. */
async function gunzip(path: string): Promise<string> {
  const file = await Deno.open(path);
  const stream = file.readable.pipeThrough(new DecompressionStream("gzip"));
  return await new Response(stream).text();
}

Deno.test("install.sh: maps uname -s / -m to the release asset", async () => {
  const cases: [string, string, string][] = [
    ["Linux", "x86_64", "openme-x86_64-unknown-linux-gnu"],
    ["Linux", "amd64", "openme-x86_64-unknown-linux-gnu"],
    ["Linux", "aarch64", "openme-aarch64-unknown-linux-gnu"],
    ["Linux", "arm64", "openme-aarch64-unknown-linux-gnu"],
    ["Darwin", "x86_64", "openme-x86_64-apple-darwin"],
    ["Darwin", "arm64", "openme-aarch64-apple-darwin"],
  ];
  await withHarness(async (h) => {
    h.publish("r1", await makeRelease("1.2.3"));
    for (const [s, m, asset] of cases) {
      const prefix = `${h.dir}/prefix-${s}-${m}`;
      const result = await runInstaller(h, ["--prefix", prefix], {
        OPENME_DOWNLOAD_URL: h.url("r1"),
        OPENME_UNAME_S: s,
        OPENME_UNAME_M: m,
      });
      assertOk(result);
      assert.equal(
        await runVersion(`${prefix}/bin/openme`),
        `openme 1.2.3 (${asset})`,
      );
    }
  });
});

Deno.test("install.sh: re-running upgrades in place", async () => {
  await withHarness(async (h) => {
    h.publish("r1", await makeRelease("1.2.3"));
    h.publish("r2", await makeRelease("1.2.4"));
    const prefix = `${h.dir}/prefix`;
    assertOk(
      await runInstaller(h, ["--prefix", prefix], {
        OPENME_DOWNLOAD_URL: h.url("r1"),
      }),
    );
    const result = await runInstaller(h, [`--prefix=${prefix}`], {
      OPENME_DOWNLOAD_URL: h.url("r2"),
    });
    assertOk(result);
    assert.equal(
      await runVersion(`${prefix}/bin/openme`),
      `openme 1.2.4 (${LINUX_X64})`,
    );
    assert.deepEqual(await listDir(`${prefix}/bin`), ["openme"]);
  });
});

Deno.test("install.sh: refuses a bad or missing download and keeps the old binary", async () => {
  await withHarness(async (h) => {
    h.publish("good", await makeRelease("1.2.3"));
    h.publish("corrupt", await makeRelease("6.6.6", { corrupt: LINUX_X64 }));
    h.publish("missing", await makeRelease("6.6.6", { omitFiles: true }));
    h.publish("unlisted", await makeRelease("6.6.6", { unlisted: LINUX_X64 }));
    h.publish("nosums", new Map([[LINUX_X64, stub("6.6.6", LINUX_X64)]]));
    const prefix = `${h.dir}/prefix`;
    const binary = `${prefix}/bin/openme`;
    assertOk(
      await runInstaller(h, ["--prefix", prefix], {
        OPENME_DOWNLOAD_URL: h.url("good"),
      }),
    );

    const cases: [string, RegExp][] = [
      [
        "corrupt",
        /checksum mismatch for openme-x86_64-unknown-linux-gnu.*nothing was installed/,
      ],
      [
        "missing",
        /could not download .*openme-x86_64-unknown-linux-gnu; nothing was installed/,
      ],
      [
        "unlisted",
        /SHA256SUMS has no entry for openme-x86_64-unknown-linux-gnu/,
      ],
      ["nosums", /could not download .*SHA256SUMS/],
      ["no-such-release", /could not download/],
    ];
    for (const [name, pattern] of cases) {
      const result = await runInstaller(h, ["--prefix", prefix], {
        OPENME_DOWNLOAD_URL: h.url(name),
      });
      assertFailed(result, pattern);
      assert.equal(
        await runVersion(binary),
        `openme 1.2.3 (${LINUX_X64})`,
        name,
      );
      assert.deepEqual(await listDir(`${prefix}/bin`), ["openme"], name);
    }
  });
});

Deno.test("install.sh: unsupported platforms fail with a clear message", async () => {
  await withHarness(async (h) => {
    h.publish("r1", await makeRelease("1.2.3"));
    const prefix = `${h.dir}/prefix`;
    const cases: [Record<string, string>, RegExp][] = [
      [{ OPENME_UNAME_M: "mips" }, /unsupported CPU architecture: mips/],
      [{ OPENME_UNAME_S: "FreeBSD" }, /unsupported operating system: FreeBSD/],
      [
        { OPENME_UNAME_S: "MINGW64_NT-10.0-19045" },
        /does not install on Windows; download .*openme-x86_64-pc-windows-msvc\.exe/,
      ],
      [{ OPENME_UNAME_S: "Darwin" }, /--server needs Linux/],
    ];
    for (const [env, pattern] of cases) {
      const args = env.OPENME_UNAME_S === "Darwin" ? ["--server"] : [];
      const result = await runInstaller(h, ["--prefix", prefix, ...args], {
        OPENME_DOWNLOAD_URL: h.url("r1"),
        OPENME_ROOT: `${h.dir}/root`,
        ...env,
      });
      assertFailed(result, pattern);
      assert.equal(await exists(prefix), false);
      assert.equal(await exists(`${h.dir}/root`), false);
      if (env.OPENME_UNAME_S?.startsWith("MINGW")) {
        // The Windows download it names is one the release builds.
        const named = /download \S*\/(openme-\S+\.exe)/.exec(result.stderr);
        assert.ok(
          named !== null && WINDOWS_ASSETS.includes(named[1]),
          `${result.stderr} (release assets: ${WINDOWS_ASSETS.join(", ")})`,
        );
      }
    }
  });
});

Deno.test("install.sh: bad options are usage errors (exit 2)", async () => {
  await withHarness(async (h) => {
    for (
      const args of [["--bogus"], ["--version"], ["--version", "1.2;rm"], [
        "--prefix=",
      ]]
    ) {
      const result = await runInstaller(h, args, {});
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, /--help/);
    }
    const help = await runInstaller(h, ["--help"], {});
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--prefix DIR/);
  });
});

/** A PATH whose curl, instead of reaching the network, appends the URL it was given to `log` and fails. */
async function recordingCurl(
  h: Harness,
): Promise<{ path: string; log: string }> {
  const fakeBin = `${h.dir}/fakebin`;
  await Deno.mkdir(fakeBin);
  const log = `${h.dir}/curl.log`;
  await Deno.writeTextFile(
    `${fakeBin}/curl`,
    `#!/bin/sh\nfor a; do url=$a; done\necho "$url" >> '${log}'\nexit 22\n`,
    { mode: 0o755 },
  );
  return { path: `${fakeBin}:${Deno.env.get("PATH")}`, log };
}

Deno.test("install.sh: downloads from the GitHub release of the chosen version", async () => {
  await withHarness(async (h) => {
    const { path, log } = await recordingCurl(h);
    const prefix = `${h.dir}/prefix`;
    const cases: [Record<string, string>, string[], string][] = [
      [{}, [], "https://github.com/openme/openme/releases/latest/download/"],
      [
        {},
        ["--version", "v1.2.3"],
        "https://github.com/openme/openme/releases/download/v1.2.3/",
      ],
      [
        { OPENME_VERSION: "2.0.0" },
        [],
        "https://github.com/openme/openme/releases/download/v2.0.0/",
      ],
    ];
    for (const [env, args, base] of cases) {
      await Deno.remove(log).catch(() => {});
      const result = await runInstaller(h, ["--prefix", prefix, ...args], {
        PATH: path,
        ...env,
      });
      assertFailed(result, /could not download/);
      assert.equal(
        (await Deno.readTextFile(log)).trim(),
        `${base}${LINUX_X64}`,
      );
    }
  });
});

Deno.test("install.sh: refuses a download URL that is not https, except plain http to this machine", async () => {
  await withHarness(async (h) => {
    const { path, log } = await recordingCurl(h);
    const prefix = `${h.dir}/prefix`;
    const refused = [
      "http://192.0.2.1/r",
      "http://example.com/r",
      "http://127.0.0.1.example.com/r",
      "http://127.0.0.1:80@example.com/r",
      "http://localhost@example.com/r",
      "http://[::1]:x/r",
      "HTTPS://example.com/r",
      "ftp://example.com/r",
      "file:///tmp/r",
      "example.com/r",
    ];
    for (const url of refused) {
      await Deno.remove(log).catch(() => {});
      const result = await runInstaller(h, ["--prefix", prefix], {
        PATH: path,
        OPENME_DOWNLOAD_URL: url,
      });
      assertFailed(result, /refusing to download from .*use an https:\/\/ URL/);
      assert.equal(await exists(log), false, `${url} was downloaded`);
    }
    const allowed = [
      "https://example.com/r",
      "http://127.0.0.1/r",
      "http://127.0.0.1:8080/r",
      "http://localhost:8080/r",
      "http://[::1]/r",
      "http://[::1]:8080/r",
    ];
    for (const url of allowed) {
      await Deno.remove(log).catch(() => {});
      const result = await runInstaller(h, ["--prefix", prefix], {
        PATH: path,
        OPENME_DOWNLOAD_URL: url,
      });
      assertFailed(result, /could not download/);
      assert.equal(
        (await Deno.readTextFile(log)).trim(),
        `${url}/${LINUX_X64}`,
      );
    }
    assert.equal(await exists(prefix), false);
  });
});

const canServeTls = ["openssl", "curl", "wget"].every((t) =>
  findOnPath(t) !== null
);
if (!canServeTls) {
  console.warn(
    "SKIP install.sh https to http redirect: needs openssl, curl and wget",
  );
}

Deno.test({
  name:
    "install.sh: with curl and with wget, a redirect from https to http is refused and nothing is installed",
  ignore: !canServeTls,
  fn: async () => {
    await withHarness(async (h) => {
      // A self-signed certificate for 127.0.0.1, trusted through the
      // environment (curl) and a wgetrc (wget).
      const cert = `${h.dir}/cert.pem`;
      const key = `${h.dir}/key.pem`;
      const made = await new Deno.Command("openssl", {
        args: [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:P-256",
          "-nodes",
          "-keyout",
          key,
          "-out",
          cert,
          "-days",
          "2",
          "-subj",
          "/CN=127.0.0.1",
          "-addext",
          "subjectAltName=IP:127.0.0.1",
        ],
        stdout: "null",
        stderr: "piped",
        signal: AbortSignal.timeout(RUN_TIMEOUT_MS),
      }).output();
      assert.equal(made.code, 0, new TextDecoder().decode(made.stderr));
      await Deno.writeTextFile(`${h.dir}/wgetrc`, `ca_certificate = ${cert}\n`);
      // /r1/FILE serves the release, /up/FILE redirects there (https to
      // https), /down/FILE to the same files over plain http.
      const release = await makeRelease("1.2.3");
      h.publish("r1", release);
      const tls = Deno.serve({
        hostname: "127.0.0.1",
        port: 0,
        cert: await Deno.readTextFile(cert),
        key: await Deno.readTextFile(key),
        onListen(): void {},
      }, (req): Response => {
        const [way, file] = new URL(req.url).pathname.slice(1).split("/");
        const body = release.get(file);
        if (way === "up") {
          return Response.redirect(
            `https://127.0.0.1:${tls.addr.port}/r1/${file}`,
            302,
          );
        }
        if (way === "down") {
          return Response.redirect(`${h.url("r1")}/${file}`, 302);
        }
        return body === undefined
          ? new Response("not found\n", { status: 404 })
          : new Response(body as Uint8Array<ArrayBuffer>);
      });
      try {
        const base = `https://127.0.0.1:${tls.addr.port}`;
        for (const downloader of ["curl", "wget"]) {
          const tools = await toolDir(`${h.dir}/tools-${downloader}`, [
            ...BASE_TOOLS,
            downloader,
            "sha256sum",
          ]);
          const env = {
            PATH: tools,
            CURL_CA_BUNDLE: cert,
            WGETRC: `${h.dir}/wgetrc`,
          };
          const prefix = `${h.dir}/prefix-${downloader}`;
          const down = await runInstaller(h, ["--prefix", prefix], {
            ...env,
            OPENME_DOWNLOAD_URL: `${base}/down`,
          });
          assertFailed(
            down,
            downloader === "wget"
              ? /led to 'http:\/\/127\.0\.0\.1:\d+\/r1\/openme-x86_64-unknown-linux-gnu', which is not https; nothing was installed/
              : /could not download .*; nothing was installed/,
          );
          assert.equal(await exists(prefix), false, downloader);
          // Control: the same server's https to https redirect installs.
          const up = await runInstaller(h, ["--prefix", prefix], {
            ...env,
            OPENME_DOWNLOAD_URL: `${base}/up`,
          });
          assertOk(up);
          assert.equal(
            await runVersion(`${prefix}/bin/openme`),
            `openme 1.2.3 (${LINUX_X64})`,
          );
        }
      } finally {
        await tls.shutdown();
      }
    });
  },
});

const haveAllTools = ["wget", "shasum", "sha256sum", "curl"].every((t) =>
  findOnPath(t) !== null
);
if (!haveAllTools) {
  console.warn(
    "SKIP install.sh tool fallbacks: needs curl, wget, sha256sum and shasum",
  );
}

Deno.test({
  name: "install.sh: works with wget and shasum, and fails closed without them",
  ignore: !haveAllTools,
  fn: async () => {
    await withHarness(async (h) => {
      h.publish("r1", await makeRelease("1.2.3"));
      const env = { OPENME_DOWNLOAD_URL: h.url("r1") };
      const prefix = `${h.dir}/prefix`;

      const wgetShasum = await toolDir(`${h.dir}/wget-shasum`, [
        ...BASE_TOOLS,
        "wget",
        "shasum",
      ]);
      assertOk(
        await runInstaller(h, ["--prefix", prefix], {
          ...env,
          PATH: wgetShasum,
        }),
      );
      assert.equal(
        await runVersion(`${prefix}/bin/openme`),
        `openme 1.2.3 (${LINUX_X64})`,
      );

      const noDownloader = await toolDir(`${h.dir}/no-downloader`, [
        ...BASE_TOOLS,
        "sha256sum",
      ]);
      assertFailed(
        await runInstaller(h, ["--prefix", `${h.dir}/p2`], {
          ...env,
          PATH: noDownloader,
        }),
        /neither curl nor wget is installed/,
      );
      const noHasher = await toolDir(`${h.dir}/no-hasher`, [
        ...BASE_TOOLS,
        "curl",
      ]);
      assertFailed(
        await runInstaller(h, ["--prefix", `${h.dir}/p2`], {
          ...env,
          PATH: noHasher,
        }),
        /neither sha256sum nor shasum is installed/,
      );
      assert.equal(await exists(`${h.dir}/p2`), false);
    });
  },
});

Deno.test("install.sh: --uninstall removes the binary and the manual page", async () => {
  await withHarness(async (h) => {
    h.publish("r1", await makeRelease("1.2.3"));
    const prefix = `${h.dir}/prefix`;
    assertOk(
      await runInstaller(h, ["--prefix", prefix], {
        OPENME_DOWNLOAD_URL: h.url("r1"),
      }),
    );
    const result = await runInstaller(
      h,
      ["--uninstall", "--prefix", prefix],
      {},
    );
    assertOk(result);
    assert.match(result.stdout, /Removed .*\/prefix\/bin\/openme\n/);
    assert.match(
      result.stdout,
      /Removed .*\/prefix\/share\/man\/man1\/openme\.1\.gz/,
    );
    assert.equal(await exists(`${prefix}/bin/openme`), false);
    assert.equal(await exists(`${prefix}/share/man/man1/openme.1.gz`), false);
    const again = await runInstaller(
      h,
      ["--uninstall", "--prefix", prefix],
      {},
    );
    assertOk(again);
    assert.match(again.stdout, /not installed/);
  });
});

Deno.test("install.sh: --server installs the unit and /etc/openme under OPENME_ROOT without running systemctl", async () => {
  await withHarness(async (h) => {
    h.publish("r1", await makeRelease("1.2.3"));
    const root = `${h.dir}/root`;
    // A systemctl that records any call: none may happen with OPENME_ROOT set.
    const fakeBin = `${h.dir}/fakebin`;
    await Deno.mkdir(fakeBin);
    const calls = `${h.dir}/systemctl.calls`;
    await Deno.writeTextFile(
      `${fakeBin}/systemctl`,
      `#!/bin/sh\necho "$*" >> '${calls}'\n`,
      { mode: 0o755 },
    );
    // Nor may it create users or change owners: the image's /etc/passwd is not ours.
    const userCalls = `${h.dir}/user.calls`;
    for (
      const tool of ["useradd", "groupadd", "adduser", "addgroup", "chown"]
    ) {
      await Deno.writeTextFile(
        `${fakeBin}/${tool}`,
        `#!/bin/sh\necho "${tool} $*" >> '${userCalls}'\nexit 1\n`,
        { mode: 0o755 },
      );
    }
    const env = {
      OPENME_DOWNLOAD_URL: h.url("r1"),
      OPENME_ROOT: root,
      PATH: `${fakeBin}:${Deno.env.get("PATH")}`,
    };
    const result = await runInstaller(h, ["--server"], env);
    assertOk(result);
    assert.equal(
      await exists(userCalls),
      false,
      "no user may be created or chowned to with OPENME_ROOT",
    );
    assert.match(
      result.stdout,
      /no openme user was created; in the image, create the system user and group openme, then run chown root:openme \/etc\/openme \/etc\/openme\/config\.yaml/,
    );
    assert.equal(
      await runVersion(`${root}/usr/local/bin/openme`),
      `openme 1.2.3 (${LINUX_X64})`,
    );
    const unit = await Deno.readTextFile(
      `${root}/etc/systemd/system/openme.service`,
    );
    assert.equal(unit, await Deno.readTextFile(UNIT_PATH));
    const etc = await Deno.stat(`${root}/etc/openme`);
    assert.ok(etc.isDirectory);
    assert.equal((etc.mode ?? 0) & 0o777, 0o750);
    assert.equal(
      await exists(calls),
      false,
      "systemctl must not run with OPENME_ROOT",
    );
    assert.match(
      result.stdout,
      /sudo openme init --server <host> && sudo systemctl start openme/,
    );

    // Re-running keeps /etc/openme as it is and upgrades the rest.
    await Deno.chmod(`${root}/etc/openme`, 0o755);
    const again = await runInstaller(h, ["--server"], env);
    assertOk(again);
    assert.match(again.stderr, /open to all users.*chmod 750/);
    assert.equal(
      ((await Deno.stat(`${root}/etc/openme`)).mode ?? 0) & 0o777,
      0o755,
    );

    // A --prefix outside /usr/local/bin is what the unit starts.
    const withPrefix = await runInstaller(h, [
      "--server",
      "--prefix",
      `${root}/opt/openme`,
    ], env);
    assertOk(withPrefix);
    const moved = await Deno.readTextFile(
      `${root}/etc/systemd/system/openme.service`,
    );
    assert.equal(
      moved,
      unit.replaceAll("=/usr/local/bin/openme ", "=/opt/openme/bin/openme "),
    );

    const removed = await runInstaller(h, ["--server", "--uninstall"], env);
    assertOk(removed);
    assert.equal(await exists(`${root}/usr/local/bin/openme`), false);
    assert.equal(
      await exists(`${root}/etc/systemd/system/openme.service`),
      false,
    );
    assert.ok(await exists(`${root}/etc/openme`), "config dir is kept");
    assert.match(removed.stdout, /Kept .*\/etc\/openme/);
    assert.doesNotMatch(removed.stdout, /Kept the system user/);
    assert.equal(await exists(calls), false);
    assert.equal(await exists(userCalls), false);
  });
});

const canDropRoot = Deno.uid() === 0 && findOnPath("setpriv") !== null;
if (!canDropRoot) {
  console.warn(
    "SKIP install.sh ~/.local/bin fallback: needs root and setpriv to run as nobody",
  );
}

Deno.test({
  name: "install.sh: without write access or sudo it installs to ~/.local/bin",
  ignore: !canDropRoot,
  fn: async () => {
    await withHarness(async (h) => {
      h.publish("r1", await makeRelease("1.2.3"));
      await Deno.chmod(h.dir, 0o755);
      await Deno.mkdir(`${h.dir}/home`);
      await Deno.mkdir(`${h.dir}/tmp`);
      await Deno.chown(`${h.dir}/home`, 65534, 65534);
      await Deno.chown(`${h.dir}/tmp`, 65534, 65534);
      // nobody cannot read the checkout when it lies in a private folder.
      const script = `${h.dir}/install.sh`;
      await Deno.copyFile(INSTALL_SH, script);
      await Deno.chmod(script, 0o644);
      // No sudo on this PATH, and nobody cannot write to /usr/local/bin.
      const tools = await toolDir(`${h.dir}/tools`, [
        ...BASE_TOOLS,
        "curl",
        "sha256sum",
      ]);
      const result = await runInstaller(h, [], {
        OPENME_DOWNLOAD_URL: h.url("r1"),
        PATH: tools,
      }, {
        uid: 65534,
        script,
      });
      assertOk(result);
      const binary = `${h.dir}/home/.local/bin/openme`;
      assert.equal(await runVersion(binary), `openme 1.2.3 (${LINUX_X64})`);
      assert.match(result.stdout, /\.local\/bin is not on your PATH/);
    });
  },
});

const shellcheck = findOnPath("shellcheck");
if (shellcheck === null) {
  console.warn("SKIP shellcheck install.sh: shellcheck is not installed");
}

Deno.test({
  name: "install.sh: shellcheck is clean",
  ignore: shellcheck === null,
  fn: async () => {
    const out = await new Deno.Command("shellcheck", {
      args: [INSTALL_SH],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(RUN_TIMEOUT_MS),
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stdout));
  },
});

const canUnshare = Deno.uid() === 0 && findOnPath("unshare") !== null &&
  (await new Deno.Command("unshare", {
    args: ["-m", "--propagation", "private", "mount", "--bind", "/tmp", "/mnt"],
    stdout: "null",
    stderr: "null",
    signal: AbortSignal.timeout(RUN_TIMEOUT_MS),
  }).output().then((o) => o.success, () => false));
if (!canUnshare) {
  console.warn(
    "SKIP install.sh --server as real root: needs root and mount namespaces",
  );
}

Deno.test({
  name:
    "install.sh: --server as root enables the unit but starts nothing, /etc/openme root:openme (private /etc and /usr/local)",
  ignore: !canUnshare,
  fn: async () => {
    await withHarness(async (h) => {
      h.publish("r1", await makeRelease("1.2.3"));
      // The installer sees a copy of /etc and an empty /usr/local,
      // bind-mounted in a private mount namespace; the real ones are never
      // touched.
      const etc = `${h.dir}/etc`;
      const local = `${h.dir}/usr-local`;
      const bin = `${local}/bin`;
      await new Deno.Command("cp", { args: ["-a", "/etc", etc] }).output();
      await Deno.remove(`${etc}/systemd/system/openme.service`).catch(() => {});
      await Deno.remove(`${etc}/openme`, { recursive: true }).catch(() => {});
      await Deno.mkdir(bin, { recursive: true });
      const fakeBin = `${h.dir}/fakebin`;
      await Deno.mkdir(fakeBin);
      const calls = `${h.dir}/systemctl.calls`;
      await Deno.writeTextFile(
        `${fakeBin}/systemctl`,
        `#!/bin/sh\n[ "$1" = is-active ] && exit 3\necho "$*" >> '${calls}'\n`,
        { mode: 0o755 },
      );
      await Deno.writeTextFile(
        `${h.dir}/in-namespace.sh`,
        `set -e\nmount --bind '${etc}' /etc\nmount --bind '${local}' /usr/local\nexec /bin/sh "$@"\n`,
      );
      const inNamespace = async (args: string[]): Promise<RunResult> => {
        const out = await new Deno.Command("unshare", {
          args: [
            "-m",
            "--propagation",
            "private",
            "/bin/sh",
            `${h.dir}/in-namespace.sh`,
            INSTALL_SH,
            ...args,
          ],
          env: {
            PATH: `${fakeBin}:${Deno.env.get("PATH")}`,
            HOME: `${h.dir}/home`,
            OPENME_UNAME_S: "Linux",
            OPENME_UNAME_M: "x86_64",
            OPENME_DOWNLOAD_URL: h.url("r1"),
          },
          clearEnv: true,
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
          signal: AbortSignal.timeout(RUN_TIMEOUT_MS),
        }).output();
        return {
          code: out.code,
          stdout: new TextDecoder().decode(out.stdout),
          stderr: new TextDecoder().decode(out.stderr),
        };
      };

      // The openme user and group in a copied /etc: none yet.
      const serviceUser = async (): Promise<
        { uid: number; gid: number; home: string; shell: string } | null
      > => {
        const passwd = await Deno.readTextFile(`${etc}/passwd`);
        const line = passwd.split("\n").find((l) => l.startsWith("openme:"));
        if (line === undefined) return null;
        const fields = line.split(":");
        return {
          uid: Number(fields[2]),
          gid: Number(fields[3]),
          home: fields[5],
          shell: fields[6],
        };
      };
      const ownerOf = async (path: string): Promise<[number, number]> => {
        const info = await Deno.lstat(path);
        return [info.uid ?? -1, info.gid ?? -1];
      };
      assert.equal(
        await serviceUser(),
        null,
        "the copied /etc has no openme user",
      );

      const installed = await inNamespace(["--server"]);
      assertOk(installed);
      const user = await serviceUser();
      assert.ok(
        user !== null,
        "install.sh --server did not create the openme user",
      );
      assert.ok(
        user.uid > 0 && user.uid < 1000,
        `not a system uid: ${user.uid}`,
      );
      assert.match(user.shell, /\/(nologin|false)$/);
      assert.equal(user.home, "/nonexistent");
      assert.match(
        await Deno.readTextFile(`${etc}/group`),
        new RegExp(`^openme:x:${user.gid}:`, "m"),
      );
      assert.match(installed.stdout, /Created the system group openme/);
      assert.match(installed.stdout, /Created the system user openme/);
      // root owns the directory; the service's group may only read it.
      assert.deepEqual(await ownerOf(`${etc}/openme`), [0, user.gid]);
      assert.ok(
        await exists(`${local}/share/man/man1/openme.1.gz`),
        "no manual page in /usr/local/share/man/man1",
      );
      assert.equal(
        await runVersion(`${bin}/openme`),
        `openme 1.2.3 (${LINUX_X64})`,
      );
      assert.equal(
        await Deno.readTextFile(`${etc}/systemd/system/openme.service`),
        await Deno.readTextFile(UNIT_PATH),
      );
      assert.equal(
        ((await Deno.stat(`${etc}/openme`)).mode ?? 0) & 0o777,
        0o750,
      );
      assert.deepEqual((await Deno.readTextFile(calls)).trim().split("\n"), [
        "daemon-reload",
        "enable openme.service",
      ]);

      // `sudo openme init` ran before install.sh: a root-owned directory and
      // a 0600 config. Both become root:openme, the config 0640 so that the
      // service can read it; the lock file and anything else stay as they are.
      await Deno.remove(`${etc}/openme`, { recursive: true });
      await Deno.mkdir(`${etc}/openme`, { mode: 0o750 });
      await Deno.writeTextFile(`${etc}/openme/config.yaml`, "server: {}\n", {
        mode: 0o600,
      });
      await Deno.writeTextFile(`${etc}/openme/config.yaml.lock`, "");
      const again = await inNamespace(["--server"]);
      assertOk(again);
      assert.doesNotMatch(again.stdout, /Created the system/);
      assert.deepEqual(await serviceUser(), user, "the user was recreated");
      assert.deepEqual(await ownerOf(`${etc}/openme`), [0, user.gid]);
      assert.deepEqual(await ownerOf(`${etc}/openme/config.yaml`), [
        0,
        user.gid,
      ]);
      assert.equal(
        ((await Deno.stat(`${etc}/openme/config.yaml`)).mode ?? 0) & 0o777,
        0o640,
      );
      assert.deepEqual(await ownerOf(`${etc}/openme/config.yaml.lock`), [0, 0]);

      // A config.yaml that is a symlink is not followed: its target keeps its owner.
      const outside = `${h.dir}/outside.yaml`;
      await Deno.writeTextFile(outside, "secret\n", { mode: 0o600 });
      await Deno.remove(`${etc}/openme/config.yaml`);
      await Deno.symlink(outside, `${etc}/openme/config.yaml`);
      const linked = await inNamespace(["--server"]);
      assertOk(linked);
      assert.match(linked.stderr, /config\.yaml is a symbolic link/);
      assert.deepEqual(await ownerOf(outside), [0, 0]);

      await Deno.remove(calls);
      const removed = await inNamespace(["--server", "--uninstall"]);
      assertOk(removed);
      assert.match(removed.stdout, /Kept the system user openme/);
      assert.deepEqual((await Deno.readTextFile(calls)).trim().split("\n"), [
        "disable --now openme.service",
        "daemon-reload",
      ]);
      assert.equal(await exists(`${bin}/openme`), false);
      assert.equal(await exists(`${etc}/systemd/system/openme.service`), false);
      assert.ok(await exists(`${etc}/openme`));
    });
  },
});
