import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createBroadcastQueue, PayloadError } from '../src/index.js';
import type { JobEvent } from '../src/queue/worker-pool.js';
import { createTestDatabase } from './helpers/db.js';
import { FakeBotApi } from '../src/testing/index.js';
import { TEST_TOKEN, jobRow } from './helpers/telegram.js';
import { waitForEvent } from './helpers/wait.js';

test('the library API: queueBroadcast and send enqueue jobs that a started queue delivers', async () => {
  const db = await createTestDatabase();
  const api = new FakeBotApi({ token: TEST_TOKEN });
  const apiRoot = await api.start();
  const queue = createBroadcastQueue({ connectionString: db.url, telegram: { token: TEST_TOKEN, apiRoot }, rateLimit: 500 });
  try {
    await queue.start();
    const sent = await queue.send(42, { text: 'hello' });
    await waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === sent.jobId);
    assert.is(api.deliveredCount(42), 1);

    const broadcast = await queue.queueBroadcast({ message: { text: 'to all' }, chat_ids: [1, 2, 3] });
    await waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === broadcast.jobId);
    assert.is((await jobRow(db, broadcast.jobId)).result.sent, 3);

    for (const bad of [() => queue.send(42, { txt: 'typo' }), () => queue.queueBroadcast({ message: { text: 'x' } }), () => queue.queueBroadcast(-1)]) {
      const error = await bad().then(() => null, (e: Error) => e);
      assert.instance(error, PayloadError);
    }
  } finally {
    await queue.stop();
    await api.stop();
    await db.drop();
  }
});

test.run();
