// How each queue is fed, from the bench process, each the way its users enqueue: ours with a plain
// SQL INSERT, graphile-worker with its add_job / add_jobs SQL functions, pg-boss with send() and
// insert() (its NOTIFY is part of the statement those build). Also the migrated templates that
// every scenario database is cloned from.
import pg from 'pg';
import { Logger as GraphileLogger, runMigrations } from 'graphile-worker';
import { PgBoss } from 'pg-boss';
import { createPool } from '../src/db/pool.js';
import { migrate } from '../src/db/migrate.js';
import { silentLogger } from '../src/log.js';
import { PGBOSS_QUEUE, settingsOf, type Kind, type QueueConfig } from './peers.js';
import type { Server } from './db.js';
import { PRODUCER_APPLICATION_NAME } from './cpu.js';

export interface Payload {
  run: number;
  seq: number;
}

export interface Producer {
  /** One job, one statement. */
  single(payload: Payload): Promise<unknown>;
  /** Many jobs, one statement. */
  bulk(payloads: Payload[]): Promise<unknown>;
  /** Jobs not yet completed (graphile-worker deletes completed jobs; the others mark them). */
  remaining(): Promise<number>;
  /**
   * Empties the jobs table with TRUNCATE, which also resets its statistics to "never vacuumed"
   * (pg_class.reltuples = -1: the planner then measures the table's size when it plans), so that
   * every run starts from the state of the first. See JOB_TABLES.
   */
  clear(): Promise<void>;
  /** ANALYZE on the jobs table: what autovacuum does after a burst drains. */
  analyze(): Promise<void>;
  close(): Promise<void>;
}

export async function openProducer(config: QueueConfig, url: string): Promise<Producer> {
  // A pool of one rather than a client: a connection killed from outside (other people's tests
  // share this machine) is replaced instead of taking the bench down.
  const client = new pg.Pool({ connectionString: url, application_name: PRODUCER_APPLICATION_NAME, max: 1 });
  client.on('error', () => undefined);
  await client.query('SELECT 1');
  const count = async (sql: string, params: unknown[] = []) => Number((await client.query(sql, params)).rows[0].n);
  const statements = (...sqls: [string, unknown[]?][]) => async () => {
    for (const [sql, params] of sqls) await client.query(sql, params);
  };
  if (config.kind === 'ours') {
    return {
      single: (p) => client.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ('noop', $1)`, [JSON.stringify(p)]),
      bulk: (ps) => client.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) SELECT 'noop', p FROM jsonb_array_elements($1::jsonb) p`, [JSON.stringify(ps)]),
      remaining: () => count(`SELECT count(*) AS n FROM broadcast_queue_jobs WHERE status <> 'completed'`),
      clear: statements(['TRUNCATE broadcast_queue_jobs']),
      analyze: statements(['ANALYZE broadcast_queue_jobs']),
      close: () => client.end(),
    };
  }
  if (config.kind === 'graphile') {
    return {
      single: (p) => client.query(`SELECT graphile_worker.add_job('noop', $1::json)`, [JSON.stringify(p)]),
      bulk: (ps) => client.query(
        `SELECT count(*) FROM graphile_worker.add_jobs(array(SELECT json_populate_recordset(null::graphile_worker.job_spec, $1::json)))`,
        [JSON.stringify(ps.map((payload) => ({ identifier: 'noop', payload })))],
      ),
      remaining: () => count('SELECT count(*) AS n FROM graphile_worker._private_jobs'),
      clear: statements(['TRUNCATE graphile_worker._private_jobs']),
      analyze: statements(['ANALYZE graphile_worker._private_jobs']),
      close: () => client.end(),
    };
  }
  const queue = (settingsOf(config.id) as { queue: { name: string } }).queue.name;
  const boss = new PgBoss({ connectionString: url, application_name: PRODUCER_APPLICATION_NAME, max: 2, supervise: false, schedule: false, migrate: false, registerInstance: false });
  boss.on('error', (error: Error) => console.error(`bench: pg-boss producer error: ${error.message}`));
  await boss.start();
  return {
    single: (p) => boss.send(queue, p),
    bulk: (ps) => boss.insert(queue, ps.map((data) => ({ data }))),
    remaining: () => count(`SELECT count(*) AS n FROM pgboss.job WHERE name = $1 AND state <> 'completed'`, [queue]),
    clear: statements(['TRUNCATE pgboss.job_common']),
    analyze: statements(['ANALYZE pgboss.job_common']),
    close: async () => {
      await boss.stop({ graceful: false, close: true });
      await client.end();
    },
  };
}

/**
 * The job tables, whose autovacuum the bench turns off. Measured here: once ANALYZE or VACUUM has
 * seen a queue's table empty (autovacuum does, after a burst drains), pg_class says 0 rows and the
 * next 20k-job burst drains 30–80× slower in all four configurations tried (ours 6,600 → 211
 * jobs/s, graphile-worker 18,800 → 400, pg-boss 15,300 → 599): every claim is planned for an empty
 * table. Autovacuum would do that to some runs and not others; with it off and TRUNCATE between
 * runs, every run of every queue starts from the state of the first.
 */
export const JOB_TABLES: Record<Kind, string[]> = {
  ours: ['broadcast_queue_jobs'],
  graphile: ['graphile_worker._private_jobs'],
  pgboss: ['pgboss.job_common'],
};

async function autovacuumOff(url: string, tables: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  for (const table of tables) await client.query(`ALTER TABLE ${table} SET (autovacuum_enabled = false)`);
  await client.end();
}

/** Migrated template databases, one per kind; scenario databases are cloned from them. */
export async function prepareTemplates(server: Server, { autovacuum }: { autovacuum: boolean }): Promise<Record<Kind, string>> {
  const withoutAutovacuum = autovacuum ? async () => undefined : autovacuumOff;
  const ours = await server.createDatabase('tpl_ours');
  const pool = createPool({ connectionString: server.urlFor(ours), max: 2, applicationName: 'bench', log: silentLogger() });
  await migrate(pool, silentLogger());
  await pool.end();
  await withoutAutovacuum(server.urlFor(ours), JOB_TABLES.ours);

  const graphile = await server.createDatabase('tpl_graphile');
  await runMigrations({ connectionString: server.urlFor(graphile), logger: new GraphileLogger(() => () => undefined) });
  await withoutAutovacuum(server.urlFor(graphile), JOB_TABLES.graphile);

  const pgboss = await server.createDatabase('tpl_pgboss');
  const boss = new PgBoss({ connectionString: server.urlFor(pgboss), supervise: false, schedule: false, registerInstance: false });
  boss.on('error', () => undefined);
  await boss.start();
  await boss.createQueue(PGBOSS_QUEUE.notify, { notify: true });
  await boss.createQueue(PGBOSS_QUEUE.plain);
  await boss.stop({ graceful: false, close: true });
  await withoutAutovacuum(server.urlFor(pgboss), JOB_TABLES.pgboss);
  return { ours, graphile, pgboss };
}
