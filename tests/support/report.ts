/**
 * A problem report for the config value checks that throws, and a helper
 * that returns what was reported, for tests of checks that take a
 * `ReportProblem` callback.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { ProblemAt } from "../../lib/config/value_checks.ts";

/** What {@linkcode report} throws: the problem reported. */
export class Reported extends Error {
  /** Creates the error for one reported problem. */
  constructor(readonly at: ProblemAt) {
    super(at.problem);
  }
}

/** A `ReportProblem` that throws {@linkcode Reported}. */
export function report(at: ProblemAt): never {
  throw new Reported(at);
}

/** Runs a check that must report a problem and returns that problem. */
export function reported(run: () => unknown): ProblemAt {
  try {
    run();
  } catch (error) {
    if (error instanceof Reported) return error.at;
    throw error;
  }
  assert.fail("expected a reported problem");
}
