/**
 * Tests of scripts/package.sh: the .deb and the .rpm it builds from a
 * stand-in binary (a launcher running this checkout's main.ts) hold the files
 * of packaging/files.txt and the maintainer scripts of
 * packaging/maintainer.sh, and lintian finds no error in the .deb. The life
 * cycle of the installed packages is in packaging_lifecycle_test.ts.
 */

import assert from "node:assert/strict";
import denoConfig from "../deno.json" with { type: "json" };
import { findOnPath, REPO_DIR, run } from "../scripts/testbed.ts";
import { manPage } from "../lib/cli/commands/man.ts";
import { openmeOk } from "./support/cli.ts";
import { withSharedTempDir } from "./support/files.ts";
import {
  buildPackages,
  type Packages,
  packageScript,
  standInBinary,
} from "./support/stand_in.ts";

const VERSION = denoConfig.version;
const TIMEOUT_MS = 120_000;

/** One line of packaging/files.txt. */
interface ListedFile {
  source: string;
  destination: string;
  mode: number;
  /** "deb", "rpm", or null for both. */
  only: string | null;
}

const FILE_LIST: ListedFile[] = (await Deno.readTextFile(
  `${REPO_DIR}/packaging/files.txt`,
)).split("\n").filter((line) => line.trim() !== "" && !line.startsWith("#"))
  .map((line) => {
    const [source, destination, mode, only] = line.trim().split(/\s+/);
    return { source, destination, mode: parseInt(mode, 8), only: only ?? null };
  });

/** The files packaging/files.txt puts in one format's package. */
function listed(format: "deb" | "rpm"): ListedFile[] {
  return FILE_LIST.filter((f) => f.only === null || f.only === format);
}

const MAINTAINER_SH = await Deno.readTextFile(
  `${REPO_DIR}/packaging/maintainer.sh`,
);

const missing = ["dpkg-deb", "rpmbuild", "rpm", "readelf", "gzip"].filter((
  tool,
) => findOnPath(tool) === null);
if (missing.length > 0) {
  console.warn(
    `SKIP package.sh tests: needs ${
      missing.join(", ")
    } (bash scripts/setup.sh installs them)`,
  );
}

/** Runs a command, asserts exit 0 and returns its standard output. */
async function ok(command: string[]): Promise<string> {
  const result = await run(command, { timeoutMs: TIMEOUT_MS });
  assert.equal(
    result.code,
    0,
    `${command.join(" ")}: ${result.stdout}${result.stderr}`,
  );
  return result.stdout;
}

/** Runs `rpm -qp FLAGS RPM` with a database next to the package (rpm creates one, by default in $HOME). */
function queryRpm(rpm: string, ...flags: string[]): Promise<string> {
  const dbpath = `${rpm.slice(0, rpm.lastIndexOf("/"))}/rpmdb`;
  return ok(["rpm", "--dbpath", dbpath, "-qp", ...flags, rpm]);
}

/** Runs fn with packages built from a stand-in of this checkout, in a directory every user can read. */
async function withPackages(
  fn: (packages: Packages, dir: string) => Promise<void>,
): Promise<void> {
  await withSharedTempDir("openme-package-test-", async (dir) => {
    const standIn = await standInBinary(dir, VERSION);
    await fn(await buildPackages(standIn.binary, VERSION, `${dir}/out`), dir);
  });
}

/** Regular files of a .deb: path → [mode, owner]. */
async function debFiles(deb: string): Promise<Map<string, [number, string]>> {
  const files = new Map<string, [number, string]>();
  for (const line of (await ok(["dpkg-deb", "--contents", deb])).split("\n")) {
    const fields = line.split(/\s+/);
    if (!fields[0]?.startsWith("-")) continue;
    const mode = [...fields[0].slice(1)].reduce(
      (bits, ch) => bits * 2 + (ch === "-" ? 0 : 1),
      0,
    );
    files.set(fields[5].replace(/^\./, ""), [mode, fields[1]]);
  }
  return files;
}

/** Entries of an .rpm (`rpm -qp --dump`): path → digest, mode, owner, whether a directory. */
async function rpmEntries(
  rpm: string,
): Promise<Map<string, { sha256: string; mode: number; owner: string }>> {
  const entries = new Map<
    string,
    { sha256: string; mode: number; owner: string }
  >();
  for (const line of (await queryRpm(rpm, "--dump")).split("\n")) {
    if (line === "") continue;
    const [path, , , sha256, mode, user, group] = line.split(" ");
    entries.set(path, {
      sha256,
      mode: parseInt(mode, 8),
      owner: `${user}/${group}`,
    });
  }
  return entries;
}

