/**
 * The signer search on its own: which clients' keys it tries, in what order
 * (recorded through an injected signature check), and how its budget queues
 * scans. Real Ed25519 keys and signatures; the clock is injected.
 */

import assert from "node:assert/strict";
import {
  ed25519Sign,
  generateEd25519KeyPair,
  keyFingerprint,
  randomBytes,
} from "../../lib/protocol/crypto.ts";
import {
  SIGNED_BYTES,
  type SignedKnock,
  verifyKnockSignature,
} from "../../lib/protocol/packet.ts";
import {
  OVER_BUDGET,
  type SearchResult,
  SignerSearch,
  type SignerSearchOptions,
} from "../../lib/server/signer_search.ts";
import { ip } from "../support/literals.ts";

interface Client {
  name: string;
  publicKey: Uint8Array;
  privateKey: Uint8Array;
}

function makeClients(count: number): Client[] {
  return Array.from({ length: count }, (_, i) => ({
    name: `c${i}`,
    ...generateEd25519KeyPair(),
  }));
}

/** Signed bytes made up for the test, signed by the key. */
function signedBy(privateKey: Uint8Array): SignedKnock {
  const signedBytes = randomBytes(SIGNED_BYTES);
  return { signedBytes, signature: ed25519Sign(privateKey, signedBytes) };
}

/** A search over the clients whose signature checks are recorded, by client name, in `checked`. */
function recordingSearch(
  clients: Client[],
  options: Omit<SignerSearchOptions, "checkSignature"> = {},
): { search: SignerSearch<Client>; checked: string[] } {
  const checked: string[] = [];
  const names = new Map(clients.map((c) => [c.publicKey.toHex(), c.name]));
  const search = new SignerSearch<Client>({
    ...options,
    checkSignature(knock, publicKey) {
      checked.push(names.get(publicKey.toHex()) ?? "?");
      return verifyKnockSignature(knock, publicKey);
    },
  });
  search.setClients(clients);
  return { search, checked };
}

/** The search's result, which without a budget is never deferred. */
function now<C>(result: SearchResult<C> | Promise<SearchResult<C>>) {
  if (result instanceof Promise) throw new Error("the search was deferred");
  return result;
}

const NO_HINT = "0000000000000000";

Deno.test("the scan order puts the last accepted client first", () => {
  const clients = makeClients(5);
  const { search, checked } = recordingSearch(clients);
  const find = (client: Client, from: string) =>
    now(search.find(signedBy(client.privateKey), {
      hint: NO_HINT,
      source: ip(from),
    }));
  assert.equal(find(clients[3], "192.0.2.1"), clients[3]);
  assert.deepEqual(checked.splice(0), ["c0", "c1", "c2", "c3"]);
  // c3 from a new address: now first in the order.
  assert.equal(find(clients[3], "192.0.2.2"), clients[3]);
  assert.deepEqual(checked.splice(0), ["c3"]);
  assert.equal(find(clients[1], "192.0.2.3"), clients[1]);
  assert.deepEqual(checked.splice(0), ["c3", "c0", "c1"]);
  // And the order is now c1, c3, then the others in config order.
  assert.equal(find(clients[4], "192.0.2.4"), clients[4]);
  assert.deepEqual(checked.splice(0), ["c1", "c3", "c0", "c2", "c4"]);
});

Deno.test("a hinted knock verifies with one signature check", () => {
  const clients = makeClients(50);
  const { search, checked } = recordingSearch(clients);
  const last = clients[49];
  const found = now(search.find(signedBy(last.privateKey), {
    hint: keyFingerprint(last.publicKey),
    source: ip("2001:db8::1"),
  }));
  assert.equal(found, last);
  assert.deepEqual(checked, ["c49"]);
});

Deno.test("a wrong hint falls back to the scan and still finds the signer", () => {
  const clients = makeClients(6);
  const { search, checked } = recordingSearch(clients);
  const found = now(search.find(signedBy(clients[4].privateKey), {
    hint: keyFingerprint(clients[1].publicKey),
    source: ip("192.0.2.9"),
  }));
  assert.equal(found, clients[4]);
  // The hinted client first, then the others without trying it again.
  assert.deepEqual(checked, ["c1", "c0", "c2", "c3", "c4"]);
});

Deno.test("a forged packet moves no client in the order and teaches nothing about its source", () => {
  const clients = makeClients(5);
  const { search, checked } = recordingSearch(clients);
  const mallory = generateEd25519KeyPair();
  const source = ip("198.51.100.7");
  now(search.find(signedBy(clients[2].privateKey), {
    hint: NO_HINT,
    source: ip("192.0.2.1"),
  }));
  checked.length = 0;
  // Forged, naming c4 in its hint, from the address c4 then knocks from.
  const forged = now(search.find(signedBy(mallory.privateKey), {
    hint: keyFingerprint(clients[4].publicKey),
    source,
  }));
  assert.equal(forged, null);
  assert.deepEqual(checked.splice(0), ["c4", "c2", "c0", "c1", "c3"]);
  assert.equal(
    now(search.find(signedBy(clients[4].privateKey), {
      hint: NO_HINT,
      source,
    })),
    clients[4],
  );
  assert.deepEqual(checked, ["c2", "c0", "c1", "c3", "c4"]);
});

