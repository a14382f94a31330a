// A press of a tracked callback button arrives as callback_data "bq:<token>". Both ways a bot hands
// the queue its updates resolve it the same way: queue.telegraf() (which answers the query itself)
// and queue.recordUpdate() (which leaves answering to the bot, as it has no Bot API client of the
// bot's). The press is recorded and the update's data becomes the button's own again, so the bot
// routes it as it would without tracking.
import { errorMessage, type Logger } from '../log.js';
import type { Update } from '../telegram/update.js';
import { CALLBACK_PREFIX } from './links.js';
import type { Tracking } from './tracking.js';

/** What queue.recordUpdate() says about a tracked button's press. */
export interface TrackedPress {
  /** The button's own callback_data; the update's callback_query.data is set to it too. */
  data: string;
  /** The query Telegram waits to see answered (the button shows a spinner until then). */
  callbackQueryId: string;
  /** The answer as a webhook's response body, for a bot that answers updates in its webhook response. */
  webhookReply: { method: 'answerCallbackQuery'; callback_query_id: string };
}

/**
 * The press of a tracked button in `update`, recorded, with the update's data put back to the
 * button's own; null for any other update, a token this key did not make, or when the broadcast's
 * links cannot be read (then the data stays "bq:…" and the failure is logged). Never rejects.
 */
export async function resolveTrackedPress(tracking: Tracking | null, update: Update, log: Logger): Promise<TrackedPress | null> {
  const query = update.callback_query;
  const data = query?.data;
  if (!tracking || typeof data !== 'string' || !data.startsWith(CALLBACK_PREFIX)) return null;
  const original = await tracking.press(data.slice(CALLBACK_PREFIX.length)).catch((error: unknown) => {
    log.warn({ err: errorMessage(error) }, 'tracked button not resolved: database unavailable');
    return null;
  });
  if (original === null) return null;
  query!.data = original;
  const id = query!.id;
  return { data: original, callbackQueryId: id, webhookReply: { method: 'answerCallbackQuery', callback_query_id: id } };
}
