// bqctl broadcast create / list / show. Control (pause, resume, cancel) and resend live in
// broadcast-control.ts; both register under the same `broadcast` command.
import type { Command } from 'commander';
import { asUsage, audienceFromFlags, intInRange, parseJsonArg, positiveInt } from '../args.js';
import { dbCommand, examples, n, out, runDb } from '../command.js';
import { printJson, table } from '../format.js';
import { createBroadcast, deliveryOutcomes, listBroadcastRows } from '../../broadcast/broadcasts-store.js';
import { broadcastProgress } from '../../broadcast/progress.js';
import { addJobFlags, addMessageFlags, jobOptionsFromFlags, messageFromFlags, variantsFromFile, type JobFlags, type MessageFlags } from '../job-flags.js';
import { registerBroadcastControl } from './broadcast-control.js';
import { UsageError } from '../../errors.js';
import { broadcastReport, type AbMetric, type EngagementCounts } from '../../engagement/report.js';
import { parseDeliverAtLocal, parseTimeZone } from '../../broadcast/local-time.js';
import { parseAbTest } from '../../broadcast/ab-test.js';

export const BROADCAST_STATUSES = ['draft', 'queued', 'sending', 'paused', 'completed', 'cancelled', 'failed'];

type CreateOptions = MessageFlags & JobFlags & {
  title: string; variantsFile?: string; segment?: string; chats?: string; chatsFile?: string;
  frequencyCap?: string; allowPaid?: boolean; deliverAtLocal?: string; defaultTimeZone?: string; track?: boolean; abTest?: string; send?: boolean; json?: boolean;
};

const METRIC_LABELS: Record<AbMetric, string> = { ctr: 'CTR', reply_rate: 'reply rate', opt_out_rate: 'opt-out rate', block_rate: 'block rate' };
const AB_TEST_HELP = 'a JSON object {"sample_percent": 1-50, "metric": "ctr" | "reply_rate" | "opt_out_rate" | "block_rate", "decide_after": "90s" | "30m" | "2h" | "1h30m" (up to 30d), "fallback": a variant name}: the variants go to that share of the audience, and after decide_after the rest get the variant that won on the metric (two-proportion z-test: the higher CTR or reply rate wins, the lower opt-out or block rate), or the fallback (default the first variant) when none won significantly';

/** --ab-test, checked as the daemon will (parseAbTest), with the flag named in the error. */
function abTestFromFlag(raw: string, b: { variants?: unknown[]; track: boolean; deliver_at_local?: string }): Record<string, unknown> {
  const value = parseJsonArg(raw, '--ab-test');
  if (b.variants === undefined) throw new UsageError('--ab-test needs --variants-file with two or more variants to compare');
  if (!b.track) throw new UsageError('--ab-test needs --track (the test counts clicks on tracked links)');
  asUsage(() => parseAbTest(value, b, '--ab-test'));
  return value as Record<string, unknown>;
}

