/**
 * promtool (Debian package `prometheus`, which scripts/setup.sh installs as
 * root) for the tests that check the metrics file and the README's alert
 * rules; tests that need it skip with a visible message when it is missing.
 *
 * @module
 */

import assert from "node:assert/strict";
import { findOnPath, run } from "../../scripts/testbed.ts";

/** Why promtool tests cannot run here, or null when promtool is on PATH. */
export const PROMTOOL_MISSING: string | null = findOnPath("promtool") === null
  ? "needs promtool on PATH (Debian package prometheus; scripts/setup.sh installs it as root)"
  : null;

if (PROMTOOL_MISSING !== null) {
  console.warn(`SKIP promtool checks: ${PROMTOOL_MISSING}`);
}

/** Asserts that `promtool check metrics` accepts the text without a finding. */
export async function assertPromtoolMetrics(text: string): Promise<void> {
  const result = await run(["promtool", "check", "metrics"], { stdin: text });
  assert.equal(
    result.code,
    0,
    `promtool check metrics: ${result.stdout}${result.stderr}\n${text}`,
  );
  assert.equal(result.stdout + result.stderr, "", "promtool findings");
}
