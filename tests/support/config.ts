/**
 * Helpers the config tests share: the keys of the `server:` section, a
 * config text built from numbered lines with some replaced, and the check of
 * one expected ConfigError.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ConfigError } from "../../lib/config/errors.ts";

/** Every key of the server config's `server:` section (SPEC §4), in the order `openme init` writes them. */
export const SERVER_SECTION_KEYS: readonly string[] = [
  "host",
  "udp_port",
  "health_port",
  "firewall",
  "knock_timeout",
  "replay_window",
  "open_knock_port",
  "knock_rate_limit",
  "knock_burst",
  "drop_ports",
  "default_profile",
  "interface",
  "private_key",
  "public_key",
];

/**
 * Joins the lines into a file text (ending in a newline) after replacing
 * lines by their 1-based number; null blanks a line to "#", keeping the
 * numbering of the lines after it.
 */
export function replaceLines(
  lines: readonly string[],
  replace: Record<number, string | null>,
): string {
  const result = [...lines];
  for (const [number, text] of Object.entries(replace)) {
    result[Number(number) - 1] = text === null ? "#" : text;
  }
  return result.join("\n") + "\n";
}

/** One ConfigError a table case expects. */
export interface ExpectedConfigError {
  /** Case name, shown when an assertion fails. */
  name: string;
  /** File the message names. */
  file: string;
  /** Line the message names; absent when it names none. */
  line?: number;
  /** Key path the message names; absent when it names none. */
  keyPath?: string;
  /** Texts the message contains. */
  parts: readonly string[];
}

/**
 * Asserts that error is a ConfigError whose message starts with
 * `config FILE[:LINE]: [KEY PATH: ]` and contains every expected part.
 */
export function assertConfigErrorMessage(
  error: unknown,
  expected: ExpectedConfigError,
): asserts error is ConfigError {
  assert.ok(error instanceof ConfigError, `${expected.name}: ${error}`);
  const prefix = `config ${expected.file}${
    expected.line === undefined ? "" : `:${expected.line}`
  }: ${expected.keyPath === undefined ? "" : `${expected.keyPath}: `}`;
  assert.ok(
    error.message.startsWith(prefix),
    `${expected.name}: "${error.message}" should start with "${prefix}"`,
  );
  for (const part of expected.parts) {
    assert.ok(
      error.message.includes(part),
      `${expected.name}: "${error.message}" lacks "${part}"`,
    );
  }
}
