/**
 * Start-up of `openme knock` from source, beside an empty `deno run`, against
 * a local UDP sink; needs neither root nor a firewall:
 *
 * `deno run -A bench/knock_startup.ts [--runs=N] [--hyperfine]`
 *
 * Writes a server config (`openme init --server 127.0.0.1 --port P`) and a
 * client config (`openme add`) into a temporary directory, binds a UDP sink on
 * 127.0.0.1:P in this process (it counts the knocks and answers nothing), and
 * times each command N times (default 20) after one unmeasured run, the
 * commands alternating: an empty script under `deno run --allow-all`,
 * `deno task openme --client-config FILE knock` (from the checkout) and the
 * `deno run --allow-all main.ts ...` that task runs. With `--hyperfine` the
 * runs are made and timed by `hyperfine -N` (it must be on PATH) instead.
 * Prints a Markdown table (median, min, max) on standard output.
 *
 * @module
 */

import { createSocket } from "node:dgram";
import { MAIN_TS, REPO_DIR, runOk } from "../scripts/testbed.ts";
import { median } from "./harness.ts";

/** One command of the table. */
interface StartupCommand {
  label: string;
  argv: string[];
}

/** The times of one command, ms. */
export interface StartupTimes {
  label: string;
  times: number[];
}

function fmt(value: number): string {
  return value.toFixed(1);
}

async function timeOnce(argv: string[]): Promise<number> {
  const started = performance.now();
  const result = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: REPO_DIR,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const elapsed = performance.now() - started;
  if (!result.success) {
    throw new Error(
      `${argv.join(" ")} exited ${result.code}: ${
        new TextDecoder().decode(result.stderr)
      }`,
    );
  }
  return elapsed;
}

/** Times each command `runs` times, alternating, after one unmeasured run each. */
async function timeAlternating(
  commands: StartupCommand[],
  runs: number,
): Promise<StartupTimes[]> {
  for (const command of commands) await timeOnce(command.argv);
  const results = commands.map((c) => ({
    label: c.label,
    times: [] as number[],
  }));
  for (let i = 0; i < runs; i++) {
    for (const [index, command] of commands.entries()) {
      results[index].times.push(await timeOnce(command.argv));
    }
  }
  return results;
}

/** Has `hyperfine -N` make and time the runs; returns each run's wall time. */
async function timeWithHyperfine(
  commands: StartupCommand[],
  runs: number,
  dir: string,
): Promise<StartupTimes[]> {
  const exported = `${dir}/hyperfine.json`;
  const args = ["-N", "--warmup", "1", "--runs", String(runs)];
  args.push("--export-json", exported);
  for (const command of commands) {
    args.push("-n", command.label, command.argv.join(" "));
  }
  const result = await new Deno.Command("hyperfine", {
    args,
    cwd: REPO_DIR,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!result.success) throw new Error(`hyperfine exited ${result.code}`);
  const report = JSON.parse(await Deno.readTextFile(exported)) as {
    results: { command: string; times: number[] }[];
  };
  return report.results.map((r) => ({
    label: r.command,
    times: r.times.map((seconds) => seconds * 1000),
  }));
}

/** Measures knock start-up against a local UDP sink; returns the times and the Markdown table. */
export async function measureStartup(
  options: { runs: number; hyperfine: boolean },
): Promise<{ results: StartupTimes[]; table: string }> {
  const dir = await Deno.makeTempDir({ prefix: "openme-bench-startup-" });
  const sink = createSocket("udp4");
  let received = 0;
  sink.on("message", () => received++);
  try {
    const port = await new Promise<number>((resolve, reject) => {
      sink.once("error", reject);
      sink.bind(
        { address: "127.0.0.1", port: 0 },
        () => resolve(sink.address().port),
      );
    });
    const openme = ["deno", "run", "--allow-all", MAIN_TS];
    const serverConfig = `${dir}/config.yaml`;
    const clientConfig = `${dir}/client.yaml`;
    await runOk([...openme, "--config", serverConfig, "init"].concat([
      "--server",
      "127.0.0.1",
      "--port",
      String(port),
    ]));
    const added = await runOk([
      ...openme,
      "--config",
      serverConfig,
      "add",
      "a",
    ]);
    await Deno.writeTextFile(clientConfig, added.stdout, { mode: 0o600 });
    const empty = `${dir}/empty.ts`;
    await Deno.writeTextFile(empty, "// intentionally empty\n");
    const knockArgs = ["--client-config", clientConfig, "knock"];
    const commands: StartupCommand[] = [
      {
        label: "deno run of an empty script",
        argv: [...openme.slice(0, 3), empty],
      },
      {
        label: "deno task openme knock",
        argv: ["deno", "task", "-q", "openme", ...knockArgs],
      },
      { label: "deno run main.ts knock", argv: [...openme, ...knockArgs] },
    ];
    const results = options.hyperfine
      ? await timeWithHyperfine(commands, options.runs, dir)
      : await timeAlternating(commands, options.runs);
    // Each knock run sent one datagram (warm-up runs included).
    const knockRuns = 2 * (options.runs + 1);
    await new Promise((resolve) => setTimeout(resolve, 200));
    if (received < knockRuns) {
      throw new Error(`the sink got ${received} knocks, expected ${knockRuns}`);
    }
    const base = median(results[0].times);
    const lines = [
      `| command (${options.runs} runs, ${
        options.hyperfine ? "hyperfine -N" : "alternating"
      }) | median ms | min ms | max ms | × empty script |`,
      "|---|---:|---:|---:|---:|",
      ...results.map((r) =>
        `| ${r.label} | ${fmt(median(r.times))} | ${
          fmt(Math.min(...r.times))
        } | ${fmt(Math.max(...r.times))} | ${
          (median(r.times) / base).toFixed(2)
        } |`
      ),
    ];
    return { results, table: lines.join("\n") + "\n" };
  } finally {
    sink.close();
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const runsArg = Deno.args.find((a) => a.startsWith("--runs="));
  const runs = runsArg === undefined ? 20 : Number(runsArg.slice(7));
  const { table } = await measureStartup({
    runs,
    hyperfine: Deno.args.includes("--hyperfine"),
  });
  console.log(table);
}
