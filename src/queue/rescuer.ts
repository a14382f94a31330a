import os from 'node:os';
import { EventEmitter } from 'node:events';
import type { Pool } from '../db/pool.js';
import { errorMessage, type Logger } from '../log.js';

export interface DaemonIdentity {
  daemonId: string;
  queues: string[];
  jobTypes: string[];
  concurrency: number;
  version: string;
}

// Registers or refreshes this daemon. xmax = 0 tells an insert from an update: an insert when we
// expected an update means another daemon declared us dead and handed our jobs back.
const HEARTBEAT_SQL = `
  INSERT INTO broadcast_queue_daemons (daemon_id, hostname, pid, queues, job_types, concurrency, version)
  VALUES ($1, $2, $3, $4, $5, $6, $7)
  ON CONFLICT (daemon_id) DO UPDATE
     SET last_heartbeat_at = now(), queues = EXCLUDED.queues, job_types = EXCLUDED.job_types
  RETURNING (xmax = 0) AS inserted`;

// Deletes daemons silent for longer than the rescue window and hands their jobs back: pending and
// due now (the update trigger wakes every daemon), or failed if that was the last attempt, so a
// job that kills its daemon every time cannot loop forever. The attempt stays counted.
const RESCUE_SQL = `
  WITH dead AS (
    DELETE FROM broadcast_queue_daemons
     WHERE last_heartbeat_at < now() - $1::float8 * interval '1 millisecond'
    RETURNING daemon_id
  )
  UPDATE broadcast_queue_jobs j
     SET status      = CASE WHEN j.attempts >= j.max_attempts THEN 'failed' ELSE 'pending' END,
         finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() ELSE NULL END,
         run_at      = now(),
         locked_by   = NULL,
         last_error  = 'daemon ' || j.locked_by || ' stopped heartbeating during attempt ' || j.attempts,
         errors      = j.errors || jsonb_build_array(jsonb_build_object(
                         'at', now(), 'attempt', j.attempts, 'rescued', true,
                         'error', 'daemon ' || j.locked_by || ' stopped heartbeating')),
         updated_at  = now()
   WHERE j.status = 'processing'
     AND (j.locked_by IN (SELECT daemon_id FROM dead)
          OR NOT EXISTS (SELECT 1 FROM broadcast_queue_daemons d WHERE d.daemon_id = j.locked_by))
  RETURNING j.job_id, j.status, j.locked_by AS was_locked_by`;

/**
 * Heartbeats for this daemon and rescues the jobs of daemons that stopped heartbeating.
 * Emits 'rescued' ([{job_id, status}]) and 'lost-lease' (we had been declared dead).
 */
export class Rescuer extends EventEmitter {
  private timer: NodeJS.Timeout | undefined;
  private registered = false;
  /** When the current unbroken run of successful heartbeats began. */
  private healthySince: number | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly pool: Pool,
    private readonly identity: DaemonIdentity,
    private readonly heartbeatMs: number,
    private readonly rescueAfterMs: number,
    private readonly log: Logger,
  ) {
    super();
  }

  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => void this.tick(), this.heartbeatMs);
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

  /** One heartbeat and, when this daemon has been healthy long enough, one rescue pass. */
  tick(): Promise<void> {
    this.running ??= this.beatAndRescue().finally(() => (this.running = null));
    return this.running;
  }

  private async beatAndRescue(): Promise<void> {
    try {
      await this.beat();
      // After an outage of our own, every other daemon's heartbeat looks stale too: wait one
      // full window of our own health before judging anybody dead.
      if (this.healthySince !== null && Date.now() - this.healthySince >= this.rescueAfterMs) await this.rescue();
    } catch (error) {
      this.healthySince = null;
      this.log.warn({ err: errorMessage(error) }, 'heartbeat failed');
    }
  }

  private async beat(): Promise<void> {
    const { daemonId, queues, jobTypes, concurrency, version } = this.identity;
    const { rows } = await this.pool.query(HEARTBEAT_SQL, [daemonId, os.hostname(), process.pid, queues, jobTypes, concurrency, version]);
    if (rows[0].inserted && this.registered) {
      this.log.error('this daemon was declared dead and its jobs were handed back; aborting them');
      this.emit('lost-lease');
    }
    // A daemon that just started may rescue at once; one recovering from its own outage waits.
    this.healthySince ??= this.registered ? Date.now() : Date.now() - this.rescueAfterMs;
    this.registered = true;
  }

  async rescue(): Promise<{ job_id: number; status: string }[]> {
    const { rows } = await this.pool.query(RESCUE_SQL, [this.rescueAfterMs]);
    if (rows.length) {
      this.log.warn({ jobs: rows.map((r) => r.job_id), daemons: [...new Set(rows.map((r) => r.was_locked_by))] }, 'rescued jobs of dead daemons');
      this.emit('rescued', rows);
    }
    return rows;
  }
}
