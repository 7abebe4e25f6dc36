/**
 * An operator reloads the firewall while `openme serve` runs (the real CLI,
 * as root, in two network namespaces under the README's default-deny
 * ruleset): `nft flush ruleset` + the base ruleset again, or
 * `iptables -F INPUT`. openme's periodic check must put its chain, jump and
 * knock rule back and re-open the open session (it runs every 5 s), so the
 * client's port works again without a new knock and new knocks arrive; a
 * SIGHUP runs the check at once. Skipped visibly without root or the tools.
 */
import assert from "node:assert/strict";
import {
  CLIENT_V4_ALT,
  type NsProcess,
  openmeCommand,
  SERVER_V4,
  Testbed,
  type TestbedBackend,
  testbedUnavailable,
  waitFor,
} from "../../scripts/testbed.ts";
import type { StateFile } from "../../lib/server/state_file.ts";

/** The protected port (the testbed's TCP listener). */
const SSH_PORT = 22;
/**
 * Deadline for anything the server should do soon (start, open a port, put
 * its rules back): generous, since other tests share the machine; the
 * slowest expected event, the periodic check every 5 s, fits in it ten times.
 */
const EVENT_TIMEOUT_MS = 60_000;
/** How many times the SIGHUP step may be tried (see there). */
const SIGHUP_ATTEMPTS = 3;

function countLines(text: string, pattern: RegExp): number {
  return text.split("\n").filter((line) => pattern.test(line)).length;
}

/** Removes openme's rules the way an operator's reload does. */
async function reloadFirewall(bed: Testbed): Promise<void> {
  if (bed.backend === "nft") {
    const flushed = await bed.exec(bed.serverNs, ["nft", "flush", "ruleset"]);
    assert.equal(flushed.code, 0, flushed.stderr);
    await bed.applyDefaultDeny();
    return;
  }
  const flushed = await bed.exec(bed.serverNs, [
    "iptables",
    "-w",
    "-F",
    "INPUT",
  ]);
  assert.equal(flushed.code, 0, flushed.stderr);
}

/** The debug line each firewall check writes first (its listing). */
function checkListingPattern(backend: TestbedBackend): RegExp {
  return backend === "nft"
    ? /^DEBUG firewall: running .*nft -t -j list table inet filter$/
    : /^DEBUG firewall: running .*iptables -w -v -S INPUT$/;
}

