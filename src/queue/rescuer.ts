import os from 'node:os';
import { EventEmitter } from 'node:events';
import type { Pool } from '../db/pool.js';
import { errorMessage, type Logger } from '../log.js';
import { NEXT_TICK_DELAY_SQL } from '../schedules/schedules-store.js';
import { LOCK_NAMESPACE, type LivenessLock } from './liveness.js';

export interface DaemonIdentity {
  daemonId: string;
  queues: string[];
  jobTypes: string[];
  concurrency: number;
  version: string;
}

// The whole periodic cost of an idle daemon, in one statement:
// 1. register or refresh this daemon (xmax = 0 tells an insert from an update: an insert when we
//    were registered means another daemon declared us dead and handed our jobs back);
// 2. when allowed, delete daemons whose liveness lock is gone (or that stopped sweeping for the
//    hung window) and hand their jobs back — pending and due now (the update trigger wakes every
//    daemon; a hung daemon's, one sweep later: see below), or failed if that was their last
//    attempt, so a job that kills its daemon every time
//    cannot loop forever; the attempt stays counted. A broadcast is the exception: it resumes
//    from its ledger, so a rescue continues it rather than retrying it, and costs no attempt
//    (three kills would otherwise fail a half-sent broadcast: the chaos suite found it);
// 3. report whether a job this daemon can run is due: the fallback for a lost notification;
// 4. report what the other periodic readers would otherwise ask for themselves, so that an idle
//    daemon sends this one statement a sweep (issue 17: at most 3 statements a minute, with
//    pg-listen's connection check): whether the finished-job counts have rows to fold (the
//    roll-up then runs as a statement of its own, only when there is something to fold), and
//    when the earliest schedule tick is due (the ticker's re-read, src/schedules/ticker.ts).
// A daemon judged hung still holds its lock: it is alive, only stalled or starved (the chaos suite's
// stressed runs declared live daemons hung). Its outcome for a rescued job still lands while no
// other daemon has claimed the job (queue/recorder.ts), and that outcome is the truth, where a
// second attempt of a send could only say "outcome unknown"; so its jobs come due one sweep later,
// which gives a stalled daemon that time to report. A daemon whose lock is gone died: no wait.
const SWEEP_SQL = `
  WITH me AS (
    INSERT INTO broadcast_queue_daemons (daemon_id, hostname, pid, queues, job_types, concurrency, version, lock_key)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (daemon_id) DO UPDATE
       SET last_heartbeat_at = now(), queues = EXCLUDED.queues, job_types = EXCLUDED.job_types
    RETURNING (xmax = 0) AS inserted
  ), held AS (
    SELECT objid::bigint AS lock_key FROM pg_locks
     WHERE locktype = 'advisory' AND classid = $11 AND objsubid = 2 AND granted
       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  ), dead AS (
    DELETE FROM broadcast_queue_daemons d
     WHERE $9::boolean AND d.daemon_id <> $1
       AND (d.lock_key NOT IN (SELECT lock_key FROM held)
            OR d.last_heartbeat_at < now() - $10::float8 * interval '1 millisecond')
    RETURNING daemon_id, d.lock_key IN (SELECT lock_key FROM held) AS holds_lock
  ), rescued AS (
    UPDATE broadcast_queue_jobs j
       SET status      = CASE WHEN j.attempts >= j.max_attempts AND j.job_type <> 'broadcast' THEN 'failed' ELSE 'pending' END,
           finished_at = CASE WHEN j.attempts >= j.max_attempts AND j.job_type <> 'broadcast' THEN now() ELSE NULL END,
           attempts    = CASE WHEN j.job_type = 'broadcast' THEN j.attempts - 1 ELSE j.attempts END,
           run_at      = CASE WHEN j.locked_by IN (SELECT daemon_id FROM dead WHERE holds_lock)
                              THEN now() + $12::float8 * interval '1 millisecond' ELSE now() END,
           locked_by   = NULL,
           last_error  = 'daemon ' || j.locked_by || ' died during attempt ' || j.attempts,
           last_error_reason = 'rescued',
           errors      = j.errors || jsonb_build_array(jsonb_build_object(
                           'at', now(), 'attempt', j.attempts, 'rescued', true, 'daemon', j.locked_by,
                           'error', 'daemon ' || j.locked_by || ' died', 'reason', 'rescued')),
           updated_at  = now()
     WHERE $9::boolean AND j.status = 'processing' AND j.locked_by <> $1
       AND (j.locked_by IN (SELECT daemon_id FROM dead)
            OR NOT EXISTS (SELECT 1 FROM broadcast_queue_daemons d WHERE d.daemon_id = j.locked_by))
    RETURNING j.job_id, j.status, j.errors -> -1 ->> 'daemon' AS locked_by
  )
  SELECT (SELECT inserted FROM me) AS inserted,
         (SELECT COALESCE(json_agg(json_build_object('job_id', job_id, 'status', status, 'was_locked_by', locked_by)), '[]') FROM rescued) AS rescued,
         EXISTS (SELECT 1 FROM broadcast_queue_jobs
                  WHERE status = 'pending' AND run_at <= now() AND queue = ANY($4) AND job_type = ANY($5)) AS due,
         -- A key with two rows (or a minute past the 25-hour window) is what a roll-up folds; after
         -- one, every key has a single row: a few for the counts, one per minute, job type and status
         -- of the last 25 hours for the finishes.
         EXISTS (SELECT 1 FROM broadcast_queue_job_counts GROUP BY queue, job_type, status, retried HAVING count(*) > 1)
           OR EXISTS (SELECT 1 FROM broadcast_queue_job_finishes GROUP BY minute, job_type, status
                       HAVING count(*) > 1 OR minute <= now() - interval '25 hours') AS fold_counts,
         ${NEXT_TICK_DELAY_SQL} AS next_tick_ms`;

