/**
 * `openme completion bash|zsh|fish`: prints a completion script for commands,
 * flags and profile names.
 *
 * Commands and flags come from the command table (lib/cli/spec.ts), so the
 * script always matches the binary that printed it. Profile names are read
 * when you press Tab, without starting openme: a small awk program lists the
 * keys one indentation level under the top-level `profiles:` line of the
 * client config (`--client-config PATH` on the command line, else
 * `~/.openme/config.yaml`). That covers every file `openme add`/`import`
 * write and hand-edited block-style YAML; flow-style profiles
 * (`profiles: {a: ...}`) are not completed.
 *
 * @module
 */

import type { OptionTable } from "../args.ts";
import { UsageError } from "../errors.ts";
import type { CliIo, ParsedCommand } from "../io.ts";
import {
  COMMANDS,
  type CommandSpec,
  GLOBAL_FLAGS,
  GLOBAL_OPTIONS,
} from "../spec.ts";

/** Shells a script can be printed for. */
export const COMPLETION_SHELLS: readonly string[] = ["bash", "zsh", "fish"];

/** A flag as completion scripts need it. */
export interface CompletionFlag {
  /** Long name without dashes, e.g. "client-config". */
  long: string;
  /** One-letter alias, or null. */
  short: string | null;
  /** Whether the flag takes a value. */
  takesValue: boolean;
  /** One line of help. */
  help: string;
}

/** Flags whose value is a file path. */
const FILE_VALUE_FLAGS: readonly string[] = [
  "config",
  "client-config",
  "state-file",
  "qr-out",
];

/** Fixed choices for some flag values. */
const VALUE_CHOICES: Record<string, readonly string[]> = {
  "log-level": ["debug", "info", "warn", "error"],
  firewall: ["nft", "iptables"],
};

/** The client config path the scripts read profile names from by default. */
const DEFAULT_CLIENT_CONFIG = "$HOME/.openme/config.yaml";

/**
 * Prints the keys one level under the top-level `profiles:` line: the indent
 * of the first key sets the level. POSIX awk (mawk, gawk, BSD awk).
 */
export const PROFILE_NAMES_AWK = [
  "/^profiles:[ \\t]*(#.*)?$/ { inp = 1; indent = -1; next }",
  "inp && /^[^ \\t#]/ { inp = 0 }",
  "inp && /^[ \\t]+[^ \\t#]/ {",
  "  match($0, /^[ \\t]+/); n = RLENGTH",
  "  if (indent < 0) indent = n",
  "  if (n == indent) {",
  "    key = substr($0, n + 1)",
  '    sub(/[ \\t]*:([ \\t].*)?$/, "", key)',
  '    gsub(/^["\']|["\']$/, "", key)',
  '    if (key != "") print key',
  "  }",
  "}",
].join("\n");

function helpFor(
  flags: { flag: string; text: string }[],
  long: string,
): string {
  for (const f of flags) {
    if (new RegExp(`(^|[ ,])--${long}( |$)`).test(f.flag)) return f.text;
  }
  return "";
}

function flagsOf(
  options: OptionTable,
  help: { flag: string; text: string }[],
): CompletionFlag[] {
  const out: CompletionFlag[] = [];
  for (const [long, option] of Object.entries(options)) {
    out.push({
      long,
      short: option.short ?? null,
      takesValue: option.type === "string",
      help: helpFor(help, long),
    });
  }
  return out;
}

/** The global flags (every command takes them). */
export function globalCompletionFlags(): CompletionFlag[] {
  return flagsOf(GLOBAL_OPTIONS, GLOBAL_FLAGS);
}

/** A command's own flags. */
export function commandCompletionFlags(spec: CommandSpec): CompletionFlag[] {
  return flagsOf(spec.options, spec.flags);
}

/** What a command's first positional argument completes to. */
export type PositionalKind = "profile" | "file" | "shell" | "none";

