import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { startEmbeddedPostgres } from '../../src/db/embedded.js';
import { silentLogger } from '../../src/log.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { createTestDatabase } from '../helpers/db.js';
import { waitForEvent } from '../helpers/wait.js';

const HOUR_MS = 3_600_000;

test('the listener survives pg_terminate_backend and runs a job inserted meanwhile', async () => {
  const db = await createTestDatabase();
  const queue = new BroadcastQueue({ connectionString: db.url, sweepMs: HOUR_MS, handlers: { noop: () => 'ran' } });
  try {
    await queue.start();
    const reconnected = waitForEvent(queue, 'listener:connected', undefined, 20_000);
    const killed = await db.pool.query(`SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'broadcast-queued listener'`);
    assert.equal(killed.rows, [{ ok: true }]);
    // Inserted while the listener is away: its notification is lost, the reconnect claim finds it.
    const { rows } = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('noop') RETURNING job_id`);
    const done = await waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === rows[0].job_id, 20_000);
    assert.is(done.outcome.kind, 'completed');
    await reconnected;
    // And notifications work again afterwards.
    const next = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('noop') RETURNING job_id`);
    await waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === next.rows[0].job_id, 5_000);
  } finally {
    await queue.stop();
    await db.drop();
  }
});

test('a PostgreSQL outage longer than pg-listen\'s 3 s default: the daemon reconnects and runs new jobs', async () => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'bq-outage-'));
  let server = await startEmbeddedPostgres({ dataDir, port: 0, log: silentLogger(), ephemeral: true });
  const queue = new BroadcastQueue({ connectionString: server.connectionString, sweepMs: HOUR_MS, handlers: { noop: () => 'ran' } });
  try {
    await queue.start();
    const disconnected = waitForEvent(queue, 'listener:disconnected', undefined, 20_000);
    await server.stop();
    await disconnected;
    // The fault itself: the database stays down past pg-listen's default retryTimeout.
    await delay(4_000);
    const reconnected = waitForEvent(queue, 'listener:connected', undefined, 30_000);
    server = await startEmbeddedPostgres({ dataDir, port: server.port, log: silentLogger(), ephemeral: true });
    const { Client } = (await import('pg')).default;
    const client = new Client({ connectionString: server.connectionString });
    await client.connect();
    const { rows } = await client.query(`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('noop') RETURNING job_id`);
    await client.end();
    const done = await waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === rows[0].job_id, 30_000);
    assert.is(done.outcome.kind, 'completed');
    await reconnected;
  } finally {
    await queue.stop();
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test.run();
