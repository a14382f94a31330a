// bqctl schedule add|list|remove|pause|resume|run-now: recurring schedules (src/schedules). This
// file parses and reports; the statements are schedules-store.ts's.
import type { Command } from 'commander';
import { dbCommand, examples, out, runDb } from '../command.js';
import { printJson, table } from '../format.js';
import { UsageError } from '../../errors.js';
import { addSchedule, listSchedules, removeSchedule, runScheduleNow, scheduleWire, setScheduleEnabled, type ScheduleRow } from '../../schedules/schedules-store.js';

interface AddOptions { cron: string; tz: string; queue?: string; type: string; payload: string; priority?: string; maxAttempts?: string; backfill: string; paused?: boolean; json?: boolean }

function wholeNumber(raw: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!/^-?\d+$/.test(raw) || value < min || value > max) throw new UsageError(`${flag} must be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return value;
}

export function registerSchedule(program: Command): void {
  const schedule = program.command('schedule').description('Recurring schedules: a job enqueued on every tick of a cron expression, in an IANA time zone.');

  const add = schedule.command('add')
    .description('Add a schedule. Missed ticks (no daemon running) are skipped unless --backfill says how far back to enqueue them.')
    .argument('<name>', 'unique name (letters, digits, _ . : -)')
    .requiredOption('--cron <expr>', 'cron expression: minute hour day month weekday (a sixth field first for seconds)')
    .option('--tz <zone>', 'IANA time zone the cron is read in', 'UTC')
    .option('--type <job_type>', 'job type to enqueue', 'broadcast')
    .option('--payload <json>', 'job payload (for a broadcast: the broadcast template)', '{}')
    .option('--queue <queue>', 'queue (default broadcasts)')
    .option('--priority <n>', 'priority of each job (default 0)')
    .option('--max-attempts <n>', 'attempts per job (default 3)')
    .option('--backfill <seconds>', 'enqueue missed ticks at most this old (default 0: skip them)', '0')
    .option('--paused', 'add it paused');
  dbCommand(add);
  examples(add, [
    `bqctl schedule add weekly-digest --cron '0 9 * * 1' --tz Europe/Berlin --payload '{"message": {"text": "This week…"}, "audience": {"tags_any": ["digest"]}}'`,
    "bqctl schedule add nightly-report --cron '30 2 * * *' --tz America/New_York --type report --backfill 21600",
  ]);
  add.action(async (name: string, opts: AddOptions) => {
    let payload: unknown;
    try {
      payload = JSON.parse(opts.payload);
    } catch (error) {
      throw new UsageError(`--payload is not JSON: ${(error as Error).message}`);
    }
    if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) throw new UsageError('--payload must be a JSON object');
    const spec = {
      name, cron: opts.cron, timeZone: opts.tz, jobType: opts.type, payload: payload as Record<string, unknown>, queue: opts.queue,
      priority: wholeNumber(opts.priority, '--priority', -1_000_000, 1_000_000), maxAttempts: wholeNumber(opts.maxAttempts, '--max-attempts', 1, 100),
      backfillSeconds: wholeNumber(opts.backfill, '--backfill', 0, 31_622_400), enabled: !opts.paused,
    };
    await runDb(add, async ({ pool }) => {
      let row: ScheduleRow;
      try {
        row = await addSchedule(pool, spec);
      } catch (error) {
        if ((error as { code?: string }).code) throw error;
        throw new UsageError((error as Error).message);
      }
      if (opts.json) return printJson(scheduleWire(row));
      out(`schedule ${row.name} added${row.enabled ? `; next run ${row.nextRunAt?.toISOString() ?? 'never'}` : ' (paused)'}`);
    });
  });

  const list = schedule.command('list').description('Every schedule with its next run.');
  dbCommand(list);
  list.action(async (opts: { json?: boolean }) => {
    await runDb(list, async ({ pool }) => {
      const rows = await listSchedules(pool);
      if (opts.json) return printJson({ schedules: rows.map(scheduleWire) });
      out(rows.length ? table(rows.map((s) => ({ name: s.name, cron: s.cron, timeZone: s.timeZone, jobType: s.jobType, enabled: s.enabled ? 'yes' : 'paused', backfill: s.backfillSeconds, nextRun: s.nextRunAt?.toISOString() ?? '-', lastRun: s.lastRunAt?.toISOString() ?? '-' }))) : 'no schedules');
    });
  });

  const byName = (command: string, description: string, act: (pool: Parameters<Parameters<typeof runDb>[1]>[0]['pool'], name: string) => Promise<Record<string, unknown> | null>, done: string) => {
    const c = schedule.command(command).description(description).argument('<name>', 'the schedule');
    dbCommand(c);
    c.action(async (name: string, opts: { json?: boolean }) => {
      await runDb(c, async ({ pool }) => {
        const result = await act(pool, name);
        if (!result) {
          process.stderr.write(`error: no schedule named ${JSON.stringify(name)}\n`);
          process.exitCode = 1;
          return;
        }
        if (opts.json) return printJson(result);
        out(`schedule ${name} ${done}${typeof result.job_id === 'number' ? `: job ${result.job_id}` : ''}`);
      });
    });
  };
  byName('remove', 'Delete a schedule (jobs it enqueued stay).', async (pool, name) => ((await removeSchedule(pool, name)) ? { name, removed: true } : null), 'removed');
  byName('pause', 'Stop a schedule from firing until resumed.', async (pool, name) => { const s = await setScheduleEnabled(pool, name, false); return s && scheduleWire(s); }, 'paused');
  byName('resume', 'Resume a paused schedule from its next tick (the ticks of the pause are not back-filled).', async (pool, name) => { const s = await setScheduleEnabled(pool, name, true); return s && scheduleWire(s); }, 'resumed');
  byName('run-now', "Enqueue the schedule's job now, outside its ticks.", async (pool, name) => { const r = await runScheduleNow(pool, name); return r && { name, job_id: r.jobId }; }, 'enqueued');
}