/** What a command's first positional argument completes to: profile names, files, shells, or nothing. */
export function positionalKind(spec: CommandSpec): PositionalKind {
  const first = spec.positionals[0];
  if (first === "PROFILE" || spec.name === "profiles") return "profile";
  if (first === "FILE") return "file";
  if (first === "SHELL") return "shell";
  return "none";
}

function words(flags: CompletionFlag[]): string {
  const out: string[] = [];
  for (const f of flags) {
    out.push(`--${f.long}`);
    if (f.short !== null) out.push(`-${f.short}`);
  }
  return out.join(" ");
}

function valueFlagWords(): string[] {
  const names = new Set<string>();
  for (const f of globalCompletionFlags()) {
    if (f.takesValue) names.add(`--${f.long}`);
  }
  for (const spec of COMMANDS) {
    for (const f of commandCompletionFlags(spec)) {
      if (f.takesValue) names.add(`--${f.long}`);
    }
  }
  return [...names];
}

function singleQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

function commandsWith(kind: PositionalKind): string[] {
  return COMMANDS.filter((c) => positionalKind(c) === kind).map((c) => c.name);
}

/**
 * bash and zsh lines that walk the words before the cursor (`loop` is the
 * `for ((...))` header, `word` the expansion of word i), skipping flags and
 * their values: the first other word is the command (`$cmd`), the rest are
 * counted in `$npos`.
 */
function commandScanLines(
  loop: string,
  word: string,
  valueFlags: string[],
): string[] {
  return [
    `  for ((${loop})); do`,
    `    w="${word}"`,
    '    case "$w" in',
    `      ${valueFlags.join("|")}) ((i++)); continue ;;`,
    "      -*) continue ;;",
    "    esac",
    '    if [[ -z $cmd ]]; then cmd="$w"; else npos=$((npos + 1)); fi',
    "  done",
  ];
}

/**
 * fish lines that walk `$tokens` after `openme`, skipping flags and their
 * values; `onWord` runs for every other word (the command and positionals).
 */
function fishWordLoop(valueFlags: string[], onWord: string[]): string[] {
  return [
    "    for t in $tokens[2..-1]",
    "        if test $skip = 1",
    "            set skip 0",
    "            continue",
    "        end",
    "        switch $t",
    `            case ${valueFlags.join(" ")}`,
    "                set skip 1",
    "            case '-*'",
    "            case '*'",
    ...onWord.map((line) => `                ${line}`),
    "        end",
    "    end",
  ];
}

