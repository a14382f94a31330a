import http from 'node:http';
import https from 'node:https';
import { Telegram } from 'telegraf';
import { deadline } from '../abort.js';
import type { OutgoingMessage } from './message.js';

/** What createBroadcastQueue accepts as `telegram`: a token, or the bot the user already has. */
export type TelegramOption =
  | { token: string; apiRoot?: string }
  | { telegram: Telegram; token?: string }
  | Telegram;

export interface SentMessage {
  messageId: number;
}

/** A Bot API call past this is abandoned (telegraf's own default is 500 s). */
export const CALL_TIMEOUT_MS = 10_000;

/**
 * Connections to the Bot API. Reused (keep-alive) and bounded: 1000 messages/s at ~100 ms each
 * needs about 100; an unbounded burst of new connections overflows the peer's accept backlog and
 * leaves calls hanging until they time out.
 */
export const MAX_SOCKETS = 128;

/**
 * The Bot API client: telegraf's Telegram class, with a per-call timeout. Errors are thrown as
 * telegraf raises them; telegram/classify.ts decides what they mean.
 */
export class TelegramSender {
  readonly client: Telegram;
  readonly botId: number;

  constructor(option: TelegramOption, private readonly timeoutMs = CALL_TIMEOUT_MS) {
    if (option instanceof Telegram) {
      this.client = option;
    } else if ('telegram' in option) {
      this.client = option.telegram;
    } else {
      // telegraf resolves method URLs against apiRoot, so a path prefix needs its trailing slash.
      const apiRoot = option.apiRoot && !option.apiRoot.endsWith('/') ? `${option.apiRoot}/` : option.apiRoot;
      const secure = !apiRoot || apiRoot.startsWith('https:');
      const agent = secure ? new https.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS }) : new http.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS });
      this.client = new Telegram(option.token, { agent, ...(apiRoot ? { apiRoot } : {}) });
    }
    // The numeric bot id before the colon keys the shared rate budget; it is not secret.
    this.botId = Number((this.client as unknown as { token: string }).token.split(':')[0]);
    if (!Number.isSafeInteger(this.botId) || this.botId <= 0) throw new Error('the bot token does not start with a numeric bot id');
  }

  async send(chatId: number, message: OutgoingMessage, signal?: AbortSignal): Promise<SentMessage> {
    const limit = deadline(this.timeoutMs, signal);
    try {
      // Only callApi takes a signal; telegraf's typings name the abort-controller polyfill's type.
      const result = (await this.client.callApi(message.method as 'sendMessage', { chat_id: chatId, ...message.params } as never, { signal: limit.signal as never })) as { message_id: number };
      return { messageId: result.message_id };
    } finally {
      limit.done();
    }
  }

  async getMe(): Promise<{ id: number; username?: string }> {
    const limit = deadline(this.timeoutMs);
    try {
      return (await this.client.callApi('getMe', {}, { signal: limit.signal as never })) as { id: number; username?: string };
    } finally {
      limit.done();
    }
  }
}
