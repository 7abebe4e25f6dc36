/**
 * The live demo (scripts/demo.sh, scripts/demo.ts): argument parsing and rule
 * matching in-process; as root, full runs on nft (through demo.sh) and
 * iptables, and an interrupted run, each checked for its exit code, its
 * narration, and that no namespace, process, directory or host rule is left.
 */
import assert from "node:assert/strict";
import {
  DEMO_KNOCK_TIMEOUT,
  DEMO_NS_PREFIX,
  EXIT_INTERRUPTED,
  findClientRule,
  makeStyle,
  openmeRuleLines,
  parseDemoArgs,
} from "../scripts/demo.ts";
import {
  REPO_DIR,
  type RunResult,
  testbedUnavailable,
} from "../scripts/testbed.ts";
import { withSharedTempDir } from "./support/files.ts";

const DEMO_SH = `${REPO_DIR}/scripts/demo.sh`;
const DEMO_TS = `${REPO_DIR}/scripts/demo.ts`;
/** A demo run takes about 30 s; this bounds a hung one (after the demo's own deadline, so it can clean up). */
const RUN_TIMEOUT_MS = 360_000;
/** Longest wait for the interrupted run to reach the step where it is interrupted. */
const INTERRUPT_AFTER_MS = 90_000;

const nftSkip = testbedUnavailable("nft");
const iptablesSkip = testbedUnavailable("iptables");
if (nftSkip !== null) console.warn(`SKIP demo runs on nft: ${nftSkip}`);
if (iptablesSkip !== null) {
  console.warn(`SKIP demo run on iptables: ${iptablesSkip}`);
}

/** Runs a command from the checkout with the caller's environment (no NO_COLOR: the output is a pipe, so it must be plain anyway). */
async function runDemo(command: string[]): Promise<RunResult> {
  const child = new Deno.Command(command[0], {
    args: command.slice(1),
    cwd: REPO_DIR,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, RUN_TIMEOUT_MS);
  try {
    const out = await child.output();
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

async function runText(command: string[]): Promise<string> {
  const out = await new Deno.Command(command[0], {
    args: command.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout);
}

/** The host's firewall as text, to prove the demo never touches it. */
async function hostRuleset(): Promise<string> {
  const nft = await runText(["nft", "list", "ruleset"]);
  const v4 = await runText(["iptables", "-w", "-S"]);
  const v6 = await runText(["ip6tables", "-w", "-S"]);
  return `${nft}\n${v4}\n${v6}`;
}

/** Named network namespaces (`ip netns list`). */
async function namespaceNames(): Promise<string[]> {
  const text = await runText(["ip", "netns", "list"]);
  return text.split("\n").map((l) => l.split(" ")[0]).filter((n) => n !== "");
}

/** Inode numbers of the named network namespaces. */
function namedNamespaceInodes(): Set<number> {
  const inodes = new Set<number>();
  try {
    for (const entry of Deno.readDirSync("/run/netns")) {
      try {
        const ino = Deno.statSync(`/run/netns/${entry.name}`).ino;
        if (ino !== null) inodes.add(ino);
      } catch {
        // deleted meanwhile
      }
    }
  } catch {
    // no /run/netns: no named namespace
  }
  return inodes;
}

function netnsInode(pid: string): number | null {
  try {
    const link = Deno.readLinkSync(`/proc/${pid}/ns/net`);
    const match = /^net:\[(\d+)\]$/.exec(link);
    return match === null ? null : Number(match[1]);
  } catch {
    return null;
  }
}

function cmdline(pid: string): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).replaceAll(
      "\0",
      " ",
    );
  } catch {
    return "";
  }
}

/**
 * Processes that live in a network namespace other than ours which no longer
 * has a name: what a demo that forgot a process leaves behind (deleting a
 * namespace's name does not end the processes in it).
 */
function orphanedNamespaceProcesses(): Map<string, string> {
  const own = netnsInode("self");
  const named = namedNamespaceInodes();
  const found = new Map<string, string>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const ino = netnsInode(entry.name);
    if (ino === null || ino === own || named.has(ino)) continue;
    found.set(entry.name, cmdline(entry.name));
  }
  return found;
}

