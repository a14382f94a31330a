import { databaseRetryWaitMs, isTransientDatabaseError, type Pool } from '../db/pool.js';
import type { ReasonCode } from '../errors.js';
import { errorMessage, type Logger } from '../log.js';
import { sleep } from '../time.js';

/** What became of one run of a job. `reason` says why in a closed set (errors.ts), `error` in words. */
export type Outcome =
  | { kind: 'completed'; result: unknown }
  | { kind: 'failed'; error: string; reason: ReasonCode }
  | { kind: 'retry'; error: string; reason: ReasonCode; delayMs: number }
  /** Run again after delayMs without spending the attempt (429, halted token, shutdown hand-back). */
  | { kind: 'snooze'; delayMs: number; error: string | null; reason: ReasonCode | null };

export interface RecordedRun {
  jobId: number;
  attempt: number;
  /** Job.claimedAt of the run. */
  claimedAt: string;
  outcome: Outcome;
}

const UNSTORABLE = 'result could not be stored: ';

/** An outcome as it can be written: a result PostgreSQL cannot hold fails the job instead. */
function storableOutcome(outcome: Outcome): Exclude<Outcome, { kind: 'completed' }> | { kind: 'completed'; json: string } {
  if (outcome.kind !== 'completed') return { ...outcome, error: outcome.error === null ? null : withoutNul(outcome.error) } as Exclude<Outcome, { kind: 'completed' }>;
  try {
    return { kind: 'completed', json: JSON.stringify(outcome.result ?? null) };
  } catch (error) {
    // A BigInt or a circular object: the handler's result, not the database, is at fault.
    return { kind: 'failed', error: `${UNSTORABLE}${errorMessage(error)}`, reason: 'unstorable_result' };
  }
}

// text columns refuse NUL characters; an error message is worth keeping without them.
const withoutNul = (text: string) => text.replaceAll('\u0000', '');

// Histories are capped so that a job snoozed or retried many times cannot grow without bound.
const ERRORS_KEPT = 25;

// One statement writes a whole batch. The ownership guard (still processing, still ours, same
// claim) means a stale worker whose job was rescued and re-claimed elsewhere changes nothing. The
// claim is told by started_at, not by the attempt alone: a snooze gives its attempt back, so the
// next claim of the job has the same attempt number, and a snooze written once, its answer lost
// with the connection, then written again by writeUntilLanded, put that next claim's job back to
// pending while it ran: a send job ran twice and sent twice.
// A run whose job was rescued while this daemon was alive (judged hung: stalled, starved) still
// writes its outcome while the job is pending as the rescue left it, claimed by nobody since: it
// is the outcome of the only run there was. A send's next attempt could only call it unknown.
// The history then says the rescue was followed by this outcome ('after_rescue'), so that a
// snooze (nothing was sent) is not later taken for a cut-short attempt (jobs/send-job.ts).
// The rows are found by primary key, and the guard is a CASE so that the planner cannot read it
// through the partial indexes. Written as (processing AND ours) OR (pending AND rescued), each arm
// matched one (processing by locked_by, the claim index), and with statistics from before the
// burst every batch read every pending job of the burst and every dead processing entry to keep
// its own 250: 41 µs of PostgreSQL CPU per completed job in a 20,000-job burst instead of 14
// (bench/production/write-cost.ts). The ids go through ARRAY(SELECT …), as in the claim, so that
// the planner sees an array of unknown length: with the literal array, PostgreSQL 15 costed a
// table it had never analyzed as cheaper to read whole than by 100 keys.
export const RECORD_SQL = `
  UPDATE broadcast_queue_jobs j
     SET status      = o.status,
         attempts    = CASE WHEN o.refund THEN j.attempts - 1 ELSE j.attempts END,
         run_at      = CASE WHEN o.delay_ms IS NULL THEN j.run_at ELSE now() + o.delay_ms * interval '1 millisecond' END,
         result      = CASE WHEN o.status = 'completed' THEN o.result ELSE j.result END,
         last_error  = COALESCE(o.error, j.last_error),
         last_error_reason = CASE WHEN o.error IS NULL THEN j.last_error_reason ELSE o.reason END,
         errors      = CASE WHEN (o.error IS NULL OR o.refund) AND j.status = 'processing' THEN j.errors
                            ELSE (SELECT COALESCE(jsonb_agg(e ORDER BY n), '[]'::jsonb) FROM (
                                    SELECT e, n FROM jsonb_array_elements(
                                      j.errors || jsonb_build_array(jsonb_build_object('at', now(), 'attempt', j.attempts, 'error', COALESCE(o.error, o.status), 'reason', o.reason)
                                        || CASE WHEN j.status = 'pending' THEN '{"after_rescue": true}'::jsonb ELSE '{}'::jsonb END)
                                    ) WITH ORDINALITY AS t(e, n)
                                    ORDER BY n DESC LIMIT ${ERRORS_KEPT}) kept) END,
         locked_by   = NULL,
         finished_at = CASE WHEN o.status IN ('completed', 'failed') THEN now() ELSE NULL END,
         updated_at  = now()
    FROM unnest($1::bigint[], $2::int[], $3::text[], $4::float8[], $5::jsonb[], $6::text[], $7::bool[], $9::timestamptz[], $10::text[])
         AS o(job_id, attempt, status, delay_ms, result, error, refund, claimed_at, reason)
   WHERE j.job_id = ANY (ARRAY(SELECT unnest($1::bigint[])))
     AND j.job_id = o.job_id
     AND j.attempts = o.attempt
     AND j.started_at = o.claimed_at
     AND CASE j.status
           WHEN 'processing' THEN j.locked_by = $8
           WHEN 'pending' THEN j.locked_by IS NULL AND j.errors -> -1 ->> 'rescued' = 'true' AND j.errors -> -1 ->> 'daemon' = $8
           ELSE false
         END
  RETURNING j.job_id`;