export function registerBroadcast(program: Command): void {
  const group = program.command('broadcast').description('Stored broadcasts: create, list, show, pause, resume, cancel, resend.');
  examples(group, ["bqctl broadcast create --title 'Nov promo' --text 'Hello' --segment '{\"tags_any\":[\"vip\"]}' --send", 'bqctl broadcast list --status sending', 'bqctl broadcast pause 42', 'bqctl broadcast resend 42 --unknown']);

  const create = addJobFlags(addMessageFlags(group.command('create').description('Store a broadcast as a draft (or, with --send, queue it at once).'), '--message-file'))
    .requiredOption('--title <title>', 'a name for people (bqctl broadcast list, the admin API)')
    .option('--variants-file <file>', 'A/B variants as JSON: [{"name": "a", "weight": 1, "message": {…}}, …]')
    .option('--segment <json>', 'subscribers matching these filters; default {} = every subscriber')
    .option('--chats <ids>', 'exactly these chat ids, comma-separated')
    .option('--chats-file <file>', 'exactly these chat ids, one per line (or a JSON array)')
    .option('--frequency-cap <n>', 'skip subscribers who already got this many broadcasts in the last 24 h')
    .option('--allow-paid', 'send with allow_paid_broadcast (paid, up to 1000 messages/s)')
    .option('--deliver-at-local <time>', 'send at this time in each recipient\'s time zone: HH:MM (the next one) or YYYY-MM-DDTHH:MM')
    .option('--default-time-zone <zone>', 'with --deliver-at-local: the IANA zone of recipients without one (default UTC)')
    .option('--track', 'tracked links and buttons: each recipient\'s links count their clicks (needs BQ_PUBLIC_URL and BQ_LINK_SECRET on the daemon)')
    .option('--ab-test <json>', `test, then send the winner (needs --variants-file with 2+ variants and --track): ${AB_TEST_HELP}`)
    .option('--send', 'queue it now instead of leaving a draft');
  dbCommand(create);
  examples(create, [
    "bqctl broadcast create --title 'Nov promo' --text 'Hello <b>VIPs</b>' --parse-mode HTML --segment '{\"tags_any\":[\"vip\"]}'",
    "bqctl broadcast create --title 'A/B test' --variants-file variants.json --frequency-cap 2 --send",
    "bqctl broadcast create --title 'Spring' --variants-file variants.json --track --ab-test '{\"sample_percent\": 10, \"metric\": \"ctr\", \"decide_after\": \"2h\"}' --send",
    "bqctl broadcast create --title 'Ops' --message-file photo.json --chats 1,2,3 --send --run-at 30m",
    "bqctl broadcast create --title 'Morning' --text 'Good morning' --deliver-at-local 09:00 --default-time-zone Europe/Berlin --send",
  ]);
  create.action(async (opts: CreateOptions) => {
    if (opts.variantsFile !== undefined && (opts.text !== undefined || opts.messageFile !== undefined)) throw new UsageError('give either a message (--text / --message-file) or --variants-file, not both');
    const message = opts.variantsFile === undefined ? await messageFromFlags(opts) : undefined;
    const variants = opts.variantsFile !== undefined ? await variantsFromFile(opts.variantsFile) : undefined;
    if (!message && !variants) throw new UsageError('give the content: --text, --message-file or --variants-file');
    const audience = (await audienceFromFlags(opts)) ?? {};
    const cap = opts.frequencyCap !== undefined ? intInRange(opts.frequencyCap, '--frequency-cap', 1, 1_000_000) : null;
    try {
      parseDeliverAtLocal(opts.deliverAtLocal, '--deliver-at-local');
      if (opts.defaultTimeZone !== undefined) parseTimeZone(opts.defaultTimeZone, '--default-time-zone');
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    const abTest = opts.abTest !== undefined ? abTestFromFlag(opts.abTest, { variants, track: opts.track === true, deliver_at_local: opts.deliverAtLocal }) : null;
    const job = jobOptionsFromFlags(opts);
    if (!opts.send && (opts.queue ?? opts.priority ?? opts.runAt ?? opts.maxAttempts) !== undefined) throw new UsageError('--queue, --priority, --run-at and --max-attempts apply with --send');
    await runDb(create, async ({ pool, config }) => {
      const r = await createBroadcast(pool, {
        title: opts.title, message, variants, audience, frequencyCap: cap, allowPaidBroadcast: opts.allowPaid === true,
        deliverAtLocal: opts.deliverAtLocal ?? null, defaultTimeZone: opts.defaultTimeZone ?? null, track: opts.track === true, abTest,
        send: opts.send === true ? { queue: job.queue, priority: job.priority, runAt: job.runAt, maxAttempts: job.maxAttempts ?? config.maxAttempts } : null,
      });
      if (opts.json) return printJson(r);
      process.stderr.write(r.job_id
        ? `broadcast ${r.broadcast_id} queued as job ${r.job_id}; follow it with: bqctl watch ${r.broadcast_id}\n`
        : `broadcast ${r.broadcast_id} saved as a draft; send it with: bqctl enqueue broadcast --broadcast-id ${r.broadcast_id}\n`);
      out(String(r.broadcast_id));
    });
  });

  const list = group.command('list').description('Broadcasts, newest first.')
    .option('--status <status>', `only these statuses (${BROADCAST_STATUSES.join(', ')}); comma-separate several`)
    .option('--limit <n>', 'at most this many rows', '50')
    .option('--offset <n>', 'skip this many rows first', '0');
  dbCommand(list);
  examples(list, ['bqctl broadcast list', 'bqctl broadcast list --status sending,paused --json']);
  list.action(async (opts: { status?: string; limit: string; offset: string; json?: boolean }) => {
    const statuses = opts.status?.split(',').map((s) => s.trim());
    const bad = statuses?.find((s) => !BROADCAST_STATUSES.includes(s));
    if (bad !== undefined) throw new UsageError(`--status must be one of ${BROADCAST_STATUSES.join(', ')}, got ${JSON.stringify(bad)}`);
    const limit = intInRange(opts.limit, '--limit', 1, 10_000);
    const offset = intInRange(opts.offset, '--offset', 0, 1_000_000_000);
    await runDb(list, async ({ pool }) => {
      const rows = await listBroadcastRows(pool, statuses ?? null, limit, offset);
      if (opts.json) return printJson({ broadcasts: rows, limit, offset });
      out(table(rows.map((r) => ({ id: r.broadcast_id, title: r.title, status: r.status, total: r.total, sent: r.sent, blocked: r.blocked, failed: r.failed, skipped: r.skipped, unknown: r.unknown, created: r.created_at }))));
    });
  });

  const show = group.command('show').description('One broadcast: its row, and its recipients by status, outcome and reason code.').argument('<broadcast_id>');
  dbCommand(show);
  examples(show, ['bqctl broadcast show 42', "bqctl broadcast show 42 --json | jq '.outcomes'"]);
  show.action(async (rawId: string, opts: { json?: boolean }) => {
    const id = positiveInt(rawId, 'broadcast id');
    await runDb(show, async ({ pool }) => {
      const b = await broadcastProgress(pool, id);
      if (!b) throw new Error(`broadcast ${id} does not exist`);
      // The reason codes are what `resend --failed-class` takes.
      const outcomes = await deliveryOutcomes(pool, id);
      if (opts.json) return printJson({ ...b, outcomes });
      out([
        `broadcast ${b.broadcast_id}: ${b.title ?? '(untitled)'} — ${b.status}${b.failure_reason ? ` (${b.failure_reason})` : ''}`,
        `processed ${n(b.done)}/${n(b.total)}: sent ${n(b.sent)}, blocked ${n(b.blocked)}, failed ${n(b.failed)}, skipped ${n(b.skipped)}, unknown ${n(b.unknown)}`,
        ...(b.deliver_at_local ? [`delivers at ${b.deliver_at_local} in each recipient's time zone (default ${b.default_time_zone})`] : []),
        ...(b.waiting > 0 ? [`waiting ${n(b.waiting)}, the next due at ${b.next_due_at?.toISOString()}`] : []),
        `job ${b.job_id ?? '-'}; created ${b.created_at.toISOString()}; started ${b.started_at?.toISOString() ?? '-'}; finished ${b.finished_at?.toISOString() ?? '-'}`,
        `audience ${JSON.stringify(b.audience)}${b.frequency_cap ? `; frequency cap ${b.frequency_cap}/24h` : ''}${b.allow_paid_broadcast ? '; paid broadcast' : ''}`,
        `message ${JSON.stringify(b.message ?? b.variants)}`,
        '',
        'Recipients by outcome and reason',
        table(outcomes),
      ].join('\n'));
    });
  });

  const report = group.command('report').description('What worked: delivered, unique clickers, CTR, replies, opt-outs and blocks (72 h), per variant and per link, and the A/B winner on the test\'s metric.').argument('<broadcast_id>');
  dbCommand(report);
  examples(report, ['bqctl broadcast report 42', "bqctl broadcast report 42 --json | jq '.variants[] | {name, ctr}'"]);
  report.action(async (rawId: string, opts: { json?: boolean }) => {
    const id = positiveInt(rawId, 'broadcast id');
    await runDb(report, async ({ pool }) => {
      const r = await broadcastReport(pool, id);
      if (!r) throw new Error(`broadcast ${id} does not exist`);
      if (opts.json) return printJson(r);
      const pct = (x: number | null) => (x === null ? '-' : `${(x * 100).toFixed(2)} %`);
      const row = (name: string, c: EngagementCounts) => ({
        variant: name, delivered: n(c.delivered), clickers: n(c.unique_clickers), clicks: n(c.clicks), ctr: pct(c.ctr),
        presses: n(c.presses), replies: n(c.replies), repliers: `${n(c.repliers)} (${pct(c.reply_rate)})`, reactions: n(c.reactions), opt_outs: `${n(c.opt_outs)} (${pct(c.opt_out_rate)})`, blocks: `${n(c.blocks)} (${pct(c.block_rate)})`,
      });
      const rest = r.rest ? [row(`rest (${r.rest.variant ?? 'waiting'})`, r.rest)] : [];
      const lines = [`broadcast ${r.broadcast_id}: ${r.title ?? '(untitled)'} — ${r.status}${r.track ? '' : ' (links not tracked)'}`, '', table([...r.variants.map((v) => row(v.name, v)), ...rest, row('all', r)])];
      if (r.ab_test) lines.push('', `A/B on ${METRIC_LABELS[r.ab_test.metric]}, ${r.ab_test.better} is better (${r.ab_test.test}, alpha ${r.ab_test.alpha}): p = ${r.ab_test.p_value?.toPrecision(3) ?? '-'}; winner: ${r.winner ?? 'none (no significant difference)'}`);
      const plan = r.ab_test?.plan;
      const decision = r.ab_test?.decision;
      if (plan) {
        lines.push(decision
          ? `Test, then send the winner: sample ${plan.sample_percent} %, decided ${decision.decided_at.toISOString()} (p = ${decision.p_value?.toPrecision(3) ?? '-'}): ${decision.winner ? `winner ${decision.winner}` : `no winner, fallback ${plan.fallback}`}; the rest got ${decision.sent_variant}`
          : `Test, then send the winner: sample ${plan.sample_percent} %, deciding at ${plan.decide_at?.toISOString() ?? `${plan.decide_after} after the start`}; ${n(r.rest?.waiting ?? 0)} recipients wait`);
      }
      if (r.links.length) lines.push('', 'Links', table(r.links.map((l) => ({ link: l.index, url: l.url, clicks: n(l.clicks), clickers: n(l.unique_clickers) }))));
      out(lines.join('\n'));
    });
  });

  registerBroadcastControl(group);
}
