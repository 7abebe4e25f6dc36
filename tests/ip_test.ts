import assert from "node:assert/strict";
import fc from "fast-check";
import { IP_BYTES, ipFromBytes, ipToBytes, parseIp } from "../lib/ip.ts";
import { hex } from "./support/literals.ts";

Deno.test("parseIp accepts dotted-quad IPv4 and trims whitespace", () => {
  assert.deepEqual(parseIp("192.0.2.1"), { family: 4, text: "192.0.2.1" });
  assert.deepEqual(parseIp(" 198.51.100.255\n"), {
    family: 4,
    text: "198.51.100.255",
  });
  assert.deepEqual(parseIp("0.0.0.0"), { family: 4, text: "0.0.0.0" });
});

Deno.test("parseIp refuses malformed IPv4 (leading zeros, out of range, short, long)", () => {
  for (
    const text of [
      "01.2.3.4",
      "256.1.1.1",
      "1.2.3",
      "1.2.3.4.5",
      "1.2.3.-1",
      "0x1.2.3.4",
      "1.2.3.4%eth0",
      "",
      "a.b.c.d",
    ]
  ) {
    assert.equal(parseIp(text), null, JSON.stringify(text));
  }
});

Deno.test("parseIp gives IPv6 in RFC 5952 canonical text", () => {
  const cases: [string, string][] = [
    ["::", "::"],
    ["::1", "::1"],
    ["2001:DB8::1", "2001:db8::1"],
    ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // first of equal runs
    ["a:b::c:0:0:0", "a:b:0:0:c::"], // longest run wins
    ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"], // a single zero group is not compressed
    ["::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8"],
    ["2001:db8::1.2.3.4", "2001:db8::102:304"],
    ["fe80::1%eth0", "fe80::1"],
  ];
  for (const [input, canonical] of cases) {
    assert.deepEqual(parseIp(input), { family: 6, text: canonical }, input);
  }
});

Deno.test("parseIp turns IPv4-mapped IPv6 into IPv4", () => {
  for (
    const text of [
      "::ffff:192.0.2.1",
      "::FFFF:192.0.2.1",
      "::ffff:c000:201",
      "0:0:0:0:0:ffff:192.0.2.1",
    ]
  ) {
    assert.deepEqual(parseIp(text), { family: 4, text: "192.0.2.1" }, text);
  }
});

Deno.test("parseIp refuses malformed IPv6", () => {
  for (
    const text of [
      "1::2::3",
      "1:2:3:4:5:6:7:8:9",
      "1::2:3:4:5:6:7:8",
      "12345::",
      ":1:2:3:4:5:6:7",
      "::ffff:1.2.3",
      "::ffff:1.2.3.04",
      "[::1]",
      "fe80::1%",
      "%eth0",
      "g::1",
    ]
  ) {
    assert.equal(parseIp(text), null, JSON.stringify(text));
  }
});

Deno.test("ipToBytes maps IPv4 to ::ffff:a.b.c.d and keeps IPv6 bytes", () => {
  assert.equal(
    ipToBytes({ family: 4, text: "192.0.2.1" }).toHex(),
    "00000000000000000000ffffc0000201",
  );
  assert.equal(
    ipToBytes({ family: 6, text: "2001:db8::1" }).toHex(),
    "20010db8000000000000000000000001",
  );
  assert.equal(ipToBytes({ family: 6, text: "::" }).length, IP_BYTES);
  assert.throws(
    () => ipToBytes({ family: 4, text: "2001:db8::1" }),
    /not an IPv4 address/,
  );
  assert.throws(
    () => ipToBytes({ family: 6, text: "192.0.2.1" }),
    /not an IPv6 address/,
  );
});

Deno.test("ipFromBytes decodes IPv4-mapped bytes as IPv4 and others as IPv6", () => {
  assert.deepEqual(ipFromBytes(hex("00000000000000000000ffffc6336401")), {
    family: 4,
    text: "198.51.100.1",
  });
  assert.deepEqual(ipFromBytes(hex("20010db8000000000000000000000042")), {
    family: 6,
    text: "2001:db8::42",
  });
  // IPv4-compatible (deprecated) and NAT64 forms stay IPv6.
  assert.deepEqual(ipFromBytes(hex("000000000000000000000000c0000201")), {
    family: 6,
    text: "::c000:201",
  });
  assert.throws(
    () => ipFromBytes(new Uint8Array(4)),
    /expected 16 bytes, got 4/,
  );
});

Deno.test("parseIp, ipToBytes and ipFromBytes agree for random addresses", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
      const address = ipFromBytes(bytes);
      assert.deepEqual(parseIp(address.text), address);
      assert.deepEqual(ipToBytes(address), bytes);
    }),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.ipV4(), (text) => {
      const address = parseIp(text);
      assert.deepEqual(address, { family: 4, text });
      assert.deepEqual(ipFromBytes(ipToBytes(address!)), address);
    }),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.ipV6(), (text) => {
      const address = parseIp(text);
      assert.notEqual(address, null, text);
      assert.deepEqual(ipFromBytes(ipToBytes(address!)), address);
    }),
    { numRuns: 300 },
  );
});
