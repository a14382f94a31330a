// The Subscribers pages' routes, kept out of handler.ts: the page (counts, lookup, segment count),
// an import's page and live stream, and the upload (after handler.ts has checked the CSRF token and
// the admin role).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Pool } from '../../db/pool.js';
import { inTransaction } from '../../db/transaction.js';
import { HttpError, PayloadError } from '../../errors.js';
import { errorMessage, type Logger } from '../../log.js';
import { countAudience, parseAudience, type AudienceCount } from '../../broadcast/audience.js';
import { countSubscribers, findSubscriber, type SubscriberCounts } from '../../broadcast/subscriber-counts.js';
import { splitUrl, truncate } from '../request.js';
import type { Html } from './html.js';
import type { PageContext } from './layout.js';
import type { LiveStreams } from './live.js';
import { importLive, importPage, subscribersPage, type SubscribersView } from './pages/subscribers.js';
import { SubscriberImports, type ImportRun } from './subscriber-imports.js';

/** Counts older than this are counted again (in the background, while the older ones are shown). */
const KEEP_COUNTS_MS = 60_000;
/** A segment count or a grouping is cancelled past this, with an error saying so. */
const COUNT_TIMEOUT_MS = 10_000;
const MAX_SEGMENT_CHARS = 10_000;

export class SubscriberRoutes {
  readonly imports: SubscriberImports;
  private counts: SubscriberCounts | null = null;
  private counting: Promise<SubscriberCounts> | null = null;
  /** Bumped when an import ends: a count that started before it must not be kept. */
  private generation = 0;

  constructor(private readonly log: Logger, private readonly live: LiveStreams) {
    // The next view counts again: an import changed what the kept counts say.
    this.imports = new SubscriberImports(log, () => {
      this.counts = null;
      this.generation++;
    });
  }

  /** The page `path` names, or undefined when it is not one of these; null when a live stream answered. */
  async render(ctx: PageContext, path: string, query: URLSearchParams, pool: Pool, res: ServerResponse): Promise<Html | null | undefined> {
    if (path === '/subscribers') return subscribersPage(ctx, await this.view(pool, query));
    let m = /^\/subscribers\/imports\/([0-9a-f]{12})$/.exec(path);
    if (m) return importPage(ctx, this.run(m[1]!));
    m = /^\/events\/imports\/([0-9a-f]{12})$/.exec(path);
    if (m) {
      const id = m[1]!;
      this.run(id);
      // Read from memory, not the database: a short interval costs nothing. The stream ends after
      // the update that says the import ended.
      let ended = false;
      this.live.start(res, 500, async () => {
        const r = this.imports.get(id);
        if (!r || ended) return null;
        ended = r.state !== 'running';
        return { state: r.state, values: importLive(r) };
      });
      return null;
    }
    return undefined;
  }

  /** POST /subscribers/import: the body is the file; answers with the import's page. */
  async upload(pool: Pool, req: IncomingMessage): Promise<ImportRun> {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type === 'multipart/form-data' || type === 'application/x-www-form-urlencoded') {
      throw new HttpError(415, 'the file is sent as the request body by the page\'s script (turn on JavaScript), not as a form; or use bqctl subscribers import FILE', { connection: 'close' });
    }
    const name = (splitUrl(req.url).query.get('name') ?? '').trim();
    return this.imports.start(pool, req, truncate(name || 'upload', 200));
  }

  close(): void {
    this.imports.stopAll();
  }

  private run(id: string): ImportRun {
    const r = this.imports.get(id);
    if (!r) throw new HttpError(404, `import ${id} is not known here: the dashboard remembers its last 10 imports until the daemon restarts`);
    return r;
  }

  private async view(pool: Pool, query: URLSearchParams): Promise<SubscribersView> {
    const chatId = (query.get('chat_id') ?? '').trim();
    if (chatId && !/^-?[1-9][0-9]{0,15}$/.test(chatId)) throw new HttpError(400, `chat id must be a whole number such as 123456789 or -1001234567890, got ${JSON.stringify(truncate(chatId, 40))}`);
    const segmentText = (query.get('segment') ?? '').trim();
    const [counts, row, segment] = await Promise.all([
      this.keptCounts(pool).catch((error: unknown) => {
        if ((error as { code?: string }).code !== '57014') throw error;
        throw new HttpError(503, `counting the subscribers took longer than ${COUNT_TIMEOUT_MS / 1000} s and was stopped; bqctl subscribers count counts without a time limit`);
      }),
      chatId ? findSubscriber(pool, Number(chatId)) : null,
      segmentText ? this.countSegment(pool, segmentText) : null,
    ]);
    return {
      counts, lookup: chatId ? { chatId, row } : null, segment, imports: this.imports.list(), keptSeconds: KEEP_COUNTS_MS / 1000,
    };
  }

  /** Kept counts; stale ones are shown while a fresh count runs, so only the first view waits. */
  private async keptCounts(pool: Pool): Promise<SubscriberCounts> {
    const kept = this.counts;
    if (kept && Date.now() - kept.counted_at.getTime() < KEEP_COUNTS_MS) return kept;
    if (!this.counting) {
      const generation = this.generation;
      this.counting = countSubscribers(pool, { timeoutMs: COUNT_TIMEOUT_MS })
        .then((c) => {
          if (generation === this.generation) this.counts = c;
          return c;
        })
        .finally(() => {
          this.counting = null;
        });
      this.counting.catch((error: unknown) => this.log.warn({ err: errorMessage(error) }, 'dashboard subscriber count failed'));
    }
    return kept ?? this.counting;
  }

  private async countSegment(pool: Pool, text: string): Promise<SubscribersView['segment']> {
    const shown = truncate(text, MAX_SEGMENT_CHARS);
    let audience: unknown;
    try {
      if (text.length > MAX_SEGMENT_CHARS) throw new PayloadError(`the segment is longer than ${MAX_SEGMENT_CHARS} characters`);
      try {
        audience = JSON.parse(text);
      } catch (error) {
        throw new PayloadError(`the segment is not valid JSON: ${(error as Error).message}`);
      }
      parseAudience(audience, 'segment');
      const result: AudienceCount = await inTransaction(pool, (c) => countAudience(c, audience, 'segment'), { begin: 'BEGIN READ ONLY', setLocal: [`statement_timeout = ${COUNT_TIMEOUT_MS}`] });
      return { text: shown, result, error: null };
    } catch (error) {
      if (error instanceof PayloadError) return { text: shown, result: null, error: error.message };
      if ((error as { code?: string }).code === '57014') return { text: shown, result: null, error: `counting this segment took longer than ${COUNT_TIMEOUT_MS / 1000} s and was stopped` };
      throw error;
    }
  }
}
