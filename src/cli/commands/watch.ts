// bqctl watch <broadcast_id>: follows a broadcast until it is final. The broadcasts row is read
// every 500 ms; that is a screen refresh, not a correctness wait, so polling is fine here.
import type { Command } from 'commander';
import { positiveInt } from '../args.js';
import { dbCommand, examples, n, runDb } from '../command.js';
import { humanDuration, printJson } from '../format.js';
import { broadcastProgress, type BroadcastProgress } from '../../broadcast/progress.js';
import { UsageError } from '../../errors.js';
import { sleep } from '../../time.js';

const POLL_MS = 500;
/** Polls the rate is measured over: the last ~5 s, so it follows changes but does not flicker. */
const RATE_SAMPLES = 10;
/** Without a terminal (logs, CI), one line this often instead of a redrawn bar. */
const PLAIN_EVERY_MS = 5_000;
const BAR_WIDTH = 20;
const FINAL = ['completed', 'cancelled', 'failed'];

export function registerWatch(program: Command): void {
  const watch = program.command('watch')
    .description('Follow a broadcast live until it completes: a progress bar on a terminal, a line every ~5 s otherwise.')
    .argument('<broadcast_id>')
    .option('--timeout <seconds>', 'give up (exit 1) if it is not finished by then');
  dbCommand(watch);
  watch.addHelpText('after', '\nExit code: 0 when the broadcast completes, 1 when it failed, was cancelled, or --timeout passed.\nWith --json, prints only the final state.');
  examples(watch, ['bqctl watch 42', 'bqctl watch 42 --timeout 600 --json', 'bqctl broadcast create --title T --text Hi --send | xargs bqctl watch']);
  watch.action(async (rawId: string, opts: { timeout?: string; json?: boolean }) => {
    const id = positiveInt(rawId, 'broadcast id');
    const timeoutS = opts.timeout === undefined ? undefined : Number(opts.timeout);
    if (timeoutS !== undefined && (!/^\d+(\.\d+)?$/.test(opts.timeout!) || timeoutS <= 0)) throw new UsageError(`--timeout must be a positive number of seconds, got ${JSON.stringify(opts.timeout)}`);
    const tty = process.stdout.isTTY === true && !opts.json;
    await runDb(watch, async ({ pool }) => {
      const started = Date.now();
      const samples: { at: number; done: number }[] = [];
      let lastPlain = 0;
      let drawn = false;
      let notedDraft = false;
      // Ctrl-C leaves the terminal on a fresh line.
      const onSigint = () => {
        if (drawn) process.stdout.write('\n');
        process.exit(130);
      };
      process.once('SIGINT', onSigint);
      try {
        for (;;) {
          const p = await broadcastProgress(pool, id);
          if (!p) throw new Error(`broadcast ${id} does not exist`);
          const now = Date.now();
          samples.push({ at: now, done: p.done });
          if (samples.length > RATE_SAMPLES) samples.shift();
          const rate = measuredRate(samples);
          const final = FINAL.includes(p.status);
          if (p.status === 'draft' && !notedDraft && !opts.json) {
            process.stderr.write(`note: broadcast ${id} is a draft; nothing is sent until it is enqueued (bqctl enqueue broadcast --broadcast-id ${id})\n`);
            notedDraft = true;
          }
          if (tty) {
            process.stdout.write(`\r${progressLine(p, rate)}\x1b[K`);
            drawn = true;
          } else if (!opts.json && !final && now - lastPlain >= PLAIN_EVERY_MS) {
            process.stdout.write(`${progressLine(p, rate)}\n`);
            lastPlain = now;
          }
          if (final) return finish(p, (now - started) / 1000, drawn, opts.json);
          if (timeoutS !== undefined && now - started >= timeoutS * 1000) {
            if (drawn) process.stdout.write('\n');
            if (opts.json) printJson({ ...summary(p), timed_out: true });
            process.stderr.write(`error: timed out after ${humanDuration(timeoutS)}; broadcast ${id} is still ${p.status}\n`);
            process.exitCode = 1;
            return;
          }
          await sleep(POLL_MS);
        }
      } finally {
        process.off('SIGINT', onSigint);
      }
    });
  });
}

/** Recipients processed per second between the oldest and newest of the recent polls. */
function measuredRate(samples: { at: number; done: number }[]): number {
  if (samples.length < 2) return 0;
  const first = samples[0]!;
  const last = samples[samples.length - 1]!;
  return last.at > first.at ? Math.max(0, ((last.done - first.done) * 1000) / (last.at - first.at)) : 0;
}

/** `[#####-----] 45% 4,500/10,000 sent 4,300 blocked 120 failed 30 skipped 50 unknown 0 · 29.8 msg/s · ETA 3m 4s` */
export function progressLine(p: BroadcastProgress, rate: number): string {
  const fraction = p.total > 0 ? Math.min(1, p.done / p.total) : FINAL.includes(p.status) ? 1 : 0;
  const filled = Math.round(fraction * BAR_WIDTH);
  // Rows waiting for their local time: the ETA is the last zone's hour, not remaining / rate.
  const local = p.deliver_at_local !== null && p.waiting > 0;
  const eta = rate > 0 && p.remaining > 0 && !local ? humanDuration(p.remaining / rate) : '-';
  const state = p.status === 'sending' ? '' : ` [${p.status}]`;
  const waiting = p.waiting > 0 && p.next_due_at ? ` · ${n(p.waiting)} waiting, next due ${p.next_due_at.toISOString()}` : '';
  return `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${Math.floor(fraction * 100)}% ${n(p.done)}/${n(p.total)} ` +
    `sent ${n(p.sent)} blocked ${n(p.blocked)} failed ${n(p.failed)} skipped ${n(p.skipped)} unknown ${n(p.unknown)} · ${rate.toFixed(1)} msg/s · ETA ${eta}${waiting}${state}`;
}

/** The broadcast's record as the admin API shows it, without its content (message, variants, audience). */
function summary(p: BroadcastProgress): Omit<BroadcastProgress, 'message' | 'variants' | 'audience'> {
  const { message: _message, variants: _variants, audience: _audience, ...record } = p;
  return record;
}

function finish(p: BroadcastProgress, seconds: number, drawn: boolean, json: boolean | undefined): void {
  if (p.status !== 'completed') process.exitCode = 1;
  if (json) return printJson(summary(p));
  if (drawn) process.stdout.write('\n');
  const took = p.started_at && p.finished_at ? humanDuration((p.finished_at.getTime() - p.started_at.getTime()) / 1000) : humanDuration(seconds);
  process.stdout.write(`broadcast ${p.broadcast_id} ${p.status}${p.failure_reason ? ` (${p.failure_reason})` : ''}: ${n(p.total)} recipients — ` +
    `sent ${n(p.sent)}, blocked ${n(p.blocked)}, failed ${n(p.failed)}, skipped ${n(p.skipped)}, unknown ${n(p.unknown)} (took ${took})\n`);
}
