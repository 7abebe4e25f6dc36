import assert from "node:assert/strict";
import { FirewallError } from "../../lib/firewall/backend.ts";
import { IptablesBackend } from "../../lib/firewall/iptables.ts";
import {
  createFirewallBackend,
  type FirewallKind,
} from "../../lib/firewall/mod.ts";
import { NftBackend } from "../../lib/firewall/nft.ts";

Deno.test("createFirewallBackend returns the backend of each kind", () => {
  const nft = createFirewallBackend("nft", { timeoutMs: 1000 });
  assert.ok(nft instanceof NftBackend);
  assert.equal(nft.name, "nft");
  const iptables = createFirewallBackend("iptables");
  assert.ok(iptables instanceof IptablesBackend);
  assert.equal(iptables.name, "iptables");
});

Deno.test("createFirewallBackend rejects an unknown kind naming the config key", () => {
  assert.throws(
    () => createFirewallBackend("pf" as FirewallKind),
    (err: unknown) => {
      assert.ok(err instanceof FirewallError);
      assert.match(
        err.message,
        /unknown backend "pf" \(server\.firewall\): use nft or iptables/,
      );
      return true;
    },
  );
});

Deno.test("createFirewallBackend passes the timeout to the backend's tool runs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "openme-mod-test-" });
  try {
    await Deno.writeTextFile(`${dir}/nft`, "#!/bin/sh\nexec sleep 30\n");
    await Deno.chmod(`${dir}/nft`, 0o755);
    const backend = createFirewallBackend("nft", {
      timeoutMs: 200,
      env: { PATH: `${dir}:/usr/bin:/bin` },
    });
    await assert.rejects(
      backend.setup({
        knockPort: 54154,
        openKnockPort: true,
        dropPorts: [],
        interface: null,
      }),
      /did not finish within 200 ms and was killed/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
