/**
 * The life cycle of the packages on this machine: install, `openme init` and
 * `add` as an operator runs them, upgrade, remove and purge of the .deb with
 * dpkg; install, upgrade and erase of the .rpm with rpm; and what the
 * maintainer scripts ask of systemd when it runs. Each test works in a
 * private root (tests/support/private_root.ts): overlays over /etc, /usr and
 * /var, a tmpfs /run and its own network namespace, all gone afterwards, so
 * nothing of it reaches this machine. The packages hold a stand-in binary
 * that runs this checkout's main.ts.
 */

import assert from "node:assert/strict";
import denoConfig from "../deno.json" with { type: "json" };
import { findCommand } from "../lib/cli/spec.ts";
import { findOnPath, waitFor } from "../scripts/testbed.ts";
import { withSharedTempDir } from "./support/files.ts";
import { PrivateRoot, privateRootUnavailable } from "./support/private_root.ts";
import {
  buildPackages,
  type Packages,
  type StandIn,
  standInBinary,
} from "./support/stand_in.ts";

const V1 = denoConfig.version;
/** The version upgraded to: V1 with the last number one higher. */
const V2 = V1.replace(/\d+$/, (n) => String(Number(n) + 1));
const UNIT = "/usr/lib/systemd/system/openme.service";
const ENABLED = "/etc/systemd/system/multi-user.target.wants/openme.service";

const why = privateRootUnavailable() ??
  (["dpkg-deb", "dpkg", "rpmbuild", "rpm", "readelf", "nft", "setpriv"]
    .filter((tool) => findOnPath(tool) === null).map((tool) =>
      `needs ${tool}`
    )[0] ?? null);
if (why !== null) console.warn(`SKIP package life cycle tests: ${why}`);

/** Two versions of the packages, and the stand-in's call log. */
interface Build {
  v1: Packages;
  v2: Packages;
  standIn: StandIn;
}

/** Runs fn with both versions' packages and a fresh private root. */
async function withBuild(
  fn: (root: PrivateRoot, build: Build) => Promise<void>,
): Promise<void> {
  await withSharedTempDir("openme-lifecycle-test-", async (dir) => {
    const standIn = await standInBinary(dir, V1);
    const v1 = await buildPackages(standIn.binary, V1, `${dir}/out`);
    const v2 = await buildPackages(
      (await standInBinary(dir, V2)).binary,
      V2,
      `${dir}/out`,
    );
    const root = await PrivateRoot.create();
    try {
      await fn(root, { v1, v2, standIn });
    } finally {
      await root.close();
    }
  });
}

/** `owner:group mode` of each path, e.g. "root:openme 750 /etc/openme". */
async function owners(root: PrivateRoot, paths: string): Promise<string[]> {
  return (await root.ok(`stat -c '%U:%G %a %n' ${paths}`)).trim().split("\n");
}

/** Whether a path exists in the private root (a dangling symlink counts). */
async function exists(root: PrivateRoot, path: string): Promise<boolean> {
  return (await root.run(`test -e '${path}' || test -L '${path}'`)).code === 0;
}

/** SHA-256, owner and mode of everything in /etc/openme and /var/lib/openme (config, keys, state). */
async function keptFiles(root: PrivateRoot): Promise<string> {
  return await root.ok(
    'cd / && find etc/openme var/lib/openme | sort | while read -r f; do stat -c \'%U:%G %a %n\' "$f"; [ -d "$f" ] || sha256sum "$f"; done',
  );
}

/** rpm with its database in the private /var (Debian's keeps it in $HOME), installing although this is Debian and without the dependencies. */
const RPM = "rpm --dbpath /var/lib/rpm --force-debian --nodeps";

/** Names under /etc, /usr, /var and /run containing "openme". */
const FIND_OPENME =
  "find /etc /usr /var /run -xdev -name '*openme*' 2>/dev/null | sort";

