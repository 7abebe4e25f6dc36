/**
 * Time formatting shared by the state file, logs and command output.
 *
 * @module
 */

/** Formats Unix milliseconds as RFC 3339 in UTC to the second, e.g. `2026-11-25T13:29:46Z`. */
export function formatRfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}
