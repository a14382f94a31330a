// bqctl list / show: reading jobs. Filters become SQL parameters, never SQL text.
import type { Command } from 'commander';
import { intInRange, parseSince, positiveInt, UsageError } from '../args.js';
import { broadcastJson, dbCommand, examples, jobJson, out, runDb } from '../command.js';
import { printJson, table } from '../format.js';
import { jobColumns, LIST_BRIEF_BYTES } from '../../queue/jobs-store.js';
import { broadcastColumns } from '../../broadcast/broadcasts-store.js';

export const JOB_STATUSES = ['pending', 'processing', 'completed', 'failed', 'cancelled'];

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
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, value: unknown) => where.push(sql.replace('?', `$${params.push(value)}`));
    if (opts.status !== undefined) {
      const statuses = opts.status.split(',').map((s) => s.trim());
      const bad = statuses.filter((s) => !JOB_STATUSES.includes(s));
      if (bad.length) throw new UsageError(`--status must be one of ${JOB_STATUSES.join(', ')}, got ${JSON.stringify(bad[0])}`);
      add('status = ANY(?::text[])', statuses);
    }
    if (opts.queue !== undefined) add('queue = ?', opts.queue);
    if (opts.type !== undefined) add('job_type = ?', opts.type);
    if (opts.since !== undefined) add('created_at >= ?', parseSince(opts.since));
    const limit = intInRange(opts.limit, '--limit', 1, 10_000);
    const offset = intInRange(opts.offset, '--offset', 0, 1_000_000_000);
    await runDb(list, async ({ pool }) => {
      // job_id is an identity, so its order is creation order and the primary key serves it.
      const { rows } = await pool.query(
        `SELECT ${jobColumns(LIST_BRIEF_BYTES)} FROM broadcast_queue_jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
          ORDER BY job_id DESC LIMIT ${limit} OFFSET ${offset}`,
        params,
      );
      if (opts.json) return printJson({ jobs: rows.map(jobJson), limit, offset });
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
      const { rows } = await pool.query(`SELECT ${jobColumns()} FROM broadcast_queue_jobs WHERE job_id = $1`, [jobId]);
      const job = rows[0];
      if (!job) {
        process.stderr.write(`error: job ${jobId} does not exist (it may have been cleaned up)\n`);
        process.exitCode = 1;
        return;
      }
      // A broadcast job points at its broadcast by payload (broadcast_id) or the broadcast points back.
      const broadcast = job.job_type === 'broadcast'
        ? (await pool.query(`SELECT ${broadcastColumns()} FROM broadcasts WHERE broadcast_id = $2 OR job_id = $1 ORDER BY broadcast_id LIMIT 1`, [
            jobId,
            Number.isSafeInteger(job.payload?.broadcast_id) ? job.payload.broadcast_id : null,
          ])).rows[0]
        : undefined;
      const b = broadcast ? broadcastJson(broadcast) : undefined;
      const counts = b ? { broadcastId: b.broadcastId, title: b.title, status: b.status, total: b.total, sent: b.sent, failed: b.failed, blocked: b.blocked, skipped: b.skipped, unknown: b.unknown } : undefined;
      if (opts.json) return printJson({ ...jobJson(job), ...(counts ? { broadcast: counts } : {}) });
      const fields = jobJson(job);
      const lines = Object.entries(fields)
        .filter(([k]) => k !== 'errors')
        .map(([k, v]) => `${k.padEnd(12)} ${v === null || v === undefined ? '-' : v instanceof Date ? v.toISOString() : typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
      const errors = (job.errors as { at: string; attempt: number; error: string }[]) ?? [];
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
