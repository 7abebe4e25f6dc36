/**
 * Tests of openme.service: required directives, the copy embedded in
 * install.sh, `systemd-analyze verify`, and that the unit's capability set is
 * enough for the firewall tools (in a throwaway network namespace).
 */

import assert from "node:assert/strict";
import { DEFAULT_STATE_FILE } from "../lib/server/state_file.ts";
import { run, type RunResult, waitFor } from "../scripts/testbed.ts";
import { copyNpmCache, copySources } from "./support/stand_in.ts";

const REPO = new URL("..", import.meta.url);
const UNIT_TEXT = await Deno.readTextFile(new URL("openme.service", REPO));
const INSTALL_SH = await Deno.readTextFile(new URL("install.sh", REPO));
const TIMEOUT_MS = 60_000;

/**
 * Working directory of the commands here: `/`, as systemd gives a unit
 * without WorkingDirectory= (the service user may not be able to enter the
 * checkout).
 */
const SERVICE_CWD = "/";

/** Runs a command from SERVICE_CWD (NO_COLOR set, killed after TIMEOUT_MS) and collects its output. */
function runCommand(
  command: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<RunResult> {
  return run([command, ...args], {
    env,
    timeoutMs: TIMEOUT_MS,
    cwd: SERVICE_CWD,
  });
}

/** Directive values by "Section.Key", in file order (keys may repeat). */
function parseUnit(text: string): Map<string, string[]> {
  const directives = new Map<string, string[]>();
  let section = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1];
      continue;
    }
    const eq = line.indexOf("=");
    assert.ok(eq > 0, `not a directive: ${line}`);
    const key = `${section}.${line.slice(0, eq)}`;
    directives.set(key, [...(directives.get(key) ?? []), line.slice(eq + 1)]);
  }
  return directives;
}

const UNIT = parseUnit(UNIT_TEXT);

function value(key: string): string {
  const values = UNIT.get(key);
  assert.ok(values !== undefined, `openme.service lacks ${key}`);
  assert.equal(values.length, 1, `${key} is set ${values.length} times`);
  return values[0];
}

function words(key: string): string[] {
  return value(key).split(/\s+/).filter((w) => w !== "");
}

function which(name: string): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir === "") continue;
    try {
      if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
    } catch {
      // Not here.
    }
  }
  return null;
}

Deno.test("openme.service: runs `openme serve` and reloads with SIGHUP", () => {
  assert.equal(value("Service.ExecStart"), "/usr/local/bin/openme serve");
  assert.equal(value("Service.ExecReload"), "/bin/kill -HUP $MAINPID");
  assert.equal(value("Service.Restart"), "on-failure");
  assert.equal(value("Unit.ConditionPathExists"), "/etc/openme/config.yaml");
  assert.equal(value("Install.WantedBy"), "multi-user.target");
});

Deno.test("openme.service: the default state file lies in its StateDirectory=, which survives a reboot", () => {
  // Replay nonces and the rules to remove after a crash must outlive a
  // reboot: /var/lib, not /run (RuntimeDirectory= is emptied on every stop).
  assert.equal(value("Service.StateDirectory"), "openme");
  assert.equal(value("Service.StateDirectoryMode"), "0750");
  assert.equal(UNIT.has("Service.RuntimeDirectory"), false);
  assert.equal(
    DEFAULT_STATE_FILE,
    `/var/lib/${value("Service.StateDirectory")}/sessions.json`,
  );
});

Deno.test("openme.service: starts after the network and the firewall services that load a saved ruleset", () => {
  const after = words("Unit.After");
  for (
    const unit of [
      "network.target",
      "nftables.service",
      "netfilter-persistent.service",
      "iptables.service",
      "ip6tables.service",
      "firewalld.service",
    ]
  ) {
    assert.ok(after.includes(unit), `After= lacks ${unit}: ${after.join(" ")}`);
  }
});

Deno.test("openme.service: runs as the openme user with only the network capabilities", () => {
  // The packages and install.sh --server create the user and group; root
  // owns /etc/openme and the group reads it.
  assert.equal(value("Service.User"), "openme");
  assert.equal(value("Service.Group"), "openme");
  assert.equal(UNIT.has("Service.DynamicUser"), false);
  assert.deepEqual(words("Service.CapabilityBoundingSet").sort(), [
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
  ]);
  // Ambient: a non-root user only holds capabilities that are ambient, and
  // they pass on to nft and iptables.
  assert.deepEqual(words("Service.AmbientCapabilities").sort(), [
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
  ]);
});

