// Every statement on broadcast_queue_schedules (sql/0011_schedules.sql), with its row type and
// mapper. A tick is taken by one conditional UPDATE of next_run_at that also inserts its jobs
// (takeDueTicks): of any number of daemons reading the same due row, one UPDATE matches and the
// others, re-checking the row after its lock, find next_run_at moved and change nothing.
import type { Pool } from '../db/pool.js';
import { checkCron, dueTicks, nextTick } from './cron.js';

export interface ScheduleRow {
  name: string;
  cron: string;
  timeZone: string;
  queue: string;
  jobType: string;
  payload: Record<string, unknown>;
  priority: number;
  maxAttempts: number;
  enabled: boolean;
  backfillSeconds: number;
  nextRunAt: Date | null;
  lastRunAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

export function scheduleRow(r: any): ScheduleRow {
  return {
    name: r.name, cron: r.cron, timeZone: r.time_zone, queue: r.queue, jobType: r.job_type, payload: r.payload, priority: r.priority,
    maxAttempts: r.max_attempts, enabled: r.enabled, backfillSeconds: r.backfill_seconds, nextRunAt: r.next_run_at, lastRunAt: r.last_run_at,
    createdAt: r.created_at, updatedAt: r.updated_at,
  };
}

/** A schedule as it leaves the project: the table's column names (DESIGN.md, wire format). */
export function scheduleWire(s: ScheduleRow): Record<string, unknown> {
  return {
    name: s.name, cron: s.cron, time_zone: s.timeZone, queue: s.queue, job_type: s.jobType, payload: s.payload, priority: s.priority,
    max_attempts: s.maxAttempts, enabled: s.enabled, backfill_seconds: s.backfillSeconds, next_run_at: s.nextRunAt, last_run_at: s.lastRunAt,
    created_at: s.createdAt, updated_at: s.updatedAt,
  };
}

export interface ScheduleSpec {
  name: string;
  cron: string;
  /** IANA time zone the cron is read in. Defaults to UTC. */
  timeZone?: string;
  /** Defaults to 'broadcasts'. */
  queue?: string;
  /** Defaults to 'broadcast' (the payload is then a broadcast template). */
  jobType?: string;
  payload?: Record<string, unknown>;
  priority?: number;
  maxAttempts?: number;
  /** Missed ticks at most this old are enqueued late; older ones are skipped. Defaults to 0. */
  backfillSeconds?: number;
  /** Defaults to true. */
  enabled?: boolean;
}

/** Adds a schedule; refuses a bad cron or time zone, and a name already taken, in a sentence. */
export async function addSchedule(pool: Pool, spec: ScheduleSpec): Promise<ScheduleRow> {
  const timeZone = spec.timeZone ?? 'UTC';
  checkCron(spec.cron, timeZone);
  const { rows } = await pool.query(
    `INSERT INTO broadcast_queue_schedules (name, cron, time_zone, queue, job_type, payload, priority, max_attempts, backfill_seconds, enabled, next_run_at)
     VALUES ($1, $2, $3, COALESCE($4, 'broadcasts'), COALESCE($5, 'broadcast'), COALESCE($6::jsonb, '{}'), COALESCE($7, 0), COALESCE($8, 3), COALESCE($9, 0), COALESCE($10, true), $11)
     ON CONFLICT (name) DO NOTHING RETURNING *`,
    [spec.name, spec.cron, timeZone, spec.queue ?? null, spec.jobType ?? null, spec.payload ? JSON.stringify(spec.payload) : null, spec.priority ?? null,
      spec.maxAttempts ?? null, spec.backfillSeconds ?? null, spec.enabled ?? null, nextTick(spec.cron, timeZone, new Date())],
  );
  if (!rows[0]) throw new Error(`schedule ${JSON.stringify(spec.name)} exists already; remove it first`);
  return scheduleRow(rows[0]);
}

export async function listSchedules(pool: Pool): Promise<ScheduleRow[]> {
  const { rows } = await pool.query('SELECT * FROM broadcast_queue_schedules ORDER BY name');
  return rows.map(scheduleRow);
}

export async function getSchedule(pool: Pool, name: string): Promise<ScheduleRow | null> {
  const { rows } = await pool.query('SELECT * FROM broadcast_queue_schedules WHERE name = $1', [name]);
  return rows[0] ? scheduleRow(rows[0]) : null;
}

/** True if it existed. Jobs it enqueued already stay. */
export async function removeSchedule(pool: Pool, name: string): Promise<boolean> {
  const { rowCount } = await pool.query('DELETE FROM broadcast_queue_schedules WHERE name = $1', [name]);
  return (rowCount ?? 0) > 0;
}

/**
 * Pauses or resumes a schedule; null if there is none by that name. A resumed schedule starts
 * from its next tick after now: the ticks of the pause are not back-filled.
 */
export async function setScheduleEnabled(pool: Pool, name: string, enabled: boolean): Promise<ScheduleRow | null> {
  const { rows } = await pool.query(
    `UPDATE broadcast_queue_schedules
        SET enabled = $2, updated_at = now(), next_run_at = CASE WHEN $2 AND NOT enabled THEN NULL ELSE next_run_at END
      WHERE name = $1 RETURNING *`,
    [name, enabled],
  );
  return rows[0] ? scheduleRow(rows[0]) : null;
}

/** Enqueues the schedule's job now, outside its ticks (next_run_at is left alone); null if there is no such schedule. */
export async function runScheduleNow(pool: Pool, name: string): Promise<{ jobId: number } | null> {
  const { rows } = await pool.query(
    `INSERT INTO broadcast_queue_jobs (queue, job_type, payload, priority, max_attempts)
     SELECT queue, job_type, payload, priority, max_attempts FROM broadcast_queue_schedules WHERE name = $1
     RETURNING job_id`,
    [name],
  );
  return rows[0] ? { jobId: rows[0].job_id } : null;
}

// One statement: the tick is taken and its jobs inserted together, or neither. The job_key names
// the schedule and the tick, a second guard should a row ever be taken twice; run_at is the tick,
// so a handler sees which tick it serves (job.runAt), late or not.
const TAKE_SQL = `
  WITH taken AS (
    UPDATE broadcast_queue_schedules
       SET next_run_at = $3, enabled = $4, last_run_at = COALESCE($6, last_run_at), updated_at = now()
     WHERE name = $1 AND next_run_at = $2 AND enabled
    RETURNING *
  ), enqueued AS (
    INSERT INTO broadcast_queue_jobs (queue, job_type, payload, priority, max_attempts, run_at, job_key)
    SELECT t.queue, t.job_type, t.payload, t.priority, t.max_attempts, tick,
           'schedule:' || t.name || ':' || to_char(tick AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
      FROM taken t, unnest($5::timestamptz[]) AS tick
    ON CONFLICT (job_key) WHERE job_key IS NOT NULL AND status IN ('pending', 'processing') DO NOTHING
    RETURNING job_id
  )
  SELECT (SELECT count(*)::int FROM taken) AS taken, (SELECT count(*)::int FROM enqueued) AS enqueued`;

export interface TickReport {
  name: string;
  /** The ticks this call enqueued a job for. */
  ticks: Date[];
  /** Due ticks older than the schedule's window were skipped. */
  missed: boolean;
}

/**
 * Takes every due tick of every enabled schedule, enqueuing one job per tick. `now` is the
 * database's clock unless given (tests). Safe to run from any number of daemons at once.
 */
export async function takeDueTicks(pool: Pool, now?: Date): Promise<TickReport[]> {
  const { rows } = await pool.query(
    `SELECT name, cron, time_zone, next_run_at, backfill_seconds, COALESCE($1::timestamptz, now()) AS now
       FROM broadcast_queue_schedules WHERE enabled AND (next_run_at IS NULL OR next_run_at <= COALESCE($1::timestamptz, now()))`,
    [now ?? null],
  );
  const reports: TickReport[] = [];
  for (const r of rows) {
    const at: Date = r.now;
    if (r.next_run_at === null) {
      // Inserted from SQL, or just resumed: its first tick is the next one after now.
      await pool.query(
        'UPDATE broadcast_queue_schedules SET next_run_at = $2, updated_at = now() WHERE name = $1 AND next_run_at IS NULL AND enabled',
        [r.name, nextTick(r.cron, r.time_zone, at)],
      );
      continue;
    }
    const due = dueTicks(r.cron, r.time_zone, r.next_run_at, at, r.backfill_seconds * 1000);
    const last = due.run.at(-1) ?? null;
    // A cron with no tick left (a date in the past) is disabled rather than re-read forever.
    const { rows: [result] } = await pool.query(TAKE_SQL, [r.name, r.next_run_at, due.next ?? r.next_run_at, due.next !== null, due.run, last]);
    if (result.taken) reports.push({ name: r.name, ticks: due.run, missed: due.missed });
  }
  return reports;
}

/**
 * Milliseconds until the earliest tick of an enabled schedule (0 or less: due; a NULL next_run_at
 * is due, to be filled in), or NULL when none is enabled: a scalar subquery, which the sweep
 * (queue/rescuer.ts) also reads so that the ticker needs no re-read of its own.
 */
export const NEXT_TICK_DELAY_SQL = `
  (SELECT CASE WHEN bool_or(next_run_at IS NULL) THEN 0 ELSE extract(epoch FROM min(next_run_at) - now()) * 1000 END::float8
     FROM broadcast_queue_schedules WHERE enabled)`;

/** Milliseconds until the earliest tick of an enabled schedule (0 or less: due), or null when none is enabled. */
export async function nextTickDelayMs(pool: Pool): Promise<number | null> {
  const { rows } = await pool.query(`SELECT ${NEXT_TICK_DELAY_SQL} AS delay_ms`);
  return rows[0].delay_ms;
}
