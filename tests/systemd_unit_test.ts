/**
 * Tests of openme.service: required directives, the copy embedded in
 * install.sh, `systemd-analyze verify`, and that the unit's capability set is
 * enough for the firewall tools (in a throwaway network namespace).
 */

import assert from "node:assert/strict";

const REPO = new URL("..", import.meta.url);
const UNIT_TEXT = await Deno.readTextFile(new URL("openme.service", REPO));
const INSTALL_SH = await Deno.readTextFile(new URL("install.sh", REPO));
const TIMEOUT_MS = 60_000;

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
  assert.equal(value("Service.RuntimeDirectory"), "openme");
  assert.equal(value("Unit.ConditionPathExists"), "/etc/openme/config.yaml");
  assert.equal(value("Install.WantedBy"), "multi-user.target");
});

Deno.test("openme.service: root with only the network capabilities, so it reads the 0600 root-owned config", () => {
  // `openme init` and `openme add` (run with sudo) write /etc/openme/config.yaml
  // as root, mode 0600. A service User= could not read it after the next
  // `add`/`revoke`, and a revoke would silently not apply.
  assert.equal(UNIT.has("Service.User"), false);
  assert.equal(UNIT.has("Service.DynamicUser"), false);
  assert.deepEqual(words("Service.CapabilityBoundingSet").sort(), [
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
  ]);
  for (const cap of words("Service.AmbientCapabilities")) {
    assert.ok(words("Service.CapabilityBoundingSet").includes(cap), cap);
  }
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
  // iptables-legacy -w locks /run/xtables.lock, read-only under ProtectSystem=strict otherwise.
  assert.ok(words("Service.ReadWritePaths").includes("-/run/xtables.lock"));
  assert.ok(
    UNIT.get("Service.ExecStartPre")?.includes("+/bin/touch /run/xtables.lock"),
  );
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
      // verify checks that ExecStart's binary exists: point it at one that does.
      let text = UNIT_TEXT;
      try {
        await Deno.stat("/usr/local/bin/openme");
      } catch {
        text = text.replace("/usr/local/bin/openme", Deno.execPath());
      }
      const path = `${dir}/openme.service`;
      await Deno.writeTextFile(path, text);
      const out = await new Deno.Command("systemd-analyze", {
        args: ["verify", "--man=no", path],
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(TIMEOUT_MS),
      }).output();
      const output = new TextDecoder().decode(out.stdout) +
        new TextDecoder().decode(out.stderr);
      const ours = output.split("\n").filter((l) => l.includes("openme"));
      assert.equal(out.code, 0, output);
      assert.deepEqual(ours, [], output);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const needed = ["unshare", "setpriv", "nft", "iptables-nft", "iptables-legacy"];
const missing = needed.filter((t) => which(t) === null);
const canTestCaps = Deno.uid() === 0 && missing.length === 0;
if (!canTestCaps) {
  console.warn(
    `SKIP openme.service capability check: needs root and ${
      missing.join(", ") || "root"
    }`,
  );
}

/** Runs `script` as root in a new network namespace with only `caps`. */
async function withCaps(
  caps: string[],
  script: string,
): Promise<Deno.CommandOutput> {
  const list = caps.map((c) => `+${c.replace(/^CAP_/, "").toLowerCase()}`).join(
    ",",
  );
  return await new Deno.Command("unshare", {
    args: [
      "--net",
      "setpriv",
      "--no-new-privs",
      `--bounding-set=-all${list ? "," + list : ""}`,
      `--inh-caps=-all${list ? "," + list : ""}`,
      `--ambient-caps=-all${list ? "," + list : ""}`,
      "sh",
      "-ec",
      script,
    ],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(TIMEOUT_MS),
  }).output();
}

Deno.test({
  name:
    "openme.service: its capabilities are enough for nft, iptables-nft and iptables-legacy",
  ignore: !canTestCaps,
  fn: async () => {
    const script = [
      "nft add table inet filter",
      "nft add chain inet filter openme",
      `nft add rule inet filter openme ip saddr 192.0.2.2 tcp dport 22 accept comment '"openme"'`,
      "iptables-nft -w -I INPUT -s 192.0.2.2 -p tcp --dport 22 -j ACCEPT -m comment --comment openme",
      "ip6tables-nft -w -I INPUT -s 2001:db8::2 -p tcp --dport 22 -j ACCEPT -m comment --comment openme",
      "iptables-legacy -w -I INPUT -s 192.0.2.2 -p tcp --dport 22 -j ACCEPT -m comment --comment openme",
      "iptables-legacy -w -D INPUT -s 192.0.2.2 -p tcp --dport 22 -j ACCEPT -m comment --comment openme",
    ].join("\n");
    const caps = words("Service.CapabilityBoundingSet");
    // And it reads a root-owned 0600 config without CAP_DAC_OVERRIDE.
    const dir = await Deno.makeTempDir({ prefix: "openme-unit-test-" });
    try {
      const config = `${dir}/config.yaml`;
      await Deno.writeTextFile(config, "server: {}\n", { mode: 0o600 });
      await Deno.chmod(config, 0o600);
      const ok = await withCaps(caps, `${script}\ncat '${config}'`);
      assert.equal(ok.code, 0, new TextDecoder().decode(ok.stderr));
      assert.equal(
        new TextDecoder().decode(ok.stdout).trim().split("\n").at(-1),
        "server: {}",
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }

    // Control: without CAP_NET_ADMIN the same commands fail.
    const denied = await withCaps(
      caps.filter((c) => c !== "CAP_NET_ADMIN"),
      "nft add table inet filter",
    );
    assert.notEqual(denied.code, 0);
  },
});