/** Processes whose command line mentions a path. */
function processesMentioning(path: string): string[] {
  const found: string[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name) || entry.name === String(Deno.pid)) {
      continue;
    }
    const text = cmdline(entry.name);
    if (text.includes(path)) found.push(`${entry.name}: ${text}`);
  }
  return found;
}

/** What a run printed about the namespaces and directory it created. */
interface CreatedThings {
  namespaces: string[];
  workDir: string;
}

function createdThings(stdout: string): CreatedThings {
  const namespaces = [...stdout.matchAll(/namespace (om-demo-\S+):/g)].map((
    m,
  ) => m[1]);
  const workDir = /work directory: (\S+)/.exec(stdout)?.[1] ?? "";
  assert.equal(namespaces.length, 2, `no namespace names in:\n${stdout}`);
  assert.notEqual(workDir, "", `no work directory in:\n${stdout}`);
  return { namespaces, workDir };
}

/** Snapshot taken before a run, compared after it. */
interface Before {
  hostRules: string;
  orphans: Set<string>;
}

async function snapshot(): Promise<Before> {
  return {
    hostRules: await hostRuleset(),
    orphans: new Set(orphanedNamespaceProcesses().keys()),
  };
}

/** Asserts that a run left no namespace, process, directory or host rule behind. */
async function assertNothingLeft(
  before: Before,
  created: CreatedThings,
): Promise<void> {
  const names = await namespaceNames();
  for (const ns of created.namespaces) {
    assert.ok(!names.includes(ns), `namespace ${ns} left behind`);
  }
  // Any other namespace of this run (same pid tag); other runs may be going on.
  const tag = new RegExp(`^${DEMO_NS_PREFIX}-\\d+-`).exec(
    created.namespaces[0],
  )?.[0];
  assert.ok(tag !== undefined, `no pid tag in ${created.namespaces[0]}`);
  const ours = names.filter((n) => n.startsWith(tag));
  assert.deepEqual(ours, [], "demo namespaces left behind");
  const newOrphans = [...orphanedNamespaceProcesses()].filter(([pid]) =>
    !before.orphans.has(pid)
  );
  assert.deepEqual(
    newOrphans,
    [],
    "processes left running in a deleted namespace",
  );
  assert.deepEqual(
    processesMentioning(created.workDir),
    [],
    "processes using the demo's work directory left running",
  );
  await assert.rejects(
    () => Deno.stat(created.workDir),
    Deno.errors.NotFound,
    `${created.workDir} left behind`,
  );
  assert.equal(
    await hostRuleset(),
    before.hostRules,
    "the host's firewall changed",
  );
}

/** Asserts the narration of a complete, successful run. */
function assertStory(stdout: string, backend: "nft" | "iptables"): void {
  assert.ok(!stdout.includes("\x1b["), "colour codes in non-terminal output");
  const expected: (string | RegExp)[] = [
    `openme live demo (${backend})`,
    "✓ port 22 is closed to the client",
    / init --server 192\.0\.2\.1 --firewall /,
    `knock_timeout: ${DEMO_KNOCK_TIMEOUT}`,
    / add alice > /,
    /^ {4}profiles:$/m,
    "private_key: <redacted>",
    / serve --state-file /,
    "✓ the server listens for knocks on udp/54154",
    / knock$/m,
    /✓ port 22 open (\d+ ms|\d+\.\d s) after the knock was sent/,
    /^ {4}alice +192\.0\.2\.2 +22\/tcp/m,
    backend === "nft"
      ? "nft list chain inet filter openme"
      : "iptables -S INPUT",
    backend === "nft"
      ? '✓ rule: ip saddr 192.0.2.2 tcp dport 22 accept comment "openme"'
      : /✓ rule: -A INPUT -s 192\.0\.2\.2\/32 -p tcp .*--dport 22 .*--comment openme /,
    /✓ port 22 closed again (\d+ ms|\d+\.\d s) after it opened/,
    "✓ the packet opened port 22",
    "dropped datagram from 192.0.2.2: replay",
    "✓ ignored: port 22 stayed closed",
    /drops\.replay 0 → [1-9]/,
    "✓ openme serve exited 0 on SIGTERM; no openme rule left",
    "✓ namespaces om-demo-",
    "demo passed: 13/13 steps behaved",
  ];
  let at = 0;
  for (const item of expected) {
    const rest = stdout.slice(at);
    const index = typeof item === "string"
      ? rest.indexOf(item)
      : rest.search(item);
    assert.ok(
      index >= 0,
      `narration lacks ${String(item)} (in order) in:\n${stdout}`,
    );
    at += index;
  }
  assert.ok(!stdout.includes("✗"), `a ✗ line in:\n${stdout}`);
}

