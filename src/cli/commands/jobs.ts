// bqctl list / show: reading jobs. Filters become SQL parameters, never SQL text.
import type { Command } from 'commander';
import { intInRange, parseSince, positiveInt } from '../args.js';
import { dbCommand, examples, out, runDb } from '../command.js';
import { printJson, table } from '../format.js';
import { getJob, listJobs, JOB_STATUSES as STATUSES, type JobFilter } from '../../queue/jobs-store.js';
import { broadcastOfJob } from '../../broadcast/broadcasts-store.js';
import { UsageError } from '../../errors.js';

export const JOB_STATUSES: readonly string[] = STATUSES;

interface ListOptions { status?: string; queue?: string; type?: string; since?: string; limit: string; offset: string; json?: boolean }

export function registerJobs(program: Command): void {
  const list = program
    .command('list')
    .description('Jobs, newest first, with optional filters.')
    .option('--status <status>', `only jobs in this status (${JOB_STATUSES.join(', ')}); comma-separate several`)
    .option('--queue <queue>', 'only jobs of this queue')
    .option('--type <job_type>', 'only jobs of this type (send, broadcast, …)')
    .option('--since <when>', 'only jobs created since an ISO date-time or an age (30m, 1h, 2d)')
    .option('--limit <n>', 'at most this many rows', '50')
    .option('--offset <n>', 'skip this many rows first (paging)', '0');
  dbCommand(list);
  examples(list, [
    'bqctl list --status failed --since 1h',
    'bqctl list --queue broadcasts --type broadcast --limit 20 --offset 20',
    "bqctl list --status pending --json | jq '.jobs[].job_id'",
  ]);
  list.action(async (opts: ListOptions) => {
    const filter: JobFilter = {};
    if (opts.status !== undefined) {
      const statuses = opts.status.split(',').map((s) => s.trim());
      const bad = statuses.filter((s) => !JOB_STATUSES.includes(s));
      if (bad.length) throw new UsageError(`--status must be one of ${JOB_STATUSES.join(', ')}, got ${JSON.stringify(bad[0])}`);
      filter.statuses = statuses;
    }
    if (opts.queue !== undefined) filter.queue = opts.queue;
    if (opts.type !== undefined) filter.jobType = opts.type;
    if (opts.since !== undefined) filter.createdSince = parseSince(opts.since);
    const limit = intInRange(opts.limit, '--limit', 1, 10_000);
    const offset = intInRange(opts.offset, '--offset', 0, 1_000_000_000);
    await runDb(list, async ({ pool }) => {
      const rows = await listJobs(pool, filter, limit, offset);
      if (opts.json) return printJson({ jobs: rows, limit, offset });
      out(table(rows.map((r) => ({
        id: r.job_id,
        queue: r.queue,
        type: r.job_type,
        status: r.status,
        attempts: `${r.attempts}/${r.max_attempts}`,
        runAt: r.run_at,
        created: r.created_at,
        lastError: r.last_error ? oneLine(r.last_error, 60) : null,
      }))));
      if (rows.length === limit) out(`(more may follow: --offset ${offset + limit})`);
    });
  });

  const show = program
    .command('show')
    .description('One job: every column, its error history, and for a broadcast job the broadcast\'s counts.')
    .argument('<job_id>', 'the job');
  dbCommand(show);
  examples(show, ['bqctl show 42', "bqctl show 42 --json | jq '.errors'"]);
  show.action(async (rawId: string, opts: { json?: boolean }) => {
    const jobId = positiveInt(rawId, 'job id');
    await runDb(show, async ({ pool }) => {
      const job = await getJob(pool, jobId);
      if (!job) {
        process.stderr.write(`error: job ${jobId} does not exist (it may have been cleaned up)\n`);
        process.exitCode = 1;
        return;
      }
      const b = job.job_type === 'broadcast' ? await broadcastOfJob(pool, job.job_id, job.payload) : null;
      const counts = b ? { broadcast_id: b.broadcast_id, title: b.title, status: b.status, total: b.total, sent: b.sent, failed: b.failed, blocked: b.blocked, skipped: b.skipped, unknown: b.unknown } : undefined;
      if (opts.json) return printJson({ ...job, ...(counts ? { broadcast: counts } : {}) });
      const lines = Object.entries(job)
        .filter(([k]) => k !== 'errors')
        .map(([k, v]) => `${k.padEnd(12)} ${v === null || v === undefined ? '-' : v instanceof Date ? v.toISOString() : typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
      const errors = (job.errors as { at: string; attempt: number; error: string }[] | null) ?? [];
      lines.push('', `Errors (${errors.length})`);
      lines.push(errors.length ? table(errors.map((e) => ({ attempt: e.attempt, at: e.at, error: oneLine(String(e.error), 100) }))) : '(none)');
      if (counts) lines.push('', `Broadcast ${counts.broadcast_id}`, table([counts]));
      out(lines.join('\n'));
    });
  });
}

/** First line of a message, shortened: tables stay one row per job. */
export function oneLine(text: string, max: number): string {
  const first = text.split('\n')[0]!;
  return first.length > max ? `${first.slice(0, max - 1)}…` : first;
}
