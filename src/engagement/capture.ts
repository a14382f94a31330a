// The subscriber list the bot keeps itself: every update it handles passes through record(), which
// only updates a map in memory; a timer (or a full batch) writes the map in one transaction of a
// few statements (engagement/store.ts). A bot handling 1,000 updates/s from the same few thousand
// people thus writes once a second, and a chat seen again within the same minute costs nothing:
// last_active_at is kept to the minute.
import type { Pool } from '../db/pool.js';
import type { ResolvedCaptureOptions } from '../config/options.js';
import { errorMessage, type Logger } from '../log.js';
import type { ChatMemberUpdated, Message, Update } from '../telegram/update.js';
import { writeCapture, type EngagementEvent, type EngagementKind, type LeaveEvent, type MessageEvent, type SubscriberChange } from './store.js';

/** The checked options with their defaults (config/options.ts, CaptureOptions). */
export type CaptureSettings = ResolvedCaptureOptions;

/** What an update asked of the bot beyond being recorded: an opt-out or opt-in command and the reply to send. */
export interface CapturedUpdate {
  command: 'opt_out' | 'opt_in' | null;
  reply: string | null;
}

/** Chats held before a flush is started early; also the most rows one statement writes. */
const MAX_PENDING = 5_000;
/** The minute each chat was last written, to skip a repeat within it; forgotten wholesale past this size. */
const MAX_REMEMBERED = 200_000;
/** Events kept across failed flushes before the oldest are dropped (and said so). */
const MAX_RETAINED_EVENTS = 100_000;

export type { Update };