/** The bash completion script. */
export function bashCompletionScript(): string {
  const globals = words(globalCompletionFlags());
  const commandNames = COMMANDS.map((c) => c.name).join(" ");
  const valueFlags = valueFlagWords();
  const freeValueFlags = valueFlags.filter((f) =>
    !FILE_VALUE_FLAGS.includes(f.slice(2)) && !(f.slice(2) in VALUE_CHOICES) &&
    f !== "--interface"
  );
  const lines: string[] = [
    "# bash completion for openme (generated by `openme completion bash`).",
    "# Load it now: source <(openme completion bash)",
    "# Install: openme completion bash > /etc/bash_completion.d/openme",
    "",
    "_openme_profiles() {",
    `  local file="${DEFAULT_CLIENT_CONFIG}" i`,
    "  for ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do",
    '    if [[ ${COMP_WORDS[i]} == --client-config ]]; then file="${COMP_WORDS[i+1]}"; fi',
    "  done",
    '  file="${file/#\\~/$HOME}"',
    '  [[ -r "$file" ]] || return 0',
    `  awk ${singleQuote(PROFILE_NAMES_AWK)} "$file" 2>/dev/null`,
    "}",
    "",
    "_openme() {",
    '  local cur="${COMP_WORDS[COMP_CWORD]}"',
    '  local prev="${COMP_WORDS[COMP_CWORD-1]}"',
    "  local cmd='' npos=0 i w",
    "  COMPREPLY=()",
    '  case "$prev" in',
    `    ${FILE_VALUE_FLAGS.map((f) => `--${f}`).join("|")})`,
    "      compopt -o filenames 2>/dev/null",
    '      COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;',
  ];
  for (const [flag, choices] of Object.entries(VALUE_CHOICES)) {
    lines.push(
      `    --${flag}) COMPREPLY=($(compgen -W ${
        singleQuote(choices.join(" "))
      } -- "$cur")); return 0 ;;`,
    );
  }
  lines.push(
    '    --interface) COMPREPLY=($(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur")); return 0 ;;',
  );
  if (freeValueFlags.length > 0) {
    lines.push(`    ${freeValueFlags.join("|")}) return 0 ;;`);
  }
  lines.push(
    "  esac",
    ...commandScanLines(
      "i = 1; i < COMP_CWORD; i++",
      "${COMP_WORDS[i]}",
      valueFlags,
    ),
    "  if [[ -z $cmd ]]; then",
    "    if [[ $cur == -* ]]; then",
    `      COMPREPLY=($(compgen -W ${singleQuote(globals)} -- "$cur"))`,
    "    else",
    `      COMPREPLY=($(compgen -W ${
      singleQuote(`${commandNames} help`)
    } -- "$cur"))`,
    "    fi",
    "    return 0",
    "  fi",
    "  if [[ $cur == -* ]]; then",
    '    case "$cmd" in',
  );
  for (const spec of COMMANDS) {
    const own = words(commandCompletionFlags(spec));
    lines.push(
      `      ${spec.name}) COMPREPLY=($(compgen -W ${
        singleQuote(`${own} ${globals}`.trim())
      } -- "$cur")) ;;`,
    );
  }
  lines.push(
    `      *) COMPREPLY=($(compgen -W ${singleQuote(globals)} -- "$cur")) ;;`,
    "    esac",
    "    return 0",
    "  fi",
    "  ((npos == 0)) || return 0",
    '  case "$cmd" in',
  );
  const profileCommands = commandsWith("profile");
  if (profileCommands.length > 0) {
    lines.push(
      `    ${
        profileCommands.join("|")
      }) COMPREPLY=($(compgen -W "$(_openme_profiles)" -- "$cur")) ;;`,
    );
  }
  const fileCommands = commandsWith("file");
  if (fileCommands.length > 0) {
    lines.push(
      `    ${fileCommands.join("|")})`,
      "      compopt -o filenames 2>/dev/null",
      '      COMPREPLY=($(compgen -f -- "$cur")) ;;',
    );
  }
  const shellCommands = commandsWith("shell");
  if (shellCommands.length > 0) {
    lines.push(
      `    ${shellCommands.join("|")}) COMPREPLY=($(compgen -W ${
        singleQuote(COMPLETION_SHELLS.join(" "))
      } -- "$cur")) ;;`,
    );
  }
  lines.push(
    `    help) COMPREPLY=($(compgen -W ${
      singleQuote(commandNames)
    } -- "$cur")) ;;`,
    "  esac",
    "  return 0",
    "}",
    "",
    "complete -F _openme openme",
    "",
  );
  return lines.join("\n");
}

function zshEscape(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll(":", "\\:");
}

