import assert from "node:assert/strict";
import { type CliIo, runCli } from "../../lib/cli/mod.ts";

function capture(): { io: CliIo; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t) => out.push(t), err: (t) => err.push(t) }, out, err };
}

Deno.test("serve --interface with an invalid name is a usage error before any config or firewall work", async () => {
  const { io, err } = capture();
  const code = await runCli([
    "serve",
    "--interface",
    "a/b",
    "--config",
    "/nonexistent/openme.yaml",
  ], io);
  assert.equal(code, 2);
  const text = err.join("\n");
  assert.match(text, /--interface "a\/b" is not an interface name/);
  assert.match(text, /Usage: openme serve/);
  assert.doesNotMatch(text, /nonexistent/);
});

Deno.test("serve with a missing config file exits 1 naming the file", async () => {
  const { io, err } = capture();
  const code = await runCli([
    "serve",
    "--config",
    "/nonexistent/openme.yaml",
    "--state-file",
    "/nonexistent/s.json",
  ], io);
  assert.equal(code, 1);
  assert.match(err.join("\n"), /\/nonexistent\/openme\.yaml/);
});
