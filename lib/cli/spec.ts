/**
 * The command table: every command's name, flags, usage line, help text and
 * examples; parsing, `--help` and shell completion all read it.
 *
 * @module
 */

import {
  DEFAULT_SERVER_CONFIG_PATH,
  DEFAULT_UDP_PORT,
} from "../config/server_config.ts";
import { clientConfigPathDisplay } from "../platform.ts";
import { DEFAULT_STATE_FILE } from "../server/state_file.ts";

/** One flag as the parser, `--help` and completion see it. */
export interface FlagSpec {
  /** Long name without the dashes, e.g. "client-config". */
  name: string;
  /** One-letter alias, e.g. "w" for `-w`. */
  short?: string;
  /** Placeholder for the flag's value, e.g. "PATH"; a flag without one is a switch. */
  value?: string;
  /** One line on what the flag does. */
  text: string;
}

/** A command's entry in the table. */
export interface CommandSpec {
  /** Command name as typed. */
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Usage line without the leading `openme `. */
  usage: string;
  /** A paragraph shown by `--help`. */
  description: string;
  /** Flags the command takes besides the global ones, in help order. */
  flags: FlagSpec[];
  /** Names of the positional arguments, in order; at most this many are accepted. */
  positionals: string[];
  /** How many positionals are required. */
  requiredPositionals: number;
  /** The last positional may be given any number of times. */
  repeatLast?: boolean;
  /** Example command lines. */
  examples: string[];
  /** Whether the command manages the server (and so reads the server config). */
  serverSide: boolean;
}

/** Global flags every command accepts. */
export const GLOBAL_FLAGS: FlagSpec[] = [
  {
    name: "config",
    value: "PATH",
    text: `server config (default ${DEFAULT_SERVER_CONFIG_PATH})`,
  },
  {
    name: "client-config",
    value: "PATH",
    text: `client config (default ${clientConfigPathDisplay()})`,
  },
  {
    name: "log-level",
    value: "LEVEL",
    text: "debug, info, warn or error (default info)",
  },
  { name: "version", short: "v", text: "print the version and exit" },
  { name: "help", short: "h", text: "show help" },
];

/** `--state-file` of serve and sessions. */
const STATE_FILE_FLAG: FlagSpec = {
  name: "state-file",
  value: "PATH",
  text: `session state file (default ${DEFAULT_STATE_FILE})`,
};