Deno.test({
  name:
    "package life cycle (.deb): install, init and add, upgrade, remove and purge do what each promises, and leave nothing of openme",
  ignore: why !== null,
  fn: async () => {
    const onHost = (await new Deno.Command("sh", {
      args: ["-c", FIND_OPENME],
      stdout: "piped",
    }).output()).stdout;
    await withBuild(async (root, { v1, v2, standIn }) => {
      // --- Install.
      const installed = await root.ok(`dpkg -i '${v1.deb}' 2>&1`);
      assert.match(installed, /created the system group openme/);
      assert.match(installed, /created the system user openme/);
      assert.match(
        installed,
        /systemd is not running: skipped systemctl daemon-reload/,
      );
      assert.match(installed, /enabled openme\.service; it is not started/);
      assert.match(installed, /^openme: {3}sudo openme init --server HOST$/m);
      const account = (await root.ok("getent passwd openme")).trim().split(":");
      const uid = Number(account[2]);
      const gid = Number(account[3]);
      assert.ok(uid > 0 && uid < 1000, `not a system uid: ${uid}`);
      assert.equal(account[5], "/nonexistent");
      assert.match(account[6], /\/(nologin|false)$/);
      assert.equal(
        (await root.ok("getent group openme")).trim().split(":")[2],
        String(gid),
      );
      assert.deepEqual(await owners(root, "/etc/openme /var/lib/openme"), [
        "root:openme 750 /etc/openme",
        "openme:openme 750 /var/lib/openme",
      ]);
      assert.equal(
        await root.ok("ls -A /etc/openme"),
        "",
        "a config was generated",
      );
      assert.equal((await root.ok(`readlink -f ${ENABLED}`)).trim(), UNIT);
      assert.equal(
        (await root.ok("man -w openme")).trim(),
        "/usr/share/man/man1/openme.1.gz",
      );
      assert.match(
        await root.ok("MANWIDTH=100 MANPAGER=cat man openme 2>&1"),
        /^ {7}openme serve \[--state-file PATH\]/m,
      );
      assert.match(
        await root.ok(
          "bash -c '. /usr/share/bash-completion/completions/openme && complete -p openme'",
        ),
        /complete -F _openme openme/,
      );
      for (
        const [shell, list, dir] of [
          [
            "zsh",
            "zsh -fc 'print -rl -- $fpath'",
            "/usr/share/zsh/vendor-completions",
          ],
          [
            "fish",
            "fish -c 'printf \"%s\\n\" $fish_complete_path'",
            "/usr/share/fish/vendor_completions.d",
          ],
        ]
      ) {
        if (findOnPath(shell) === null) {
          console.warn(
            `SKIP: ${shell} is not installed, its completion path is not checked`,
          );
          continue;
        }
        assert.ok(
          (await root.ok(list)).split("\n").includes(dir),
          `${shell} does not search ${dir}`,
        );
      }
      // The service user runs the binary.
      assert.match(
        await root.ok(
          "setpriv --reuid=openme --regid=openme --clear-groups /usr/bin/openme --version",
        ),
        new RegExp(`^openme ${V1.replaceAll(".", "\\.")} `),
      );

      // --- The operator's first commands, then a daemon that crashes.
      await root.ok("openme init --server 192.0.2.1");
      assert.match(await root.ok("openme add alice"), /^profiles:/);
      const [dirLine, configLine] = await owners(
        root,
        "/etc/openme /etc/openme/config.yaml",
      );
      assert.equal(dirLine, "root:openme 750 /etc/openme");
      // The service reads its keys and cannot change them.
      assert.equal(configLine, "root:openme 640 /etc/openme/config.yaml");
      await root.ok(
        "/usr/bin/openme serve >/run/serve.log 2>&1 </dev/null & echo $! >/run/serve.pid",
      );
      await waitFor(
        async () =>
          (await root.run("grep -q 'openme serving' /run/serve.log")).code ===
            0,
        { timeoutMs: 60_000, intervalMs: 200, what: "openme serve to start" },
      );
      await root.ok("kill -9 $(cat /run/serve.pid)");
      assert.match(await root.ok("nft list ruleset"), /openme/);
      const kept = await keptFiles(root);
      assert.match(kept, /var\/lib\/openme\/sessions\.json/);

      // --- Upgrade: config, keys and state byte for byte, nothing started.
      const upgraded = await root.ok(`dpkg -i '${v2.deb}' 2>&1`);
      assert.match(
        upgraded,
        /systemd is not running: skipped restarting openme\.service/,
      );
      assert.doesNotMatch(upgraded, /created the system/);
      assert.match(
        await root.ok("openme --version"),
        new RegExp(`^openme ${V2.replaceAll(".", "\\.")} `),
      );
      assert.equal(await keptFiles(root), kept);
      assert.deepEqual(
        (await root.ok("getent passwd openme")).trim().split(":"),
        account,
      );
      assert.equal((await root.ok(`readlink -f ${ENABLED}`)).trim(), UNIT);

      // --- Remove: stopped, disabled, no rule left; config and state kept.
      // The stand-in's calls land in the private /tmp.
      await root.ok(`: >'${standIn.calls}'`);
      const removed = await root.ok("dpkg -r openme 2>&1");
      assert.match(
        removed,
        /systemd is not running: skipped stopping openme\.service/,
      );
      assert.match(
        removed,
        /kept \/etc\/openme \(config and keys\), \/var\/lib\/openme and the user openme/,
      );
      assert.match(removed, /remove them with: sudo apt purge openme/);
      const calls = (await root.ok(`cat '${standIn.calls}'`)).split("\n");
      assert.ok(calls.includes("cleanup --help"), calls.join("\n"));
      if (findCommand("cleanup") !== undefined) {
        assert.ok(calls.includes("cleanup"), calls.join("\n"));
        assert.doesNotMatch(await root.ok("nft list ruleset"), /openme/);
      } else {
        assert.match(removed, /this openme has no `openme cleanup`: skipped/);
      }
      for (const path of ["/usr/bin/openme", UNIT, ENABLED]) {
        assert.equal(await exists(root, path), false, `${path} is left`);
      }
      assert.equal(await keptFiles(root), kept);
      assert.equal(
        (await root.ok("getent passwd openme")).trim(),
        account.join(":"),
      );

      // --- Purge: nothing of openme is left.
      const purged = await root.ok("dpkg -P openme 2>&1");
      assert.match(
        purged,
        /removed \/etc\/openme, \/var\/lib\/openme and the user openme/,
      );
      assert.equal((await root.run("getent passwd openme")).code, 2);
      assert.equal((await root.run("getent group openme")).code, 2);
      assert.notEqual((await root.run("dpkg-query -W openme")).code, 0);
      assert.equal(
        await root.ok(FIND_OPENME),
        new TextDecoder().decode(onHost),
        "files named openme are left",
      );
      assert.equal(
        await root.ok(
          `find /etc /usr /var /run -xdev \\( -uid ${uid} -o -gid ${gid} \\) 2>/dev/null`,
        ),
        "",
        "files of the removed user or group are left",
      );
    });
  },
});

