import { randomBytes } from 'node:crypto';
import type { Pool } from '../db/pool.js';
import type { Job } from './claimer.js';

export const ASSIGNED_CHANNEL = 'broadcast_queue_assigned';

/** One job as the insert trigger puts it in the notification (sql/0025_idle_slots.sql). */
type AssignedRow = [number, string, string, Record<string, unknown>, number, number, number, number, string | null, number];

/**
 * The jobs of an assignment notification for this daemon: 'other' if it is for another daemon,
 * 'forged' if it names this one without its offer's token or is not what the trigger sends (NOTIFY
 * needs no privilege: anyone who can connect can send one).
 */
export function assignedJobs(payload: string, daemonId: string, token: string): Job[] | 'other' | 'forged' {
  let message: { daemon?: unknown; token?: unknown; claimedAt?: unknown; jobs?: unknown };
  try {
    message = JSON.parse(payload);
  } catch {
    return 'forged';
  }
  if (message?.daemon !== daemonId) return 'other';
  if (message.token !== token || typeof message.claimedAt !== 'string' || !Array.isArray(message.jobs)) return 'forged';
  const claimedAt = message.claimedAt;
  return (message.jobs as AssignedRow[]).map(([jobId, queue, jobType, payload, attempt, maxAttempts, runAtMs, priority, jobKey, createdAtMs]) => ({
    jobId, queue, jobType, payload, attempt, maxAttempts, runAt: new Date(runAtMs), priority, jobKey,
    createdAt: new Date(createdAtMs), claimedAt, dependencies: [],
  }));
}

/**
 * This daemon's offer of free slots to the insert trigger. Written when the daemon goes idle;
 * withdrawn by every claim (CLAIM_SQL), and when the daemon pauses, stops, loses its listener or
 * has its bot token refused. The trigger skips an offer whose daemon has lost its liveness lock,
 * so a crashed daemon's offer takes no job.
 */
export class IdleSlots {
  /** Slots the offer still holds, as far as this daemon has heard. */
  private offered = 0;
  /** Whether an offer was ever made: only then can a job have been handed over unheard. */
  everOffered = false;
  /** Writes go one at a time, in order: a withdrawal must not overtake an offer. */
  private writes: Promise<unknown> = Promise.resolve();
  /** Repeated by the trigger's notification, so that a forged one is told apart (sql/0025). */
  readonly token = randomBytes(16).toString('hex');

  constructor(
    private readonly pool: Pool,
    private readonly daemonId: string,
    private readonly lockKey: number,
    private readonly queues: string[],
    private readonly jobTypes: () => string[],
  ) {}

  get advertised(): number {
    return this.offered;
  }

  /** Resolves once every write asked for so far has landed or failed. */
  settled(): Promise<void> {
    return this.writes.then(() => undefined, () => undefined);
  }

  /** The trigger handed over `count` jobs. */
  taken(count: number): void {
    this.offered = Math.max(0, this.offered - count);
  }

  /** A claim withdrew the offer in its own statement. */
  withdrawnByClaim(): void {
    this.offered = 0;
  }

  async advertise(free: number): Promise<void> {
    const jobTypes = this.jobTypes();
    if (free <= 0 || jobTypes.length === 0) return;
    this.offered = free;
    this.everOffered = true;
    // Only while the daemon is registered: a daemon another judged dead re-registers first.
    await this.write(
      `INSERT INTO broadcast_queue_idle_slots (daemon_id, lock_key, queues, job_types, free, token)
       SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM broadcast_queue_daemons WHERE daemon_id = $1)
       ON CONFLICT (daemon_id) DO UPDATE SET free = EXCLUDED.free, queues = EXCLUDED.queues, job_types = EXCLUDED.job_types, token = EXCLUDED.token`,
      [this.daemonId, this.lockKey, this.queues, jobTypes, free, this.token],
    );
  }

  /**
   * Never waits for an inserter that holds the offer (its transaction may stay open for as long as
   * its author likes): that insert may still hand over jobs, which the scheduler hands back.
   */
  async withdraw(): Promise<void> {
    if (!this.everOffered) return;
    this.offered = 0;
    await this.write(
      'DELETE FROM broadcast_queue_idle_slots WHERE daemon_id IN (SELECT daemon_id FROM broadcast_queue_idle_slots WHERE daemon_id = $1 FOR UPDATE SKIP LOCKED)',
      [this.daemonId],
    );
  }

  private write(sql: string, values: unknown[]): Promise<void> {
    const next = this.writes.catch(() => undefined).then(() => this.pool.query(sql, values));
    this.writes = next;
    return next.then(() => undefined);
  }
}
