/**
 * A/B comparison of server CPU per datagram between two checkouts, as root:
 * `deno run -A bench/cpu_ab.ts OTHER_CHECKOUT [rounds] [load...]`.
 *
 * Runs the loads of `bench/server_load.ts cpu` (same rate, sources and
 * measurement) against `openme serve` from OTHER_CHECKOUT ("A") and from this
 * checkout ("B"), alternating A and B for each load and round, in one
 * testbed, so both see the same machine load. Loads: `junk40`, `junk165`
 * (200 sources), `refresh` (valid knocks from 200 sources, info),
 * `refresh-warn` (same with `--log-level warn`); default all. Prints a
 * Markdown table of the medians and every single figure.
 *
 * @module
 */

import { CLIENT_V4, CLIENT_V4_ALT, MAIN_TS } from "../scripts/testbed.ts";
import {
  cpuPerDatagram,
  idleCpuRate,
  type LoadKind,
  median,
  ServerBed,
  sourceAddresses,
} from "./harness.ts";

/** Steady rate, as in `bench/server_load.ts cpu`. */
const CPU_RATE = 1500;
/** Seconds of load per measurement. */
const DURATION_MS = 3000;
/** Extra `deno run` flags for the servers, from OPENME_AB_DENO_FLAGS (space-separated; e.g. `--cpu-prof --cpu-prof-dir=DIR`). */
const DENO_FLAGS = (Deno.env.get("OPENME_AB_DENO_FLAGS") ?? "").split(" ")
  .filter((flag) => flag !== "");
/** Sources of the many-source loads. */
const MANY_SOURCES = 200;
/** How long the server's idle CPU use is measured before each load. */
const IDLE_MS = 1000;

interface Plan {
  kind: LoadKind;
  sources: string[];
  target: string | null;
  prime: boolean;
  logLevel: "info" | "warn";
}

async function measure(
  sb: ServerBed,
  mainTs: string,
  plan: Plan,
): Promise<number> {
  const server = await sb.startServer({
    logLevel: plan.logLevel,
    mainTs,
    denoFlags: DENO_FLAGS,
  });
  try {
    const idle = await idleCpuRate(server.pid, IDLE_MS);
    const measured = await cpuPerDatagram(sb, server.pid, idle, {
      ...sb.loadSpec(plan.kind, {
        rate: CPU_RATE,
        durationMs: DURATION_MS,
        sources: plan.sources,
      }),
      target: plan.target,
      prime: plan.prime,
    });
    return measured.usPerDatagram;
  } finally {
    await server.proc.stop("SIGTERM");
  }
}

async function main(): Promise<void> {
  const other = Deno.args[0];
  if (other === undefined) {
    throw new Error("usage: cpu_ab.ts OTHER_CHECKOUT [rounds] [load...]");
  }
  const rounds = Number(Deno.args[1] ?? 3);
  const many = sourceAddresses(MANY_SOURCES);
  const plans: Record<string, Plan> = {
    junk40: {
      kind: "short",
      sources: [CLIENT_V4_ALT],
      target: null,
      prime: false,
      logLevel: "info",
    },
    junk165: {
      kind: "junk165",
      sources: many,
      target: null,
      prime: false,
      logLevel: "info",
    },
    refresh: {
      kind: "valid",
      sources: many,
      target: CLIENT_V4,
      prime: true,
      logLevel: "info",
    },
    "refresh-warn": {
      kind: "valid",
      sources: many,
      target: CLIENT_V4,
      prime: true,
      logLevel: "warn",
    },
  };
  const names = Deno.args.length > 2 ? Deno.args.slice(2) : Object.keys(plans);
  const mains = {
    A: `${other.replace(/\/$/, "")}/main.ts`,
    B: MAIN_TS,
  };
  const sb = await ServerBed.create({ prefix: "om-ab" });
  const figures: Record<string, { A: number[]; B: number[] }> = {};
  try {
    await sb.addClientAddresses(many);
    for (let round = 0; round < rounds; round++) {
      for (const name of names) {
        const plan = plans[name];
        if (plan === undefined) throw new Error(`unknown load ${name}`);
        figures[name] ??= { A: [], B: [] };
        // Alternate which side goes first from round to round.
        const order: ("A" | "B")[] = round % 2 === 0 ? ["A", "B"] : ["B", "A"];
        for (const side of order) {
          const us = await measure(sb, mains[side], plan);
          figures[name][side].push(us);
          console.error(`[cpu_ab] ${name} ${side}: ${us.toFixed(1)} µs`);
        }
      }
    }
  } finally {
    await sb.destroy();
  }
  console.log(`A = ${mains.A}, B = ${mains.B}, ${rounds} rounds\n`);
  console.log("| load | A median µs | B median µs | A all | B all |");
  console.log("|---|---:|---:|---|---|");
  for (const [name, f] of Object.entries(figures)) {
    console.log(
      `| ${name} | ${median(f.A).toFixed(1)} | ${median(f.B).toFixed(1)} | ${
        f.A.map((v) => v.toFixed(0)).join(" ")
      } | ${f.B.map((v) => v.toFixed(0)).join(" ")} |`,
    );
  }
}

if (import.meta.main) {
  await main();
}
