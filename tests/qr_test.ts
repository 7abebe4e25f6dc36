import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import jsQR from "jsqr";
import { PNG } from "pngjs";
import { qrPng, qrTerminal } from "../lib/qr.ts";

const PAYLOAD = JSON.stringify({
  profile: "default",
  host: "myserver.example.com",
  udp_port: 54154,
  server_pubkey: "chWdr5J7/fF8HR9Kcdzy7SXxqfybWjUy/GrpUjqd4lk=",
  client_privkey:
    "8+vvzveKBaL7YBet5X2wmKas9SF2cl8+GWZkVTUw5LAaVytAANuIKgqpSp79eAwgbRSI3VjVGBO4mHnh759MCw==",
  client_pubkey: "GlcrQADbiCoKqUqe/XgMIG0UiN1Y1RgTuJh54e+fTAs=",
});

function decodePng(bytes: Uint8Array): string | null {
  const png = PNG.sync.read(Buffer.from(bytes));
  const result = jsQR.default(
    new Uint8ClampedArray(png.data),
    png.width,
    png.height,
  );
  return result === null ? null : result.data;
}

Deno.test("qrPng decodes back to the exact payload", async () => {
  assert.equal(decodePng(await qrPng(PAYLOAD)), PAYLOAD);
});

Deno.test("qrTerminal output of a provisioning payload fits 80 columns", async () => {
  const text = await qrTerminal(PAYLOAD);
  const lines = text.split("\n").filter((l) => l.length > 0);
  assert.ok(lines.length > 10, "a QR code has rows");
  for (const line of lines) {
    // deno-lint-ignore no-control-regex
    const visible = line.replace(/\x1b\[[0-9;]*m/g, "");
    assert.ok(
      [...visible].length <= 80,
      `line of ${[...visible].length} columns`,
    );
  }
});
