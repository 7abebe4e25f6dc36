/** Tests of what the commands share (lib/cli/io.ts): the plain-text tables of `openme list` and `openme sessions`. */

import assert from "node:assert/strict";
import { formatTable } from "../../lib/cli/io.ts";

Deno.test("formatTable pads every column but the last to its widest cell", () => {
  assert.deepEqual(
    formatTable([
      ["NAME", "PORTS", "EXPIRES"],
      ["alice-laptop", "22/tcp", "never"],
      ["bob", "-", "2026-12-31T23:59:59Z"],
    ]),
    [
      "NAME          PORTS   EXPIRES",
      "alice-laptop  22/tcp  never",
      "bob           -       2026-12-31T23:59:59Z",
    ],
  );
  assert.deepEqual(formatTable([]), []);
});
