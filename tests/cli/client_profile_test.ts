import assert from "node:assert/strict";
import type { ClientProfile } from "../../lib/config/client_config.ts";
import {
  clientConfigPath,
  isMissingConfigFile,
  loadClientConfigOrExplain,
  selectProfiles,
} from "../../lib/cli/client_profile.ts";
import { CommandError, type ParsedCommand } from "../../lib/cli/io.ts";
import { parseCommandLine } from "../../lib/cli/mod.ts";
import { writeTestProfile } from "../support/cli.ts";
import { withTempDir } from "../support/files.ts";

/** The profile `openme status [NAME]` would pick from the client config at path. */
async function selectOne(
  path: string,
  name?: string,
): Promise<ClientProfile> {
  const names = name === undefined ? [] : [name];
  return (await selectProfiles(knockLine(path), names, false)).profiles[0];
}

function knockLine(path: string): ParsedCommand {
  const parsed = parseCommandLine(["knock", "--client-config", path]);
  if ("topLevel" in parsed) throw new Error("expected a command");
  return parsed;
}

Deno.test("clientConfigPath prefers --client-config", () => {
  assert.equal(
    clientConfigPath(knockLine("/tmp/x/config.yaml")),
    "/tmp/x/config.yaml",
  );
});

Deno.test("a missing client config is explained with the import command", async () => {
  await withTempDir("openme-profile-", async (dir) => {
    const path = `${dir}/none.yaml`;
    await assert.rejects(
      () => loadClientConfigOrExplain(path),
      (err: unknown) =>
        err instanceof CommandError && err.message.includes(path) &&
        err.message.includes("openme import"),
    );
  });
});

Deno.test("isMissingConfigFile recognises NotFound only", () => {
  assert.equal(isMissingConfigFile(new Deno.errors.NotFound("x")), true);
  assert.equal(isMissingConfigFile(new Error("other")), false);
});

Deno.test("selectProfiles picks the named profile, then default, then the only one; errors list the profiles", async () => {
  await withTempDir("openme-profile-", async (dir) => {
    const path = `${dir}/config.yaml`;
    await writeTestProfile(path, {
      name: "work",
      host: "192.0.2.1",
      port: 54154,
    });
    assert.equal(
      (await selectOne(path)).name,
      "work",
    );
    await writeTestProfile(path, {
      name: "home",
      host: "192.0.2.9",
      port: 40000,
    });
    await assert.rejects(
      () => selectOne(path),
      (err: unknown) =>
        err instanceof CommandError &&
        /none is called "default".*home, work|work, home/.test(err.message),
    );
    assert.equal(
      (await selectOne(path, "home")).serverUdpPort,
      40000,
    );
    await assert.rejects(
      () => selectOne(path, "nope"),
      (err: unknown) =>
        err instanceof CommandError &&
        err.message.includes('no profile "nope"') &&
        err.message.includes("work"),
    );
    await writeTestProfile(path, {
      name: "default",
      host: "192.0.2.5",
      port: 54154,
    });
    assert.equal(
      (await selectOne(path)).serverHost,
      "192.0.2.5",
    );
  });
});
