/**
 * `openme knock`: one knock, or one every interval with `--continuous`;
 * `--check` waits for the health port; `post_knock` runs afterwards.
 *
 * @module
 */

import {
  formatServerAddress,
  type KnockReport,
  knockServer,
  type ServerAddress,
} from "../../client/knock.ts";
import { runPostKnock } from "../../client/post_knock.ts";
import type { ClientProfile } from "../../config/client_config.ts";
import { formatDuration, parseDuration } from "../../config/duration.ts";
import { type IpAddress, parseIp } from "../../ip.ts";
import { selectProfile } from "../client_profile.ts";
import { CommandError, UsageError } from "../errors.ts";
import type { CliIo, ParsedCommand } from "../io.ts";
import { formatRfc3339 } from "../../time.ts";

/** Default time between knocks with `--continuous`. */
export const DEFAULT_INTERVAL_MS = 25_000;

/** Shortest interval accepted with `--continuous`. */
export const MIN_INTERVAL_MS = 1_000;

/** Longest interval accepted with `--continuous` (a day). */
export const MAX_INTERVAL_MS = 24 * 60 * 60 * 1000;

interface KnockFlags {
  target: IpAddress | null;
  family: 4 | 6 | null;
  intervalMs: number;
}

function parseFlags(parsed: ParsedCommand): KnockFlags {
  const v = parsed.values;
  let target: IpAddress | null = null;
  if (typeof v.ip === "string") {
    target = parseIp(v.ip);
    if (target === null) {
      throw new UsageError(
        `--ip "${v.ip}" is not an IP address (e.g. 198.51.100.20 or 2001:db8::20)`,
        "knock",
      );
    }
  }
  if (v.ipv4 === true && v.ipv6 === true) {
    throw new UsageError("-4 and -6 exclude each other", "knock");
  }
  const family = v.ipv4 === true ? 4 : v.ipv6 === true ? 6 : null;
  let intervalMs = DEFAULT_INTERVAL_MS;
  if (typeof v.interval === "string") {
    if (v.continuous !== true) {
      throw new UsageError("--interval goes with --continuous", "knock");
    }
    const ms = parseDuration(v.interval);
    if (ms === null || ms < MIN_INTERVAL_MS || ms > MAX_INTERVAL_MS) {
      throw new UsageError(
        `--interval "${v.interval}" is not a duration between 1s and 24h (e.g. 25s, 1m)`,
        "knock",
      );
    }
    intervalMs = ms;
  }
  return { target, family, intervalMs };
}

/** "host (addr:port, [addr6]:port) for 198.51.100.20" — what one knock round did. */
function describe(profile: ClientProfile, report: KnockReport): string {
  const where = report.sent.map((k) => formatServerAddress(k.to, k.port)).join(
    ", ",
  );
  const literal = report.sent.length === 1 &&
    report.sent[0].to.address === profile.serverHost.replace(/^\[|\]$/g, "");
  const target = report.sent[0]?.target ?? null;
  return (literal ? where : `${profile.serverHost} (${where})`) +
    (target !== null ? ` to open for ${target.text}` : "");
}

function timestamp(): string {
  return formatRfc3339(Date.now());
}

async function checkAfterKnock(
  profile: ClientProfile,
  addresses: ServerAddress[],
  io: CliIo,
  signal?: AbortSignal,
): Promise<boolean> {
  const port = profile.serverUdpPort;
  // Loaded only with --check: it needs node:net, which slows start-up.
  const { checkHealth, STATUS_TIMEOUT_MS } = await import(
    "../../client/health_check.ts"
  );
  const result = await checkHealth(addresses, port, {
    poll: true,
    timeoutMs: STATUS_TIMEOUT_MS,
    signal,
  });
  const ms = Math.round(result.elapsedMs);
  if (result.ok) {
    io.out(
      `✓ health port tcp ${
        formatServerAddress(result.address, port)
      } open after ${ms} ms`,
    );
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

async function knockOnce(
  profile: ClientProfile,
  flags: KnockFlags,
  io: CliIo,
  prefix: string,
): Promise<KnockReport> {
  const report = await knockServer(profile, {
    target: flags.target,
    family: flags.family,
  });
  for (const failure of report.failures) {
    io.err(`${prefix}openme: warning: ${failure}`);
  }
  return report;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

async function runContinuous(
  profile: ClientProfile,
  flags: KnockFlags,
  check: boolean,
  io: CliIo,
): Promise<number> {
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", onSignal);
  const every = formatDuration(flags.intervalMs);
  io.out(`knocking ${profile.name} every ${every}; Ctrl-C to stop`);
  if (profile.postKnock !== null) {
    io.err(
      `openme: post_knock of profile ${profile.name} is not run with --continuous (run it yourself, or knock once without --continuous)`,
    );
  }
  try {
    while (!stop.signal.aborted) {
      const at = timestamp();
      try {
        const report = await knockOnce(profile, flags, io, `${at} `);
        io.out(`${at} knocked ${describe(profile, report)}`);
        if (check && !stop.signal.aborted) {
          await checkAfterKnock(
            profile,
            report.sent.map((k) => k.to),
            io,
            stop.signal,
          );
        }
      } catch (err) {
        io.err(
          `${at} knock failed: ${
            (err as Error).message
          } (retrying in ${every})`,
        );
      }
      await sleep(flags.intervalMs, stop.signal);
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    if (Deno.build.os !== "windows") {
      Deno.removeSignalListener("SIGTERM", onSignal);
    }
  }
  io.out(`${timestamp()} stopped`);
  return 0;
}

/** Runs `openme knock`. */
export async function runKnockCommand(
  parsed: ParsedCommand,
  io: CliIo,
): Promise<number> {
  const flags = parseFlags(parsed);
  const profile = await selectProfile(parsed, parsed.positionals[0]);
  const check = parsed.values.check === true;
  if (parsed.values.continuous === true) {
    return await runContinuous(profile, flags, check, io);
  }
  let report: KnockReport;
  try {
    report = await knockOnce(profile, flags, io, "");
  } catch (err) {
    throw new CommandError((err as Error).message);
  }
  io.out(`knocked ${describe(profile, report)}`);
  if (check) {
    const ok = await checkAfterKnock(profile, report.sent.map((k) => k.to), io);
    if (!ok) return 1;
  }
  if (profile.postKnock !== null && profile.postKnock !== "") {
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
  return 0;
}
