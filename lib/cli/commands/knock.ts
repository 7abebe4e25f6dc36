/**
 * `openme knock`: one knock, one every interval (`--continuous`), or one per
 * profile at once, then optionally the health check and `post_knock`.
 *
 * @module
 */

import { setTimeout as delay } from "node:timers/promises";
import { checkHealth } from "../../client/health_check.ts";
import {
  formatServerAddress,
  type KnockOptions,
  type KnockReport,
  knockServer,
} from "../../client/knock.ts";
import { runPostKnock } from "../../client/post_knock.ts";
import type { ClientProfile } from "../../config/client_config.ts";
import { formatDuration, parseDuration } from "../../config/duration.ts";
import { parseIp } from "../../ip.ts";
import { selectProfiles } from "../client_profile.ts";
import {
  type CliIo,
  CommandError,
  type ParsedCommand,
  UsageError,
} from "../io.ts";
import { formatRfc3339 } from "../../time.ts";

/** Default time between knocks with `--continuous`. */
const DEFAULT_INTERVAL_MS = 25_000;

/** Shortest interval accepted with `--continuous`. */
const MIN_INTERVAL_MS = 1_000;

/** Longest interval accepted with `--continuous` (a day). */
const MAX_INTERVAL_MS = 24 * 60 * 60 * 1000;

interface KnockFlags extends KnockOptions {
  intervalMs: number;
  check: boolean;
}

function parseFlags(parsed: ParsedCommand): KnockFlags {
  const v = parsed.values;
  const target = typeof v.ip === "string" ? parseIp(v.ip) : null;
  if (typeof v.ip === "string" && target === null) {
    throw new UsageError(
      `--ip "${v.ip}" is not an IP address (e.g. 198.51.100.20 or 2001:db8::20)`,
    );
  }
  if (v.ipv4 === true && v.ipv6 === true) {
    throw new UsageError("-4 and -6 exclude each other");
  }
  if (typeof v.interval === "string" && v.continuous !== true) {
    throw new UsageError("--interval goes with --continuous");
  }
  const intervalMs = typeof v.interval === "string"
    ? parseDuration(v.interval)
    : DEFAULT_INTERVAL_MS;
  if (
    intervalMs === null || intervalMs < MIN_INTERVAL_MS ||
    intervalMs > MAX_INTERVAL_MS
  ) {
    throw new UsageError(
      `--interval "${v.interval}" is not a duration between 1s and 24h (e.g. 25s, 1m)`,
    );
  }
  const family = v.ipv4 === true ? 4 : v.ipv6 === true ? 6 : null;
  return { target, family, intervalMs, check: v.check === true };
}

/** "host (addr:port, [addr6]:port) to open for 198.51.100.20": what one knock did. */
function describe(profile: ClientProfile, report: KnockReport): string {
  const where = report.sent.map((k) => formatServerAddress(k.to, k.port))
    .join(", ");
  const literal = report.sent.length === 1 &&
    report.sent[0].to.address === profile.serverHost.replace(/^\[|\]$/g, "");
  const target = report.sent[0]?.target ?? null;
  return (literal ? where : `${profile.serverHost} (${where})`) +
    (target !== null ? ` to open for ${target.text}` : "");
}

/** Knocks, says where (lines start with prefix) and, with --check, whether the health port opened; false when it did not. */
async function knockAndCheck(
  profile: ClientProfile,
  flags: KnockFlags,
  io: CliIo,
  prefix: string,
  signal?: AbortSignal,
): Promise<boolean> {
  const report = await knockServer(profile, {
    ...flags,
    target: flags.target ?? profile.targetIp,
  });
  for (const failure of report.failures) {
    io.err(`${prefix}openme: warning: ${failure}`);
  }
  io.out(`${prefix}knocked ${describe(profile, report)}`);
  if (!flags.check || signal?.aborted) return true;
  const port = profile.serverUdpPort;
  const addresses = report.sent.map((k) => k.to);
  const result = await checkHealth(addresses, port, { poll: true, signal });
  const ms = Math.round(result.elapsedMs);
  if (result.ok) {
    const at = formatServerAddress(result.address, port);
    io.out(`✓ health port tcp ${at} open after ${ms} ms`);
    return true;
  }
  if (result.reason === "aborted") return false;
  const where = addresses.map((a) => formatServerAddress(a, port)).join(" or ");
  io.out(
    `✗ health port tcp ${where} still closed after ${ms} ms (${result.reason}): ` +
      `check that the server runs (\`journalctl -u openme\` there), that UDP ${port} reaches it ` +
      `(router port forwarding, firewall), and that this profile's keys match the server (\`openme profiles ${profile.name}\`)`,
  );
  return false;
}

