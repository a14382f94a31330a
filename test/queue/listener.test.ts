import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { startEmbeddedPostgres } from '../../src/db/embedded.js';
import { silentLogger } from '../../src/log.js';
import { databaseRetryWaitMs } from '../../src/db/pool.js';
import { Listener } from '../../src/queue/listener.js';
import { createTestDatabase } from '../helpers/db.js';
import { waitForEvent, watchJobs } from '../helpers/wait.js';

const HOUR_MS = 3_600_000;

test('the listener survives pg_terminate_backend and runs a job inserted meanwhile', async () => {
  const db = await createTestDatabase();
  const queue = new BroadcastQueue({ connectionString: db.url, sweepMs: HOUR_MS, handlers: { noop: () => 'ran' } });
  try {
    await queue.start();
    const reconnected = waitForEvent(queue, 'listener:connected', undefined, 20_000);
    const jobs = watchJobs(queue);
    const killed = await db.pool.query(`SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'broadcast-queued listener'`);
    assert.equal(killed.rows, [{ ok: true }]);
    // Inserted while the listener is away: its notification is lost, the reconnect claim finds it.
    const { rows } = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('noop') RETURNING job_id`);
    const done = await jobs.done(rows[0].job_id, undefined, 20_000);
    assert.is(done.outcome.kind, 'completed');
    await reconnected;
    // And notifications work again afterwards.
    const next = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('noop') RETURNING job_id`);
    await jobs.done(next.rows[0].job_id, undefined, 20_000);
  } finally {
    await queue.stop();
    await db.drop();
  }
});

test('when pg-listen gives up re-issuing LISTEN after a reconnect, the listener starts over and hears notifications again', async () => {
  const db = await createTestDatabase();
  const listener = new Listener(db.url, silentLogger());
  try {
    await listener.start();
    // The state pg-listen leaves when LISTEN fails after a reconnect: connected, listening to
    // nothing, and an 'error' that says it stopped trying.
    const subscriber = (listener as unknown as { subscriber: import('pg-listen').Subscriber }).subscriber;
    await subscriber.unlistenAll();
    const disconnected = waitForEvent(listener, 'disconnected', undefined, 5_000);
    const connected = waitForEvent(listener, 'connected', undefined, 20_000);
    subscriber.events.emit('error', new Error('Re-initializing the PostgreSQL notification client after connection loss failed: Connection terminated'));
    await disconnected;
    await connected;
    const heard = waitForEvent<string>(listener, 'notification', (queue) => queue === 'after', 20_000);
    await db.pool.query(`SELECT pg_notify('broadcast_queue', 'after')`);
    assert.is(await heard, 'after');
  } finally {
    await listener.stop();
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
    const jobs = watchJobs(queue);
    const { rows } = await client.query(`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('noop') RETURNING job_id`);
    await client.end();
    const done = await jobs.done(rows[0].job_id, undefined, 30_000);
    assert.is(done.outcome.kind, 'completed');
    await reconnected;
  } finally {
    await queue.stop();
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('the reconnect wait never grows past a second, and never gives up', () => {
  // It grew to 10 s: after an outage, work resumed up to 5.7 s after the database was back.
  for (let attempt = 1; attempt <= 10_000; attempt++) {
    const waitMs = databaseRetryWaitMs(attempt);
    assert.ok(waitMs > 0 && waitMs <= 1_000, `attempt ${attempt}: ${waitMs} ms`);
  }
});

test('LISTEN resumes after every restart of a real server, and after a terminate', async () => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'bq-restarts-'));
  let server = await startEmbeddedPostgres({ dataDir, port: 0, log: silentLogger(), ephemeral: true });
  const queue = new BroadcastQueue({ connectionString: server.connectionString, sweepMs: HOUR_MS, handlers: { noop: () => 'ran' } });
  const { Client } = (await import('pg')).default;
  const insertAndRun = async () => {
    const client = new Client({ connectionString: server.connectionString });
    await client.connect();
    const jobs = watchJobs(queue);
    try {
      // The sweep is an hour: only a notification (or the claim on reconnect) starts these.
      const { rows } = await client.query(`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('noop') RETURNING job_id`);
      assert.is((await jobs.done(rows[0].job_id, undefined, 30_000)).outcome.kind, 'completed');
    } finally {
      jobs.stop();
      await client.end();
    }
  };
  try {
    await queue.start();
    for (let round = 1; round <= 3; round++) {
      const disconnected = waitForEvent(queue, 'listener:disconnected', undefined, 20_000);
      await server.stop();
      await disconnected;
      const reconnected = waitForEvent(queue, 'listener:connected', undefined, 30_000);
      server = await startEmbeddedPostgres({ dataDir, port: server.port, log: silentLogger(), ephemeral: true });
      await reconnected;
      await insertAndRun();
    }
    const reconnected = waitForEvent(queue, 'listener:connected', undefined, 30_000);
    const client = new Client({ connectionString: server.connectionString });
    await client.connect();
    await client.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'broadcast-queued listener'`);
    await client.end();
    await reconnected;
    await insertAndRun();
  } finally {
    await queue.stop();
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test.run();
