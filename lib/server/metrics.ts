/**
 * The metrics file (`metrics_file`): the server's counters in the Prometheus
 * text format, for node_exporter's textfile collector, so no port listens.
 *
 * @module
 */

import denoConfig from "../../deno.json" with { type: "json" };
import { FIREWALL_BUCKETS_SECONDS, type KnockStats } from "./stats.ts";

/** Default interval of the metrics file's rewrite. */
export const METRICS_INTERVAL_MS = 15_000;

/** What the metrics file shows besides the counters. */
export interface MetricsInput {
  /** Firewall backend name. */
  backend: string;
  /** When the process started, in seconds since the epoch. */
  startTimeSeconds: number;
  /** Sessions open now. */
  openSessions: number;
}

/** Type and help text of each metric, in the file's order. */
// deno-fmt-ignore
const METRICS = {
  openme_datagrams_total: ["counter", "Datagrams by outcome and drop reason."],
  openme_knocks_accepted_total: ["counter", "Accepted knocks by client."],
  openme_open_sessions: ["gauge", "Sessions open now."],
  openme_firewall_operations_total: ["counter", "Firewall operations by result."],
  openme_firewall_operation_duration_seconds: ["histogram", "How long firewall operations took."],
  openme_kernel_gate_drops_total: ["counter", "Datagrams the kernel gate dropped, by reason."],
  openme_config_reloads_total: ["counter", "Config reloads by result."],
  openme_build_info: ["gauge", "Version and firewall backend."],
  openme_start_time_seconds: ["gauge", "When the server started, in seconds since the epoch."],
} as const;

/** Labels, value, and the suffix of the name (histogram series). */
type Sample = [labels: Record<string, string>, value: number, suffix?: string];

/** The metrics file's text for the counters and the input. */
export function renderMetrics(stats: KnockStats, input: MetricsInput): string {
  const datagrams: Sample[] = [[{ outcome: "accepted" }, stats.accepted]];
  for (const [reason, count] of Object.entries(stats.drops())) {
    datagrams.push([{ outcome: "dropped", reason }, count]);
  }
  const operations: Sample[] = [];
  const durations: Sample[] = [];
  for (const [operation, op] of stats.firewall) {
    operations.push([{ operation, result: "ok" }, op.ok]);
    operations.push([{ operation, result: "error" }, op.error]);
    for (const [i, bound] of FIREWALL_BUCKETS_SECONDS.entries()) {
      durations.push([{ operation, le: `${bound}` }, op.buckets[i], "_bucket"]);
    }
    const count = op.ok + op.error;
    durations.push([{ operation, le: "+Inf" }, count, "_bucket"]);
    durations.push([{ operation }, op.sumSeconds, "_sum"]);
    durations.push([{ operation }, count, "_count"]);
  }
  const samples: Record<keyof typeof METRICS, Sample[]> = {
    openme_datagrams_total: datagrams,
    openme_knocks_accepted_total: [...stats.acceptedBy]
      .map(([client, count]) => [{ client }, count]),
    openme_open_sessions: [[{}, input.openSessions]],
    openme_firewall_operations_total: operations,
    openme_firewall_operation_duration_seconds: durations,
    openme_kernel_gate_drops_total: Object.entries(stats.kernelDrops ?? {})
      .map(([reason, count]) => [{ reason }, count]),
    openme_config_reloads_total: Object.entries(stats.reloads)
      .map(([result, count]) => [{ result }, count]),
    openme_build_info: [[{
      version: denoConfig.version,
      backend: input.backend,
    }, 1]],
    openme_start_time_seconds: [[{}, input.startTimeSeconds]],
  };
  const lines: string[] = [];
  for (const [name, list] of Object.entries(samples)) {
    if (list.length === 0) continue;
    const [type, help] = METRICS[name as keyof typeof METRICS];
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value, suffix = ""] of list) {
      const pairs = Object.entries(labels).map(([key, text]) =>
        `${key}="${escapeLabel(text)}"`
      ).join(",");
      lines.push(`${name}${suffix}${pairs && `{${pairs}}`} ${value}`);
    }
  }
  return lines.join("\n") + "\n";
}

/** A label value as the text format writes it: backslash, double quote and line feed escaped. */
function escapeLabel(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll('"', '\\"')
    .replaceAll("\n", "\\n");
}