/** Knocks every interval until SIGINT or SIGTERM; a failed knock is reported and retried. */
async function knockContinuously(
  profile: ClientProfile,
  flags: KnockFlags,
  io: CliIo,
): Promise<number> {
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT"]
    : ["SIGINT", "SIGTERM"];
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  for (const signal of signals) Deno.addSignalListener(signal, onSignal);
  const every = formatDuration(flags.intervalMs);
  io.out(`knocking ${profile.name} every ${every}; Ctrl-C to stop`);
  if (profile.postKnock !== null) {
    io.err(
      `openme: post_knock of profile ${profile.name} is not run with --continuous (run it yourself, or knock once without --continuous)`,
    );
  }
  try {
    while (!stop.signal.aborted) {
      const at = formatRfc3339(Date.now());
      await knockAndCheck(profile, flags, io, `${at} `, stop.signal).catch(
        (err) =>
          io.err(`${at} knock failed: ${err.message} (retrying in ${every})`),
      );
      await delay(flags.intervalMs, null, { signal: stop.signal }).catch(
        () => {},
      );
    }
  } finally {
    for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
  }
  io.out(`${formatRfc3339(Date.now())} stopped`);
  return 0;
}

/** Knocks every profile at once and prints one line each (post_knock is not run); 1 when any failed. */
async function knockSeveral(
  profiles: ClientProfile[],
  flags: KnockFlags,
  io: CliIo,
): Promise<number> {
  const results = await Promise.all(profiles.map(async (profile) => {
    const lines: string[] = [];
    const push = (text: string): number => lines.push(text);
    const into = { out: push, err: push };
    const ok = await knockAndCheck(profile, flags, into, "").catch((err) => {
      lines.push(`knock failed: ${err.message}`);
      return false;
    });
    return {
      ok,
      line: `${ok ? "✓" : "✗"} ${profile.name}: ${lines.join("; ")}`,
    };
  }));
  for (const result of results) io.out(result.line);
  const failed = profiles.filter((_, i) => !results[i].ok);
  if (failed.length === 0) return 0;
  const names = failed.map((p) => p.name).join(", ");
  io.err(
    `openme: ${failed.length} of ${profiles.length} profiles failed: ${names}`,
  );
  return 1;
}

/** Runs `openme knock`. */
export async function runKnockCommand(
  parsed: ParsedCommand,
  io: CliIo,
): Promise<number> {
  const flags = parseFlags(parsed);
  const names = parsed.positionals;
  const all = parsed.values.all === true;
  const continuous = parsed.values.continuous === true;
  if (all && names.length > 0) {
    throw new UsageError("--all knocks every profile: name none");
  }
  if (continuous && (all || names.length > 1)) {
    throw new UsageError("--continuous knocks a single profile");
  }
  const { config, profiles } = await selectProfiles(parsed, names, all);
  if (profiles.length > 1 || all) {
    return await knockSeveral(profiles, flags, io);
  }
  const profile = profiles[0];
  if (continuous) return await knockContinuously(profile, flags, io);
  if (!await knockAndCheck(profile, flags, io, "")) return 1;
  if (profile.postKnock === null || profile.postKnock === "") return 0;
  if (config.postKnockRefusal !== null) {
    throw new CommandError(
      `post_knock of profile ${profile.name} not run: ${config.path}: ${config.postKnockRefusal}, so another user could have put a command there (the knock was sent)`,
    );
  }
  try {
    return await runPostKnock(profile.postKnock, {
      profile: profile.name,
      server: profile.serverHost,
      port: profile.serverUdpPort,
    });
  } catch (err) {
    throw new CommandError(
      `${
        (err as Error).message
      } (the knock was sent; fix post_knock in profile ${profile.name})`,
    );
  }
}
