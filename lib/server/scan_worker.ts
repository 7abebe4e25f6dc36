/**
 * A worker thread of {@linkcode ScanPool}: answers a chunk with the index of
 * its first key that verifies the knock (or -1) and the time it took.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { ED25519_PUBLIC_KEY_BYTES, ed25519Verify } from "../protocol/crypto.ts";
import type { ScanAnswer, ScanChunk } from "./scan_pool.ts";

self.onmessage = (event: MessageEvent<ScanChunk>): void => {
  const { signedBytes, signature, keys } = event.data;
  const started = performance.now();
  let found = -1;
  for (
    let at = 0;
    found < 0 && at < keys.length;
    at += ED25519_PUBLIC_KEY_BYTES
  ) {
    const key = keys.subarray(at, at + ED25519_PUBLIC_KEY_BYTES);
    if (ed25519Verify(key, signedBytes, signature)) {
      found = at / ED25519_PUBLIC_KEY_BYTES;
    }
  }
  const answer: ScanAnswer = { index: found, ms: performance.now() - started };
  self.postMessage(answer);
};