/** Every command, in the order `openme --help` lists them. */
export const COMMANDS: CommandSpec[] = [
  {
    name: "init",
    summary: "create the server config with fresh keys",
    usage:
      "init --server HOST [--port N] [--firewall nft|iptables] [--interface IF] [--force]",
    description:
      "Writes an annotated server config with a fresh X25519 key pair. HOST is the public name or address clients knock at. Refuses to overwrite an existing config unless --force is given.",
    flags: [
      {
        name: "server",
        value: "HOST",
        text: "public name or IP written into client configs (required)",
      },
      {
        name: "port",
        value: "N",
        text: `UDP knock port (default ${DEFAULT_UDP_PORT})`,
      },
      {
        name: "firewall",
        value: "nft|iptables",
        text: "firewall backend (default nft)",
      },
      {
        name: "interface",
        value: "IF",
        text: "rules match only this input interface",
      },
      {
        name: "force",
        text:
          "overwrite an existing config (new keys: every client must be re-provisioned)",
      },
    ],
    positionals: [],
    requiredPositionals: 0,
    examples: [
      "sudo openme init --server vpn.example.com",
      "sudo openme init --server 203.0.113.7 --port 40000 --firewall iptables",
    ],
    serverSide: true,
  },
  {
    name: "serve",
    summary: "run the knock server (Linux, root or CAP_NET_ADMIN)",
    usage: "serve [--state-file PATH] [--interface IF]",
    description:
      "Listens for knocks on the UDP port, opens the client's ports for its address for knock_timeout, and removes every rule it added on SIGINT/SIGTERM. Reloads the config on SIGHUP and when the file changes.",
    flags: [
      STATE_FILE_FLAG,
      {
        name: "interface",
        value: "IF",
        text: "rules match only this input interface (overrides the config)",
      },
    ],
    positionals: [],
    requiredPositionals: 0,
    examples: ["sudo openme serve", "sudo openme serve --log-level debug"],
    serverSide: true,
  },
  {
    name: "sessions",
    summary: "show open sessions, last-seen times and drop counters",
    usage: "sessions [--state-file PATH] [-w|--watch]",
    description:
      "Reads the state file the server writes and shows each open session (client, address, ports, opened, expires in), the last time every other client knocked, and how many datagrams were dropped and why.",
    flags: [
      STATE_FILE_FLAG,
      { name: "watch", short: "w", text: "refresh every second until Ctrl-C" },
    ],
    positionals: [],
    requiredPositionals: 0,
    examples: ["openme sessions", "openme sessions --watch"],
    serverSide: true,
  },
  {
    name: "add",
    summary: "register a client and print its config",
    usage:
      "add NAME [--out FILE] [--ports CSV] [--expires RFC3339] [--profile NAME] [--qr] [--qr-out FILE] [--force]",
    description:
      "Creates an Ed25519 key pair for a new client, adds it to the server config and prints the client config (a YAML block starting with `profiles:`) followed by the key fingerprint, or writes it to --out FILE (mode 0600). The private key is not stored on the server. Clients in clients_dir files are managed there, not by add.",
    flags: [
      {
        name: "ports",
        value: "CSV",
        text:
          "port groups and/or specs, e.g. default,2222/tcp (default: the default group)",
      },
      {
        name: "expires",
        value: "RFC3339",
        text: "refuse knocks after this time, e.g. 2026-12-31T23:59:59Z",
      },
      {
        name: "profile",
        value: "NAME",
        text:
          "profile name in the printed client config (default: server.default_profile)",
      },
      {
        name: "out",
        value: "FILE",
        text: "write the client config to a new file (mode 0600)",
      },
      { name: "qr", text: "also print a QR code for the mobile apps" },
      {
        name: "qr-out",
        value: "FILE",
        text: "write the QR code to a new PNG file (mode 0600)",
      },
      {
        name: "force",
        text:
          "replace an existing --out/--qr-out file (never through a symlink)",
      },
    ],
    positionals: ["NAME"],
    requiredPositionals: 1,
    examples: [
      "sudo openme add alice --out alice.yaml",
      "sudo openme add bob --out bob.yaml --ports devops,2222/tcp --expires 2026-12-31T23:59:59Z",
      "sudo openme add phone --qr",
    ],
    serverSide: true,
  },
  {
    name: "list",
    summary: "list registered clients",
    usage: "list",
    description:
      "Shows each client's name, key fingerprint, effective ports and expiry.",
    flags: [],
    positionals: [],
    requiredPositionals: 0,
    examples: ["sudo openme list"],
    serverSide: true,
  },
  {
    name: "revoke",
    summary: "remove a client (a running server applies it within 2 s)",
    usage: "revoke NAME",
    description:
      "Removes the client from the server config. A running server reloads the file, refuses the client's knocks and closes its open sessions.",
    flags: [],
    positionals: ["NAME"],
    requiredPositionals: 1,
    examples: ["sudo openme revoke alice"],
    serverSide: true,
  },
  {
    name: "knock",
    summary: "send a knock to open your ports",
    usage:
      "knock [PROFILE...] [--all] [--ip IP] [-4|-6] [--continuous] [--interval DURATION] [--check]",
    description:
      "Sends one signed, encrypted UDP packet to the server. The server opens your ports for the packet's source address (or --ip) for a few seconds. When the server name has IPv4 and IPv6 addresses, one knock goes to each. Several profiles (or --all) are knocked at once, one line each; the exit status is 1 when any failed.",
    flags: [
      { name: "all", text: "knock every profile of the client config" },
      {
        name: "ip",
        value: "IP",
        text: "open for this address instead of the packet's source address",
      },
      { name: "ipv4", short: "4", text: "knock over IPv4 only" },
      { name: "ipv6", short: "6", text: "knock over IPv6 only" },
      { name: "continuous", text: "knock again every interval until Ctrl-C" },
      {
        name: "interval",
        value: "DURATION",
        text: "time between knocks with --continuous (default 25s)",
      },
      {
        name: "check",
        text:
          "wait up to 3 s for the health port to open; exit 1 if it does not",
      },
    ],
    positionals: ["PROFILE"],
    requiredPositionals: 0,
    repeatLast: true,
    examples: [
      "openme knock",
      "openme knock work --check && ssh me@work.example.com",
      "openme knock web1 web2 db --check",
      "openme knock --ip 198.51.100.20",
      "openme knock --continuous --interval 20s",
    ],
    serverSide: false,
  },
  {
    name: "status",
    summary: "check whether the server's health port is reachable",
    usage: "status [PROFILE] [--knock]",
    description:
      "Connects to the server's health port over TCP within 3 s. It is reachable only while a knock of yours is open, so this tells whether your ports are open now.",
    flags: [{ name: "knock", text: "knock first, then check" }],
    positionals: ["PROFILE"],
    requiredPositionals: 0,
    examples: ["openme status", "openme status work --knock"],
    serverSide: false,
  },
  {
    name: "profiles",
    summary: "list client profiles, or show one",
    usage: "profiles [NAME]",
    description:
      "Lists the profiles in the client config, or shows one. Private keys are always redacted.",
    flags: [],
    positionals: ["NAME"],
    requiredPositionals: 0,
    examples: ["openme profiles", "openme profiles work"],
    serverSide: false,
  },
  {
    name: "import",
    summary: "add a profile from `openme add` output or a QR payload",
    usage: "import [FILE|-] [--profile NAME] [--force] [--allow-post-knock]",
    description:
      "Reads the `profiles:` block printed by `openme add` (or the QR JSON payload) from FILE or standard input and merges it into the client config, keeping comments.",
    flags: [
      {
        name: "profile",
        value: "NAME",
        text: "store it under this profile name",
      },
      { name: "force", text: "overwrite a profile of the same name" },
      {
        name: "allow-post-knock",
        text: "accept a post_knock command (shown), which every knock runs",
      },
    ],
    positionals: ["FILE"],
    requiredPositionals: 0,
    examples: [
      "openme import alice.yaml",
      "ssh admin@server sudo openme add laptop | openme import -",
    ],
    serverSide: false,
  },
  {
    name: "doctor",
    summary: "check the server's config, firewall and clock",
    usage: "doctor",
    description:
      "Checks the server config, privileges, firewall tools, the base ruleset (default deny, jump to openme, established traffic, ICMPv6 neighbour discovery), the knock and health ports and clock sync. Prints one line per finding with the command to fix it; exits 1 on any ✗.",
    flags: [],
    positionals: [],
    requiredPositionals: 0,
    examples: ["sudo openme doctor"],
    serverSide: true,
  },
  {
    name: "cleanup",
    summary: "remove every rule openme left in the firewall",
    usage: "cleanup",
    description:
      "Removes every openme rule, set, jump and chain from nftables and from iptables/ip6tables without reading the config, so it works when the config is broken; the systemd unit runs it after the server stops. Rules of a running openme serve are removed too.",
    flags: [],
    positionals: [],
    requiredPositionals: 0,
    examples: ["sudo openme cleanup"],
    serverSide: true,
  },
  {
    name: "completion",
    summary: "print a shell completion script",
    usage: "completion bash|zsh|fish",
    description:
      "Prints a completion script for commands, flags and profile names.",
    flags: [],
    positionals: ["SHELL"],
    requiredPositionals: 1,
    examples: [
      "openme completion bash > /etc/bash_completion.d/openme",
      "openme completion fish > ~/.config/fish/completions/openme.fish",
    ],
    serverSide: false,
  },
  {
    name: "man",
    summary: "print this manual page (roff)",
    usage: "man",
    description:
      "Prints the manual page, generated from the same table as `--help`. The packages and install.sh install it; with a bare binary, read it with `openme man | man -l -`.",
    flags: [],
    positionals: [],
    requiredPositionals: 0,
    examples: ["openme man | man -l -"],
    serverSide: false,
  },
];

