import type { Command } from 'commander';
import { addSettingFlags, configFromCommand } from '../options.js';
import { withDatabase } from '../context.js';
import { readQueueStatus } from '../../queue/status.js';
import { humanDuration, printJson, table } from '../format.js';

export function registerStatus(program: Command): void {
  const command = program
    .command('status')
    .description('Jobs by queue and status, live daemons, the oldest due job, and jobs no daemon can run.')
    .option('--json', 'machine-readable output');
  addSettingFlags(command, ['databaseUrl', 'dataDir', 'logLevel', 'rescueAfterMs']);
  command.action(async (opts: { json?: boolean }) => {
    const config = configFromCommand(command);
    await withDatabase(config, async ({ pool }) => {
      const status = await readQueueStatus(pool, config.rescueAfterMs);
      if (opts.json) return printJson(status);
      const queues = Object.entries(status.queues).map(([queue, c]) => ({ queue, ...c, oldestDue: humanDuration(c.oldestDueSeconds) }));
      const out = [
        'Queues',
        table(queues, ['queue', 'pending', 'processing', 'completed', 'failed', 'cancelled', 'oldestDue']),
        '',
        'Daemons',
        table(status.daemons.map((d) => ({ daemon: d.daemonId, jobTypes: d.jobTypes.join(','), running: d.running, concurrency: d.concurrency, lastHeartbeat: `${humanDuration((Date.now() - d.lastHeartbeatAt.getTime()) / 1000)} ago` }))),
      ];
      if (status.unrunnable.length) out.push('', 'Pending jobs no live daemon runs', table(status.unrunnable.map((u) => ({ ...u }))));
      process.stdout.write(`${out.join('\n')}\n`);
    });
  });
}
