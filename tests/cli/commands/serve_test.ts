import assert from "node:assert/strict";
import { CommandError } from "../../../lib/cli/io.ts";
import { parseCommandLine } from "../../../lib/cli/mod.ts";
import { runServeCommand } from "../../../lib/cli/commands/serve.ts";
import { openme } from "../../support/cli.ts";

Deno.test("serve --interface with an invalid name is a usage error before any config or firewall work", async () => {
  const result = await openme([
    "serve",
    "--interface",
    "a/b",
    "--config",
    "/nonexistent/openme.yaml",
  ]);
  assert.equal(result.code, 2);
  const text = result.err;
  assert.match(text, /--interface "a\/b" is not an interface name/);
  assert.match(text, /Usage: openme serve/);
  assert.doesNotMatch(text, /nonexistent/);
});

Deno.test("serve with a missing config file exits 1 naming the file", async () => {
  const result = await openme([
    "serve",
    "--config",
    "/nonexistent/openme.yaml",
    "--state-file",
    "/nonexistent/s.json",
  ]);
  assert.equal(result.code, 1);
  assert.match(result.err, /\/nonexistent\/openme\.yaml/);
});

Deno.test("serve off Linux refuses with a message that says it needs Linux, before reading any config", async () => {
  const parsed = parseCommandLine([
    "serve",
    "--config",
    "/nonexistent/openme.yaml",
  ]);
  assert.ok("spec" in parsed);
  const io = { out: () => {}, err: () => {} };
  for (const platform of ["darwin", "windows"] as const) {
    await assert.rejects(
      runServeCommand(parsed, io, { platform }),
      (error: unknown) =>
        error instanceof CommandError &&
        error.message.includes("the openme server needs Linux") &&
        error.message.includes(`this is ${platform}`) &&
        !error.message.includes("nonexistent"),
    );
  }
});
