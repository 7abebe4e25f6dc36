/**
 * Base64 (standard alphabet, with padding) and hex helpers that check what
 * they decode, so that a short or mangled key is reported, never used; and
 * the small byte helpers (length check, concatenation, comparison, secure
 * random bytes) shared by the server's `node:crypto` code and the client's
 * knock path. No `node:` import here, directly or indirectly.
 *
 * @module
 */

/** Largest request `crypto.getRandomValues` serves in one call. */
const MAX_RANDOM_CHUNK = 65536;

/**
 * Padded standard base64 and nothing else: no whitespace inside, no URL-safe
 * `-`/`_`, no missing or extra `=`. Bits past the last whole byte are ignored.
 */
const BASE64_PATTERN =
  /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Encodes bytes as standard base64 with padding. */
export function encodeBase64(bytes: Uint8Array): string {
  return bytes.toBase64();
}

/** Decodes standard padded base64, or returns null when the text is not valid base64. */
export function decodeBase64(text: string): Uint8Array | null {
  const trimmed = text.trim();
  if (!BASE64_PATTERN.test(trimmed)) return null;
  return Uint8Array.fromBase64(trimmed);
}

/** Encodes bytes as lowercase hex. */
export function encodeHex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}

/** Decodes lowercase or uppercase hex, or returns null when it is not hex. */
export function decodeHex(text: string): Uint8Array | null {
  if (text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) return null;
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(text.slice(i * 2, i * 2 + 2), 16);
  }
  return out;
}

/** Options for {@linkcode decodeBase64Key}. */
export interface DecodeKeyOptions {
  /** Accepted decoded lengths in bytes, e.g. `[32]` or `[64, 32]`. */
  sizes: number[];
}

/** Result of {@linkcode decodeBase64Key}: the key bytes or a reason it was refused. */
export type DecodeKeyResult =
  | { ok: true; bytes: Uint8Array }
  | { ok: false; reason: string };

/** Decodes a base64 key and checks that its length is one of the accepted sizes. */
export function decodeBase64Key(
  text: unknown,
  options: DecodeKeyOptions,
): DecodeKeyResult {
  const want = options.sizes.map((n) => `${n}`).join(" or ");
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
  if (!options.sizes.includes(bytes.length)) {
    return {
      ok: false,
      reason: `key is ${bytes.length} bytes, expected ${want} bytes`,
    };
  }
  return { ok: true, bytes };
}

/** Whether two byte arrays hold the same bytes (not constant-time: for keys already trusted, not secrets under attack). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Throws a RangeError naming `what` unless `bytes` is a Uint8Array of exactly `want` bytes. */
export function checkByteLength(
  what: string,
  bytes: Uint8Array,
  want: number,
): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== want) {
    const got = bytes instanceof Uint8Array
      ? `${bytes.length} bytes`
      : typeof bytes;
    throw new RangeError(`${what}: expected ${want} bytes, got ${got}`);
  }
}

/** Returns a new array holding the bytes of `a` then those of `b`. */
export function concatBytes(
  a: Uint8Array,
  b: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** Returns cryptographically secure random bytes. */
export function randomBytes(length: number): Uint8Array<ArrayBuffer> {
  if (!Number.isInteger(length) || length < 0) {
    throw new RangeError(
      `randomBytes: length must be a non-negative integer, got ${length}`,
    );
  }
  const out = new Uint8Array(length);
  for (let offset = 0; offset < length; offset += MAX_RANDOM_CHUNK) {
    const end = Math.min(length, offset + MAX_RANDOM_CHUNK);
    crypto.getRandomValues(out.subarray(offset, end));
  }
  return out;
}
