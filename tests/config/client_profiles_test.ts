import assert from "node:assert/strict";
import { report, reported } from "../support/report.ts";
import {
  checkClientProfiles,
  validateProfileName,
} from "../../lib/config/client_profiles.ts";
import { encodeBase64 } from "../../lib/encoding.ts";

const PRIVATE = new Uint8Array(64).map((_, i) => i);
const SERVER = encodeBase64(new Uint8Array(32).fill(9));

function entry(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    server_host: " myserver.example.com ",
    server_pubkey: SERVER,
    private_key: encodeBase64(PRIVATE),
    ...extra,
  };
}

Deno.test("checkClientProfiles turns plain values into profiles, in file order, with defaults", () => {
  const profiles = checkClientProfiles(
    { profiles: { work: entry({ server_udp_port: 4000 }), default: entry() } },
    report,
  );
  assert.deepEqual([...profiles.keys()], ["work", "default"]);
  const work = profiles.get("work")!;
  assert.equal(work.serverHost, "myserver.example.com");
  assert.equal(work.serverUdpPort, 4000);
  assert.equal(profiles.get("default")!.serverUdpPort, 54154);
  assert.deepEqual(work.publicKey, PRIVATE.slice(32));
  assert.equal(work.postKnock, null);
});

Deno.test("checkClientProfiles reads an empty file or an empty profiles section as no profiles", () => {
  assert.equal(checkClientProfiles(null, report).size, 0);
  assert.equal(checkClientProfiles({ other: 1 }, report).size, 0);
  assert.equal(checkClientProfiles({ profiles: null }, report).size, 0);
});

Deno.test("checkClientProfiles reports each problem at its key path", () => {
  assert.deepEqual(
    reported(() => checkClientProfiles("text", report)).keyPath,
    [],
  );
  assert.deepEqual(
    reported(() => checkClientProfiles({ profiles: [1] }, report)).keyPath,
    ["profiles"],
  );
  assert.deepEqual(
    reported(() =>
      checkClientProfiles(
        { profiles: { a: entry({ server_host: "" }) } },
        report,
      )
    ).keyPath,
    ["profiles", "a", "server_host"],
  );
  const mismatch = reported(() =>
    checkClientProfiles(
      { profiles: { a: entry({ public_key: SERVER }) } },
      report,
    )
  );
  assert.deepEqual(mismatch.keyPath, ["profiles", "a", "public_key"]);
  assert.match(mismatch.problem, /does not match/);
  assert.deepEqual(
    reported(() =>
      checkClientProfiles({ profiles: { a: entry({ post_knock: 5 }) } }, report)
    ).keyPath,
    ["profiles", "a", "post_knock"],
  );
  assert.deepEqual(
    reported(() =>
      checkClientProfiles({ profiles: { "-bad": entry() } }, report)
    ).keyPath,
    ["profiles", "-bad"],
  );
});

Deno.test("validateProfileName accepts letters, digits and ._@- and explains what it refuses", () => {
  assert.equal(validateProfileName("büro.lan_1@x-y"), null);
  assert.equal(validateProfileName(""), "empty profile name");
  assert.match(validateProfileName("a".repeat(65))!, /longer than 64/);
  assert.match(validateProfileName("a b")!, /invalid profile name/);
});