Deno.test("openme.service: sandboxing", () => {
  const expected: Record<string, string> = {
    NoNewPrivileges: "yes",
    ProtectSystem: "strict",
    ProtectHome: "yes",
    PrivateTmp: "yes",
    PrivateDevices: "yes",
    ProtectKernelModules: "yes",
    ProtectKernelTunables: "yes",
    ProtectControlGroups: "yes",
    RestrictNamespaces: "yes",
    UMask: "0077",
  };
  for (const [key, want] of Object.entries(expected)) {
    assert.equal(value(`Service.${key}`), want, key);
  }
  // nft talks netlink; knocks and the health port are IPv4/IPv6.
  assert.deepEqual(words("Service.RestrictAddressFamilies").sort(), [
    "AF_INET",
    "AF_INET6",
    "AF_NETLINK",
    "AF_UNIX",
  ]);
  // Nothing is writable but the StateDirectory: the config stays read-only.
  assert.equal(UNIT.has("Service.ReadWritePaths"), false);
  // iptables -w opens /run/xtables.lock read-only and locks it: root ("+")
  // makes it exist and readable by the service's group first.
  assert.deepEqual(UNIT.get("Service.ExecStartPre"), [
    "+/bin/touch /run/xtables.lock",
    "+/bin/chgrp openme /run/xtables.lock",
    "+/bin/chmod 0640 /run/xtables.lock",
  ]);
  // V8 needs writable+executable memory and pkey_alloc.
  assert.equal(UNIT.has("Service.MemoryDenyWriteExecute"), false);
  assert.ok(words("Service.SystemCallFilter").includes("@pkey"));
  assert.equal(value("Service.SystemCallErrorNumber"), "EPERM");
});

Deno.test("openme.service: install.sh embeds an identical copy", () => {
  const match = /\n\tcat <<'OPENME_UNIT'\n([\s\S]*?\n)OPENME_UNIT\n/.exec(
    INSTALL_SH,
  );
  assert.ok(match, "install.sh has no `cat <<'OPENME_UNIT'` heredoc");
  assert.equal(match[1], UNIT_TEXT);
});

const analyze = which("systemd-analyze");
if (analyze === null) {
  console.warn("SKIP systemd-analyze verify: systemd-analyze is not installed");
}

