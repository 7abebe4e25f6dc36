/**
 * `openme sessions`: open sessions, last-seen times and drop counters (the
 * kernel gate's too) from the server's state file.
 *
 * @module
 */

import { setTimeout as delay } from "node:timers/promises";
import {
  DEFAULT_STATE_FILE,
  readStateFile,
  type StateFile,
} from "../../server/state_file.ts";
import { type CliIo, formatTable, type ParsedCommand } from "../io.ts";

// renderSessions takes a StateFile.
export type {
  StateFile,
  StatePendingClose,
  StatePort,
  StateRules,
  StateSession,
} from "../../server/state_file.ts";

/** Refresh interval of `--watch`. */
const WATCH_INTERVAL_MS = 1000;

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

/** Renders the state file as the text `openme sessions` prints. */
export function renderSessions(state: StateFile, nowMs: number): string {
  const lines: string[] = [];
  if (state.active_sessions.length === 0) {
    lines.push("no active sessions");
  } else {
    const rows = [["CLIENT", "IP", "PORTS", "OPENED", "EXPIRES IN"]];
    for (const s of state.active_sessions) {
      const ports = s.ports.map((p) =>
        p.end_port !== undefined
          ? `${p.port}-${p.end_port}/${p.proto}`
          : `${p.port}/${p.proto}`
      ).join(",");
      rows.push([
        s.client_name,
        s.ip,
        ports,
        s.opened_at,
        ago(Date.parse(s.expires_at) - nowMs),
      ]);
    }
    lines.push(...formatTable(rows));
  }
  const active = new Set(state.active_sessions.map((s) => s.client_name));
  const seen = Object.entries(state.last_seen).filter(([name]) =>
    !active.has(name)
  );
  if (seen.length > 0) {
    lines.push("", "last seen:");
    for (const [name, at] of seen.sort()) {
      lines.push(
        `  ${name.padEnd(16)} ${at} (${ago(nowMs - Date.parse(at))} ago)`,
      );
    }
  }
  if (state.drops !== undefined || state.accepted !== undefined) {
    const drops = Object.entries(state.drops ?? {}).sort((a, b) => b[1] - a[1]);
    const total = drops.reduce((n, [, c]) => n + c, 0);
    lines.push(
      "",
      `accepted knocks: ${state.accepted ?? 0}; dropped datagrams: ${total}` +
        (drops.length > 0
          ? ` (${drops.map(([r, c]) => `${c} ${r}`).join(", ")})`
          : ""),
    );
  }
  const gate = state.kernel_drops;
  if (gate !== undefined) {
    lines.push(
      `dropped by the kernel's knock gate: ${
        gate.size + gate.version + gate.rate
      } (${gate.size} size, ${gate.version} version, ${gate.rate} rate)`,
    );
  }
  lines.push(`updated ${state.updated_at}`);
  return lines.join("\n");
}

/** Runs `openme sessions`. */
export async function runSessionsCommand(
  parsed: ParsedCommand,
  io: CliIo,
): Promise<number> {
  const path = typeof parsed.values["state-file"] === "string"
    ? parsed.values["state-file"]
    : DEFAULT_STATE_FILE;
  if (parsed.values.watch !== true) {
    io.out(renderSessions(await readStateFile(path), Date.now()));
    return 0;
  }
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  const clear = Deno.stdout.isTerminal() ? "\x1b[H\x1b[2J" : "";
  try {
    while (!stop.signal.aborted) {
      const text = await readStateFile(path).then(
        (state) => renderSessions(state, Date.now()),
        (err) => err.message,
      );
      io.out(clear + text);
      await delay(WATCH_INTERVAL_MS, null, { signal: stop.signal })
        .catch(() => {});
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
  }
  return 0;
}