Deno.test("demo arguments: nft by default, --backend iptables, = form", () => {
  assert.deepEqual(parseDemoArgs([]), { backend: "nft" });
  assert.deepEqual(parseDemoArgs(["--backend", "iptables"]), {
    backend: "iptables",
  });
  assert.deepEqual(parseDemoArgs(["--backend=nft"]), { backend: "nft" });
  assert.deepEqual(parseDemoArgs(["-h"]), { help: true });
});

Deno.test("demo arguments: unknown backend, unknown flag and positionals are errors", () => {
  const bad = parseDemoArgs(["--backend", "pf"]);
  assert.ok("error" in bad && bad.error.includes('"pf"'), JSON.stringify(bad));
  const flag = parseDemoArgs(["--fast"]);
  assert.ok("error" in flag && flag.error.includes("--fast"));
  assert.ok("error" in parseDemoArgs(["nft"]));
  assert.ok("error" in parseDemoArgs(["--backend"]));
});

Deno.test("demo rule matching finds the client's port-22 rule in nft and iptables listings only", () => {
  const nft = `table inet filter {
\tchain openme {
\t\tip saddr 192.0.2.2 tcp dport 54154 accept comment "openme"
\t\tip saddr 192.0.2.2 tcp dport 22 accept comment "openme"
\t\tudp dport 54154 accept comment "openme-knock"
\t}
}`;
  assert.equal(
    findClientRule(nft),
    'ip saddr 192.0.2.2 tcp dport 22 accept comment "openme"',
  );
  const ipt =
    "-P INPUT DROP\n-A INPUT -s 192.0.2.2/32 -p tcp -m tcp --dport 22 -m comment --comment openme -j ACCEPT\n";
  assert.ok(findClientRule(ipt)?.includes("--dport 22"));
  assert.equal(
    findClientRule(
      'ip saddr 192.0.2.3 tcp dport 22 accept comment "openme"\nip saddr 192.0.2.2 tcp dport 2222 accept comment "openme"',
    ),
    null,
  );
  assert.equal(
    findClientRule(
      "-A INPUT -s 192.0.2.2/32 -p tcp -m tcp --dport 22 -m comment --comment openme-drop -j DROP",
    ),
    null,
  );
});

Deno.test("demo leftover check flags openme's chain and every openme comment, not the base rules", () => {
  const base = `table inet filter {
\tchain input {
\t\ttype filter hook input priority filter; policy drop;
\t\tct state established,related accept
\t}
}`;
  assert.deepEqual(openmeRuleLines(base), []);
  assert.equal(
    openmeRuleLines(`${base}\n\tchain openme {\n\t}`).length,
    1,
  );
  assert.equal(
    openmeRuleLines('\t\tudp dport 54154 accept comment "openme-knock"').length,
    1,
  );
  assert.equal(
    openmeRuleLines(
      "-A INPUT -p udp -m udp --dport 54154 -m comment --comment openme-knock -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 22 -m comment --comment openme-drop -j DROP",
    ).length,
    2,
  );
});

Deno.test("demo.ts: a usage error exits 2 with the usage line", async () => {
  const result = await runDemo([
    "deno",
    "run",
    "--allow-all",
    DEMO_TS,
    "--backend",
    "pf",
  ]);
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /--backend "pf" is not a backend/);
  assert.match(result.stderr, /Usage: scripts\/demo\.sh \[--backend/);
});

const setprivPath = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});
const nonRootSkip = Deno.uid() !== 0
  ? null
  : setprivPath === undefined
  ? "needs setpriv to drop root"
  : null;
if (nonRootSkip !== null) {
  console.warn(`SKIP demo.sh non-root refusal: ${nonRootSkip}`);
}

