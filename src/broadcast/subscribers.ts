import type { Pool } from '../db/pool.js';
import { PayloadError } from '../errors.js';
import { parseChatId } from '../telegram/message.js';
import { parseTimeZone } from './local-time.js';

/**
 * Telegram said these chats are gone: later broadcasts skip them. Chats that are not in
 * broadcast_subscribers (an explicit chat_ids broadcast) are added, already unreachable, so the
 * next broadcast to them is skipped too.
 */
export async function markUnreachable(pool: Pool, chats: { chatId: number; reason: string }[]): Promise<void> {
  if (chats.length === 0) return;
  await pool.query(
    `INSERT INTO broadcast_subscribers (chat_id, unreachable_reason, unreachable_at)
     SELECT c, r, now() FROM unnest($1::bigint[], $2::text[]) AS u(c, r)
     ON CONFLICT (chat_id) DO UPDATE SET unreachable_reason = EXCLUDED.unreachable_reason, unreachable_at = now()`,
    [chats.map((c) => c.chatId), chats.map((c) => c.reason)],
  );
}

/**
 * A group became a supergroup with a new id. The subscriber moves to the new id, keeping its
 * tags and attributes; if the new id is already subscribed, the old row is marked unreachable.
 */
export async function recordMigration(pool: Pool, oldChatId: number, newChatId: number): Promise<void> {
  await pool.query(
    `WITH moved AS (
       UPDATE broadcast_subscribers SET chat_id = $2
        WHERE chat_id = $1 AND NOT EXISTS (SELECT 1 FROM broadcast_subscribers WHERE chat_id = $2)
       RETURNING 1)
     UPDATE broadcast_subscribers SET unreachable_reason = 'migrated to ' || $2::text, unreachable_at = now()
      WHERE chat_id = $1 AND NOT EXISTS (SELECT 1 FROM moved)`,
    [oldChatId, newChatId],
  );
}

/**
 * Sets (null: clears) the IANA time zone that deliver_at_local broadcasts read for a chat, adding
 * the chat to broadcast_subscribers if it is not there yet. Telegram tells a bot nobody's zone: the
 * bot asks (a /timezone command, a shared location) and says so here or through capture.timeZone.
 */
export async function setSubscriberTimeZone(pool: Pool, chatId: unknown, timeZone: unknown): Promise<void> {
  const id = parseChatId(chatId, 'chatId');
  const zone = timeZone === null ? null : parseTimeZone(timeZone, 'timeZone');
  await pool.query(
    `INSERT INTO broadcast_subscribers (chat_id, time_zone) VALUES ($1, $2)
     ON CONFLICT (chat_id) DO UPDATE SET time_zone = EXCLUDED.time_zone`,
    [id, zone],
  ).catch((error) => {
    // A zone Intl knows and this server's tzdata does not (sql/0020's CHECK).
    if ((error as { code?: string }).code === '22023') throw new PayloadError(`timeZone: ${(error as Error).message}`);
    throw error;
  });
}
