/**
 * A small command-line parser that imports no Node built-in, so the CLI starts
 * without Deno's Node compatibility layer. For string and boolean options
 * with one-character short aliases it behaves exactly like Node's
 * `util.parseArgs` with `{ strict: true, allowPositionals: true }`:
 *
 * - `--name value`, `--name=value`, `-x value` and `-xvalue` set a string
 *   option; the value after a separate flag is taken whatever it is, but one
 *   that starts with `-` (and is not a lone `-`) is rejected as ambiguous.
 * - `-abc` sets the boolean shorts `a`, `b` and `c`; a string short inside a
 *   group takes the rest of the group (`-afVALUE`) or, last, the next
 *   argument. A `-` inside a group (`-a-b`) ends options, like `--`.
 * - `--` ends options; a lone `-` and the empty string are positionals.
 * - The last occurrence of an option wins.
 *
 * @module
 */

/** One option's definition: its value type and an optional one-character short alias. */
export interface OptionSpec {
  /** Whether the option takes a value (`string`) or is a switch (`boolean`). */
  type: "string" | "boolean";
  /** A one-character alias used as `-x`. */
  short?: string;
}

/** Option definitions keyed by long name (without the leading `--`). */
export type OptionTable = Record<string, OptionSpec>;

/** Parsed option values and positional arguments. */
export interface ParsedArgs {
  /** Option values by long name: the string given, or true for a switch. */
  values: Record<string, string | boolean | undefined>;
  /** Arguments that are not options, in order. */
  positionals: string[];
}

/** A command line that does not fit the option table; the message is meant for the user. */
export class ArgsError extends Error {
  /** Creates the error with a user-facing message. */
  constructor(message: string) {
    super(message);
    this.name = "ArgsError";
  }
}

/** The argument that ends option parsing. */
const OPTIONS_END = "--";

/** The prefix of a long option. */
const LONG_PREFIX = "--";

/** The prefix of a short option. */
const SHORT_PREFIX = "-";

/** From where an `=` makes `--name=value`: `--=x` is the long option named `=x`. */
const FIRST_EQUALS_INDEX = 3;

/** Parses argv against the option table; throws ArgsError on an unknown option or a bad value. */
export function parseArgv(
  argv: readonly string[],
  options: OptionTable,
): ParsedArgs {
  const values: Record<string, string | boolean | undefined> = {};
  const positionals: string[] = [];
  let i = 0;
  while (i < argv.length) {
    const arg = argv[i];
    i++;
    if (arg === OPTIONS_END) {
      positionals.push(...argv.slice(i));
      break;
    }
    if (arg.startsWith(LONG_PREFIX)) {
      if (arg.indexOf("=", FIRST_EQUALS_INDEX) >= 0) {
        // As node:util does: an `=` from the fourth character on makes it
        // `--name=value`, split at the first `=` (so `--==` names "").
        const equals = arg.indexOf("=");
        const name = arg.slice(LONG_PREFIX.length, equals);
        values[name] = inlineValue(options, name, arg.slice(equals + 1));
        continue;
      }
      const name = arg.slice(LONG_PREFIX.length);
      const spec = optionSpec(options, name, arg);
      if (spec.type === "boolean") {
        values[name] = true;
        continue;
      }
      values[name] = separateValue(argv, i, name, arg);
      i++;
      continue;
    }
    if (!arg.startsWith(SHORT_PREFIX) || arg.length === SHORT_PREFIX.length) {
      positionals.push(arg);
      continue;
    }
    // A short option or a group of them: `-x`, `-xVALUE`, `-abc`.
    let endsOptions = false;
    for (let k = SHORT_PREFIX.length; k < arg.length; k++) {
      const letter = arg[k];
      if (letter === SHORT_PREFIX) {
        // Node's parseArgs expands `-a-b` to `-a -- -b`: the `-` ends options.
        positionals.push(
          ...expandShortGroup(options, arg.slice(k + 1)),
          ...argv.slice(i),
        );
        endsOptions = true;
        break;
      }
      const raw = SHORT_PREFIX + letter;
      const name = shortOptionName(options, letter);
      const spec = optionSpec(options, name, raw);
      if (spec.type === "boolean") {
        values[name] = true;
        continue;
      }
      if (k < arg.length - 1) {
        values[name] = arg.slice(k + 1);
      } else {
        values[name] = separateValue(argv, i, name, raw);
        i++;
      }
      break;
    }
    if (endsOptions) break;
  }
  return { values, positionals };
}

/** The long name a short letter stands for; Node's parseArgs falls back to the letter itself. */
function shortOptionName(options: OptionTable, letter: string): string {
  for (const [name, spec] of Object.entries(options)) {
    if (spec.short === letter) return name;
  }
  return letter;
}

/** The option's definition; throws when the table has no such option. */
function optionSpec(
  options: OptionTable,
  name: string,
  raw: string,
): OptionSpec {
  if (!Object.hasOwn(options, name)) {
    throw new ArgsError(`unknown option '${raw}'`);
  }
  return options[name];
}

/** Checks the value of `--name=value` and returns what to store. */
function inlineValue(
  options: OptionTable,
  name: string,
  value: string,
): string {
  const spec = optionSpec(options, name, LONG_PREFIX + name);
  if (spec.type === "boolean") {
    throw new ArgsError(
      `option '${shortAndLong(name, spec)}' does not take an argument`,
    );
  }
  return value;
}

/** The value at argv[index] for a string option typed as `raw`; throws when it is missing or looks like an option. */
function separateValue(
  argv: readonly string[],
  index: number,
  name: string,
  raw: string,
): string {
  if (index >= argv.length) {
    throw new ArgsError(`option ${raw} needs a value`);
  }
  const value = argv[index];
  if (value.length > 1 && value.startsWith(SHORT_PREFIX)) {
    throw new ArgsError(ambiguousMessage(name, raw));
  }
  return value;
}

/** The flag as Node's parseArgs names it in messages: `-h, --help` or `--force`. */
function shortAndLong(name: string, spec: OptionSpec): string {
  const long = LONG_PREFIX + name;
  if (spec.short === undefined || spec.short === "") return long;
  return `${SHORT_PREFIX}${spec.short}, ${long}`;
}

/** The message for a string option followed by something that looks like an option. */
function ambiguousMessage(name: string, raw: string): string {
  const example = raw.startsWith(LONG_PREFIX)
    ? `'${raw}=-XYZ'`
    : `'${LONG_PREFIX}${name}=-XYZ' or '${raw}-XYZ'`;
  return `option '${raw}' argument is ambiguous.\n` +
    `Did you forget to specify the option argument for '${raw}'?\n` +
    `To specify an option argument starting with a dash use ${example}.`;
}

/**
 * Splits the rest of a short group into the arguments Node's parseArgs turns it
 * into: `-x` per letter, except that a string option before the last letter
 * keeps the remaining letters as its value (`-fVALUE`).
 */
function expandShortGroup(options: OptionTable, letters: string): string[] {
  const tokens: string[] = [];
  for (let k = 0; k < letters.length; k++) {
    const name = shortOptionName(options, letters[k]);
    const takesValue = Object.hasOwn(options, name) &&
      options[name].type === "string";
    if (takesValue && k < letters.length - 1) {
      tokens.push(SHORT_PREFIX + letters.slice(k));
      break;
    }
    tokens.push(SHORT_PREFIX + letters[k]);
  }
  return tokens;
}
