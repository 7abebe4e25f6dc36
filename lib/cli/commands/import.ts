/**
 * `openme import`: adds the `profiles:` block that `openme add` printed, or the
 * QR JSON payload (SPEC §6), to the client config.
 *
 * @module
 */

import {
  type ClientProfile,
  loadClientConfig,
  type NewClientProfile,
  parseClientConfig,
  upsertClientProfile,
} from "../../config/client_config.ts";

import { NAME_HINT, nameProblem } from "../../config/validate.ts";
import {
  ed25519KeyPairFromPrivateKey,
  keyFingerprint,
} from "../../protocol/crypto.ts";
import { clientConfigPath, isMissingConfigFile } from "../client_profile.ts";
import {
  type CliIo,
  CommandError,
  type ParsedCommand,
  UsageError,
} from "../io.ts";

/** Most bytes read from the input. */
const MAX_IMPORT_BYTES = 1024 * 1024;

/** The QR payload's fields, in SPEC §6 order. */
const QR_FIELDS = [
  "profile",
  "host",
  "udp_port",
  "server_pubkey",
  "client_privkey",
  "client_pubkey",
];

/** The profiles text holds: its QR payload, or the `profiles:` block up to add's `# fingerprint:` line or the first unindented line. */
function profilesIn(name: string, text: string): ClientProfile[] {
  if (text.trim().startsWith("{")) return [profileFromQrPayload(name, text)];
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  const start = lines.findIndex((line) => /^profiles:\s*(#.*)?$/.test(line));
  if (start < 0) {
    throw new CommandError(
      `no profile found in ${name}: expected a line \`profiles:\` followed by the profile, as printed by \`openme add\`, or the QR JSON payload {"profile":...}`,
    );
  }
  let end = start + 1;
  while (
    end < lines.length && !/^#\s*fingerprint:/.test(lines[end]) &&
    (lines[end].trim() === "" || /^[ \t#]/.test(lines[end]))
  ) {
    end++;
  }
  // Lines outside the block are blanked, so messages keep their line numbers.
  const block = lines.map((line, i) => i >= start && i < end ? line : "");
  const config = parseClientConfig(block.join("\n"), { path: name });
  if (config.profiles.size === 0) {
    throw new CommandError(
      `no profile found in ${name}: its \`profiles:\` block is empty (copy the whole block printed by \`openme add\`)`,
    );
  }
  return [...config.profiles.values()];
}

/** The profile a QR payload describes, checked as a client config is. */
function profileFromQrPayload(name: string, text: string): ClientProfile {
  let payload: Record<string, unknown>; // an object: the text starts with {
  try {
    payload = JSON.parse(text);
  } catch (err) {
    throw new CommandError(
      `${name} is not valid JSON (${
        (err as Error).message
      }): expected the QR payload {"profile":...,"host":...,"udp_port":...,"server_pubkey":...,"client_privkey":...,"client_pubkey":...}`,
    );
  }
  const missing = QR_FIELDS.filter((field) => payload[field] === undefined);
  if (missing.length > 0) {
    throw new CommandError(
      `${name}: the QR payload lacks ${missing.join(", ")} (it needs ${
        QR_FIELDS.join(", ")
      })`,
    );
  }
  const profile = {
    server_host: payload.host,
    server_udp_port: payload.udp_port,
    server_pubkey: payload.server_pubkey,
    private_key: payload.client_privkey,
    public_key: payload.client_pubkey,
  };
  // JSON is YAML: the client config's own checks apply.
  const config = parseClientConfig(
    JSON.stringify({ profiles: { [String(payload.profile)]: profile } }),
    { path: `${name} (QR payload)` },
  );
  return [...config.profiles.values()][0];
}

/** Checks that the public key belongs to the private key and returns the profile to write. */
function checkedProfile(
  name: string,
  profile: ClientProfile,
): NewClientProfile {
  let derived: Uint8Array;
  try {
    derived = ed25519KeyPairFromPrivateKey(profile.privateKey).publicKey;
  } catch (err) {
    throw new CommandError(
      `${name}: profile ${profile.name}: private_key is not a valid Ed25519 key (${
        (err as Error).message
      }); copy it again from the \`openme add\` output`,
    );
  }
  const publicKeyB64 = derived.toBase64();
  if (
    profile.publicKey !== null && profile.publicKey.toBase64() !== publicKeyB64
  ) {
    throw new CommandError(
      `${name}: profile ${profile.name}: public_key does not belong to private_key; copy both from the same \`openme add\` output`,
    );
  }
  return {
    name: profile.name,
    serverHost: profile.serverHost,
    serverUdpPort: profile.serverUdpPort,
    serverPubkeyB64: profile.serverPublicKey.toBase64(),
    privateKeyB64: profile.privateKey.toBase64(),
    publicKeyB64,
    postKnock: profile.postKnock ?? undefined,
  };
}

/** Reads FILE, or standard input for `-` or none; at most MAX_IMPORT_BYTES. */
async function readInput(
  file: string | undefined,
  io: CliIo,
): Promise<{ name: string; text: string }> {
  const name = file === undefined || file === "-" ? "<stdin>" : file;
  let input: Deno.FsFile | typeof Deno.stdin = Deno.stdin;
  if (name === "<stdin>" && Deno.stdin.isTerminal()) {
    io.err(
      "paste the output of `openme add` (or the QR payload), then press Ctrl-D:",
    );
  } else if (name !== "<stdin>") {
    try {
      input = await Deno.open(name);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new CommandError(
          `cannot import ${name}: no such file (save what \`openme add\` printed there, or pipe it: \`... | openme import -\`)`,
        );
      }
      throw new CommandError(`cannot read ${name}: ${(err as Error).message}`);
    }
  }
  const decoder = new TextDecoder();
  let text = "";
  let total = 0;
  // Bounded: stops after MAX_IMPORT_BYTES.
  for await (const chunk of input.readable) {
    total += chunk.length;
    if (total > MAX_IMPORT_BYTES) {
      throw new CommandError(
        `${name} is larger than ${MAX_IMPORT_BYTES} bytes: that is not what \`openme add\` prints`,
      );
    }
    text += decoder.decode(chunk, { stream: true });
  }
  return { name, text: text + decoder.decode() };
}

/** Runs `openme import`. */
export async function runImportCommand(
  parsed: ParsedCommand,
  io: CliIo,
): Promise<number> {
  const rename = parsed.values.profile;
  const force = parsed.values.force === true;
  const { name, text } = await readInput(parsed.positionals[0], io);
  if (text.trim() === "") {
    throw new CommandError(
      `nothing to import from ${name}: it is empty (expected the \`profiles:\` block printed by \`openme add\`, or the QR JSON payload)`,
    );
  }
  const imported = profilesIn(name, text).map((p) => checkedProfile(name, p));
  if (typeof rename === "string") {
    if (imported.length !== 1) {
      throw new UsageError(
        `--profile renames one profile, but ${name} holds ${imported.length} (${
          imported.map((p) => p.name).join(", ")
        }); import without --profile, or cut the input down to one`,
      );
    }
    const problem = nameProblem(rename, "profile");
    if (problem !== null) {
      throw new UsageError(`--profile: ${problem} (${NAME_HINT})`);
    }
    imported[0].name = rename;
  }
  const commands = imported.filter((p) => p.postKnock !== undefined);
  for (const p of commands) {
    io.err(
      `profile ${p.name} has post_knock ${
        JSON.stringify(p.postKnock)
      }: every \`openme knock ${p.name}\` runs it as you`,
    );
  }
  if (commands.length > 0 && parsed.values["allow-post-knock"] !== true) {
    throw new CommandError(
      `${name} holds a post_knock command (shown above); nothing was imported: check it, then import with --allow-post-knock, or delete the post_knock line`,
    );
  }
  const path = clientConfigPath(parsed);
  let existing = new Set<string>();
  try {
    existing = new Set((await loadClientConfig(path)).profiles.keys());
  } catch (err) {
    if (!isMissingConfigFile(err)) throw err;
  }
  const conflicts = imported.filter((p) => existing.has(p.name));
  if (conflicts.length > 0 && !force) {
    const names = conflicts.map((p) => p.name).join(", ");
    throw new CommandError(
      `${path} already has profile ${names}; nothing was imported: replace with --force${
        imported.length === 1
          ? ", or import under another name with --profile NAME"
          : ""
      }`,
    );
  }
  for (const p of imported) {
    await upsertClientProfile(path, p, { force });
    const verb = existing.has(p.name) ? "replaced" : "imported";
    io.out(
      `${verb} profile ${p.name} (${p.serverHost}:${p.serverUdpPort}, key fingerprint ${
        keyFingerprint(Uint8Array.fromBase64(p.publicKeyB64))
      }) in ${path}`,
    );
  }
  io.out(`try: openme knock ${imported[0].name} --check`);
  return 0;
}