Deno.test({
  name:
    "package life cycle (.rpm): install, upgrade and erase run the same steps by rpm's counts, and erase keeps the config and the user",
  ignore: why !== null,
  fn: async () => {
    await withBuild(async (root, { v1, v2 }) => {
      const rpm = RPM;
      const installed = await root.ok(`${rpm} -i '${v1.rpm}' 2>&1`);
      assert.match(installed, /created the system user openme/);
      assert.match(installed, /^openme: {3}sudo openme init --server HOST$/m);
      assert.deepEqual(await owners(root, "/etc/openme /var/lib/openme"), [
        "root:openme 750 /etc/openme",
        "openme:openme 750 /var/lib/openme",
      ]);
      assert.equal((await root.ok(`readlink -f ${ENABLED}`)).trim(), UNIT);
      assert.equal(
        (await root.ok("man -w openme")).trim(),
        "/usr/share/man/man1/openme.1.gz",
      );
      await root.ok("openme init --server 192.0.2.1 && openme add alice");
      const kept = await keptFiles(root);

      const upgraded = await root.ok(`${rpm} -U '${v2.rpm}' 2>&1`);
      assert.match(upgraded, /skipped restarting openme\.service/);
      assert.doesNotMatch(upgraded, /created the system|next, create/);
      assert.match(
        await root.ok("openme --version"),
        new RegExp(`^openme ${V2.replaceAll(".", "\\.")} `),
      );
      assert.equal(await keptFiles(root), kept);
      assert.equal((await root.ok(`readlink -f ${ENABLED}`)).trim(), UNIT);

      const erased = await root.ok(`${rpm} -e openme 2>&1`);
      assert.match(erased, /skipped stopping openme\.service/);
      assert.match(
        erased,
        /remove them with: sudo rm -r \/etc\/openme \/var\/lib\/openme && sudo userdel openme/,
      );
      for (const path of ["/usr/bin/openme", UNIT, ENABLED]) {
        assert.equal(await exists(root, path), false, `${path} is left`);
      }
      assert.equal(await keptFiles(root), kept);
      assert.equal((await root.run("getent passwd openme")).code, 0);
    });
  },
});

