// bqctl list / show: reading jobs. Filters become SQL parameters, never SQL text.
import type { Command } from 'commander';
import { intInRange, parseSince, positiveInt } from '../args.js';
import { broadcastJson, dbCommand, examples, jobJson, out, runDb } from '../command.js';
import { printJson, table } from '../format.js';
import { getJob, listJobs, JOB_STATUSES as STATUSES, type JobFilter } from '../../queue/jobs-store.js';
import { broadcastRowOfJob } from '../../broadcast/broadcasts-store.js';
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
    "bqctl list --status pending --json | jq '.jobs[].jobId'",
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
      if (opts.json) return printJson({ jobs: rows.map(jobJson), limit, offset });
      out(table(rows.map((r) => ({
        id: r.jobId,
        queue: r.queue,
        type: r.jobType,
        status: r.status,
        attempts: `${r.attempts}/${r.maxAttempts}`,
        runAt: r.runAt,
        created: r.createdAt,
        lastError: r.lastError ? oneLine(r.lastError, 60) : null,
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
      const broadcast = job.jobType === 'broadcast' ? await broadcastRowOfJob(pool, job.jobId, job.payload) : undefined;
      const b = broadcast ? broadcastJson(broadcast) : undefined;
      const counts = b ? { broadcastId: b.broadcastId, title: b.title, status: b.status, total: b.total, sent: b.sent, failed: b.failed, blocked: b.blocked, skipped: b.skipped, unknown: b.unknown } : undefined;
      if (opts.json) return printJson({ ...jobJson(job), ...(counts ? { broadcast: counts } : {}) });
      const fields = jobJson(job);
      const lines = Object.entries(fields)
        .filter(([k]) => k !== 'errors')
        .map(([k, v]) => `${k.padEnd(12)} ${v === null || v === undefined ? '-' : v instanceof Date ? v.toISOString() : typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
      const errors = (job.errors as { at: string; attempt: number; error: string }[] | null) ?? [];
      lines.push('', `Errors (${errors.length})`);
      lines.push(errors.length ? table(errors.map((e) => ({ attempt: e.attempt, at: e.at, error: oneLine(String(e.error), 100) }))) : '(none)');
      if (counts) lines.push('', `Broadcast ${counts.broadcastId}`, table([counts]));
      out(lines.join('\n'));
    });
  });
}

/** First line of a message, shortened: tables stay one row per job. */
export function oneLine(text: string, max: number): string {
  const first = text.split('\n')[0]!;
  return first.length > max ? `${first.slice(0, max - 1)}…` : first;
}
