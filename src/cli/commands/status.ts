import type { Command } from 'commander';
import { addSettingFlags, configFromCommand } from '../options.js';
import { withDatabase } from '../context.js';
import { readQueueStatus } from '../../queue/status.js';
import { readRateLimitState } from '../../telegram/rate-limit-sql.js';
import { broadcastsInProgress } from '../../broadcast/progress.js';
import { humanDuration, printJson, table } from '../format.js';
import { examples } from '../command.js';

export function registerStatus(program: Command): void {
  const command = program
    .command('status')
    .description('Jobs by queue and status, live daemons, the oldest due job, jobs no daemon can run, the rate limit (429 pause, 401 halt) and broadcasts in progress.')
    .option('--json', 'machine-readable output');
  addSettingFlags(command, ['databaseUrl', 'dataDir', 'embeddedPort', 'logLevel', 'rescueAfterMs']);
  examples(command, ['bqctl status', 'bqctl status --json | jq .queues', "bqctl status --json | jq '.rateLimits[] | select(.haltedAt)'"]);
  command.action(async (opts: { json?: boolean }) => {
    const config = configFromCommand(command);
    await withDatabase(config, async ({ pool }) => {
      const [status, rateLimits, active] = await Promise.all([readQueueStatus(pool, config.rescueAfterMs), readRateLimitState(pool), broadcastsInProgress(pool)]);
      // The same names as the admin API's /status: live state in camelCase, broadcasts as their rows.
      if (opts.json) return printJson({ ...status, rateLimits, broadcastsInProgress: active });
      const queues = Object.entries(status.queues).map(([queue, c]) => ({ queue, ...c, oldestDue: humanDuration(c.oldestDueSeconds) }));
      const now = Date.now();
      const out = [
        'Queues',
        table(queues, ['queue', 'waiting', 'pending', 'processing', 'completed', 'failed', 'cancelled', 'oldestDue']),
        '',
        'Daemons',
        table(status.daemons.map((d) => ({ daemon: d.daemonId, jobTypes: d.jobTypes.join(','), running: d.running, concurrency: d.concurrency, lastHeartbeat: `${humanDuration((now - d.lastHeartbeatAt.getTime()) / 1000)} ago` }))),
      ];
      if (status.waitingOn.length) {
        out.push('', 'Jobs waiting on dependencies (oldest first)', table(status.waitingOn.map((w) => ({ job: w.jobId, queue: w.queue, jobType: w.jobType, waitsFor: w.openDependencies.join(', ') }))));
      }
      if (status.unrunnable.length) out.push('', 'Pending jobs no live daemon runs', table(status.unrunnable.map((u) => ({ ...u }))));
      out.push('', 'Rate limit', table(rateLimits.map((r) => ({
        bot: r.botId,
        // A pause in the past is history, not state.
        pausedUntil: r.pausedUntil && r.pausedUntil.getTime() > now ? `${r.pausedUntil.toISOString()} (${humanDuration((r.pausedUntil.getTime() - now) / 1000)} left)` : 'not paused',
        pauseReason: r.pausedUntil && r.pausedUntil.getTime() > now ? r.pauseReason : null,
        halted: r.haltedAt ? `HALTED since ${r.haltedAt.toISOString()}: ${r.haltReason ?? 'token rejected (401)'}` : 'no',
      }))));
      out.push('', 'Broadcasts in progress', table(active.map((b) => ({ id: b.broadcast_id, title: b.title, status: b.status, progress: `${b.done}/${b.total}`, sent: b.sent, blocked: b.blocked, failed: b.failed, skipped: b.skipped, unknown: b.unknown }))));
      process.stdout.write(`${out.join('\n')}\n`);
    });
  });
}
