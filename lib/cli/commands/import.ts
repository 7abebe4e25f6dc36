/**
 * `openme import [FILE|-] [--profile NAME] [--force]`: adds the profiles that
 * `openme add` printed (the `profiles:` block) or the QR JSON payload (SPEC
 * §6) to the client config, without hand-editing YAML.
 *
 * Rules:
 * - Input is FILE, or standard input for `-` or no argument; at most 1 MiB.
 * - Text whose first non-blank character is `{` is the QR payload; anything
 *   else must hold a line `profiles:` at column 0. Lines before it (an ssh
 *   banner, the `added client ...` note when stderr was captured too) are
 *   ignored, and the block ends at the `# fingerprint:` line `add` prints
 *   after it or at the first line that is neither blank, a comment nor
 *   indented (e.g. a terminal QR code).
 * - Every profile in the block is imported; `--profile NAME` renames and so
 *   needs exactly one.
 * - Every key is checked before anything is written: sizes, and that the
 *   client's public key belongs to its private key.
 * - A profile that exists already is an error for the whole import unless
 *   `--force` (nothing is written); a replaced profile keeps its
 *   `post_knock` and unknown keys unless the input sets `post_knock`.
 * - The config is written through upsertClientProfile: comments kept, file
 *   0600, directory 0700, atomic, locked.
 *
 * @module
 */

import {
  CLIENT_PRIVATE_KEY_SIZES,
  CLIENT_PUBLIC_KEY_BYTES,
  type ClientProfile,
  loadClientConfig,
  type NewClientProfile,
  parseClientConfig,
  SERVER_PUBLIC_KEY_BYTES,
  upsertClientProfile,
  validateProfileName,
} from "../../config/client_config.ts";
import { NAME_HINT } from "../../config/validate.ts";
import {
  ed25519KeyPairFromPrivateKey,
  keyFingerprint,
} from "../../protocol/crypto.ts";
import { decodeBase64Key, encodeBase64, equalBytes } from "../../encoding.ts";
import { clientConfigPath, isMissingConfigFile } from "../client_profile.ts";
import { CommandError, UsageError } from "../errors.ts";
import type { CliIo, ParsedCommand } from "../io.ts";

/** Most bytes read from the input. */
export const MAX_IMPORT_BYTES = 1024 * 1024;

/** The name standard input has in messages. */
export const STDIN_NAME = "<stdin>";

/** Where the import text came from and what it held. */
export interface ImportSource {
  /** File name, or `<stdin>`, for messages. */
  name: string;
  /** The text. */
  text: string;
}

/** A profile ready to write, with where it came from. */
export interface ImportedProfile {
  /** The profile as upsertClientProfile takes it. */
  profile: NewClientProfile;
  /** Fingerprint of the client's public key. */
  fingerprint: string;
}

/** Options for {@linkcode parseImportText}. */
export interface ParseImportOptions {
  /** Store the (single) profile under this name. */
  rename?: string;
}

/** Parses `add` output or a QR payload into validated profiles; throws CommandError or ConfigError. */
export function parseImportText(
  source: ImportSource,
  options: ParseImportOptions = {},
): ImportedProfile[] {
  const trimmed = source.text.trim();
  if (trimmed === "") {
    throw new CommandError(
      `nothing to import from ${source.name}: it is empty (expected the \`profiles:\` block printed by \`openme add\`, or the QR JSON payload)`,
    );
  }
  const profiles = trimmed.startsWith("{")
    ? [profileFromQrPayload(source)]
    : profilesFromBlock(source);
  if (options.rename !== undefined) {
    if (profiles.length !== 1) {
      throw new UsageError(
        `--profile renames one profile, but ${source.name} holds ${profiles.length} (${
          profiles.map((p) => p.profile.name).join(", ")
        }); import without --profile, or cut the input down to one`,
        "import",
      );
    }
    const problem = validateProfileName(options.rename);
    if (problem !== null) {
      throw new UsageError(
        `--profile: ${problem} (${NAME_HINT})`,
        "import",
      );
    }
    profiles[0].profile.name = options.rename;
  }
  return profiles;
}

