/**
 * Tests of the GitHub workflows: they parse as YAML, every action is pinned by
 * commit, the release builds, tests the compiled binary end to end, packages,
 * attests and uploads what it tested, CI runs .ci/run as root.
 */

import assert from "node:assert/strict";
import YAML from "yaml";
import { assetName, parseCompileArgs, TARGETS } from "../scripts/compile.ts";
import { MAIN_TS, openmeCommand } from "../scripts/testbed.ts";

const REPO = new URL("..", import.meta.url);
const TIMEOUT_MS = 30_000;

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  "working-directory"?: string;
}

interface Job {
  "runs-on": string;
  steps: Step[];
}

interface Workflow {
  on: unknown;
  permissions?: Record<string, string>;
  jobs: Record<string, Job>;
}

async function loadWorkflow(name: string): Promise<Workflow> {
  const text = await Deno.readTextFile(
    new URL(`.github/workflows/${name}`, REPO),
  );
  const doc = YAML.parseDocument(text);
  assert.deepEqual(doc.errors, [], `${name}: ${doc.errors.join("; ")}`);
  assert.deepEqual(doc.warnings, [], `${name}: ${doc.warnings.join("; ")}`);
  return doc.toJS() as Workflow;
}

/** The steps of the workflow's only job. */
function onlyJob(workflow: Workflow): Job {
  const jobs = Object.values(workflow.jobs);
  assert.equal(jobs.length, 1);
  return jobs[0];
}

function indexOfStep(
  job: Job,
  test: (step: Step) => boolean,
  what: string,
): number {
  const index = job.steps.findIndex(test);
  assert.ok(index >= 0, `no step ${what}`);
  return index;
}

/** `owner/name@sha # vX.Y.Z`: an action pinned by a full commit, its release in a comment. */
const PINNED_USES =
  /^\s*(?:- )?uses: ([\w.-]+\/[\w.\/-]+)@([0-9a-f]{40}) # (v\d+(?:\.\d+)*)$/;

/** The step whose `uses` is this action, pinned by commit. */
function usesStep(job: Job, action: string): number {
  return indexOfStep(
    job,
    (s) => s.uses?.startsWith(`${action}@`) ?? false,
    action,
  );
}

/** Checks what every workflow shares: checkout first (no credentials kept), Deno pinned to ours. */
function assertSetup(job: Job): void {
  assert.equal(job["runs-on"], "ubuntu-latest");
  assert.match(job.steps[0].uses ?? "", /^actions\/checkout@[0-9a-f]{40}$/);
  assert.equal(job.steps[0].with?.["persist-credentials"], false);
  const deno = job.steps[usesStep(job, "denoland/setup-deno")];
  assert.equal(deno.with?.["deno-version"], `v${Deno.version.deno}`);
  for (const step of job.steps) {
    assert.ok(
      (step.uses === undefined) !== (step.run === undefined),
      JSON.stringify(step),
    );
  }
}

