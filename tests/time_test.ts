import assert from "node:assert/strict";
import { formatRfc3339 } from "../lib/time.ts";

Deno.test("formatRfc3339 gives UTC to the second with a Z suffix", () => {
  assert.equal(
    formatRfc3339(Date.UTC(2026, 10, 25, 13, 29, 46, 789)),
    "2026-11-25T13:29:46Z",
  );
  assert.equal(formatRfc3339(0), "1970-01-01T00:00:00Z");
});