/** Runs demo.sh without root: exit 1, a message that it must run as root, no namespace made. */
async function assertRefusesWithoutRoot(command: string[]): Promise<void> {
  const demoNamespaces = async (): Promise<string[]> =>
    (await namespaceNames()).filter((n) => n.startsWith(`${DEMO_NS_PREFIX}-`));
  const before = await demoNamespaces();
  const result = await runDemo(command);
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /must run as root/);
  assert.equal(result.stdout, "");
  // (Other test runs may make namespaces meanwhile, not demo ones.)
  assert.deepEqual(await demoNamespaces(), before);
}

Deno.test({
  name: "demo.sh refuses to run without root, with a clear message and exit 1",
  ignore: nonRootSkip !== null,
  fn: async () => {
    if (Deno.uid() !== 0) {
      await assertRefusesWithoutRoot(["bash", DEMO_SH]);
      return;
    }
    // nobody cannot read the checkout when it lies in a private folder:
    // it runs a copy of demo.sh (the refusal comes before anything else).
    await withSharedTempDir("openme-demo-nobody-", async (dir) => {
      const copy = `${dir}/demo.sh`;
      await Deno.copyFile(DEMO_SH, copy);
      await Deno.chmod(copy, 0o644);
      await assertRefusesWithoutRoot([
        setprivPath!,
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "bash",
        copy,
      ]);
    });
  },
});

Deno.test({
  name:
    "demo.sh (nft) tells the whole story, exits 0 and leaves no namespace, process or rule",
  ignore: nftSkip !== null,
  fn: async () => {
    const before = await snapshot();
    const result = await runDemo(["bash", DEMO_SH]);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assertStory(result.stdout, "nft");
    await assertNothingLeft(before, createdThings(result.stdout));
  },
});

Deno.test({
  name:
    "demo.ts --backend iptables tells the same story, exits 0 and leaves nothing behind",
  ignore: iptablesSkip !== null,
  fn: async () => {
    const before = await snapshot();
    const result = await runDemo([
      "deno",
      "run",
      "--allow-all",
      DEMO_TS,
      "--backend",
      "iptables",
    ]);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assertStory(result.stdout, "iptables");
    await assertNothingLeft(before, createdThings(result.stdout));
  },
});

Deno.test({
  name:
    "demo interrupted by SIGINT while a session is open exits 130 and removes everything",
  ignore: nftSkip !== null,
  fn: async () => {
    const before = await snapshot();
    const child = new Deno.Command("deno", {
      args: ["run", "--allow-all", DEMO_TS],
      cwd: REPO_DIR,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let stdout = "";
    const decoder = new TextDecoder();
    const pumpOut = (async () => {
      for await (const chunk of child.stdout) {
        stdout += decoder.decode(chunk, { stream: true });
      }
    })();
    const stderrText = new Response(child.stderr).text();
    const killer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }, RUN_TIMEOUT_MS);
    try {
      // Interrupt once the rule is listed: serve runs and a session is open.
      const rounds = INTERRUPT_AFTER_MS / 50;
      for (let i = 0; i < rounds && !stdout.includes("✓ rule:"); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(
        stdout.includes("✓ rule:"),
        `never got to the rule:\n${stdout}`,
      );
      child.kill("SIGINT");
      const status = await child.status;
      await pumpOut;
      const stderr = await stderrText;
      assert.equal(status.code, EXIT_INTERRUPTED, `${stdout}\n${stderr}`);
      assert.match(stdout, /✗ interrupted \(Ctrl-C\): removing namespaces/);
      assert.match(stdout, /✓ cleaned up; nothing left behind/);
      assert.match(stdout, /demo interrupted \(Ctrl-C\): 8\/13 steps behaved/);
      await assertNothingLeft(before, createdThings(stdout));
    } finally {
      clearTimeout(killer);
    }
  },
});

Deno.test("makeStyle colours ✓ green, ✗ red, headings bold and details dim when colour is on, and adds nothing when off", () => {
  const colour = makeStyle(true);
  assert.equal(colour.ok("✓ open"), "\x1b[32m✓ open\x1b[0m");
  assert.equal(colour.fail("✗ closed"), "\x1b[31m✗ closed\x1b[0m");
  assert.equal(colour.heading("Step"), "\x1b[1mStep\x1b[0m");
  assert.equal(colour.dim("nft"), "\x1b[2mnft\x1b[0m");
  const plain = makeStyle(false);
  for (const text of ["✓ open", "✗ closed"]) {
    assert.equal(plain.ok(text), text);
    assert.equal(plain.fail(text), text);
  }
});
