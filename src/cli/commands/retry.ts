// bqctl retry / cancel. The state changes are the admin API's (queue/jobs-store.ts, broadcast/control.ts); this file
// only selects the ids and reports. A retried job is due now, and the UPDATE trigger wakes daemons.
import type { Command } from 'commander';
import { parseSince, positiveInts } from '../args.js';
import { dbCommand, examples, n, out, runDb } from '../command.js';
import { printJson, table } from '../format.js';
import { failedJobIds, retryJobs, type JobActionResult } from '../../queue/jobs-store.js';
import { cancelJobs } from '../../broadcast/control.js';
import { UsageError } from '../../errors.js';

interface RetryOptions { failed?: boolean; queue?: string; type?: string; error?: string; since?: string; limit: string; dryRun?: boolean; json?: boolean }

export function registerRetry(program: Command): void {
  const retry = program.command('retry')
    .description('Put failed (or cancelled) jobs back to pending, due now, with one more attempt allowed.')
    .argument('[job_id...]', 'the jobs to retry')
    .option('--failed', 'retry every failed job matching the filters below')
    .option('--queue <queue>', 'with --failed: only this queue')
    .option('--type <job_type>', 'with --failed: only this job type')
    .option('--error <text>', 'with --failed: only jobs whose last error contains this text (case-insensitive)')
    .option('--since <when>', 'with --failed: only jobs that failed since an ISO date-time or an age (1h, 2d)')
    .option('--limit <n>', 'with --failed: at most this many jobs', '10000')
    .option('--dry-run', 'with --failed: list the jobs that would be retried, change nothing');
  dbCommand(retry);
  retry.addHelpText('after', '\nA broadcast job of a failed or cancelled broadcast finishes at once when retried; use\n`bqctl broadcast resend` to send to its recipients again.');
  examples(retry, [
    'bqctl retry 41 42',
    'bqctl retry --failed --since 1h',
    "bqctl retry --failed --type send --error 'Too Many Requests' --dry-run",
  ]);
  retry.action(async (rawIds: string[], opts: RetryOptions) => {
    const ids = positiveInts(rawIds, 'job id');
    const filtered = [opts.queue, opts.type, opts.error, opts.since, opts.dryRun].some((v) => v !== undefined);
    if (opts.failed && ids.length) throw new UsageError('give job ids or --failed, not both');
    if (!opts.failed && ids.length === 0) throw new UsageError('give the job ids to retry, or --failed (with filters) to retry failed jobs');
    if (!opts.failed && filtered) throw new UsageError('--queue, --type, --error, --since and --dry-run apply with --failed');
    const limit = Number(opts.limit);
    if (!/^\d+$/.test(opts.limit) || limit < 1 || limit > 1_000_000) throw new UsageError(`--limit must be a whole number from 1 to 1000000, got ${JSON.stringify(opts.limit)}`);
    const since = opts.since !== undefined ? parseSince(opts.since) : undefined;
    await runDb(retry, async ({ pool }) => {
      let targets = ids;
      if (opts.failed) {
        targets = await failedJobIds(pool, { queue: opts.queue ?? null, jobType: opts.type ?? null, errorContains: opts.error ?? null, finishedSince: since ?? null }, limit);
        if (opts.dryRun) {
          if (opts.json) return printJson({ dry_run: true, job_ids: targets });
          return out(targets.length ? `would retry ${n(targets.length)} job${targets.length === 1 ? '' : 's'}: ${targets.join(' ')}` : 'no failed jobs match');
        }
        if (targets.length === 0) {
          if (opts.json) return printJson({ results: [], retried: 0 });
          return out('no failed jobs match');
        }
      }
      report(await retryJobs(pool, targets), 'retried', opts.json);
    });
  });

  const cancel = program.command('cancel')
    .description('Cancel pending jobs; a running broadcast job is cancelled through its broadcast.')
    .argument('<job_id...>', 'the jobs to cancel');
  dbCommand(cancel);
  examples(cancel, ['bqctl cancel 42', 'bqctl cancel 41 42 43 --json']);
  cancel.action(async (rawIds: string[], opts: { json?: boolean }) => {
    const ids = positiveInts(rawIds, 'job id');
    await runDb(cancel, async ({ pool }) => report(await cancelJobs(pool, ids), 'cancelled', opts.json));
  });
}

/** Prints one line per job; exit 1 if any id could not be acted on, so scripts notice. */
function report(results: JobActionResult[], verb: string, json: boolean | undefined): void {
  const ok = results.filter((r) => r.outcome === 'retried' || r.outcome === 'cancelled' || r.outcome === 'broadcast_cancelled');
  if (ok.length < results.length) process.exitCode = 1;
  // The API's answer for one job, with the job's status in place of the whole row.
  if (json) return printJson({ results: results.map(({ job_id, outcome, ...rest }) => ({ job_id, outcome, ...('job' in rest ? { status: rest.job.status } : {}), ...('error' in rest ? { error: rest.error } : {}), ...('broadcast_id' in rest ? { broadcast_id: rest.broadcast_id } : {}) })), [verb]: ok.length });
  out(table(results.map((r) => ({
    job: r.job_id,
    outcome: r.outcome === 'broadcast_cancelled' ? `broadcast ${r.broadcast_id} cancelled; the job stops it` : r.outcome === 'not_found' ? 'no such job' : r.outcome === 'conflict' ? r.error : r.outcome,
  }))));
  if (ok.length > 1) out(`${verb} ${n(ok.length)} of ${n(results.length)}`);
  // Scripts read stderr for what went wrong; the table above is for people.
  for (const r of results) {
    if (r.outcome === 'not_found') process.stderr.write(`bqctl: job ${r.job_id} not found\n`);
    else if (r.outcome === 'conflict') process.stderr.write(`bqctl: job ${r.job_id}: ${r.error}\n`);
  }
}
