/**
 * `openme knock`: one knock, or one every interval with `--continuous`;
 * `--check` waits for the health port; `post_knock` runs afterwards.
 *
 * @module
 */

import { checkHealth } from "../client/health_check.ts";
import {
  type KnockReport,
  knockServer,
  type ServerAddress,
} from "../client/knock.ts";
import { runPostKnock } from "../client/post_knock.ts";
import type { ClientProfile } from "../config/client_config.ts";
import { parseDuration } from "../config/duration.ts";
import { type IpAddress, parseIp } from "../ip.ts";
import { selectProfile } from "./client_profile.ts";
import { CommandError, UsageError } from "./errors.ts";
import type { CliIo, ParsedCommand } from "./mod.ts";

/** Default time between knocks with `--continuous`. */
export const DEFAULT_INTERVAL_MS = 25_000;

/** Shortest interval accepted with `--continuous`. */
export const MIN_INTERVAL_MS = 1_000;

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
    if (ms === null || ms < MIN_INTERVAL_MS) {
      throw new UsageError(
        `--interval "${v.interval}" is not a duration of at least 1s (e.g. 25s, 1m)`,
        "knock",
      );
    }
    intervalMs = ms;
  }
  return { target, family, intervalMs };
}

function describe(report: KnockReport): string {
  return report.sent.map((k) =>
    `${k.to.family === 6 ? `[${k.to.address}]` : k.to.address}:${k.port}` +
    (k.target !== null ? ` (open for ${k.target.text})` : "")
  ).join(", ");
}

function timestamp(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
}

async function checkAfterKnock(
  profile: ClientProfile,
  addresses: ServerAddress[],
  io: CliIo,
): Promise<boolean> {
  const result = await checkHealth(addresses, profile.serverUdpPort, {
    poll: true,
  });
  if (result.ok) {
    io.out(
      `✓ ${profile.serverHost} health port open (${
        Math.round(result.elapsedMs)
      } ms)`,
    );
  } else {
    io.out(
      `✗ ${profile.serverHost} health port still closed after ${
        Math.round(result.elapsedMs)
      } ms (${result.reason}): check the server log (\`journalctl -u openme\`), the profile's keys, and that UDP ${profile.serverUdpPort} reaches the server`,
    );
  }
  return result.ok;
}

async function knockOnce(
  profile: ClientProfile,
  flags: KnockFlags,
  io: CliIo,
): Promise<KnockReport> {
  const report = await knockServer(profile, {
    target: flags.target,
    family: flags.family,
  });
  for (const failure of report.failures) io.err(`openme: warning: ${failure}`);
  return report;
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
  io.out(
    `knocking ${profile.name} every ${
      flags.intervalMs / 1000
    }s; Ctrl-C to stop`,
  );
  try {
    while (!stop.signal.aborted) {
      try {
        const report = await knockOnce(profile, flags, io);
        io.out(`${timestamp()} knocked ${describe(report)}`);
        if (check) {
          await checkAfterKnock(
            profile,
            report.sent.map((k) => k.to),
            io,
          );
        }
      } catch (err) {
        io.err(
          `${timestamp()} knock failed: ${
            (err as Error).message
          } (retrying in ${flags.intervalMs / 1000}s)`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, flags.intervalMs);
        stop.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    if (Deno.build.os !== "windows") {
      Deno.removeSignalListener("SIGTERM", onSignal);
    }
  }
  io.out("stopped");
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
    report = await knockOnce(profile, flags, io);
  } catch (err) {
    throw new CommandError((err as Error).message);
  }
  io.out(`knocked ${describe(report)}`);
  if (check) {
    const ok = await checkAfterKnock(profile, report.sent.map((k) => k.to), io);
    if (!ok) return 1;
  }
  if (profile.postKnock !== null && profile.postKnock !== "") {
    return await runPostKnock(profile.postKnock, {
      profile: profile.name,
      server: profile.serverHost,
      port: profile.serverUdpPort,
    });
  }
  return 0;
}
