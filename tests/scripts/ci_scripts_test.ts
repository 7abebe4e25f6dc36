/**
 * Tests of .ci/run (the totals line CI reads) and scripts/setup.sh (installs
 * only what is missing), with fake tools on PATH: nothing is installed.
 */

import assert from "node:assert/strict";
import { run } from "../../scripts/testbed.ts";
import { withTempDir } from "../support/files.ts";

const REPO = new URL("../../", import.meta.url).pathname;
const TEMP_PREFIX = "openme-ci-scripts-";

async function writeExecutable(path: string, text: string): Promise<void> {
  await Deno.writeTextFile(path, text);
  await Deno.chmod(path, 0o755);
}

/** Runs a copy of .ci/run whose scripts/test.sh prints `output` and exits with `code`. */
async function ciRunWith(
  output: string,
  code: number,
): Promise<{ code: number; stdout: string }> {
  let outcome = { code: -1, stdout: "" };
  await withTempDir(TEMP_PREFIX, async (dir) => {
    await Deno.mkdir(`${dir}/.ci`);
    await Deno.mkdir(`${dir}/scripts`);
    await Deno.copyFile(`${REPO}.ci/run`, `${dir}/.ci/run`);
    await writeExecutable(
      `${dir}/scripts/test.sh`,
      `cat <<'OUT'\n${output}\nOUT\nexit ${code}\n`,
    );
    const result = await run(["bash", `${dir}/.ci/run`]);
    outcome = { code: result.code, stdout: result.stdout };
  });
  return outcome;
}

function lastLine(text: string): string {
  return text.trimEnd().split("\n").at(-1) ?? "";
}

Deno.test(".ci/run prints deno test's totals as 'N passed, M failed' and keeps its exit code", async () => {
  const ok = await ciRunWith(
    "running 3 tests\nok | 709 passed (28 steps) | 0 failed (3m37s)",
    0,
  );
  assert.equal(ok.code, 0);
  assert.equal(lastLine(ok.stdout), "709 passed, 0 failed");

  const failed = await ciRunWith(
    "FAILED | 700 passed (28 steps) | 9 failed (3m40s)",
    1,
  );
  assert.equal(failed.code, 1);
  assert.equal(lastLine(failed.stdout), "700 passed, 9 failed");

  const unreadable = await ciRunWith("something went wrong early", 0);
  assert.equal(unreadable.code, 1);
  assert.equal(lastLine(unreadable.stdout), "0 passed, 1 failed");
});

/** Runs scripts/setup.sh with only `fakes` (name → script) and grep/id on PATH; returns what npm and apt-get were asked. */
async function setupWith(
  fakes: Record<string, string>,
): Promise<{ code: number; calls: string }> {
  let outcome = { code: -1, calls: "" };
  await withTempDir(TEMP_PREFIX, async (dir) => {
    const bin = `${dir}/bin`;
    await Deno.mkdir(bin);
    const calls = `${dir}/calls`;
    await Deno.writeTextFile(calls, "");
    const recorder = `#!/bin/sh\necho "\${0##*/} $*" >> ${calls}\n`;
    await writeExecutable(`${bin}/npm`, recorder);
    await writeExecutable(`${bin}/apt-get`, recorder);
    for (const [name, text] of Object.entries(fakes)) {
      await writeExecutable(`${bin}/${name}`, text);
    }
    for (const tool of ["grep", "id"]) {
      const found = await run(["sh", "-c", `command -v ${tool}`]);
      await Deno.symlink(found.stdout.trim(), `${bin}/${tool}`);
    }
    const bash = (await run(["sh", "-c", "command -v bash"])).stdout.trim();
    const result = await new Deno.Command(bash, {
      args: [`${REPO}scripts/setup.sh`],
      env: { PATH: bin },
      clearEnv: true,
      stdout: "null",
      stderr: "null",
    }).output();
    outcome = { code: result.code, calls: await Deno.readTextFile(calls) };
  });
  return outcome;
}

const isRoot = Deno.uid() === 0;

Deno.test({
  name:
    "setup.sh installs the pinned Deno from npm and the missing firewall, metrics and packaging tools with apt, and nothing once they are there",
  ignore: !isRoot,
  fn: async () => {
    const bare = await setupWith({
      deno: "#!/bin/sh\necho 'deno 2.9.5 (stable)'\n",
    });
    assert.equal(bare.code, 0);
    assert.match(bare.calls, /^npm install -g deno@2\.9\.6$/m);
    assert.match(
      bare.calls,
      /^apt-get install -y -qq nftables iptables iproute2 shellcheck prometheus rpm lintian groff-base man-db binutils$/m,
    );

    const present = "#!/bin/sh\nexit 0\n";
    const ready = await setupWith({
      deno: "#!/bin/sh\necho 'deno 2.9.6 (stable, release)'\n",
      nft: present,
      iptables: present,
      ip: present,
      shellcheck: present,
      promtool: present,
      rpmbuild: present,
      lintian: present,
      groff: present,
      man: present,
      readelf: present,
    });
    assert.equal(ready.code, 0);
    assert.equal(ready.calls, "");
  },
});
if (!isRoot) console.warn("SKIP setup.sh install test: needs root (apt path)");