async function sha256(path: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    await Deno.readFile(path),
  );
  return new Uint8Array(digest).toHex();
}

/** Unpacks a .deb's files into dir. */
async function unpackDeb(deb: string, dir: string): Promise<void> {
  await ok(["dpkg-deb", "-x", deb, dir]);
}

async function gunzip(path: string): Promise<string> {
  const file = await Deno.open(path);
  const text = file.readable.pipeThrough(new DecompressionStream("gzip"));
  return await new Response(text).text();
}

Deno.test({
  name:
    "package.sh: the .deb and the .rpm hold exactly the files of packaging/files.txt, root's, with its modes and the same content",
  ignore: missing.length > 0,
  fn: async () => {
    await withPackages(async ({ deb, rpm }, dir) => {
      const debList = await debFiles(deb);
      assert.deepEqual(
        [...debList.keys()].sort(),
        listed("deb").map((f) => f.destination).sort(),
      );
      for (const file of listed("deb")) {
        assert.deepEqual(debList.get(file.destination), [
          file.mode,
          "root/root",
        ], file.destination);
      }
      const rpmList = await rpmEntries(rpm);
      const rpmFiles = [...rpmList].filter(([, e]) =>
        (e.mode & 0o170000) === 0o100000
      );
      assert.deepEqual(
        rpmFiles.map(([path]) => path).sort(),
        listed("rpm").map((f) => f.destination).sort(),
      );
      assert.deepEqual(
        (await queryRpm(rpm, "-l")).trim().split("\n").sort(),
        [...listed("rpm").map((f) => f.destination), "/usr/share/doc/openme"]
          .sort(),
      );
      // The same source gives the same bytes in both packages.
      await unpackDeb(deb, `${dir}/deb`);
      for (const file of listed("rpm")) {
        const entry = rpmList.get(file.destination);
        assert.equal(entry?.mode, 0o100000 | file.mode, file.destination);
        assert.equal(entry?.owner, "root/root", file.destination);
        const inDeb = listed("deb").find((f) => f.source === file.source);
        if (inDeb === undefined) continue;
        assert.equal(
          entry?.sha256,
          await sha256(`${dir}/deb${inDeb.destination}`),
          `${file.source}: ${file.destination} differs from ${inDeb.destination}`,
        );
      }
    });
  },
});

Deno.test({
  name:
    "package.sh: the manual page and completions are what the binary prints, in each shell's vendor directory, and the unit starts /usr/bin/openme",
  ignore: missing.length > 0,
  fn: async () => {
    await withPackages(async ({ deb }, dir) => {
      await unpackDeb(deb, `${dir}/deb`);
      const root = `${dir}/deb`;
      assert.equal(
        await gunzip(`${root}/usr/share/man/man1/openme.1.gz`),
        `${manPage()}\n`,
      );
      const completions: Record<string, string> = {
        bash: "/usr/share/bash-completion/completions/openme",
        zsh: "/usr/share/zsh/vendor-completions/_openme",
        fish: "/usr/share/fish/vendor_completions.d/openme.fish",
      };
      for (const [shell, path] of Object.entries(completions)) {
        const printed = await openmeOk(["completion", shell]);
        assert.equal(
          await Deno.readTextFile(`${root}${path}`),
          `${printed.out}\n`,
        );
      }
      const unit = await Deno.readTextFile(
        `${root}/usr/lib/systemd/system/openme.service`,
      );
      const source = await Deno.readTextFile(`${REPO_DIR}/openme.service`);
      assert.match(unit, /^ExecStart=\/usr\/bin\/openme serve$/m);
      assert.deepEqual(
        unit.split("\n").filter((l) =>
          l.startsWith("Exec") && l.includes("/usr/local/")
        ),
        [],
      );
      assert.equal(
        unit,
        source.replace(
          /^(Exec.*?)\/usr\/local\/bin\/openme /gm,
          "$1/usr/bin/openme ",
        ),
      );
      assert.equal(
        await Deno.readTextFile(`${root}/usr/share/doc/openme/README.md`),
        await Deno.readTextFile(`${REPO_DIR}/README.md`),
      );
    });
  },
});

