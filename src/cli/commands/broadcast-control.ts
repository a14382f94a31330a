// bqctl broadcast pause / resume / cancel / resend. The status changes are the admin API's own
// (broadcast/control.ts), so bqctl and the API can never disagree about what "pause" means.
import type { Command } from 'commander';
import { intInRange, positiveInt } from '../args.js';
import { dbCommand, examples, n, out, runDb } from '../command.js';
import { printJson } from '../format.js';
import { failedReasons, resendRecipients } from '../../broadcast/resend.js';
import { setBroadcastStatus, type BroadcastAction } from '../../broadcast/control.js';
import { UsageError } from '../../errors.js';

const ACTIONS: { action: BroadcastAction; doc: string; example: string }[] = [
  { action: 'pause', doc: 'Pause a broadcast (draft, queued or sending); the daemon stops within about half a second.', example: 'bqctl broadcast pause 42' },
  { action: 'resume', doc: 'Resume a paused broadcast; its job wakes at once.', example: 'bqctl broadcast resume 42' },
  { action: 'cancel', doc: 'Cancel a broadcast that is not finished; recipients not yet sent are skipped.', example: 'bqctl broadcast cancel 42 --json' },
];

export function registerBroadcastControl(group: Command): void {
  for (const { action, doc, example } of ACTIONS) {
    const command = group.command(action).description(doc).argument('<broadcast_id>');
    dbCommand(command);
    examples(command, [example]);
    command.action(async (rawId: string, opts: { json?: boolean }) => {
      const id = positiveInt(rawId, 'broadcast id');
      await runDb(command, async ({ pool }) => {
        const result = await setBroadcastStatus(pool, id, action);
        if (opts.json) printJson(result);
        if (result.outcome === 'updated') {
          if (!opts.json) out(`broadcast ${id} is ${result.broadcast.status}`);
          return;
        }
        const error = result.outcome === 'not_found' ? `broadcast ${id} does not exist` : result.error;
        process.stderr.write(`error: ${error}\n`);
        process.exitCode = 1;
      });
    });
  }

  const resend = group.command('resend')
    .description("Send again to a broadcast's recipients whose outcome is unknown (a crash hid it) or that failed for given reasons.")
    .argument('<broadcast_id>')
    .option('--unknown', "recipients in 'unknown' (the daemon died while their send was in flight; they may have it already)")
    .option('--failed-class <reason...>', 'failed recipients with these reason codes (blocked, chat_not_found, content, bad_request, server_error, network, timeout; also retries_exhausted, transient, permanent), or all')
    .option('--max-attempts <n>', 'attempts for the job that sends them, if a new one is needed (default BQ_MAX_ATTEMPTS)');
  dbCommand(resend);
  resend.addHelpText('after', '\n`bqctl broadcast show <id>` lists the outcomes and reason codes with their counts.');
  examples(resend, [
    'bqctl broadcast resend 42 --unknown',
    'bqctl broadcast resend 42 --failed-class server_error network timeout',
    'bqctl broadcast resend 42 --unknown --failed-class content --json',
  ]);
  resend.action(async (rawId: string, opts: { unknown?: boolean; failedClass?: string[]; maxAttempts?: string; json?: boolean }) => {
    const id = positiveInt(rawId, 'broadcast id');
    const classes = (opts.failedClass ?? []).flatMap((c) => c.split(',')).map((c) => c.trim()).filter(Boolean);
    if (!opts.unknown && classes.length === 0) throw new UsageError('say what to resend: --unknown, --failed-class <reason…>, or both');
    let reasons: ReturnType<typeof failedReasons>;
    try {
      reasons = failedReasons(classes);
    } catch (error) {
      throw new UsageError(`--failed-class: ${(error as Error).message}`);
    }
    const maxAttempts = opts.maxAttempts !== undefined ? intInRange(opts.maxAttempts, '--max-attempts', 1, 100) : undefined;
    await runDb(resend, async ({ pool, config }) => {
      const result = await resendRecipients(pool, id, { unknown: opts.unknown === true, failedReasons: reasons, maxAttempts: maxAttempts ?? config.maxAttempts });
      if (opts.json) return printJson(result);
      if (result.resent === 0) return out(`broadcast ${id}: no recipients matched; nothing to resend`);
      out(`broadcast ${id}: ${n(result.resent)} recipients back to pending (unknown ${n(result.from_unknown)}, failed ${n(result.from_failed)}, blocked ${n(result.from_blocked)}); ` +
        `${result.existing_job ? `its job ${result.job_id} sends them` : `job ${result.job_id} queued`}; broadcast is ${result.status}`);
    });
  });
}
