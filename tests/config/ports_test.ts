import assert from "node:assert/strict";
import {
  formatPortRange,
  isGroupName,
  mergePortRanges,
  parsePortSpec,
  type PortRange,
} from "../../lib/config/ports.ts";

Deno.test("parsePortSpec parses single ports, ranges and protocols", () => {
  const cases: { spec: string; want: PortRange[] }[] = [
    {
      spec: "22",
      want: [{ port: 22, proto: "tcp" }, { port: 22, proto: "udp" }],
    },
    { spec: "22/tcp", want: [{ port: 22, proto: "tcp" }] },
    { spec: "22/udp", want: [{ port: 22, proto: "udp" }] },
    { spec: "22/TCP", want: [{ port: 22, proto: "tcp" }] },
    { spec: " 53/Udp ", want: [{ port: 53, proto: "udp" }] },
    {
      spec: "80-82",
      want: [
        { port: 80, endPort: 82, proto: "tcp" },
        { port: 80, endPort: 82, proto: "udp" },
      ],
    },
    {
      spec: "8080-8090/tcp",
      want: [{ port: 8080, endPort: 8090, proto: "tcp" }],
    },
    { spec: "443-443/tcp", want: [{ port: 443, proto: "tcp" }] },
    { spec: "1/tcp", want: [{ port: 1, proto: "tcp" }] },
    { spec: "65535/udp", want: [{ port: 65535, proto: "udp" }] },
    { spec: "1-65535/tcp", want: [{ port: 1, endPort: 65535, proto: "tcp" }] },
    { spec: "022/tcp", want: [{ port: 22, proto: "tcp" }] },
  ];
  for (const { spec, want } of cases) {
    assert.deepEqual(parsePortSpec(spec), want, spec);
  }
});

Deno.test("parsePortSpec explains bad specs and shows a good one", () => {
  const cases: { spec: string; parts: string[] }[] = [
    {
      spec: "70000/tcp",
      parts: ["port 70000 out of range 1-65535", "expected e.g. 22/tcp"],
    },
    { spec: "0", parts: ["port 0 out of range 1-65535"] },
    { spec: "99999999999999999999/tcp", parts: ["out of range 1-65535"] },
    {
      spec: "82-80/tcp",
      parts: ["82-80", "low end above its high end", "8080-8090/tcp"],
    },
    {
      spec: "22/sctp",
      parts: ['unknown protocol "sctp"', "expected tcp or udp"],
    },
    { spec: "22/", parts: ["unknown protocol"] },
    { spec: "", parts: ["empty port spec", "expected e.g. 22/tcp"] },
    { spec: "   ", parts: ["empty port spec"] },
    { spec: "abc/tcp", parts: ['"abc" is not a port number'] },
    { spec: "22/tcp/udp", parts: ['more than one "/"'] },
    { spec: "1-2-3/tcp", parts: ['more than one "-"'] },
    { spec: "-5/tcp", parts: ["is not a port number"] },
    { spec: "80-/tcp", parts: ["is not a port number"] },
    { spec: "２２/tcp", parts: ["is not a port number"] },
    { spec: "2.5/tcp", parts: ["is not a port number"] },
  ];
  for (const { spec, parts } of cases) {
    const result = parsePortSpec(spec);
    assert.equal(typeof result, "string", `${spec} should fail`);
    for (const part of parts) {
      assert.ok(
        (result as string).includes(part),
        `${spec}: ${result} lacks ${part}`,
      );
    }
  }
});

Deno.test("parsePortSpec shortens a long spec in its reason", () => {
  const long = "x".repeat(70_000);
  for (
    const spec of [
      `${long}/tcp`,
      `22/${long}`,
      `1/2/${long}`,
      `1-2-${long}`,
      `${long}-22/tcp`,
    ]
  ) {
    const reason = parsePortSpec(spec);
    assert.equal(typeof reason, "string", spec.slice(0, 20));
    assert.ok(
      (reason as string).length < 400,
      (reason as string).slice(0, 400),
    );
    assert.match(reason as string, /…\(\d+ characters\)/);
  }
});

Deno.test("formatPortRange writes single ports and ranges as specs", () => {
  assert.equal(formatPortRange({ port: 22, proto: "tcp" }), "22/tcp");
  assert.equal(
    formatPortRange({ port: 8080, endPort: 8090, proto: "tcp" }),
    "8080-8090/tcp",
  );
  assert.equal(
    formatPortRange({ port: 53, endPort: 53, proto: "udp" }),
    "53/udp",
  );
});

Deno.test("formatPortRange output parses back to the same range", () => {
  const ranges: PortRange[] = [
    { port: 22, proto: "tcp" },
    { port: 1, endPort: 65535, proto: "udp" },
  ];
  for (const range of ranges) {
    assert.deepEqual(parsePortSpec(formatPortRange(range)), [range]);
  }
});

Deno.test("isGroupName: no '/', no '-', not all digits", () => {
  const cases: { entry: string; want: boolean }[] = [
    { entry: "default", want: true },
    { entry: "devops", want: true },
    { entry: "dev0ps", want: true },
    { entry: "web_1", want: true },
    { entry: "22", want: false },
    { entry: "22/tcp", want: false },
    { entry: "80-82", want: false },
    { entry: "my-group", want: false },
    { entry: "", want: false },
    { entry: " default ", want: true },
  ];
  for (const { entry, want } of cases) {
    assert.equal(isGroupName(entry), want, entry);
  }
});

Deno.test("mergePortRanges sorts, dedupes and merges overlapping and adjacent ranges per protocol", () => {
  const input: PortRange[] = [
    { port: 443, proto: "tcp" },
    { port: 22, proto: "udp" },
    { port: 22, proto: "tcp" },
    { port: 22, proto: "tcp" },
    { port: 8080, endPort: 8090, proto: "tcp" },
    { port: 8085, proto: "tcp" },
    { port: 8091, endPort: 8095, proto: "tcp" },
    { port: 23, proto: "tcp" },
    { port: 100, endPort: 200, proto: "udp" },
    { port: 150, endPort: 160, proto: "udp" },
  ];
  assert.deepEqual(mergePortRanges(input).map(formatPortRange), [
    "22-23/tcp",
    "443/tcp",
    "8080-8095/tcp",
    "22/udp",
    "100-200/udp",
  ]);
  assert.deepEqual(mergePortRanges([]), []);
});