Deno.test({
  name:
    "package.sh: both packages need nftables or iptables, never both, and have no conffiles as they ship nothing under /etc",
  ignore: missing.length > 0,
  fn: async () => {
    await withPackages(async ({ deb, rpm }, dir) => {
      const depends = (await ok(["dpkg-deb", "--field", deb, "Depends"]))
        .trim().split(/,\s*/);
      assert.ok(depends.includes("nftables | iptables"), depends.join(", "));
      // No dependency names either firewall without the other as its alternative.
      assert.deepEqual(
        depends.filter((d) =>
          /^(nftables|iptables)\b/.test(d) && !d.includes("|")
        ),
        [],
      );
      const requires = (await queryRpm(rpm, "-R")).trim().split("\n")
        .map((l) => l.trim());
      assert.ok(
        requires.includes("(nftables or iptables)"),
        requires.join("; "),
      );
      for (const tool of ["nftables", "iptables"]) {
        assert.ok(
          !requires.some((r) => r.split(" ")[0] === tool),
          requires.join("; "),
        );
      }
      // Nothing under /etc, so nothing is a conffile: the config is the
      // operator's, written by `openme init`, never by the package.
      assert.deepEqual(
        [...(await debFiles(deb)).keys()].filter((p) => p.startsWith("/etc/")),
        [],
      );
      await ok(["dpkg-deb", "--control", deb, `${dir}/control`]);
      await assert.rejects(Deno.stat(`${dir}/control/conffiles`));
      assert.equal((await queryRpm(rpm, "-c")).trim(), "");
    });
  },
});

/** The scriptlets of an .rpm by name (pre, post, preun, postun). */
async function rpmScripts(rpm: string): Promise<Map<string, string>> {
  const text = await queryRpm(rpm, "--scripts");
  const names: Record<string, string> = {
    preinstall: "pre",
    postinstall: "post",
    preuninstall: "preun",
    postuninstall: "postun",
  };
  const scripts = new Map<string, string>();
  const parts = text.split(/^(\w+) scriptlet \(using \/bin\/sh\):\n/m);
  for (let i = 1; i < parts.length; i += 2) {
    scripts.set(names[parts[i]] ?? parts[i], parts[i + 1]);
  }
  return scripts;
}

Deno.test({
  name:
    "package.sh: every maintainer script of both packages is packaging/maintainer.sh calling main for its step",
  ignore: missing.length > 0,
  fn: async () => {
    await withPackages(async ({ deb, rpm }, dir) => {
      await ok(["dpkg-deb", "--control", deb, `${dir}/control`]);
      const debScripts = ["postinst", "prerm", "postrm"];
      for (const name of ["preinst", ...debScripts]) {
        const path = `${dir}/control/${name}`;
        if (!debScripts.includes(name)) {
          await assert.rejects(Deno.stat(path), `${name} exists`);
          continue;
        }
        assert.equal(
          await Deno.readTextFile(path),
          `#!/bin/sh\n${MAINTAINER_SH}\nmain deb ${name} "$@"\n`,
        );
        assert.equal(((await Deno.stat(path)).mode ?? 0) & 0o777, 0o755);
        await ok(["sh", "-n", path]);
      }
      const scripts = await rpmScripts(rpm);
      assert.deepEqual([...scripts.keys()], ["pre", "post", "preun", "postun"]);
      for (const [name, text] of scripts) {
        assert.equal(
          text.trimEnd(),
          `${MAINTAINER_SH}\nmain rpm ${name} "$@"`,
          name,
        );
        await ok(["sh", "-n", "-c", text]);
      }
    });
  },
});

/** A copy of /usr/bin/true with data appended, as `deno compile` appends the program. */
async function fakeCompiledBinary(path: string): Promise<void> {
  const elf = await Deno.readFile("/usr/bin/true");
  const trailer = crypto.getRandomValues(new Uint8Array(4096));
  await Deno.writeFile(path, new Uint8Array([...elf, ...trailer]), {
    mode: 0o755,
  });
  await Deno.chmod(path, 0o755);
}

const isX64 = Deno.build.arch === "x86_64" && Deno.build.os === "linux";