/** The zsh completion script (works from fpath as `_openme` and with `source <(openme completion zsh)`). */
export function zshCompletionScript(): string {
  const globals = globalCompletionFlags();
  const valueFlags = valueFlagWords();
  const lines: string[] = [
    "#compdef openme",
    "# zsh completion for openme (generated by `openme completion zsh`).",
    "# Load it now: source <(openme completion zsh)   (after compinit)",
    '# Install: openme completion zsh > "${fpath[1]}/_openme"',
    "",
    "_openme_profiles() {",
    `  local file="${DEFAULT_CLIENT_CONFIG}" i`,
    "  for ((i = 1; i < CURRENT; i++)); do",
    '    if [[ ${words[i]} == --client-config ]]; then file="${words[i+1]}"; fi',
    "  done",
    '  file="${~file}"',
    '  [[ -r "$file" ]] || return 0',
    `  awk ${singleQuote(PROFILE_NAMES_AWK)} "$file" 2>/dev/null`,
    "}",
    "",
    "_openme() {",
    '  local cur="${words[CURRENT]}" prev="${words[CURRENT-1]}"',
    "  local cmd='' npos=0 i w",
    "  local -a commands flags",
    "  commands=(",
  ];
  for (const spec of COMMANDS) {
    lines.push(`    ${singleQuote(`${spec.name}:${zshEscape(spec.summary)}`)}`);
  }
  lines.push(
    "  )",
    '  case "$prev" in',
    `    ${FILE_VALUE_FLAGS.map((f) => `--${f}`).join("|")}) _files; return ;;`,
  );
  for (const [flag, choices] of Object.entries(VALUE_CHOICES)) {
    lines.push(`    --${flag}) compadd -- ${choices.join(" ")}; return ;;`);
  }
  lines.push(
    '    --interface) compadd -- ${(f)"$(ls /sys/class/net 2>/dev/null)"}; return ;;',
    `    ${valueFlags.join("|")}) return ;;`,
    "  esac",
    ...commandScanLines("i = 2; i < CURRENT; i++", "${words[i]}", valueFlags),
    "  if [[ -z $cmd ]]; then",
    "    if [[ $cur == -* ]]; then",
    `      compadd -- ${words(globals)}`,
    "    else",
    "      _describe -t commands 'openme command' commands",
    "    fi",
    "    return",
    "  fi",
    "  if [[ $cur == -* ]]; then",
    '    case "$cmd" in',
  );
  for (const spec of COMMANDS) {
    const own = words(commandCompletionFlags(spec));
    lines.push(`      ${spec.name}) flags=(${own}) ;;`);
  }
  lines.push(
    "      *) flags=() ;;",
    "    esac",
    `    compadd -- $flags ${words(globals)}`,
    "    return",
    "  fi",
    "  ((npos == 0)) || return",
    '  case "$cmd" in',
  );
  const profileCommands = commandsWith("profile");
  if (profileCommands.length > 0) {
    lines.push(
      `    ${
        profileCommands.join("|")
      }) compadd -- \${(f)"$(_openme_profiles)"} ;;`,
    );
  }
  const fileCommands = commandsWith("file");
  if (fileCommands.length > 0) {
    lines.push(`    ${fileCommands.join("|")}) _files ;;`);
  }
  const shellCommands = commandsWith("shell");
  if (shellCommands.length > 0) {
    lines.push(
      `    ${shellCommands.join("|")}) compadd -- ${
        COMPLETION_SHELLS.join(" ")
      } ;;`,
    );
  }
  lines.push(
    "    help) _describe -t commands 'openme command' commands ;;",
    "  esac",
    "}",
    "",
    'if [[ "${zsh_eval_context[-1]}" == loadautofunc ]]; then',
    '  _openme "$@"',
    "else",
    "  compdef _openme openme",
    "fi",
    "",
  );
  return lines.join("\n");
}

