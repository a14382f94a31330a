import type { Pool } from '../db/pool.js';
import { boundedRead } from '../db/bounded-read.js';
import { DAEMON_HOLDS_LOCK } from './daemon-lock.js';
import { JOB_COUNTS_SQL } from './job-counts.js';

export interface QueueCounts {
  /** Jobs whose dependencies have not all finished (QueueStatus.waitingOn says on which). */
  waiting: number;
  pending: number;
  processing: number;
  completed: number;
  failed: number;
  cancelled: number;
  /** Age of the oldest due pending job, in seconds; null when none is due. */
  oldestDueSeconds: number | null;
}

export interface LiveDaemon {
  daemonId: string;
  hostname: string;
  pid: number;
  queues: string[];
  jobTypes: string[];
  concurrency: number;
  version: string;
  startedAt: Date;
  lastHeartbeatAt: Date;
  running: number;
}

export interface UnrunnableJobs {
  queue: string;
  jobType: string;
  count: number;
}

/** A job held back by its dependencies. */
export interface WaitingJob {
  jobId: number;
  queue: string;
  jobType: string;
  /** The jobs it names in depends_on that have not finished yet. */
  openDependencies: number[];
}

export interface QueueStatus {
  queues: Record<string, QueueCounts>;
  daemons: LiveDaemon[];
  /** Pending jobs that no live daemon works: a queue or job type nobody is configured for. */
  unrunnable: UnrunnableJobs[];
  /** The oldest WAITING_SHOWN waiting jobs and what each waits for (queues[q].waiting counts them all). */
  waitingOn: WaitingJob[];
}

/** Waiting jobs listed by readQueueStatus; the counts cover the rest. */
export const WAITING_SHOWN = 20;

const WAITING_SQL = `
  SELECT job_id, queue, job_type, broadcast_queue_open_dependencies(depends_on) AS open_dependencies
    FROM broadcast_queue_jobs WHERE status = 'waiting' ORDER BY job_id LIMIT ${WAITING_SHOWN}`;


const DAEMONS_SQL = `
  SELECT d.*, (SELECT count(*)::int FROM broadcast_queue_jobs j WHERE j.status = 'processing' AND j.locked_by = d.daemon_id) AS running
    FROM broadcast_queue_daemons d
   WHERE ${DAEMON_HOLDS_LOCK} AND d.last_heartbeat_at > now() - $1::float8 * interval '1 millisecond'
   ORDER BY d.started_at`;

const UNRUNNABLE_SQL = `
  SELECT j.queue, j.job_type, count(*)::int AS n
    FROM broadcast_queue_jobs j
   WHERE j.status = 'pending'
     AND NOT EXISTS (
       SELECT 1 FROM broadcast_queue_daemons d
        WHERE ${DAEMON_HOLDS_LOCK} AND d.last_heartbeat_at > now() - $1::float8 * interval '1 millisecond'
          AND j.queue = ANY(d.queues) AND j.job_type = ANY(d.job_types))
   GROUP BY j.queue, j.job_type
   ORDER BY n DESC`;

/**
 * Reads the state of every queue, as bqctl status, the admin API and getStatus() show it. A daemon
 * is live while it holds its liveness lock and has swept within `hungAfterMs`.
 */
export async function readQueueStatus(pool: Pool, hungAfterMs: number): Promise<QueueStatus> {
  // One connection runs them in turn: the timeout is set on its transaction.
  const [counts, daemons, unrunnable, waiting] = await boundedRead(pool, async (client) => [
    await client.query(JOB_COUNTS_SQL),
    await client.query(DAEMONS_SQL, [hungAfterMs]),
    await client.query(UNRUNNABLE_SQL, [hungAfterMs]),
    await client.query(WAITING_SQL),
  ]);
  const queues: Record<string, QueueCounts> = {};
  for (const row of counts.rows) {
    const q = (queues[row.queue] ??= { waiting: 0, pending: 0, processing: 0, completed: 0, failed: 0, cancelled: 0, oldestDueSeconds: null });
    q[row.status as 'pending'] = row.n;
    if (row.oldest_due !== null) q.oldestDueSeconds = Math.max(0, row.oldest_due);
  }
  return {
    queues,
    daemons: daemons.rows.map((d) => ({
      daemonId: d.daemon_id,
      hostname: d.hostname,
      pid: d.pid,
      queues: d.queues,
      jobTypes: d.job_types,
      concurrency: d.concurrency,
      version: d.version,
      startedAt: d.started_at,
      lastHeartbeatAt: d.last_heartbeat_at,
      running: d.running,
    })),
    unrunnable: unrunnable.rows.map((r) => ({ queue: r.queue, jobType: r.job_type, count: r.n })),
    waitingOn: waiting.rows.map((r) => ({ jobId: r.job_id, queue: r.queue, jobType: r.job_type, openDependencies: r.open_dependencies })),
  };
}

// Daemons still registered but not live (readQueueStatus decides what live means), whose rows
// the rescuer (run by any live daemon) has not deleted yet: their 'processing' jobs are stuck
// until a live daemon rescues them.
const STALE_SQL = `
  SELECT d.*, extract(epoch FROM now() - d.last_heartbeat_at)::float8 AS silent_seconds,
         (SELECT count(*)::int FROM broadcast_queue_jobs j WHERE j.status = 'processing' AND j.locked_by = d.daemon_id) AS running
    FROM broadcast_queue_daemons d
   WHERE NOT (d.daemon_id = ANY($1::text[]))
   ORDER BY d.last_heartbeat_at`;

/** Registered daemons other than `liveIds`, longest silent first. */
export async function readStaleDaemons(pool: Pool, liveIds: readonly string[]): Promise<(LiveDaemon & { silentSeconds: number })[]> {
  const { rows } = await pool.query(STALE_SQL, [liveIds]);
  return rows.map((d) => ({
    daemonId: d.daemon_id, hostname: d.hostname, pid: d.pid, queues: d.queues, jobTypes: d.job_types, concurrency: d.concurrency,
    version: d.version, startedAt: d.started_at, lastHeartbeatAt: d.last_heartbeat_at, silentSeconds: d.silent_seconds, running: d.running,
  }));
}
