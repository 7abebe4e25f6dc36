import assert from "node:assert/strict";
import { CommandError, UsageError } from "../../lib/cli/errors.ts";
import type { CliIo } from "../../lib/cli/io.ts";
import { reportError } from "../../lib/cli/mod.ts";

function capture(): { io: CliIo; err: string[] } {
  const err: string[] = [];
  return { io: { out: () => {}, err: (t) => err.push(t) }, err };
}

Deno.test("a UsageError exits 2 with the command's usage line and no stack trace", () => {
  const { io, err } = capture();
  assert.equal(reportError(new UsageError("missing NAME", "add"), io), 2);
  const text = err.join("\n");
  assert.match(text, /^openme: missing NAME/);
  assert.match(text, /Usage: openme add NAME/);
  assert.doesNotMatch(text, /\bat .*\.ts:\d+/);
});

Deno.test("a CommandError exits with its code (default 1)", () => {
  const { io, err } = capture();
  assert.equal(reportError(new CommandError("no such client"), io), 1);
  assert.equal(reportError(new CommandError("closed", 3), io), 3);
  assert.deepEqual(err, ["openme: no such client", "openme: closed"]);
});
