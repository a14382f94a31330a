// Tracked links and buttons for one queue: the per-recipient rewrite the broadcast engine applies,
// and the resolution of a token back to its URL (redirect listener) or callback data (middleware),
// which records the click or press. A token resolves only to a link or button that is in the
// message of the broadcast it names, read from the broadcasts row: never to an address the token
// or the request could choose. A broadcast's tokens expire linkTtlDays after it finished: an expired
// link is refused like a forged one, and an expired button still gives the bot its own data (the
// button keeps working) but its press is not recorded.
import type { Pool } from '../db/pool.js';
import type { Logger } from '../log.js';
import { EventWriter } from './event-writer.js';
import { LinkTables, type LinkTable } from './link-tables.js';
import { personalize, trackedParts } from './links.js';
import { LinkTokens, type TokenFields } from './token.js';

export interface TrackingSettings {
  /** Where the redirect listener is reached from the internet, e.g. https://t.example.com. */
  publicUrl: string;
  /** The key of the tokens (BQ_LINK_SECRET). */
  linkSecret: string;
  /** How often clicks and presses are written. */
  flushMs: number;
  /** Days after a broadcast finished that its links and buttons are tracked (BQ_LINK_TTL_DAYS); 0: forever. */
  linkTtlDays: number;
}

const DAY_MS = 86_400_000;

export class Tracking {
  private readonly tokens: LinkTokens;
  private readonly writer: EventWriter;
  private readonly tables: LinkTables;

  constructor(
    private readonly pool: () => Promise<Pool>,
    private readonly settings: TrackingSettings,
    log: Logger,
    /** Told of each click and press (for the metrics). */
    private readonly onEvent: (kind: 'click' | 'press') => void = () => undefined,
    /** Told of each token refused (for the metrics). */
    private readonly onRefused: (kind: 'link' | 'button') => void = () => undefined,
  ) {
    this.tokens = new LinkTokens(settings.linkSecret);
    this.writer = new EventWriter(pool, settings.flushMs, log);
    this.tables = new LinkTables(pool, settings.linkTtlDays > 0 ? settings.linkTtlDays * DAY_MS : null);
  }

  /** The rewrite of one broadcast's messages (its message or variants, in order) for each recipient. */
  personalizer(broadcastId: number, messages: Record<string, unknown>[]): (params: Record<string, unknown>, chatId: number) => Record<string, unknown> {
    const parts = trackedParts(messages);
    // The daemon that sends a broadcast answers its first clicks without reading the row.
    this.tables.prime(broadcastId, parts);
    return (params, chatId) => personalize(params, parts, this.tokens, this.settings.publicUrl, broadcastId, chatId);
  }

  /** The URL a link token stands for, with its click queued for writing (unless `record` is false); null (nothing recorded) for any other token, or an expired one. */
  async click(token: string, record = true): Promise<string | null> {
    const fields = this.tokens.decode(token);
    if (fields?.kind !== 'link') return this.refuse('link');
    const table = await this.tables.get(fields.broadcastId);
    const url = table?.parts.urls[fields.index];
    if (url === undefined || this.expired(table!)) return this.refuse('link');
    if (record) this.record(fields, 'click');
    return url;
  }

  /** The bot's own callback_data behind a tracked button's token, with the press queued unless the token expired; null when it is no such token. */
  async press(token: string): Promise<string | null> {
    const fields = this.tokens.decode(token);
    if (fields?.kind !== 'button') return this.refuse('button');
    const table = await this.tables.get(fields.broadcastId);
    const data = table?.parts.buttons[fields.index];
    if (data === undefined) return this.refuse('button');
    if (!this.expired(table!)) this.record(fields, 'press');
    return data;
  }

  flush(): Promise<void> {
    return this.writer.flush();
  }

  private refuse(kind: 'link' | 'button'): null {
    this.onRefused(kind);
    return null;
  }

  private record(fields: TokenFields, kind: 'click' | 'press'): void {
    this.writer.add({ broadcastId: fields.broadcastId, chatId: fields.chatId, kind, linkIndex: fields.index, at: new Date() });
    this.onEvent(kind);
  }

  private expired(table: LinkTable): boolean {
    return table.expiresAt !== null && Date.now() >= table.expiresAt;
  }
}
