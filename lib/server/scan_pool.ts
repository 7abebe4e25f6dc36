/**
 * Worker threads for long signer scans: chunks of keys handed out in order,
 * first-come across scans, until one verifies.
 *
 * @module
 */

import { ED25519_PUBLIC_KEY_BYTES } from "../protocol/crypto.ts";
import type { SignedKnock } from "../protocol/packet.ts";

/** One chunk of a scan as a worker receives it: the knock, and raw 32-byte public keys back to back. */
export type ScanChunk = SignedKnock & { keys: Uint8Array };

/** What a chunk or a whole scan found: the index of the key that verified (or -1), and the milliseconds its checks took. */
export type ScanAnswer = { index: number; ms: number };

/** A scan: its first key not yet handed out, its chunks not yet answered, and the workers' time on the others. */
interface Scan {
  knock: SignedKnock;
  keys: readonly Uint8Array[];
  next: number;
  pending: number;
  ms: number;
  resolve(result: ScanAnswer): void;
}

/** Chunks a worker holds at once: the next one waits in its queue while it checks one, so it never idles on a round trip. */
const CHUNKS_PER_WORKER = 2;

/** A pool of up to `size` worker threads, started when first needed. */
export class ScanPool {
  #size: number;
  #chunk: number;
  /** Each worker's chunks handed out and not answered, in the order it answers them. */
  #inFlight = new Map<Worker, { scan: Scan; first: number }[]>();
  /** Scans with chunks left to hand out, first-come. */
  #scans: Scan[] = [];

  /** Creates a pool of `options.size` workers that check `options.chunk` keys at a time. */
  constructor(options: { size: number; chunk: number }) {
    this.#size = options.size;
    this.#chunk = options.chunk;
  }

  /** Resolves to the index of the first key the knock's signature verifies under (or -1), with the workers' time. */
  scan(knock: SignedKnock, keys: readonly Uint8Array[]): Promise<ScanAnswer> {
    return new Promise((resolve) => {
      const scan = { knock, keys, next: 0, pending: 0, ms: 0, resolve };
      this.#scans.push(scan);
      this.#dispatch();
    });
  }

  /** Stops every worker; scans in progress never resolve. */
  close(): void {
    for (const worker of this.#inFlight.keys()) worker.terminate();
    this.#inFlight.clear();
    this.#scans = [];
  }

  #dispatch(): void {
    while (this.#scans.length > 0) {
      const worker = this.#freeWorker();
      if (worker === null) return;
      const scan = this.#scans[0];
      const first = scan.next;
      scan.next = Math.min(scan.keys.length, first + this.#chunk);
      if (scan.next === scan.keys.length) this.#scans.shift();
      const keys = new Uint8Array(
        (scan.next - first) * ED25519_PUBLIC_KEY_BYTES,
      );
      for (let i = first; i < scan.next; i++) {
        keys.set(scan.keys[i], (i - first) * ED25519_PUBLIC_KEY_BYTES);
      }
      scan.pending++;
      this.#inFlight.get(worker)?.push({ scan, first });
      const chunk: ScanChunk = { ...scan.knock, keys };
      worker.postMessage(chunk, [keys.buffer]);
    }
  }

  /** An idle worker, else a new one while the pool is not full, else one with room in its queue, else null. */
  #freeWorker(): Worker | null {
    let roomy: Worker | null = null;
    for (const [worker, chunks] of this.#inFlight) {
      if (chunks.length === 0) return worker;
      if (chunks.length < CHUNKS_PER_WORKER) roomy = worker;
    }
    if (this.#inFlight.size >= this.#size) return roomy;
    // scripts/compile.ts passes this module to deno compile with --include.
    const worker = new Worker(new URL("./scan_worker.ts", import.meta.url), {
      type: "module",
    });
    worker.onmessage = (event: MessageEvent<ScanAnswer>) =>
      this.#answered(worker, event.data);
    this.#inFlight.set(worker, []);
    return worker;
  }

  #answered(worker: Worker, answer: ScanAnswer): void {
    const job = this.#inFlight.get(worker)?.shift();
    if (job === undefined) return;
    const { scan, first } = job;
    scan.pending--;
    scan.ms += answer.ms;
    if (answer.index >= 0) {
      // Its other chunks are not handed out; answers still due are ignored.
      this.#scans = this.#scans.filter((s) => s !== scan);
      scan.next = scan.keys.length;
      scan.resolve({ index: first + answer.index, ms: scan.ms });
      scan.resolve = () => {};
    } else if (scan.next === scan.keys.length && scan.pending === 0) {
      scan.resolve({ index: -1, ms: scan.ms });
    }
    this.#dispatch();
  }
}
