// Subscriber imports started from the dashboard: the uploaded file (bounded, held in memory) goes
// through the same importer as `bqctl subscribers import`, in the background, while the page
// watches its progress. One import at a time per dashboard; the last few are remembered (in memory:
// a restart forgets them, the subscribers they stored stay).
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Pool } from '../../db/pool.js';
import { PayloadError, HttpError } from '../../errors.js';
import { errorMessage, type Logger } from '../../log.js';
import { detectFormat, importSubscribers, ImportStoppedError, type ImportFormat, type ImportStats, type Rejection } from '../../broadcast/import.js';

/** The largest upload the dashboard takes; a bigger file goes through `bqctl subscribers import`. */
export const MAX_UPLOAD_BYTES = 32 * 1024 * 1024;
/** Rejected rows kept for the report; the rest are counted (a file of bad rows must not fill memory). */
export const MAX_REPORTED_REJECTIONS = 1_000;
/**
 * Parsing gives the event loop back after each piece this size, even when no row reaches the
 * database. A rejected row costs ~30 µs (its exception; 40-60 ms per 16 KB of bad rows measured at
 * load 14), a good one ~3 µs: 4 KB holds the loop ~15 ms at worst. 64 KB pieces had stalled it 249 ms.
 */
const PIECE_BYTES = 4 * 1024;
const REMEMBERED = 10;

export type ImportState = 'running' | 'finished' | 'stopped';

export interface ImportRun {
  id: string;
  fileName: string;
  format: ImportFormat;
  bytes: number;
  /** Bytes handed to the importer so far: the progress bar. */
  bytesRead: number;
  state: ImportState;
  stats: ImportStats;
  rejections: Rejection[];
  /** Why it stopped before the end of the file (state 'stopped'). */
  error: string | null;
  /** Every accepted row up to this line is stored when it stopped; none after it. */
  keptThroughLine: number | null;
  startedAt: Date;
  finishedAt: Date | null;
}

export class SubscriberImports {
  private readonly runs = new Map<string, ImportRun>();
  private readonly aborts = new Map<string, AbortController>();

  constructor(private readonly log: Logger, private readonly onFinished: () => void) {}

  get(id: string): ImportRun | undefined {
    return this.runs.get(id);
  }

  /** Newest first. */
  list(): ImportRun[] {
    return [...this.runs.values()].reverse();
  }

  running(): ImportRun | undefined {
    return [...this.runs.values()].find((r) => r.state === 'running');
  }

  /** Reads the request's body (at most MAX_UPLOAD_BYTES) and starts importing it; returns at once. */
  async start(pool: Pool, req: IncomingMessage, fileName: string): Promise<ImportRun> {
    const busy = this.running();
    if (busy) throw new HttpError(409, `import ${busy.id} (${busy.fileName}) is still running; wait for it to finish`, { connection: 'close' });
    const body = await readUpload(req);
    if (body.length === 0) throw new HttpError(400, 'the file is empty');
    // Checked again: another upload may have started while this one was arriving.
    if (this.running()) throw new HttpError(409, 'another import started while this file was arriving; wait for it to finish');
    const run: ImportRun = {
      id: randomBytes(6).toString('hex'), fileName, format: detectFormat(fileName, body.toString('utf8', 0, 256)), bytes: body.length, bytesRead: 0,
      state: 'running', stats: { read: 0, imported: 0, inserted: 0, updated: 0, rejected: 0 }, rejections: [], error: null, keptThroughLine: null,
      startedAt: new Date(), finishedAt: null,
    };
    this.runs.set(run.id, run);
    while (this.runs.size > REMEMBERED) this.runs.delete(this.runs.keys().next().value!);
    const abort = new AbortController();
    this.aborts.set(run.id, abort);
    this.log.info({ importId: run.id, bytes: run.bytes, format: run.format }, 'dashboard subscriber import started');
    void this.run(pool, run, body, abort.signal);
    return run;
  }

  private async run(pool: Pool, run: ImportRun, body: Buffer, signal: AbortSignal): Promise<void> {
    async function* pieces() {
      for (let at = 0; at < body.length; at += PIECE_BYTES) {
        // Without a row to write (a file of bad rows) the importer would never wait on anything.
        await yieldToEventLoop();
        if (signal.aborted) throw new Error('the dashboard closed (the daemon is stopping)');
        const piece = body.subarray(at, at + PIECE_BYTES);
        run.bytesRead = at + piece.length;
        yield piece;
      }
    }
    try {
      run.stats = await importSubscribers(pool, Readable.from(pieces(), { highWaterMark: 1 }), {
        format: run.format,
        onReject: (r) => {
          if (run.rejections.length < MAX_REPORTED_REJECTIONS) run.rejections.push(r);
        },
        onProgress: (s) => {
          run.stats = s;
        },
      });
      run.state = 'finished';
    } catch (error) {
      run.state = 'stopped';
      // A CSV header without chat_id and the like: the file's fault, nothing was written.
      if (error instanceof PayloadError) run.error = error.message;
      else if (error instanceof ImportStoppedError) {
        run.stats = error.stats;
        run.error = error.message;
        run.keptThroughLine = error.keptThroughLine;
      } else run.error = `the import failed: ${errorMessage(error)}`;
    } finally {
      run.finishedAt = new Date();
      this.aborts.delete(run.id);
      const s = run.stats;
      this.log.info({ importId: run.id, state: run.state, read: s.read, imported: s.imported, inserted: s.inserted, updated: s.updated, rejected: s.rejected, reason: run.error ?? undefined }, 'dashboard subscriber import ended');
      this.onFinished();
    }
  }

  /** Stops running imports (the server is closing); what they stored stays, as the report says. */
  stopAll(): void {
    for (const abort of this.aborts.values()) abort.abort();
  }
}

async function readUpload(req: IncomingMessage): Promise<Buffer> {
  const tooLarge = () => new HttpError(413, `the file is larger than the dashboard's ${MAX_UPLOAD_BYTES / 1024 / 1024} MB upload limit; import it with bqctl subscribers import FILE`, { connection: 'close' });
  if (Number(req.headers['content-length'] ?? 0) > MAX_UPLOAD_BYTES) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_UPLOAD_BYTES) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}
