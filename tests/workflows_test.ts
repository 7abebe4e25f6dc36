/**
 * Tests of the GitHub workflows: they parse as YAML, the release builds every
 * target with `deno task compile` and uploads dist/*, CI runs .ci/run as root.
 */

import assert from "node:assert/strict";
import YAML from "yaml";
import { parseCompileArgs, TARGETS } from "../scripts/compile.ts";

const REPO = new URL("..", import.meta.url);
const TIMEOUT_MS = 30_000;

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
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

/** Checks what every workflow shares: checkout first, Deno pinned to ours. */
function assertSetup(job: Job): void {
  assert.equal(job["runs-on"], "ubuntu-latest");
  assert.match(job.steps[0].uses ?? "", /^actions\/checkout@v\d+$/);
  const deno = job
    .steps[
      indexOfStep(job, (s) => s.uses === "denoland/setup-deno@v2", "setup-deno")
    ];
  assert.equal(deno.with?.["deno-version"], `v${Deno.version.deno}`);
  for (const step of job.steps) {
    assert.ok(
      (step.uses === undefined) !== (step.run === undefined),
      JSON.stringify(step),
    );
    if (step.uses !== undefined) {
      assert.match(step.uses, /@v\d+$/, "actions are pinned");
    }
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

Deno.test("release.yml: on a v* tag, builds with `deno task compile` and uploads dist/*", async () => {
  const workflow = await loadWorkflow("release.yml");
  assert.deepEqual(workflow.on, { push: { tags: ["v*"] } });
  assert.deepEqual(workflow.permissions, { contents: "write" });
  const job = onlyJob(workflow);
  assertSetup(job);
  await assertRunStepsParse(job);

  const compile = indexOfStep(
    job,
    (s) => s.run?.trim() === "deno task compile",
    "deno task compile",
  );
  const upload = indexOfStep(
    job,
    (s) => s.uses === "softprops/action-gh-release@v2",
    "softprops/action-gh-release@v2",
  );
  assert.ok(compile < upload);
  const files = String(job.steps[upload].with?.files ?? "").split("\n").map((
    l,
  ) => l.trim());
  assert.ok(files.includes("dist/*"), `files: ${files}`);
  assert.ok(
    files.includes("install.sh"),
    "the README's curl | sh URL points at the release's install.sh",
  );
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