Deno.test({
  name:
    "package.sh: a compiled binary goes into both packages byte for byte (never stripped), with the glibc and libgcc it needs as .deb dependencies",
  ignore: missing.length > 0 || !isX64,
  fn: async () => {
    await withSharedTempDir("openme-package-test-", async (dir) => {
      const standIn = await standInBinary(dir, VERSION);
      const binary = `${dir}/openme-elf`;
      await fakeCompiledBinary(binary);
      const result = await packageScript([
        "--binary",
        binary,
        "--docs-from",
        standIn.binary,
        "--version",
        VERSION,
        "--arch",
        "amd64",
        "--out",
        `${dir}/out`,
      ]);
      assert.equal(result.code, 0, result.stderr);
      const [deb, rpm] = result.stdout.trim().split("\n");
      await unpackDeb(deb, `${dir}/deb`);
      const want = await sha256(binary);
      assert.equal(await sha256(`${dir}/deb/usr/bin/openme`), want);
      assert.equal(
        (await rpmEntries(rpm)).get("/usr/bin/openme")?.sha256,
        want,
      );
      const depends = (await ok(["dpkg-deb", "--field", deb, "Depends"]))
        .trim();
      assert.match(depends, /(^|, )libc6 \(>= 2\.\d+\)(,|$)/);
      assert.match(
        await queryRpm(rpm, "-R"),
        /^libc\.so\.6\(GLIBC_2\.\d+\)\(64bit\)$/m,
      );
    });
  },
});

Deno.test({
  name:
    "package.sh: refuses a binary for another architecture, one that reports another version, and bad arguments",
  ignore: missing.length > 0 || !isX64,
  fn: async () => {
    await withSharedTempDir("openme-package-test-", async (dir) => {
      const standIn = await standInBinary(dir, VERSION);
      const elf = `${dir}/openme-elf`;
      await fakeCompiledBinary(elf);
      const out = `${dir}/out`;
      const cases: [string[], RegExp][] = [
        [
          [
            "--binary",
            elf,
            "--docs-from",
            standIn.binary,
            "--version",
            VERSION,
            "--arch",
            "arm64",
          ],
          /openme-elf is not an arm64 binary \(ELF machine 3e00\)/,
        ],
        [
          ["--binary", standIn.binary, "--version", "9.9.9", "--arch", "amd64"],
          new RegExp(
            `reports 'openme ${
              VERSION.replaceAll(".", "\\.")
            } .*', not openme 9\\.9\\.9`,
          ),
        ],
        [
          ["--binary", standIn.binary, "--version", "1.2", "--arch", "amd64"],
          /--version 1\.2 is not X\.Y\.Z/,
        ],
        [
          ["--binary", standIn.binary, "--version", VERSION, "--arch", "i386"],
          /--arch i386 is not amd64 or arm64/,
        ],
        [
          ["--binary", `${dir}/none`, "--version", VERSION, "--arch", "amd64"],
          /is not an executable file/,
        ],
        [
          ["--version", VERSION, "--arch", "amd64"],
          /--binary, --version, --arch and --out are required/,
        ],
      ];
      for (const [args, pattern] of cases) {
        const result = await packageScript([...args, "--out", out]);
        assert.equal(result.code, 1, `${args.join(" ")}: ${result.stderr}`);
        assert.match(result.stderr, pattern);
        assert.equal(result.stdout, "");
      }
      // Nothing was written for any of them.
      await assert.rejects(Deno.stat(out));
    });
  },
});

const lintian = findOnPath("lintian");
if (lintian === null) {
  console.warn("SKIP lintian on the .deb: lintian is not installed");
}

Deno.test({
  name: "package.sh: lintian reports no error for the .deb",
  ignore: missing.length > 0 || lintian === null,
  fn: async () => {
    await withPackages(async ({ deb }) => {
      const result = await run(["lintian", "--pedantic", deb], {
        timeoutMs: TIMEOUT_MS,
      });
      const errors = result.stdout.split("\n").filter((l) =>
        l.startsWith("E:")
      );
      assert.deepEqual(errors, [], result.stdout);
    });
  },
});

const shellcheck = findOnPath("shellcheck");
if (shellcheck === null) {
  console.warn("SKIP shellcheck of the packaging scripts: not installed");
}

Deno.test({
  name: "package.sh and packaging/maintainer.sh: shellcheck is clean",
  ignore: shellcheck === null,
  fn: async () => {
    await ok(["shellcheck", `${REPO_DIR}/scripts/package.sh`]);
    // The maintainer scripts run with /bin/sh.
    await ok([
      "shellcheck",
      "--shell=sh",
      `${REPO_DIR}/packaging/maintainer.sh`,
    ]);
  },
});
