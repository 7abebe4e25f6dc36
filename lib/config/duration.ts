/**
 * Durations in Go's `time.ParseDuration` syntax (`30s`, `1h30m`, `1.5s`) as milliseconds, fractional below one.
 *
 * @module
 */

/** Nanoseconds per unit, for every unit Go accepts. */
const UNIT_NANOSECONDS: ReadonlyMap<string, number> = new Map([
  ["ns", 1],
  ["us", 1e3],
  ["\u00b5s", 1e3], // µs, MICRO SIGN
  ["\u03bcs", 1e3], // μs, GREEK SMALL LETTER MU
  ["ms", 1e6],
  ["s", 1e9],
  ["m", 60e9],
  ["h", 3600e9],
]);

/** Go durations are signed 64-bit nanosecond counts; larger values are refused as Go refuses them. */
const MAX_DURATION_NANOSECONDS = 9223372036854775807;

const NANOSECONDS_PER_MILLISECOND = 1e6;

/** One component: an integer part, an optional fraction, and a unit (everything up to the next digit or dot, as in Go). */
const COMPONENT_PATTERN = /^([0-9]*)(?:\.([0-9]*))?([^0-9.]*)/;

/** Parses a Go duration such as `1h30m` or `1.5s` (a leading `-` makes it negative) into milliseconds, or returns null. */
export function parseDuration(text: string): number | null {
  let rest = /^[-+]/.test(text) ? text.slice(1) : text;
  // Go accepts a bare "0" (with optional sign) without a unit.
  if (rest === "0") return 0;
  if (rest === "") return null;
  let totalNanoseconds = 0;
  while (rest !== "") {
    const [all, integer, fraction = "", unit] = COMPONENT_PATTERN.exec(rest)!;
    const unitNanoseconds = UNIT_NANOSECONDS.get(unit);
    if (integer === "" && fraction === "") return null;
    if (unitNanoseconds === undefined) return null; // missing or unknown unit
    totalNanoseconds += Number(`${integer || "0"}.${fraction || "0"}`) *
      unitNanoseconds;
    // Also false for NaN and infinity.
    if (!(totalNanoseconds <= MAX_DURATION_NANOSECONDS)) return null;
    rest = rest.slice(all.length);
  }
  const milliseconds = totalNanoseconds / NANOSECONDS_PER_MILLISECOND;
  return text.startsWith("-") ? -milliseconds : milliseconds;
}

/** Formats milliseconds as Go's `Duration.String` does (`500ms`, `1.5s`, `1m30s`, `1h0m0s`), which {@linkcode parseDuration} reads back. */
export function formatDuration(ms: number): string {
  let nanoseconds = BigInt(Math.round(ms * NANOSECONDS_PER_MILLISECOND));
  const sign = nanoseconds < 0n ? "-" : "";
  if (nanoseconds < 0n) nanoseconds = -nanoseconds;

  if (nanoseconds === 0n) return "0s";
  if (nanoseconds < 1_000n) return `${sign}${nanoseconds}ns`;
  if (nanoseconds < 1_000_000n) {
    return `${sign}${withFraction(nanoseconds, 3)}\u00b5s`;
  }
  if (nanoseconds < 1_000_000_000n) {
    return `${sign}${withFraction(nanoseconds, 6)}ms`;
  }

  let out = `${withFraction(nanoseconds % 60_000_000_000n, 9)}s`;
  const totalMinutes = nanoseconds / 60_000_000_000n;
  if (totalMinutes > 0n) {
    out = `${totalMinutes % 60n}m${out}`;
    const hours = totalMinutes / 60n;
    if (hours > 0n) out = `${hours}h${out}`;
  }
  return sign + out;
}

/** Writes `value / 10^digits` in decimal without trailing zeros: (1500n, 3) -> "1.5". */
function withFraction(value: bigint, digits: number): string {
  const scale = 10n ** BigInt(digits);
  const fraction = (value % scale).toString().padStart(digits, "0")
    .replace(/0+$/, "");
  return fraction === "" ? `${value / scale}` : `${value / scale}.${fraction}`;
}
