/**
 * A worker thread of {@linkcode ScanPool}: answers a chunk with the index of
 * its first key that verifies the knock (or -1) and the time it took.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { ed25519Verify } from "../protocol/crypto.ts";
import type { ScanAnswer, ScanChunk } from "./scan_pool.ts";

const KEY_BYTES = 32;

self.onmessage = (event: MessageEvent<ScanChunk>): void => {
  const { signedBytes, signature, keys } = event.data;
  const started = performance.now();
  let found = -1;
  for (let at = 0; found < 0 && at < keys.length; at += KEY_BYTES) {
    const key = keys.subarray(at, at + KEY_BYTES);
    if (ed25519Verify(key, signedBytes, signature)) found = at / KEY_BYTES;
  }
  const answer: ScanAnswer = { index: found, ms: performance.now() - started };
  self.postMessage(answer);
};