/** A systemctl that records its calls in /run/systemctl.calls; `is-active` answers from /run/active. */
const FAKE_SYSTEMCTL = `#!/bin/sh
echo "$*" >>/run/systemctl.calls
[ "$1" != is-active ] || [ -e /run/active ]
`;

Deno.test({
  name:
    "package maintainer scripts with systemd running: enable without starting, restart on upgrade only when running, stop and disable on remove",
  ignore: why !== null,
  fn: async () => {
    await withBuild(async (root, { v1, v2 }) => {
      await root.ok(
        `mkdir -p /run/systemd/system && cat >/usr/bin/systemctl <<'EOF'\n${FAKE_SYSTEMCTL}EOF\nchmod 755 /usr/bin/systemctl`,
      );
      /** Runs a package command; returns the systemctl calls it made. */
      const calls = async (
        command: string,
        active: boolean,
      ): Promise<string[]> => {
        await root.ok(
          `rm -f /run/systemctl.calls; ${
            active ? "touch" : "rm -f"
          } /run/active`,
        );
        await root.ok(`${command} 2>&1`);
        return (await root.run("cat /run/systemctl.calls")).stdout.trim()
          .split("\n").filter((l) => l !== "");
      };
      const reload = "daemon-reload";
      const isActive = "is-active --quiet openme.service";
      const rpm = RPM;
      const steps: [string, boolean, string[]][] = [
        [`dpkg -i '${v1.deb}'`, false, [reload, "enable openme.service"]],
        [`dpkg -i '${v2.deb}'`, true, [
          reload,
          isActive,
          "restart openme.service",
        ]],
        [`dpkg -i '${v1.deb}'`, false, [reload, isActive]],
        ["dpkg -r openme", true, [
          "stop openme.service",
          "disable openme.service",
          reload,
        ]],
        ["dpkg -P openme", false, [reload]],
        [`${rpm} -i '${v1.rpm}'`, false, [reload, "enable openme.service"]],
        [`${rpm} -U '${v2.rpm}'`, true, [
          reload,
          isActive,
          "restart openme.service",
        ]],
        [`${rpm} -U '${v1.rpm}' --oldpackage`, false, [reload, isActive]],
        [`${rpm} -e openme`, true, [
          "stop openme.service",
          "disable openme.service",
          reload,
        ]],
      ];
      for (const [command, active, expected] of steps) {
        assert.deepEqual(
          await calls(command, active),
          expected,
          `${command} (service ${active ? "running" : "stopped"})`,
        );
      }
    });
  },
});