export interface SweepTiming {
  /** How often the sweep runs. */
  sweepMs: number;
  /** A daemon that holds its lock but has not swept for this long is hung, and treated as dead. */
  hungAfterMs: number;
}

/**
 * The periodic sweep: keeps this daemon registered, rescues the jobs of dead daemons, and wakes
 * the scheduler if a due job was missed. Emits 'due', 'rescued' (rows), 'lost-lease',
 * 'next-tick' (milliseconds until the earliest schedule tick, or null: none) and 'swept'.
 */
export class Rescuer extends EventEmitter {
  private timer: NodeJS.Timeout | undefined;
  private registered = false;
  private running: Promise<void> | null = null;

  constructor(
    private readonly pool: Pool,
    private readonly identity: DaemonIdentity,
    private readonly liveness: LivenessLock,
    private readonly timing: SweepTiming,
    private readonly log: Logger,
  ) {
    super();
  }

  async start(): Promise<void> {
    await this.sweep();
    this.timer = setInterval(() => void this.tick(), this.timing.sweepMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
    await this.pool.query('DELETE FROM broadcast_queue_daemons WHERE daemon_id = $1', [this.identity.daemonId]).catch(() => undefined);
  }

  setJobTypes(jobTypes: string[]): void {
    this.identity.jobTypes = jobTypes;
  }

  /** One sweep now (tests, bqctl); normally this runs on the timer. */
  tick(): Promise<void> {
    this.running ??= this.sweep()
      .catch((error) => this.log.warn({ err: errorMessage(error) }, 'sweep failed'))
      .finally(() => (this.running = null));
    return this.running;
  }

  /**
   * May this daemon judge others dead? Only while its own lock is held, and — after it lost the
   * lock (a database restart drops everyone's) — only once it has held it again long enough for
   * the others to have reconnected too.
   */
  private mayRescue(): boolean {
    if (!this.liveness.held || this.liveness.heldSince === null) return false;
    if (!this.liveness.reacquired) return true;
    return Date.now() - this.liveness.heldSince >= Math.min(15_000, 2 * this.timing.sweepMs + 1_000);
  }

  private async sweep(): Promise<void> {
    const { daemonId, queues, jobTypes, concurrency, version } = this.identity;
    const { rows } = await this.pool.query(SWEEP_SQL, [
      daemonId, os.hostname(), process.pid, queues, jobTypes, concurrency, version, this.liveness.lockKey,
      this.mayRescue(), this.timing.hungAfterMs, LOCK_NAMESPACE, this.timing.sweepMs,
    ]);
    const { inserted, rescued, due, fold_counts: foldCounts, next_tick_ms: nextTickMs } = rows[0];
    if (inserted && this.registered) {
      this.log.error('this daemon was declared dead and its jobs were handed back; aborting them');
      this.emit('lost-lease');
    }
    this.registered = true;
    if (rescued.length) {
      this.log.warn({ jobs: rescued.map((r: { job_id: number }) => r.job_id), daemons: [...new Set(rescued.map((r: { was_locked_by: string }) => r.was_locked_by))] }, 'rescued jobs of dead daemons');
      this.emit('rescued', rescued);
    }
    if (due) this.emit('due');
    this.emit('next-tick', nextTickMs);
    // Folds the finished-job counts appended since the last roll-up (sql/0007_job_counts.sql), so
    // that status reads sum a few rows per key. Harmless to skip: the reads are right either way.
    if (foldCounts) await this.pool.query('SELECT broadcast_queue_roll_up_counts()').catch((error) => this.log.warn({ err: errorMessage(error) }, 'rolling up job counts failed'));
    this.emit('swept');
  }
}
