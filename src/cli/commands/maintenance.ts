// bqctl cleanup / workers.
import type { Command } from 'commander';
import { intInRange } from '../args.js';
import { dbCommand, examples, n, out, runDb } from '../command.js';
import { humanDuration, printJson, table } from '../format.js';
import { deleteFinishedJobs } from '../../queue/cleaner.js';
import { readQueueStatus, readStaleDaemons } from '../../queue/status.js';
import { DEFAULTS } from '../../config/defaults.js';

export function registerMaintenance(program: Command): void {
  const cleanup = program.command('cleanup')
    .description('Delete finished jobs (completed, failed, cancelled) older than N days, as the daemon does hourly.')
    .option('--days <n>', `retention in days (default BQ_CLEANUP_DAYS, ${DEFAULTS.cleanupDays}; 0 there keeps every job)`);
  dbCommand(cleanup, { settings: ['cleanupDays'] });
  examples(cleanup, ['bqctl cleanup', 'bqctl cleanup --days 30 --json']);
  cleanup.action(async (opts: { days?: string; json?: boolean }) => {
    const days = opts.days !== undefined ? intInRange(opts.days, '--days', 1, 3650) : undefined;
    await runDb(cleanup, async ({ pool, config }) => {
      const retention = days ?? config.cleanupDays;
      // BQ_CLEANUP_DAYS=0 keeps finished jobs forever; "older than 0 days" would delete them all.
      if (retention === 0) {
        if (opts.json) return printJson({ deleted: 0, days: 0 });
        return out('BQ_CLEANUP_DAYS is 0, which keeps finished jobs: nothing deleted (--days N deletes those older than N days)');
      }
      const deleted = await deleteFinishedJobs(pool, retention);
      if (opts.json) return printJson({ deleted, days: retention });
      out(`deleted ${n(deleted)} finished job${deleted === 1 ? '' : 's'} older than ${retention} day${retention === 1 ? '' : 's'}`);
    });
  });

  const workers = program.command('workers')
    .description('Live daemons and their running jobs, plus daemons that stopped heartbeating and are not yet rescued.');
  dbCommand(workers, { settings: ['rescueAfterMs'] });
  examples(workers, ['bqctl workers', 'bqctl workers --json | jq \'.live[].running\'']);
  workers.action(async (opts: { json?: boolean }) => {
    await runDb(workers, async ({ pool, config }) => {
      const status = await readQueueStatus(pool, config.rescueAfterMs);
      const staleDaemons = await readStaleDaemons(pool, status.daemons.map((d) => d.daemonId));
      if (opts.json) return printJson({ live: status.daemons, stale: staleDaemons });
      const lines = [
        'Live daemons',
        table(status.daemons.map((d) => ({ daemon: d.daemonId, host: d.hostname, pid: d.pid, queues: d.queues.join(','), jobTypes: d.jobTypes.join(','), running: d.running, concurrency: d.concurrency, version: d.version, heartbeat: `${humanDuration((Date.now() - d.lastHeartbeatAt.getTime()) / 1000)} ago` }))),
      ];
      if (staleDaemons.length) {
        lines.push('', 'Registered but not live (their running jobs go back to pending when a live daemon next rescues)');
        lines.push(table(staleDaemons.map((d) => ({ daemon: d.daemonId, host: d.hostname, pid: d.pid, running: d.running, silent: humanDuration(d.silentSeconds) }))));
      }
      out(lines.join('\n'));
    });
  });
}