/** Blanks every line outside the `profiles:` block, keeping line numbers for error messages. */
function extractBlock(source: ImportSource): string | null {
  const lines = source.text.replace(/^\uFEFF/, "").split(/\r?\n/);
  const start = lines.findIndex((line) => /^profiles:\s*(#.*)?$/.test(line));
  if (start < 0) return null;
  let end = start + 1;
  while (end < lines.length) {
    const line = lines[end];
    if (/^#\s*fingerprint:/.test(line)) break;
    const inBlock = line.trim() === "" || line.startsWith("#") ||
      /^[ \t]/.test(line);
    if (!inBlock) break;
    end++;
  }
  return lines.map((line, i) => (i >= start && i < end ? line : "")).join(
    "\n",
  );
}

function profilesFromBlock(source: ImportSource): ImportedProfile[] {
  const block = extractBlock(source);
  if (block === null) {
    throw new CommandError(
      `no profile found in ${source.name}: expected a line \`profiles:\` followed by the profile, as printed by \`openme add\`, or the QR JSON payload {"profile":...}`,
    );
  }
  const config = parseClientConfig(block, { path: source.name });
  if (config.profiles.size === 0) {
    throw new CommandError(
      `no profile found in ${source.name}: its \`profiles:\` block is empty (copy the whole block printed by \`openme add\`)`,
    );
  }
  const out: ImportedProfile[] = [];
  for (const profile of config.profiles.values()) {
    out.push(checkedProfile(source, profile));
  }
  return out;
}

/** Checks the key pair and turns a parsed profile into one to write. */
function checkedProfile(
  source: ImportSource,
  profile: ClientProfile,
): ImportedProfile {
  let derived: Uint8Array;
  try {
    derived = ed25519KeyPairFromPrivateKey(profile.privateKey).publicKey;
  } catch (err) {
    throw new CommandError(
      `${source.name}: profile ${profile.name}: private_key is not a valid Ed25519 key (${
        (err as Error).message
      }); copy it again from the \`openme add\` output`,
    );
  }
  if (profile.publicKey !== null && !equalBytes(profile.publicKey, derived)) {
    throw new CommandError(
      `${source.name}: profile ${profile.name}: public_key does not belong to private_key; copy both from the same \`openme add\` output`,
    );
  }
  const newProfile: NewClientProfile = {
    name: profile.name,
    serverHost: profile.serverHost,
    serverUdpPort: profile.serverUdpPort,
    serverPubkeyB64: encodeBase64(profile.serverPublicKey),
    privateKeyB64: encodeBase64(profile.privateKey),
    publicKeyB64: encodeBase64(derived),
  };
  if (profile.postKnock !== null) newProfile.postKnock = profile.postKnock;
  return { profile: newProfile, fingerprint: keyFingerprint(derived) };
}

const QR_FIELDS = [
  "profile",
  "host",
  "udp_port",
  "server_pubkey",
  "client_privkey",
  "client_pubkey",
] as const;

function profileFromQrPayload(source: ImportSource): ImportedProfile {
  let value: unknown;
  try {
    value = JSON.parse(source.text);
  } catch (err) {
    throw new CommandError(
      `${source.name} is not valid JSON (${
        (err as Error).message
      }): expected the QR payload {"profile":...,"host":...,"udp_port":...,"server_pubkey":...,"client_privkey":...,"client_pubkey":...}`,
    );
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new CommandError(
      `${source.name}: the QR payload must be a JSON object with ${
        QR_FIELDS.join(", ")
      }`,
    );
  }
  const payload = value as Record<string, unknown>;
  const missing = QR_FIELDS.filter((field) => payload[field] === undefined);
  if (missing.length > 0) {
    throw new CommandError(
      `${source.name}: the QR payload lacks ${missing.join(", ")} (it needs ${
        QR_FIELDS.join(", ")
      })`,
    );
  }
  const where = `${source.name}: QR payload`;
  const name = payload.profile;
  if (typeof name !== "string" || validateProfileName(name) !== null) {
    throw new CommandError(
      `${where}: "profile" ${
        JSON.stringify(name)
      } is not a profile name (letters, digits, '.', '_', '-' or '@')`,
    );
  }
  const host = payload.host;
  if (typeof host !== "string" || host.trim() === "") {
    throw new CommandError(
      `${where}: "host" must be the server's name or address, got ${
        JSON.stringify(host)
      }`,
    );
  }
  const port = payload.udp_port;
  if (
    typeof port !== "number" || !Number.isInteger(port) || port < 1 ||
    port > 65535
  ) {
    throw new CommandError(
      `${where}: "udp_port" must be an integer 1-65535, got ${
        JSON.stringify(port)
      }`,
    );
  }
  const serverKey = qrKey(where, payload, "server_pubkey", [
    SERVER_PUBLIC_KEY_BYTES,
  ]);
  const privateKey = qrKey(
    where,
    payload,
    "client_privkey",
    CLIENT_PRIVATE_KEY_SIZES,
  );
  const publicKey = qrKey(where, payload, "client_pubkey", [
    CLIENT_PUBLIC_KEY_BYTES,
  ]);
  const profile: ClientProfile = {
    name,
    serverHost: host.trim(),
    serverUdpPort: port,
    serverPublicKey: serverKey,
    privateKey,
    publicKey,
    postKnock: null,
  };
  // Run the same validation a config file gets (host characters and all).
  const imported = checkedProfile(source, profile);
  parseClientConfig(
    [
      "profiles:",
      `  ${JSON.stringify(name)}:`,
      `    server_host: ${JSON.stringify(imported.profile.serverHost)}`,
      `    server_udp_port: ${port}`,
      `    server_pubkey: ${JSON.stringify(imported.profile.serverPubkeyB64)}`,
      `    private_key: ${JSON.stringify(imported.profile.privateKeyB64)}`,
      `    public_key: ${JSON.stringify(imported.profile.publicKeyB64)}`,
    ].join("\n"),
    { path: `${source.name} (QR payload)` },
  );
  return imported;
}

function qrKey(
  where: string,
  payload: Record<string, unknown>,
  field: string,
  sizes: readonly number[],
): Uint8Array {
  const text = payload[field];
  if (typeof text !== "string") {
    throw new CommandError(
      `${where}: "${field}" must be a base64 string, got ${
        JSON.stringify(text)
      }`,
    );
  }
  const decoded = decodeBase64Key(text.trim(), { sizes: [...sizes] });
  if (!decoded.ok) {
    throw new CommandError(
      `${where}: "${field}": ${decoded.reason} (expected base64 of ${
        sizes.join(" or ")
      } bytes)`,
    );
  }
  return decoded.bytes;
}

/** Reads at most MAX_IMPORT_BYTES from a reader; throws CommandError when there is more. */
async function readLimited(
  reader: { read(buffer: Uint8Array): Promise<number | null> },
  name: string,
): Promise<string> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buffer = new Uint8Array(64 * 1024);
  // Bounded: stops after MAX_IMPORT_BYTES.
  while (true) {
    const n = await reader.read(buffer);
    if (n === null) break;
    total += n;
    if (total > MAX_IMPORT_BYTES) {
      throw new CommandError(
        `${name} is larger than ${MAX_IMPORT_BYTES} bytes: that is not what \`openme add\` prints`,
      );
    }
    chunks.push(buffer.slice(0, n));
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return new TextDecoder().decode(bytes);
}

async function readSource(
  file: string | undefined,
  io: CliIo,
): Promise<ImportSource> {
  if (file === undefined || file === "-") {
    if (Deno.stdin.isTerminal()) {
      io.err(
        "paste the output of `openme add` (or the QR payload), then press Ctrl-D:",
      );
    }
    return {
      name: STDIN_NAME,
      text: await readLimited(Deno.stdin, STDIN_NAME),
    };
  }
  let handle: Deno.FsFile;
  try {
    handle = await Deno.open(file, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new CommandError(
        `cannot import ${file}: no such file (save what \`openme add\` printed there, or pipe it: \`... | openme import -\`)`,
      );
    }
    throw new CommandError(
      `cannot read ${file}: ${(err as Error).message}`,
    );
  }
  try {
    return { name: file, text: await readLimited(handle, file) };
  } finally {
    handle.close();
  }
}

/** Runs `openme import`. */
export async function runImportCommand(
  parsed: ParsedCommand,
  io: CliIo,
): Promise<number> {
  const rename = typeof parsed.values.profile === "string"
    ? parsed.values.profile
    : undefined;
  const force = parsed.values.force === true;
  const source = await readSource(parsed.positionals[0], io);
  const imported = parseImportText(source, { rename });
  const path = clientConfigPath(parsed);

  let existing: Set<string>;
  try {
    existing = new Set((await loadClientConfig(path)).profiles.keys());
  } catch (err) {
    if (!isMissingConfigFile(err)) throw err;
    existing = new Set();
  }
  const conflicts = imported.filter((p) => existing.has(p.profile.name));
  if (conflicts.length > 0 && !force) {
    const names = conflicts.map((p) => p.profile.name).join(", ");
    throw new CommandError(
      `${path} already has profile ${names}; nothing was imported: replace with --force${
        imported.length === 1
          ? ", or import under another name with --profile NAME"
          : ""
      }`,
    );
  }
  for (const p of imported) {
    await upsertClientProfile(path, p.profile, { force });
    const verb = existing.has(p.profile.name) ? "replaced" : "imported";
    io.out(
      `${verb} profile ${p.profile.name} (${p.profile.serverHost}:${p.profile.serverUdpPort}, key fingerprint ${p.fingerprint}) in ${path}`,
    );
  }
  const first = imported[0].profile.name;
  io.out(`try: openme knock ${first} --check`);
  return 0;
}
