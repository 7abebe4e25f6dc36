/**
 * Strict base64 for keys (standard alphabet with padding, SPEC §3).
 *
 * @module
 */

/** Padded standard base64 only: no inner whitespace, no `-`/`_`, no missing or extra `=`. */
const BASE64_PATTERN =
  /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Encodes bytes as standard base64 with padding. */
export function encodeBase64(bytes: Uint8Array): string {
  return bytes.toBase64();
}

/** Decodes standard padded base64 after trimming whitespace, or returns null when the text is not that. */
export function decodeBase64(text: string): Uint8Array | null {
  const trimmed = text.trim();
  if (!BASE64_PATTERN.test(trimmed)) return null;
  return Uint8Array.fromBase64(trimmed);
}

/** Result of {@linkcode decodeBase64Key}: the key bytes or why they were refused. */
export type DecodeKeyResult =
  | { ok: true; bytes: Uint8Array }
  | { ok: false; reason: string };

/** Decodes a base64 key and checks that its length in bytes is one of `sizes`. */
export function decodeBase64Key(
  text: unknown,
  sizes: readonly number[],
): DecodeKeyResult {
  const want = sizes.join(" or ");
  if (typeof text !== "string" || text.trim() === "") {
    return {
      ok: false,
      reason: `missing key: expected base64 of ${want} bytes`,
    };
  }
  const bytes = decodeBase64(text);
  if (bytes === null) {
    return {
      ok: false,
      reason:
        `not valid base64 (standard alphabet with = padding): expected base64 of ${want} bytes`,
    };
  }
  if (!sizes.includes(bytes.length)) {
    return {
      ok: false,
      reason: `key is ${bytes.length} bytes, expected ${want} bytes`,
    };
  }
  return { ok: true, bytes };
}