for (const backend of ["nft", "iptables"] as const) {
  const skip = testbedUnavailable(backend);
  if (skip !== null) {
    console.warn(
      `SKIP openme serve after a firewall reload (${backend}): ${skip}`,
    );
  }
  Deno.test({
    name:
      `${backend}: after the operator reloads the firewall, openme puts its rules back, re-opens the session and knocks work again`,
    ignore: skip !== null,
    fn: async () => {
      const bed = await Testbed.create({
        prefix: `om-fwr-${backend === "nft" ? "n" : "i"}`,
        backend,
      });
      const config = `${bed.dir}/config.yaml`;
      const stateFile = `${bed.dir}/sessions.json`;
      const profile = `${bed.dir}/alice.yaml`;
      let serve: NsProcess | null = null;
      const openme = (args: string[]) =>
        bed.openme(bed.serverNs, ["--config", config, ...args]);
      const knock = async (args: string[] = []) => {
        const result = await bed.openme(bed.clientNs, [
          "--client-config",
          profile,
          "knock",
          ...args,
        ]);
        assert.equal(result.code, 0, result.stderr);
      };
      const reachable = (from?: string, timeoutMs = 700) =>
        bed.tcpOpen(SERVER_V4, SSH_PORT, { timeoutMs, from });
      try {
        const init = await openme([
          "init",
          "--server",
          SERVER_V4,
          "--firewall",
          backend,
        ]);
        assert.equal(init.code, 0, init.stderr);
        const add = await openme(["add", "alice"]);
        assert.equal(add.code, 0, add.stderr);
        await Deno.writeTextFile(profile, add.stdout, { mode: 0o600 });

        const proc = bed.spawn(
          bed.serverNs,
          openmeCommand([
            "--config",
            config,
            "--log-level",
            "debug",
            "serve",
            "--state-file",
            stateFile,
          ]),
        );
        serve = proc;
        await waitFor(async () => {
          try {
            const state = JSON.parse(
              await Deno.readTextFile(stateFile),
            ) as StateFile;
            return state.pid === proc.child.pid;
          } catch {
            return false;
          }
        }, { timeoutMs: EVENT_TIMEOUT_MS, what: "openme serve to start" });

        await knock();
        await waitFor(() => reachable(), {
          timeoutMs: EVENT_TIMEOUT_MS,
          what: "port 22 open after the knock",
        });

        // 1. The periodic check.
        await reloadFirewall(bed);
        const left = backend === "nft"
          ? await bed.exec(bed.serverNs, ["nft", "list", "ruleset"])
          : await bed.exec(bed.serverNs, ["iptables", "-w", "-S", "INPUT"]);
        assert.ok(
          !left.stdout.includes("openme") ||
            countLines(proc.output(), /put back/) > 0,
          `the reload removed openme's rules:\n${left.stdout}`,
        );
        await waitFor(
          () => countLines(proc.output(), /^WARN {2}re-opened 22\/tcp/) === 1,
          {
            timeoutMs: EVENT_TIMEOUT_MS,
            intervalMs: 100,
            what: "the session re-opened by the periodic check",
          },
        );
        assert.match(
          proc.output(),
          /WARN {2}firewall: openme's rules were removed outside openme .*put back: .*\(periodic check\)/,
        );
        assert.equal(
          await reachable(undefined, EVENT_TIMEOUT_MS),
          true,
          "port 22 open without a knock",
        );
        await knock(["--ip", CLIENT_V4_ALT]);
        await waitFor(() => reachable(CLIENT_V4_ALT), {
          timeoutMs: EVENT_TIMEOUT_MS,
          what: "a new knock arriving and opening after the repair",
        });

        // 2. SIGHUP runs the check at once: reload right after a periodic
        // check (seen by its debug listing line), so the next one is ~5 s
        // off, and send SIGHUP. The repair names what ran the check; if the
        // machine was so slow that the next periodic check came first, the
        // SIGHUP found nothing to repair and the step is tried again.
        const listing = checkListingPattern(backend);
        const bySighup = /put back: .*\(SIGHUP\)$/;
        const byPeriodic = /put back: .*\(periodic check\)$/;
        for (let attempt = 1; attempt <= SIGHUP_ATTEMPTS; attempt++) {
          const checks = countLines(proc.output(), listing);
          const periodic = countLines(proc.output(), byPeriodic);
          await waitFor(() => countLines(proc.output(), listing) > checks, {
            timeoutMs: EVENT_TIMEOUT_MS,
            intervalMs: 20,
            what: "a periodic check",
          });
          await reloadFirewall(bed);
          proc.child.kill("SIGHUP");
          await waitFor(
            () =>
              countLines(proc.output(), bySighup) === 1 ||
              countLines(proc.output(), byPeriodic) > periodic,
            {
              timeoutMs: EVENT_TIMEOUT_MS,
              intervalMs: 50,
              what: "the repair on SIGHUP",
            },
          );
          if (countLines(proc.output(), bySighup) === 1) break;
          console.log(
            `attempt ${attempt}: the periodic check repaired before SIGHUP was handled`,
          );
        }
        assert.equal(
          countLines(proc.output(), bySighup),
          1,
          `no repair on SIGHUP in ${SIGHUP_ATTEMPTS} attempts:\n${proc.output()}`,
        );
        await waitFor(() => reachable(), {
          timeoutMs: EVENT_TIMEOUT_MS,
          what: "port 22 open again after SIGHUP",
        });

        const code = await proc.stop("SIGTERM", EVENT_TIMEOUT_MS);
        assert.equal(code, 0, proc.output());
        serve = null;
        assert.ok(
          !(await bed.serverRules()).includes("openme"),
          await bed.serverRules(),
        );
      } finally {
        await serve?.stop("SIGKILL").catch(() => 0);
        await bed.destroy();
      }
    },
  });
}