Deno.test({
  name: "openme.service: systemd-analyze verify",
  ignore: analyze === null,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "openme-unit-test-" });
    try {
      // verify checks that the Exec binaries exist: point them at one that does.
      let text = UNIT_TEXT;
      try {
        await Deno.stat("/usr/local/bin/openme");
      } catch {
        text = text.replaceAll("/usr/local/bin/openme", Deno.execPath());
      }
      const path = `${dir}/openme.service`;
      await Deno.writeTextFile(path, text);
      const out = await runCommand("systemd-analyze", [
        "verify",
        "--man=no",
        path,
      ]);
      const output = out.stdout + out.stderr;
      const ours = output.split("\n").filter((l) => l.includes("openme"));
      assert.equal(out.code, 0, output);
      assert.deepEqual(ours, [], output);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// --- The unit's user and capabilities, emulated: uid/gid 65534 (nobody) with
// setpriv instead of User=openme, in throwaway network and mount namespaces
// (systemd itself cannot start units here).

/** uid and gid standing in for the openme user. */
const SERVICE_ID = 65534;

const needed = [
  "unshare",
  "setpriv",
  "ip",
  "nft",
  "iptables-nft",
  "iptables-legacy",
  "ip6tables-legacy",
];
const missing = needed.filter((t) => which(t) === null);
const canTestCaps = Deno.uid() === 0 && missing.length === 0;
if (!canTestCaps) {
  console.warn(
    `SKIP openme.service user and capability checks: need root${
      missing.length > 0 ? ` and ${missing.join(", ")}` : ""
    }`,
  );
}

/** Single-quotes a word for sh. */
function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** setpriv arguments that run a command as SERVICE_ID holding only `caps`, like the unit. */
function asServiceUser(caps: string[]): string[] {
  const list = caps.map((c) => `+${c.replace(/^CAP_/, "").toLowerCase()}`)
    .join(",");
  const withCaps = list === "" ? "-all" : `-all,${list}`;
  return [
    "setpriv",
    `--reuid=${SERVICE_ID}`,
    `--regid=${SERVICE_ID}`,
    "--clear-groups",
    "--no-new-privs",
    `--bounding-set=${withCaps}`,
    `--inh-caps=${withCaps}`,
    `--ambient-caps=${withCaps}`,
  ];
}

/**
 * The unit's root ("+") ExecStartPre commands as sh lines, with the group
 * openme replaced by SERVICE_ID.
 */
function execStartPreLines(): string[] {
  return (UNIT.get("Service.ExecStartPre") ?? []).map((command) => {
    assert.ok(command.startsWith("+"), `${command} does not run as root`);
    return command.slice(1).split(/\s+/).map((word) =>
      shellQuote(word === "openme" ? String(SERVICE_ID) : word)
    ).join(" ");
  });
}

/**
 * Runs `script` with sh as root in new network and mount namespaces whose
 * /run is an empty tmpfs (mode 0755, as on a real system); `$AS` in the
 * script expands to the setpriv prefix for the service user with `caps`.
 */
function inNamespaces(
  caps: string[],
  script: string,
): Promise<RunResult> {
  const prefix = [
    "set -eu",
    "mount -t tmpfs -o mode=0755 tmpfs /run",
    `AS=${shellQuote(asServiceUser(caps).join(" "))}`,
  ];
  return runCommand("unshare", [
    "--net",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    [...prefix, script].join("\n"),
  ]);
}

/** Firewall commands the backends run, as the service user. */
const FIREWALL_SCRIPT = [
  "$AS nft add table inet filter",
  "$AS nft add chain inet filter openme",
  `$AS nft add rule inet filter openme ip saddr 192.0.2.2 tcp dport 22 accept comment '"openme"'`,
  "$AS iptables-nft -w -I INPUT -s 192.0.2.2 -p tcp --dport 22 -j ACCEPT -m comment --comment openme",
  "$AS ip6tables-nft -w -I INPUT -s 2001:db8::2 -p tcp --dport 22 -j ACCEPT -m comment --comment openme",
  "$AS iptables-legacy -w -I INPUT -s 192.0.2.2 -p tcp --dport 22 -j ACCEPT -m comment --comment openme",
  "$AS ip6tables-legacy -w -I INPUT -s 2001:db8::2 -p tcp --dport 22 -j ACCEPT -m comment --comment openme",
  "$AS iptables-legacy -w -D INPUT -s 192.0.2.2 -p tcp --dport 22 -j ACCEPT -m comment --comment openme",
  "echo firewall-ok",
].join("\n");

Deno.test({
  name:
    "openme.service: as a non-root user with its capabilities, nft and iptables (nft and legacy, -w) work after its ExecStartPre",
  ignore: !canTestCaps,
  fn: async () => {
    const caps = words("Service.AmbientCapabilities");
    const ok = await inNamespaces(
      caps,
      [...execStartPreLines(), FIREWALL_SCRIPT].join("\n"),
    );
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /firewall-ok/);

    // Control: without the ExecStartPre, root's 0600 lock file stops iptables-legacy -w.
    const noLock = await inNamespaces(
      caps,
      [
        "touch /run/xtables.lock",
        "chmod 0600 /run/xtables.lock",
        "$AS iptables-legacy -w -I INPUT -s 192.0.2.2 -j ACCEPT",
      ].join("\n"),
    );
    assert.notEqual(noLock.code, 0);
    assert.match(noLock.stderr, /can't open lock file/);

    // Control: without CAP_NET_ADMIN the same user cannot touch the firewall.
    const denied = await inNamespaces(
      caps.filter((c) => c !== "CAP_NET_ADMIN"),
      "$AS nft add table inet filter",
    );
    assert.notEqual(denied.code, 0);
  },
});

Deno.test({
  name:
    "openme.service: the service user reads a root:openme 0640 config and cannot change it, and serves with the unit's capabilities",
  ignore: !canTestCaps,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "openme-unit-test-" });
    const main = `${dir}/src/main.ts`;
    const denoConfig = `${dir}/src/deno.json`;
    const ns = `om-unit-${Deno.pid}-a`;
    let nsCreated = false;
    try {
      await Deno.chmod(dir, 0o755);
      await copySources(`${dir}/src`);
      const denoDir = `${dir}/deno`;
      await copyNpmCache(denoDir);
      const ownCommand = await runCommand("chown", [
        "-R",
        `${SERVICE_ID}:${SERVICE_ID}`,
        denoDir,
      ]);
      assert.equal(ownCommand.code, 0, ownCommand.stderr);
      // As the packages and install.sh --server leave it: /etc/openme
      // root:openme 0750, and the config `sudo openme init` wrote there
      // root:openme 0640 (install.sh sets that on a config it finds).
      await Deno.mkdir(`${dir}/etc`, { mode: 0o755 });
      const etc = `${dir}/etc/openme`;
      await Deno.mkdir(etc, { mode: 0o750 });
      await Deno.chown(etc, 0, SERVICE_ID);
      const config = `${etc}/config.yaml`;
      const denoRun = [
        "run",
        "-A",
        "--no-prompt",
        "--cached-only",
        "--config",
        denoConfig,
        main,
        "--config",
        config,
      ];
      const asService = asServiceUser(words("Service.AmbientCapabilities"));
      const serviceEnv = { HOME: denoDir, DENO_DIR: denoDir };
      /** The CLI as root, the way `sudo openme ...` runs it. */
      const openmeAsRoot = (args: string[]) =>
        runCommand(Deno.execPath(), [...denoRun, ...args]);
      /** The CLI as the service user. */
      const openmeAsService = (args: string[]) =>
        runCommand(
          asService[0],
          [...asService.slice(1), Deno.execPath(), ...denoRun, ...args],
          serviceEnv,
        );

      const init = await openmeAsRoot(["init", "--server", "192.0.2.1"]);
      assert.equal(init.code, 0, init.stderr);
      const add = await openmeAsRoot(["add", "alice"]);
      assert.equal(add.code, 0, add.stderr);
      const info = await Deno.stat(config);
      assert.deepEqual([info.uid, info.gid], [0, SERVICE_ID]);

      // Control: without group read, the service user cannot read it.
      await Deno.chmod(config, 0o600);
      const denied = await openmeAsService(["list"]);
      assert.notEqual(denied.code, 0);
      assert.match(denied.stderr, /permission denied/i);

      await Deno.chmod(config, 0o640);
      const list = await openmeAsService(["list"]);
      assert.equal(list.code, 0, list.stderr);
      assert.match(list.stdout, /alice/);
      // It reads the config and cannot change it.
      const before = await Deno.readTextFile(config);
      const write = await openmeAsService(["revoke", "alice"]);
      assert.notEqual(write.code, 0, "the service user changed its config");
      assert.equal(await Deno.readTextFile(config), before);

      // serve as the service user, in a network namespace; the state file
      // goes to a directory it owns, as /var/lib/openme (StateDirectory=).
      const stateDir = `${dir}/var-lib-openme`;
      await Deno.mkdir(stateDir, { mode: 0o750 });
      await Deno.chown(stateDir, SERVICE_ID, SERVICE_ID);
      const added = await runCommand("ip", ["netns", "add", ns]);
      assert.equal(added.code, 0, added.stderr);
      nsCreated = true;
      await runCommand("ip", ["-n", ns, "link", "set", "lo", "up"]);
      const server = new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          ns,
          ...asService,
          Deno.execPath(),
          ...denoRun,
          "serve",
          "--state-file",
          `${stateDir}/sessions.json`,
        ],
        env: { NO_COLOR: "1", ...serviceEnv },
        cwd: SERVICE_CWD,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const output = server.output();
      let exited = false;
      output.then(() => exited = true, () => exited = true);
      let stopped = false;
      try {
        const chain = () =>
          runCommand("ip", [
            "netns",
            "exec",
            ns,
            "nft",
            "list",
            "chain",
            "inet",
            "filter",
            "openme",
          ]);
        await waitFor(
          async () => {
            if (exited) {
              const out = await output;
              throw new Error(
                `openme serve (as the service user) exited ${out.code}: ${
                  new TextDecoder().decode(out.stderr)
                }`,
              );
            }
            return /openme-knock/.test((await chain()).stdout);
          },
          {
            timeoutMs: TIMEOUT_MS,
            intervalMs: 100,
            what: "openme serve (as the service user) to install its nft chain",
          },
        );
        server.kill("SIGTERM");
        let timer: ReturnType<typeof setTimeout> | undefined;
        const result = await Promise.race([
          output,
          new Promise<null>((resolve) => {
            timer = setTimeout(() => resolve(null), TIMEOUT_MS);
          }),
        ]);
        clearTimeout(timer);
        assert.ok(
          result !== null,
          `openme serve did not stop within ${TIMEOUT_MS} ms of SIGTERM`,
        );
        stopped = true;
        const log = new TextDecoder().decode(result.stderr) +
          new TextDecoder().decode(result.stdout);
        assert.equal(result.code, 0, log);
        assert.notEqual(
          (await chain()).code,
          0,
          "the openme chain was not removed",
        );
        const state = await Deno.stat(`${stateDir}/sessions.json`);
        assert.equal(state.uid, SERVICE_ID);
      } finally {
        if (!stopped) {
          try {
            server.kill("SIGKILL");
          } catch {
            // Already gone.
          }
          await output;
        }
      }
    } finally {
      if (nsCreated) await runCommand("ip", ["netns", "del", ns]);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
