// The links and buttons of each tracked broadcast the redirect listener and the middleware have
// seen, kept in memory. A click storm follows the links of one or a few broadcasts, so after the
// first click of each no request waits on the database: a table older than REFRESH_MS is answered
// from memory and read again in the background (a broadcast's messages do not change once sent;
// the re-read notices it finishing, which starts its links' expiry, or being deleted). The number
// of tables is bounded; the least recently clicked one makes room.
import type { Pool } from '../db/pool.js';
import { trackedParts, type TrackedParts } from './links.js';
import { loadTrackedMessages } from './store.js';

export interface LinkTable {
  parts: TrackedParts;
  /** Epoch ms from which the broadcast's tokens are refused; null while it is not finished, or with no expiry. */
  expiresAt: number | null;
}

const REFRESH_MS = 60_000;
/** After a failed background read, the table in memory is kept and read again this much later. */
const RETRY_MS = 5_000;
const MAX_TABLES = 1_000;

interface Entry {
  table: LinkTable | null;
  /** When to read the table again. */
  staleAt: number;
}

export class LinkTables {
  private readonly entries = new Map<number, Entry>();
  private readonly reading = new Map<number, Promise<LinkTable | null>>();

  constructor(
    private readonly pool: () => Promise<Pool>,
    /** How long after the broadcast finished its tokens are refused; null: never. */
    private readonly ttlMs: number | null,
    private readonly now: () => number = Date.now,
  ) {}

  /** The broadcast's table (null: not tracked, or gone); from memory once it was read. Rejects only when it was never read and the database fails. */
  get(broadcastId: number): LinkTable | null | Promise<LinkTable | null> {
    const entry = this.entries.get(broadcastId);
    if (!entry) return this.read(broadcastId);
    this.entries.delete(broadcastId);
    this.entries.set(broadcastId, entry);
    if (this.now() >= entry.staleAt && !this.reading.has(broadcastId)) {
      this.read(broadcastId).catch(() => { entry.staleAt = this.now() + RETRY_MS; });
    }
    return entry.table;
  }

  /** The table of a broadcast being sent (not finished, so not expiring): known without a read. */
  prime(broadcastId: number, parts: TrackedParts): void {
    this.keep(broadcastId, { parts, expiresAt: null });
  }

  private read(broadcastId: number): Promise<LinkTable | null> {
    const pending = this.reading.get(broadcastId);
    if (pending) return pending;
    const read = this.pool()
      .then((pool) => loadTrackedMessages(pool, broadcastId))
      .then((row) => {
        const table = row && {
          parts: trackedParts(row.messages),
          expiresAt: row.finishedAt && this.ttlMs !== null ? row.finishedAt.getTime() + this.ttlMs : null,
        };
        this.keep(broadcastId, table);
        return table;
      })
      .finally(() => this.reading.delete(broadcastId));
    this.reading.set(broadcastId, read);
    return read;
  }

  private keep(broadcastId: number, table: LinkTable | null): void {
    this.entries.delete(broadcastId);
    if (this.entries.size >= MAX_TABLES) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(broadcastId, { table, staleAt: this.now() + REFRESH_MS });
  }
}