/** `bash -n` on every run step: GitHub runs them with bash. */
async function assertRunStepsParse(job: Job): Promise<void> {
  for (const step of job.steps) {
    if (step.run === undefined) continue;
    const out = await new Deno.Command("bash", {
      args: ["-n", "-c", step.run],
      stderr: "piped",
      signal: AbortSignal.timeout(TIMEOUT_MS),
    }).output();
    assert.equal(
      out.code,
      0,
      `${step.name}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
}

/** The text of every step's `run`, by step index. */
function runOf(job: Job, index: number): string {
  return job.steps[index].run ?? "";
}

Deno.test("workflows: every action is pinned by a full commit with its release in a comment, the same commit everywhere", async () => {
  const pins = new Map<string, string>();
  for await (const entry of Deno.readDir(new URL(".github/workflows/", REPO))) {
    const text = await Deno.readTextFile(
      new URL(`.github/workflows/${entry.name}`, REPO),
    );
    const lines = text.split("\n").filter((l) => /^\s*(- )?uses:/.test(l));
    assert.ok(lines.length > 0, `${entry.name} uses no action`);
    for (const line of lines) {
      const pin = PINNED_USES.exec(line);
      assert.ok(
        pin !== null,
        `${entry.name}: not pinned by commit: ${line.trim()}`,
      );
      const [, action, sha, release] = pin;
      const seen = pins.get(action);
      assert.ok(
        seen === undefined || seen === `${sha} ${release}`,
        `${action} is pinned to ${seen} and to ${sha} ${release}`,
      );
      pins.set(action, `${sha} ${release}`);
    }
  }
});

const LINUX_X64 = assetName("x86_64-unknown-linux-gnu");
const LINUX_ARM64 = assetName("aarch64-unknown-linux-gnu");

Deno.test("release.yml: on a v* tag, builds, runs the x86_64 binary through the end-to-end scenario, packages, checks, attests and publishes, in that order", async () => {
  const workflow = await loadWorkflow("release.yml");
  assert.deepEqual(workflow.on, { push: { tags: ["v*"] } });
  // Publishing needs contents; provenance an OIDC token and attestations.
  assert.deepEqual(workflow.permissions, {
    contents: "write",
    "id-token": "write",
    attestations: "write",
  });
  const job = onlyJob(workflow);
  assertSetup(job);
  await assertRunStepsParse(job);

  const compile = indexOfStep(
    job,
    (s) => s.run?.trim() === "deno task compile",
    "deno task compile",
  );
  const e2e = indexOfStep(
    job,
    (s) => s.run?.includes("OPENME_BIN=") ?? false,
    "running the end-to-end tests with OPENME_BIN",
  );
  assert.match(
    runOf(job, e2e),
    new RegExp(
      `^sudo -E env "PATH=\\$PATH" "OPENME_BIN=\\$PWD/dist/${LINUX_X64}" deno test `,
    ),
  );
  for (const backend of ["nft", "iptables"]) {
    const file = `tests/e2e/serve_${backend}_test.ts`;
    assert.ok(
      runOf(job, e2e).includes(` ${file}`),
      `the release does not run ${file}`,
    );
    assert.match(
      await Deno.readTextFile(new URL(file, REPO)),
      new RegExp(`defineServeScenario\\("${backend}"\\)`),
    );
  }
  const packages = indexOfStep(
    job,
    (s) => s.run?.includes("scripts/package.sh") ?? false,
    "scripts/package.sh",
  );
  const packaging = runOf(job, packages);
  assert.ok(
    packaging.includes(
      `bash scripts/package.sh --binary dist/${LINUX_X64} --version "$version" --arch amd64 --out dist`,
    ),
    packaging,
  );
  // The arm64 binary cannot run here: the x86_64 one prints the docs.
  assert.ok(
    packaging.includes(
      `bash scripts/package.sh --binary dist/${LINUX_ARM64} --docs-from dist/${LINUX_X64} --version "$version" --arch arm64 --out dist`,
    ),
    packaging,
  );
  const sums = indexOfStep(
    job,
    (s) => s.run?.includes(">> SHA256SUMS") ?? false,
    "adding the packages to SHA256SUMS",
  );
  assert.equal(job.steps[sums]["working-directory"], "dist");
  assert.match(
    runOf(job, sums),
    /^sha256sum openme_\*\.deb openme-\*\.rpm >> SHA256SUMS$/m,
  );
  assert.match(runOf(job, sums), /^sha256sum -c SHA256SUMS$/m);
  const installDeb = indexOfStep(
    job,
    (s) => s.run?.includes("apt-get install") ?? false,
    "installing the .deb",
  );
  for (
    const line of [
      'sudo apt-get install -y "./dist/openme_${version}_amd64.deb"',
      'openme --version | grep -F "openme $version"',
      "man -w openme",
    ]
  ) {
    assert.ok(runOf(job, installDeb).split("\n").includes(line), line);
  }
  const attest = usesStep(job, "actions/attest-build-provenance");
  const upload = usesStep(job, "softprops/action-gh-release");
  assert.ok(
    compile < e2e && e2e < packages && packages < sums && sums < installDeb &&
      installDeb < attest && attest < upload,
    "steps out of order",
  );
  const files = (step: number, key: string): string[] =>
    String(job.steps[step].with?.[key] ?? "").split("\n").map((l) => l.trim())
      .filter((l) => l !== "");
  // What is attested is what is published.
  assert.deepEqual(files(upload, "files"), ["dist/*", "install.sh"]);
  assert.deepEqual(files(attest, "subject-path"), files(upload, "files"));
  assert.equal(job.steps[upload].with?.fail_on_unmatched_files, true);
});

Deno.test("release.yml: `deno task compile` runs scripts/compile.ts, which without arguments builds every target", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("deno.json", REPO)),
  );
  assert.match(config.tasks.compile, /scripts\/compile\.ts$/);
  // release.yml runs it without arguments. (Which assets install.sh
  // downloads from those targets is tested in install_test.ts.)
  assert.deepEqual(parseCompileArgs([]).targets, TARGETS);
});

Deno.test("ci.yml: on push and pull_request, runs .ci/run as root", async () => {
  const workflow = await loadWorkflow("ci.yml");
  assert.deepEqual(workflow.on, ["push", "pull_request"]);
  const job = onlyJob(workflow);
  assertSetup(job);
  await assertRunStepsParse(job);
  const run = job
    .steps[
      indexOfStep(job, (s) => s.run?.includes(".ci/run") ?? false, ".ci/run")
    ];
  assert.match(run.run ?? "", /^sudo -E .*bash \.ci\/run$/);
});

Deno.test("OPENME_BIN makes the end-to-end tests run that binary instead of main.ts", () => {
  const before = Deno.env.get("OPENME_BIN");
  try {
    Deno.env.delete("OPENME_BIN");
    assert.deepEqual(openmeCommand(["--version"]).slice(-2), [
      MAIN_TS,
      "--version",
    ]);
    Deno.env.set("OPENME_BIN", "/opt/openme-under-test");
    assert.deepEqual(openmeCommand(["knock", "--check"]), [
      "/opt/openme-under-test",
      "knock",
      "--check",
    ]);
  } finally {
    if (before === undefined) Deno.env.delete("OPENME_BIN");
    else Deno.env.set("OPENME_BIN", before);
  }
});