/** Finds a command by name, or returns undefined. */
export function findCommand(name: string): CommandSpec | undefined {
  return COMMANDS.find((spec) => spec.name === name);
}

/** A flag as help shows it, e.g. `-w, --watch` or `--ip IP`. */
export function flagLabel(flag: FlagSpec): string {
  const short = flag.short === undefined ? "" : `-${flag.short}, `;
  const value = flag.value === undefined ? "" : ` ${flag.value}`;
  return `${short}--${flag.name}${value}`;
}

function flagLines(flags: FlagSpec[]): string[] {
  return flags.map((f) => `  ${flagLabel(f).padEnd(26)} ${f.text}`);
}

/** Renders a command's `--help` text. */
export function commandHelp(spec: CommandSpec): string {
  const lines = [`Usage: openme ${spec.usage}`, "", spec.description, ""];
  if (spec.flags.length > 0) {
    lines.push("Options:", ...flagLines(spec.flags), "");
  }
  lines.push("Global options:", ...flagLines(GLOBAL_FLAGS), "", "Examples:");
  for (const e of spec.examples) lines.push(`  ${e}`);
  return lines.join("\n");
}

/** Renders the top-level `openme --help` text. */
export function topLevelHelp(): string {
  const list = (serverSide: boolean): string[] =>
    COMMANDS.filter((spec) => spec.serverSide === serverSide).map((spec) =>
      `  ${spec.name.padEnd(11)} ${spec.summary}`
    );
  return [
    "openme — single packet authorization: ports stay closed until you knock.",
    "",
    "Usage: openme COMMAND [options]",
    "",
    "Server commands (Linux):",
    ...list(true),
    "",
    "Client commands:",
    ...list(false),
    "",
    "Global options:",
    ...flagLines(GLOBAL_FLAGS),
    "",
    "Run `openme COMMAND --help` for a command's options and examples.",
    "",
    "Quick start:",
    "  sudo openme init --server myserver.example.com",
    "  sudo openme add alice        # prints alice's client config",
    "  sudo openme serve",
    "  openme knock                 # on alice's machine",
  ].join("\n");
}