/** The parameters of RECORD_SQL for one batch of runs, written by `daemonId`. */
export function recordParams(runs: readonly RecordedRun[], daemonId: string): unknown[] {
  const columns = { ids: [] as number[], attempts: [] as number[], claims: [] as string[], statuses: [] as string[], delays: [] as (number | null)[], results: [] as (string | null)[], errors: [] as (string | null)[], reasons: [] as (string | null)[], refunds: [] as boolean[] };
  for (const run of runs) {
    const o = storableOutcome(run.outcome);
    columns.ids.push(run.jobId);
    columns.attempts.push(run.attempt);
    columns.claims.push(run.claimedAt);
    columns.statuses.push(o.kind === 'completed' ? 'completed' : o.kind === 'failed' ? 'failed' : 'pending');
    columns.delays.push(o.kind === 'retry' || o.kind === 'snooze' ? Math.max(0, o.delayMs) : null);
    columns.results.push(o.kind === 'completed' ? o.json : null);
    columns.errors.push(o.kind === 'completed' ? null : o.error);
    columns.reasons.push(o.kind === 'completed' || o.error === null ? null : o.reason);
    columns.refunds.push(o.kind === 'snooze');
  }
  return [columns.ids, columns.attempts, columns.statuses, columns.delays, columns.results, columns.errors, columns.refunds, daemonId, columns.claims, columns.reasons];
}

interface Pending {
  run: RecordedRun;
  resolve(owned: boolean): void;
  reject(error: unknown): void;
}

/**
 * Writes outcomes in batches: every outcome that arrives while a write is in flight, or within the
 * same turn of the event loop, goes into the next single UPDATE. With one job at a time that is
 * one statement per job and no added delay; under load it is one statement per batch.
 */
export class Recorder {
  private queue: Pending[] = [];
  private flushing: Promise<void> | null = null;
  private scheduled = false;
  private closed = false;

  constructor(
    private readonly pool: Pool,
    private readonly daemonId: string,
    private readonly log: Logger,
  ) {}

  /** Resolves true if the write landed, false if the job was no longer ours (it was rescued). */
  record(run: RecordedRun): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.queue.push({ run, resolve, reject });
      this.schedule();
    });
  }

  /** Resolves once everything recorded so far is written. */
  async drain(): Promise<void> {
    while (this.queue.length || this.flushing) {
      if (this.flushing) await this.flushing;
      else await this.flushNow();
    }
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flushNow();
    });
  }

  private flushNow(): Promise<void> {
    if (this.flushing || this.queue.length === 0) return this.flushing ?? Promise.resolve();
    const batch = this.queue;
    this.queue = [];
    this.flushing = this.write(batch).finally(() => {
      this.flushing = null;
      if (this.queue.length) this.schedule();
    });
    return this.flushing;
  }

  private async write(batch: Pending[]): Promise<void> {
    const params = recordParams(batch.map((item) => item.run), this.daemonId);
    let rows: { job_id: number }[];
    try {
      rows = await this.writeUntilLanded(params);
    } catch (error) {
      if (!isTransientDatabaseError(error) && !this.closed) return this.writeApart(batch, error);
      for (const item of batch) item.reject(error);
      return;
    }
    const written = new Set(rows.map((r) => r.job_id));
    for (const item of batch) {
      const owned = written.has(item.run.jobId);
      if (!owned) this.log.warn({ jobId: item.run.jobId, attempt: item.run.attempt }, 'result discarded: job is no longer held by this daemon');
      item.resolve(owned);
    }
  }

  /**
   * PostgreSQL refused the batch for what is in it (a result with a NUL character, say): one bad
   * row must not hold back every other outcome, so each is written on its own, and a row refused
   * alone fails its job with PostgreSQL's reason.
   */
  private async writeApart(batch: Pending[], error: unknown): Promise<void> {
    if (batch.length > 1) {
      for (const item of batch) await this.write([item]);
      return;
    }
    const item = batch[0]!;
    if (item.run.outcome.kind === 'failed' && item.run.outcome.error.startsWith(UNSTORABLE)) {
      item.reject(error);
      return;
    }
    this.log.warn({ jobId: item.run.jobId, err: errorMessage(error) }, 'job outcome refused by PostgreSQL; failing the job');
    await this.write([{ ...item, run: { ...item.run, outcome: { kind: 'failed', error: `${UNSTORABLE}${errorMessage(error)}`, reason: 'unstorable_result' } } }]);
  }

  /** Gives up only after close(): an unwritten outcome leaves its job 'processing' under a live daemon. */
  close(): void {
    this.closed = true;
  }

  private async writeUntilLanded(params: unknown[]): Promise<{ job_id: number }[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        // Not a named statement, though parsing and planning it costs 3.5 µs of PostgreSQL CPU per
        // job in batches of 250 (bench/production/write-cost.ts, named-record-sql): this pool may go
        // through a transaction-pooling PgBouncer, where a named statement is not the session's own.
        return (await this.pool.query(RECORD_SQL, params)).rows;
      } catch (error) {
        // Only an unreachable database or a lock conflict is worth waiting for; anything else
        // would fail forever.
        if (!isTransientDatabaseError(error) || (this.closed && attempt >= 3)) throw error;
        // At most a second, like the listener's reconnect: outcomes land soon after the database is back.
        const waitMs = databaseRetryWaitMs(attempt);
        this.log.warn({ err: errorMessage(error), attempt, waitMs }, 'writing job outcomes failed; retrying');
        await sleep(waitMs);
      }
    }
  }
}

