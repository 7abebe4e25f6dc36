import assert from "node:assert/strict";
import { FirewallError } from "../../lib/firewall/backend.ts";
import { NoopBackend } from "../../lib/firewall/noop.ts";
import { setLogSink } from "../../lib/log.ts";

const BASE = {
  knockPort: 54154,
  openKnockPort: true,
  dropPorts: [],
  interface: null,
};

Deno.test("NoopBackend tracks opened rules and forgets them on close", async () => {
  const previous = setLogSink(() => {});
  try {
    const backend = new NoopBackend();
    assert.equal(backend.name, "noop");
    await backend.setup(BASE);
    const opened = await backend.open({ family: 4, text: "192.0.2.2" }, [
      { port: 22, proto: "tcp" },
      { port: 8080, endPort: 8090, proto: "tcp" },
    ]);
    assert.equal(opened.handles.length, 2);
    assert.equal(new Set(opened.handles).size, 2);
    assert.equal(backend.openRuleCount, 2);
    await backend.close(opened);
    assert.equal(backend.openRuleCount, 0);
    await backend.close(opened);
    assert.equal(backend.openRuleCount, 0);
  } finally {
    setLogSink(previous);
  }
});

Deno.test("NoopBackend records base rules and clears everything on teardown", async () => {
  const previous = setLogSink(() => {});
  try {
    const backend = new NoopBackend();
    await backend.setup(BASE);
    await backend.updateBaseRules({
      ...BASE,
      knockPort: 1234,
      interface: "eth0",
    });
    assert.equal(backend.baseRules?.knockPort, 1234);
    assert.equal(backend.baseRules?.interface, "eth0");
    await backend.open({ family: 6, text: "2001:db8::1" }, [{
      port: 22,
      proto: "tcp",
    }]);
    await backend.teardown();
    assert.equal(backend.openRuleCount, 0);
    assert.equal(backend.baseRules, null);
  } finally {
    setLogSink(previous);
  }
});

Deno.test("NoopBackend validates like the real backends", async () => {
  const backend = new NoopBackend();
  await assert.rejects(
    backend.setup({ ...BASE, interface: "bad name" }),
    FirewallError,
  );
  await assert.rejects(
    backend.open({ family: 4, text: "not-an-ip" }, []),
    FirewallError,
  );
  await assert.rejects(
    backend.open({ family: 4, text: "192.0.2.2" }, [{ port: 0, proto: "tcp" }]),
    FirewallError,
  );
});