function knownZone(zone: unknown): zone is string {
  if (typeof zone !== 'string' || zone === '' || zone.length > 64) return false;
  try {
    new Intl.DateTimeFormat(undefined, { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const minuteOf = (ms: number) => new Date(ms - (ms % 60_000));
const commandName = (c: string) => c.replace(/^\//, '').toLowerCase();

export class SubscriberCapture {
  private pending = new Map<number, SubscriberChange>();
  private messages: MessageEvent[] = [];
  private leaves: LeaveEvent[] = [];
  private events: EngagementEvent[] = [];
  private written = new Map<number, number>();
  /** The zone each chat was last given (written, or refused by the server): a bot returning it on every update writes it once. */
  private zones = new Map<number, string>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | null = null;
  private closed = false;
  private readonly optOut: Set<string>;
  private readonly optIn: Set<string>;

  constructor(
    private readonly pool: () => Promise<Pool>,
    private readonly settings: CaptureSettings,
    private readonly log: Logger,
    /** Told of each engagement an update holds (for the metrics), before it is matched to a broadcast. */
    private readonly onEvent: (kind: EngagementKind | 'opt_in') => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {
    this.optOut = new Set(settings.optOutCommands.map(commandName));
    this.optIn = new Set(settings.optInCommands.map(commandName));
  }

  /** Records one update in memory; never waits for the database. */
  record(update: Update): CapturedUpdate {
    const at = this.now();
    let command: CapturedUpdate['command'] = null;
    const message = update.message ?? update.edited_message;
    if (message) {
      if (message.chat.type === 'private') {
        this.active(message.chat.id, message.from?.language_code, at);
        if (update.message) command = this.command(message, at);
      }
      const replied = message.reply_to_message;
      if (update.message && replied?.from?.is_bot) {
        this.messages.push({ chatId: message.chat.id, messageId: replied.message_id, kind: 'reply', at: new Date(at) });
        this.onEvent('reply');
      }
    }
    const callback = update.callback_query;
    if (callback?.message?.chat.type === 'private') this.active(callback.message.chat.id, callback.from.language_code, at);
    if (update.my_chat_member) this.membership(update.my_chat_member, at);
    const reaction = update.message_reaction;
    if (reaction) {
      if (reaction.chat.type === 'private') this.active(reaction.chat.id, reaction.user?.language_code, at);
      if (reaction.new_reaction?.length) {
        this.messages.push({ chatId: reaction.chat.id, messageId: reaction.message_id, kind: 'reaction', at: new Date(at) });
        this.onEvent('reaction');
      }
    }
    if (this.settings.timeZone) this.timeZone(update);
    this.schedule();
    const reply = command === 'opt_out' ? this.settings.optOutReply : command === 'opt_in' ? this.settings.optInReply : null;
    return { command, reply };
  }

  /** An event already tied to a broadcast (a tracked button's press), written with the next flush. */
  recordEvent(event: EngagementEvent): void {
    this.events.push(event);
    this.schedule();
  }

  /** Writes what is pending now; resolves when it is written (or the write failed and was logged). */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flushing ??= this.write().finally(() => {
      this.flushing = null;
      if (this.size() > 0 && !this.closed) this.schedule();
    });
    return this.flushing;
  }

  /** Writes what is pending and stops the timer; later updates are still recorded and written by flush(). */
  async close(): Promise<void> {
    this.closed = true;
    await this.flushing;
    await this.flush();
  }

  private size(): number {
    return this.pending.size + this.messages.length + this.leaves.length + this.events.length;
  }

  private schedule(): void {
    if (this.size() === 0) return;
    if (this.pending.size >= MAX_PENDING || this.events.length >= MAX_PENDING) {
      void this.flush();
      return;
    }
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => void this.flush(), this.settings.flushMs);
    this.timer.unref();
  }

  private change(chatId: number): SubscriberChange {
    let change = this.pending.get(chatId);
    if (!change) this.pending.set(chatId, (change = { chatId, activeAt: null, languageCode: null }));
    return change;
  }

  private active(chatId: number, languageCode: string | undefined, at: number): void {
    const minute = minuteOf(at);
    const pending = this.pending.get(chatId);
    // The common case at 1,000 updates/s: someone already written this minute, nothing else to say.
    if (!pending && this.written.get(chatId) === minute.getTime() && languageCode === undefined) return;
    const change = pending ?? this.change(chatId);
    change.activeAt = minute;
    if (languageCode) change.languageCode = languageCode;
  }

  private timeZone(update: Update): void {
    const chat = [update.message?.chat, update.edited_message?.chat, update.callback_query?.message?.chat, update.my_chat_member?.chat, update.message_reaction?.chat]
      .find((c) => c?.type === 'private');
    if (!chat) return;
    let zone: unknown;
    try {
      zone = this.settings.timeZone!(update);
    } catch (error) {
      this.log.warn({ chatId: chat.id, err: errorMessage(error) }, 'capture.timeZone threw; this update\'s time zone is dropped');
      return;
    }
    if (zone === undefined || zone === null) return;
    if ((this.pending.get(chat.id)?.timeZone ?? this.zones.get(chat.id)) === zone) return;
    if (!knownZone(zone)) {
      this.log.warn({ chatId: chat.id, timeZone: String(zone).slice(0, 100) }, 'capture.timeZone returned no IANA time zone; dropped');
      return;
    }
    this.change(chat.id).timeZone = zone;
  }

  private command(message: Message, at: number): CapturedUpdate['command'] {
    const entity = message.entities?.[0];
    if (!message.text || entity?.type !== 'bot_command' || entity.offset !== 0) return null;
    const name = commandName(message.text.slice(0, entity.length).split('@')[0]!);
    const optedOut = this.optOut.has(name) ? true : this.optIn.has(name) ? false : null;
    if (optedOut === null) return null;
    this.change(message.chat.id).optedOut = { value: optedOut, at: new Date(at) };
    if (optedOut) this.leaves.push({ chatId: message.chat.id, kind: 'opt_out', at: new Date(at) });
    this.onEvent(optedOut ? 'opt_out' : 'opt_in');
    return optedOut ? 'opt_out' : 'opt_in';
  }

  private membership(update: ChatMemberUpdated, at: number): void {
    const { status, is_member: isMember } = update.new_chat_member;
    const reachable = ['creator', 'administrator', 'member'].includes(status) || (status === 'restricted' && isMember === true);
    // A private chat's 'kicked' is the user blocking the bot; in a group or channel it was removed.
    const reason = reachable ? null : update.chat.type === 'private' && status === 'kicked' ? 'blocked' : status;
    const change = this.change(update.chat.id);
    if (update.chat.type === 'private') {
      change.activeAt = minuteOf(at);
      if (update.from.language_code) change.languageCode = update.from.language_code;
    }
    change.unreachable = { reason, at: new Date(at) };
    if (!reachable) {
      this.leaves.push({ chatId: update.chat.id, kind: 'block', at: new Date(at) });
      this.onEvent('block');
    }
  }

  private async write(): Promise<void> {
    if (this.size() === 0) return;
    const changes = [...this.pending.values()];
    const { messages, leaves, events } = this;
    this.pending = new Map();
    this.messages = [];
    this.leaves = [];
    this.events = [];
    try {
      const refused = await writeCapture(await this.pool(), changes, messages, leaves, events);
      if (this.written.size > MAX_REMEMBERED) this.written.clear();
      if (this.zones.size > MAX_REMEMBERED) this.zones.clear();
      for (const c of changes) {
        if (c.activeAt) this.written.set(c.chatId, c.activeAt.getTime());
        if (c.timeZone) this.zones.set(c.chatId, c.timeZone);
      }
      for (const r of refused) this.log.warn({ chatId: r.chatId, timeZone: r.timeZone, err: r.error }, 'time zone unknown to the database (its tzdata); dropped');
    } catch (error) {
      // Kept for the next flush; what came in meanwhile is newer and wins.
      for (const c of changes) if (!this.pending.has(c.chatId)) this.pending.set(c.chatId, c);
      this.messages = [...messages, ...this.messages];
      this.leaves = [...leaves, ...this.leaves];
      this.events = [...events, ...this.events];
      const dropped = Math.max(0, this.events.length - MAX_RETAINED_EVENTS);
      if (dropped) this.events.splice(0, dropped);
      this.log.warn({ err: errorMessage(error), chats: this.pending.size, events: this.events.length, dropped }, 'subscriber updates not written; retrying with the next flush');
    }
  }
}