/** The fish completion script. */
export function fishCompletionScript(): string {
  const valueFlags = valueFlagWords();
  const lines: string[] = [
    "# fish completion for openme (generated by `openme completion fish`).",
    "# Load it now: openme completion fish | source",
    "# Install: openme completion fish > ~/.config/fish/completions/openme.fish",
    "",
    "function __openme_command",
    "    set -l tokens (commandline -opc)",
    "    set -l skip 0",
    ...fishWordLoop(valueFlags, ["echo $t", "return 0"]),
    "    return 1",
    "end",
    "",
    "function __openme_using",
    "    set -l cmd (__openme_command)",
    "    and contains -- $cmd $argv",
    "end",
    "",
    "function __openme_positionals",
    "    # How many positional arguments follow the command so far.",
    "    set -l tokens (commandline -opc)",
    "    set -l skip 0",
    "    set -l n 0",
    ...fishWordLoop(valueFlags, ["set n (math $n + 1)"]),
    "    echo (math $n - 1)",
    "end",
    "",
    "function __openme_profiles",
    `    set -l file "${DEFAULT_CLIENT_CONFIG}"`,
    "    set -l tokens (commandline -opc)",
    "    for i in (seq (count $tokens))",
    '        if test "$tokens[$i]" = --client-config; and test $i -lt (count $tokens)',
    "            set file $tokens[(math $i + 1)]",
    "        end",
    "    end",
    '    test -r "$file"; or return 0',
    `    awk ${singleQuote(PROFILE_NAMES_AWK)} "$file" 2>/dev/null`,
    "end",
    "",
    "complete -c openme -f",
  ];
  for (const spec of COMMANDS) {
    lines.push(
      `complete -c openme -n 'not __openme_command' -a ${spec.name} -d ${
        singleQuote(spec.summary)
      }`,
    );
  }
  for (const f of globalCompletionFlags()) {
    lines.push(fishFlagLine(f, null));
  }
  for (const spec of COMMANDS) {
    for (const f of commandCompletionFlags(spec)) {
      lines.push(fishFlagLine(f, spec.name));
    }
  }
  const profileCommands = commandsWith("profile");
  if (profileCommands.length > 0) {
    lines.push(
      `complete -c openme -n '__openme_using ${
        profileCommands.join(" ")
      }; and test (__openme_positionals) = 0' -a '(__openme_profiles)' -d profile`,
    );
  }
  const fileCommands = commandsWith("file");
  if (fileCommands.length > 0) {
    lines.push(
      `complete -c openme -n '__openme_using ${
        fileCommands.join(" ")
      }; and test (__openme_positionals) = 0' -F`,
    );
  }
  const shellCommands = commandsWith("shell");
  if (shellCommands.length > 0) {
    lines.push(
      `complete -c openme -n '__openme_using ${
        shellCommands.join(" ")
      }; and test (__openme_positionals) = 0' -a ${
        singleQuote(COMPLETION_SHELLS.join(" "))
      }`,
    );
  }
  lines.push("");
  return lines.join("\n");
}

function fishFlagLine(f: CompletionFlag, command: string | null): string {
  const parts = ["complete -c openme"];
  if (command !== null) parts.push(`-n '__openme_using ${command}'`);
  parts.push(`-l ${f.long}`);
  if (f.short !== null) parts.push(`-s ${f.short}`);
  if (f.takesValue) {
    if (FILE_VALUE_FLAGS.includes(f.long)) parts.push("-r -F");
    else if (f.long in VALUE_CHOICES) {
      parts.push(`-x -a ${singleQuote(VALUE_CHOICES[f.long].join(" "))}`);
    } else if (f.long === "interface") {
      parts.push("-x -a '(ls /sys/class/net 2>/dev/null)'");
    } else parts.push("-x");
  }
  if (f.help !== "") parts.push(`-d ${singleQuote(f.help)}`);
  return parts.join(" ");
}

/** Returns the completion script for a shell, or null for an unknown shell. */
export function completionScript(shell: string): string | null {
  if (shell === "bash") return bashCompletionScript();
  if (shell === "zsh") return zshCompletionScript();
  if (shell === "fish") return fishCompletionScript();
  return null;
}

/** Runs `openme completion`. */
export function runCompletionCommand(
  parsed: ParsedCommand,
  io: CliIo,
): Promise<number> {
  const shell = parsed.positionals[0];
  const script = completionScript(shell);
  if (script === null) {
    throw new UsageError(
      `no completion for shell "${shell}" (shells: ${
        COMPLETION_SHELLS.join(", ")
      })`,
      "completion",
    );
  }
  io.out(script.trimEnd());
  return Promise.resolve(0);
}
