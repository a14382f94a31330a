// queue.recordUpdate() gives a bot without Telegraf what the middleware gives a Telegraf bot: a
// tracked callback button's press is recorded, and the bot gets the button's own callback_data
// (returned, and put back into the update) with the query to answer, which it answers itself.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { withTelegram, insertJob, jobRow } from '../helpers/telegram.js';
import { watchJobs } from '../helpers/wait.js';

const tracking = { publicUrl: 'https://t.example.com', linkSecret: 'a-link-secret-of-its-own-32-chars-long!' };
const MESSAGE = { text: 'Vote', reply_markup: { inline_keyboard: [[{ text: 'Yes', callback_data: 'vote:yes' }, { text: 'No', callback_data: 'vote:no' }]] } };

const pressOf = (id: string, chatId: number, data: string) => ({
  update_id: 1,
  callback_query: { id, chat_instance: 'c', from: { id: chatId, is_bot: false, first_name: 'x' }, message: { message_id: 1, date: 0, chat: { id: chatId, type: 'private' }, text: 'Vote' }, data },
});

test('recordUpdate records a tracked press and returns the button\'s own data and the query to answer; other updates have no press', async () => {
  await withTelegram({ queue: { tracking } }, async ({ db, api, queue }) => {
    const jobs = watchJobs(queue);
    const jobId = await insertJob(db, 'broadcast', { message: MESSAGE, chat_ids: [51], track: true });
    await jobs.done(jobId);
    const broadcastId = (await jobRow(db, jobId)).result.broadcast_id;
    const no = (api.delivered[0]!.body as typeof MESSAGE).reply_markup.inline_keyboard[0]![1]!.callback_data;
    assert.match(no, /^bq:/);

    const update = pressOf('q-51', 51, no);
    const recorded = await queue.recordUpdate(update);
    assert.equal(recorded, {
      command: null,
      reply: null,
      press: { data: 'vote:no', callbackQueryId: 'q-51', webhookReply: { method: 'answerCallbackQuery', callback_query_id: 'q-51' } },
    });
    assert.is(update.callback_query.data, 'vote:no', 'the update routes like an untracked one');

    const forged = pressOf('q-52', 51, `${no.slice(0, -1)}${no.endsWith('A') ? 'B' : 'A'}`);
    assert.is((await queue.recordUpdate(forged)).press, null);
    assert.is(forged.callback_query.data.startsWith('bq:'), true, 'a forged token is left as it came');
    assert.is((await queue.recordUpdate(pressOf('q-53', 51, 'vote:yes'))).press, null, 'an untracked button');
    assert.is((await queue.recordUpdate({ update_id: 2, message: { message_id: 2, date: 0, chat: { id: 51, type: 'private' }, text: 'hi' } })).press, null);

    await queue.flushUpdates();
    const events = await (await queue.db()).query(`SELECT broadcast_id, chat_id, kind, link_index FROM broadcast_engagement`);
    assert.equal(events.rows, [{ broadcast_id: broadcastId, chat_id: 51, kind: 'press', link_index: 1 }]);
    assert.is(api.calls.filter((c) => c.method === 'answerCallbackQuery').length, 0, 'answering is the bot\'s');
  });
});

test.run();
