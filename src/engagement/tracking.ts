// Tracked links and buttons for one queue: the per-recipient rewrite the broadcast engine applies,
// and the resolution of a token back to its URL (redirect listener) or callback data (middleware),
// which records the click or press. A token resolves only to a link or button that is in the
// message of the broadcast it names, read from the broadcasts row: never to an address the token
// or the request could choose.
import type { Pool } from '../db/pool.js';
import type { Logger } from '../log.js';
import { EventWriter } from './event-writer.js';
import { personalize, trackedParts, type TrackedParts } from './links.js';
import { loadTrackedMessages } from './store.js';
import { LinkTokens, type TokenFields } from './token.js';

export interface TrackingSettings {
  /** Where the redirect listener is reached from the internet, e.g. https://t.example.com. */
  publicUrl: string;
  /** The key of the tokens (BQ_LINK_SECRET). */
  linkSecret: string;
  /** How often clicks and presses are written. */
  flushMs: number;
}

/** A broadcast's links stay cached this long: a click storm reads the row once. */
const PARTS_TTL_MS = 60_000;
const MAX_CACHED = 1_000;

export class Tracking {
  private readonly tokens: LinkTokens;
  private readonly writer: EventWriter;
  private readonly cache = new Map<number, { parts: Promise<TrackedParts | null>; at: number }>();

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
  }

  /** The rewrite of one broadcast's messages (its message or variants, in order) for each recipient. */
  personalizer(broadcastId: number, messages: Record<string, unknown>[]): (params: Record<string, unknown>, chatId: number) => Record<string, unknown> {
    const parts = trackedParts(messages);
    return (params, chatId) => personalize(params, parts, this.tokens, this.settings.publicUrl, broadcastId, chatId);
  }

  /** The URL a link token stands for, with its click queued for writing (unless `record` is false); null (nothing recorded) for any other token. */
  async click(token: string, record = true): Promise<string | null> {
    const fields = this.tokens.decode(token);
    if (fields?.kind !== 'link') return this.refuse('link');
    const url = (await this.parts(fields.broadcastId))?.urls[fields.index];
    if (url === undefined) return this.refuse('link');
    if (record) this.record(fields, 'click');
    return url;
  }

  /** The bot's own callback_data behind a tracked button's token, with the press queued; null when it is no such token. */
  async press(token: string): Promise<string | null> {
    const fields = this.tokens.decode(token);
    if (fields?.kind !== 'button') return this.refuse('button');
    const data = (await this.parts(fields.broadcastId))?.buttons[fields.index];
    if (data === undefined) return this.refuse('button');
    this.record(fields, 'press');
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

  private parts(broadcastId: number): Promise<TrackedParts | null> {
    const now = Date.now();
    const cached = this.cache.get(broadcastId);
    if (cached && now - cached.at < PARTS_TTL_MS) return cached.parts;
    if (this.cache.size >= MAX_CACHED) this.cache.clear();
    const parts = this.pool()
      .then((pool) => loadTrackedMessages(pool, broadcastId))
      .then((messages) => (messages ? trackedParts(messages) : null));
    // A failed read is not remembered: the next click asks again.
    parts.catch(() => this.cache.delete(broadcastId));
    this.cache.set(broadcastId, { parts, at: now });
    return parts;
  }
}
