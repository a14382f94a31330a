import { BroadcastQueue, type BroadcastQueueOptions } from '../../src/broadcast-queue.js';
import { FakeBotApi, type FakeBotApiOptions } from '../../src/testing/index.js';
import { createTestDatabase, type TestDatabase } from './db.js';
import { createLogger, silentLogger } from '../../src/log.js';

// TEST_LOG_LEVEL=debug npm test shows what the daemons did.
const testLog = () => (process.env.TEST_LOG_LEVEL ? createLogger({ level: process.env.TEST_LOG_LEVEL, destination: process.stderr as never }) : silentLogger());

export const TEST_TOKEN = '123456:TEST-token-abcdefghijklmnopqrstuvw';

export interface TelegramWorld {
  db: TestDatabase;
  api: FakeBotApi;
  apiRoot: string;
  queue: BroadcastQueue;
  /** Another daemon on the same database and bot. */
  addDaemon(options?: Partial<BroadcastQueueOptions>): Promise<BroadcastQueue>;
}

/** A database, the Bot API stand-in and a started daemon wired to both; everything is torn down after. */
export async function withTelegram(
  options: { api?: FakeBotApiOptions; queue?: Partial<BroadcastQueueOptions> },
  body: (world: TelegramWorld) => Promise<void>,
): Promise<void> {
  const db = await createTestDatabase();
  const api = new FakeBotApi({ token: TEST_TOKEN, ...options.api });
  const apiRoot = await api.start();
  const daemons: BroadcastQueue[] = [];
  const make = (extra: Partial<BroadcastQueueOptions> = {}) =>
    new BroadcastQueue({ connectionString: db.url, telegram: { token: TEST_TOKEN, apiRoot }, rateLimit: 1000, sweepMs: 3_600_000, concurrency: 4, log: testLog(), ...options.queue, ...extra });
  try {
    const queue = make();
    daemons.push(queue);
    await queue.start();
    await body({
      db,
      api,
      apiRoot,
      queue,
      async addDaemon(extra) {
        const other = make(extra);
        daemons.push(other);
        await other.start();
        return other;
      },
    });
  } finally {
    await Promise.all(daemons.map((d) => d.stop()));
    await api.stop();
    await db.drop();
  }
}

/** Inserts a job from SQL, as a user would, and returns its id. */
export async function insertJob(db: TestDatabase, jobType: string, payload: unknown): Promise<number> {
  const { rows } = await db.pool.query('INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ($1, $2) RETURNING job_id', [jobType, JSON.stringify(payload)]);
  return rows[0].job_id;
}

export async function jobRow(db: TestDatabase, jobId: number) {
  return (await db.pool.query('SELECT * FROM broadcast_queue_jobs WHERE job_id = $1', [jobId])).rows[0];
}

export const range = (from: number, count: number) => Array.from({ length: count }, (_v, i) => from + i);
