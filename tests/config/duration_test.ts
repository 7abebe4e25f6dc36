import assert from "node:assert/strict";
import { formatDuration, parseDuration } from "../../lib/config/duration.ts";

Deno.test("parseDuration accepts Go duration syntax", () => {
  const cases: { text: string; ms: number }[] = [
    { text: "30s", ms: 30_000 },
    { text: "1m0s", ms: 60_000 },
    { text: "1h30m", ms: 5_400_000 },
    { text: "1.5s", ms: 1_500 },
    { text: ".5s", ms: 500 },
    { text: "5.s", ms: 5_000 },
    { text: "250ms", ms: 250 },
    { text: "1us", ms: 0.001 },
    { text: "1\u00b5s", ms: 0.001 },
    { text: "1\u03bcs", ms: 0.001 },
    { text: "1000ns", ms: 0.001 },
    { text: "2h45m30.5s", ms: 9_930_500 },
    { text: "0", ms: 0 },
    { text: "+0", ms: 0 },
    { text: "0s", ms: 0 },
    { text: "-5s", ms: -5_000 },
    { text: "+5s", ms: 5_000 },
    { text: "1h1h", ms: 7_200_000 },
    { text: "0.000001ms", ms: 0.000001 },
  ];
  for (const { text, ms } of cases) {
    const got = parseDuration(text);
    assert.ok(got !== null, `${text} should parse`);
    assert.ok(Math.abs(got - ms) < 1e-9, `${text}: got ${got}, want ${ms}`);
  }
});

Deno.test("parseDuration refuses what Go refuses", () => {
  const bad = [
    "",
    "30",
    "1",
    "s",
    ".s",
    "1.2.3s",
    "30 s",
    " 30s",
    "30s ",
    "30sec",
    "1d",
    "1S",
    "1H",
    "--1s",
    "-",
    "1e3s",
    "0x10s",
    "9999999999h",
    "1h-1m",
    "ms",
  ];
  for (const text of bad) {
    assert.equal(
      parseDuration(text),
      null,
      `${JSON.stringify(text)} should fail`,
    );
  }
});

Deno.test("formatDuration writes Go's Duration.String form", () => {
  const cases: { ms: number; text: string }[] = [
    { ms: 0, text: "0s" },
    { ms: 30_000, text: "30s" },
    { ms: 90_000, text: "1m30s" },
    { ms: 3_600_000, text: "1h0m0s" },
    { ms: 5_400_000, text: "1h30m0s" },
    { ms: 1_500, text: "1.5s" },
    { ms: 250, text: "250ms" },
    { ms: 1.5, text: "1.5ms" },
    { ms: 0.001, text: "1\u00b5s" },
    { ms: 0.000001, text: "1ns" },
    { ms: -5_000, text: "-5s" },
    { ms: 61_001, text: "1m1.001s" },
  ];
  for (const { ms, text } of cases) {
    assert.equal(formatDuration(ms), text);
  }
});

Deno.test("formatDuration output parses back to the same value", () => {
  const values = [
    0,
    1,
    999,
    1000,
    1500,
    59_999,
    60_000,
    86_400_000,
    0.5,
    123_456.789,
    7_261_000,
  ];
  for (const ms of values) {
    const back = parseDuration(formatDuration(ms));
    assert.ok(back !== null, `${formatDuration(ms)} should parse`);
    assert.ok(
      Math.abs(back - ms) < 1e-6,
      `${ms} -> ${formatDuration(ms)} -> ${back}`,
    );
  }
});

Deno.test("formatDuration refuses non-finite values", () => {
  assert.throws(() => formatDuration(Infinity), RangeError);
  assert.throws(() => formatDuration(NaN), RangeError);
});