Deno.test("a known client from its last address is tried first, for one check", () => {
  const clients = makeClients(8);
  const { search, checked } = recordingSearch(clients);
  const source = ip("2001:db8::99");
  for (let i = 0; i < 2; i++) {
    now(search.find(signedBy(clients[6].privateKey), {
      hint: NO_HINT,
      source,
    }));
  }
  assert.deepEqual(checked.slice(-1), ["c6"]);
  assert.equal(checked.length, 7 + 1);
});

Deno.test("with a budget smaller than one scan, the scan waits whole and completes later; none of its checks are spent before", async () => {
  const clients = makeClients(10);
  const clock = { ms: 0 };
  // 3 checks held, 1,000 a second: a scan of 10 overdraws a full bucket.
  const { search, checked } = recordingSearch(clients, {
    budget: { perSecond: 1000, burst: 3 },
    clock: () => clock.ms,
  });
  try {
    const mallory = generateEd25519KeyPair();
    const forged = search.find(signedBy(mallory.privateKey), {
      hint: NO_HINT,
      source: ip("203.0.113.1"),
    });
    assert.equal(forged, null);
    assert.equal(checked.splice(0).length, 10);
    const waiting = search.find(signedBy(clients[7].privateKey), {
      hint: NO_HINT,
      source: ip("192.0.2.1"),
    });
    assert.ok(waiting instanceof Promise);
    let settled: SearchResult<Client> | undefined;
    waiting.then((result) => settled = result);
    // Time stands still: however long it waits, nothing of it runs.
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(settled, undefined);
    assert.deepEqual(checked, []);
    clock.ms += 10; // 10 checks: the bucket is full again
    assert.equal(await waiting, clients[7]);
    assert.deepEqual(checked, ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"]);
  } finally {
    search.close();
  }
});

Deno.test("a full queue drops the newest scan of the prefix that holds the most, never a lone knock from another prefix", async () => {
  const clients = makeClients(4);
  const clock = { ms: 0 };
  // The queue holds 2 s of budget: 8 scans of 4.
  const { search } = recordingSearch(clients, {
    budget: { perSecond: 16, burst: 4 },
    clock: () => clock.ms,
  });
  try {
    const mallory = generateEd25519KeyPair();
    const results: (SearchResult<Client> | Promise<SearchResult<Client>>)[] =
      [];
    for (let i = 1; i <= 10; i++) {
      results.push(search.find(signedBy(mallory.privateKey), {
        hint: NO_HINT,
        source: ip(`198.51.100.${i}`),
      }));
    }
    assert.equal(results[0], null, "the first ran on a full bucket");
    assert.equal(results[9], OVER_BUDGET, "no room left for the tenth");
    const lone = search.find(signedBy(clients[2].privateKey), {
      hint: NO_HINT,
      source: ip("2001:db8:1:2::3"),
    });
    assert.ok(lone instanceof Promise);
    // Its room came from the flooding /24's newest scan.
    assert.equal(await results[8], OVER_BUDGET);
    // Its turn comes after one more scan of the /24.
    let found: SearchResult<Client> | undefined;
    lone.then((result) => found = result);
    for (let i = 0; i < 400 && found === undefined; i++) {
      clock.ms += 1000;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(found, clients[2]);
  } finally {
    search.close();
  }
});

Deno.test("a scan checks its first chunk here and the rest on worker threads, and finds the signer, or nobody", async () => {
  // A chunk of 50 checks, so that which checks run here does not depend on
  // how fast this machine checks a signature.
  const clients = makeClients(300);
  const search = new SignerSearch<Client>({ workers: 2, chunk: 50 });
  search.setClients(clients);
  try {
    for (const index of [0, 150, 299]) {
      const found = search.find(signedBy(clients[index].privateKey), {
        hint: NO_HINT,
        source: ip(`192.0.2.${index % 250 + 1}`),
      });
      assert.equal(found instanceof Promise, index > 0, `c${index}`);
      assert.equal(await found, clients[index]);
    }
    const mallory = generateEd25519KeyPair();
    const forged = search.find(signedBy(mallory.privateKey), {
      hint: NO_HINT,
      source: ip("198.51.100.1"),
    });
    assert.equal(await forged, null);
    // A reload while the workers check: the result is the reloaded client.
    const pending = search.find(signedBy(clients[200].privateKey), {
      hint: NO_HINT,
      source: ip("198.51.100.2"),
    });
    const reloaded = clients.map((c) => ({ ...c }));
    search.setClients(reloaded);
    assert.equal(await pending, reloaded[200]);
  } finally {
    search.close();
  }
});
