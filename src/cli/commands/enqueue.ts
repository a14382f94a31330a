// bqctl enqueue send / broadcast: the same INSERT any service can do from SQL, with the payload
// checked first so a typo fails here, not as a failed job later.
import type { Command } from 'commander';
import { audienceFromFlags, parseChatList, positiveInt } from '../args.js';
import { dbCommand, examples, out, runDb } from '../command.js';
import { printJson } from '../format.js';
import { addJobFlags, addMessageFlags, jobOptionsFromFlags, messageFromFlags, type JobFlags, type MessageFlags } from '../job-flags.js';
import { enqueueJob, type EnqueuedJob } from '../../queue/enqueue.js';
import { FINAL_STATUSES, broadcastStatus } from '../../broadcast/broadcasts-store.js';
import { enqueueBroadcast } from '../../broadcast/control.js';
import { UsageError } from '../../errors.js';

export function registerEnqueue(program: Command): void {
  const enqueue = program.command('enqueue').description('Put a job on the queue (send one message, or start a broadcast).');
  examples(enqueue, ["bqctl enqueue send --chat 123456 --text 'Your order shipped'", 'bqctl enqueue broadcast --broadcast-id 42', 'bqctl enqueue broadcast --help']);

  const send = addJobFlags(addMessageFlags(enqueue.command('send').description('One message to one chat: the low-latency path.'), '--json-file'))
    .requiredOption('--chat <chat_id>', 'the recipient chat id');
  dbCommand(send);
  examples(send, [
    "bqctl enqueue send --chat 123456 --text 'Your order shipped'",
    "bqctl enqueue send --chat 123456 --text '<b>Sale</b> today' --parse-mode HTML --priority 10",
    'bqctl enqueue send --chat -1001234567890 --json-file photo.json --run-at 10m',
  ]);
  send.action(async (opts: MessageFlags & JobFlags & { chat: string; json?: boolean }) => {
    const chats = parseChatList(opts.chat, '--chat');
    if (chats.length !== 1) throw new UsageError('--chat takes one chat id; for several, use enqueue broadcast --chats');
    const message = await messageFromFlags(opts);
    if (!message) throw new UsageError('give the message with --text or --json-file');
    const options = jobOptionsFromFlags(opts);
    await runDb(send, async ({ pool, config }) => {
      const job = await enqueueJob(pool, 'send', { chat_id: chats[0], message }, { ...options, maxAttempts: options.maxAttempts ?? config.maxAttempts });
      report(job, opts.json);
    });
  });

  const broadcast = addJobFlags(addMessageFlags(enqueue.command('broadcast').description('A broadcast: a stored one by id, or a message to chats or a segment.'), '--json-file'))
    .option('--broadcast-id <id>', 'a broadcast created with `bqctl broadcast create` (or an INSERT INTO broadcasts)')
    .option('--title <title>', 'a title for an inline broadcast')
    .option('--chats <ids>', 'recipient chat ids, comma-separated')
    .option('--chats-file <file>', 'recipient chat ids, one per line (or a JSON array)')
    .option('--segment <json>', 'subscribers matching these filters, e.g. \'{"tags_any":["vip"]}\' (see bqctl subscribers count --help)');
  dbCommand(broadcast);
  examples(broadcast, [
    'bqctl enqueue broadcast --broadcast-id 42',
    "bqctl enqueue broadcast --text 'Hello <b>all</b>' --parse-mode HTML --chats 1,2,3",
    'bqctl enqueue broadcast --json-file promo.json --segment \'{"tags_any":["vip"],"languages":["en"]}\' --run-at 2024-12-01T09:00:00Z',
    'bqctl enqueue broadcast --text \'Maintenance tonight\' --chats-file chats.txt --json',
  ]);
  broadcast.action(async (opts: MessageFlags & JobFlags & { broadcastId?: string; title?: string; chats?: string; chatsFile?: string; segment?: string; json?: boolean }) => {
    const options = jobOptionsFromFlags(opts);
    if (opts.broadcastId !== undefined) {
      if ([opts.text, opts.parseMode, opts.jsonFile, opts.title, opts.chats, opts.chatsFile, opts.segment].some((v) => v !== undefined)) {
        throw new UsageError('--broadcast-id takes the message and audience from the broadcast; drop --text, --parse-mode, --json-file, --title, --chats and --segment');
      }
      const broadcastId = positiveInt(opts.broadcastId, 'broadcast id');
      await runDb(broadcast, async ({ pool, config }) => {
        const status = await broadcastStatus(pool, broadcastId);
        if (status === null) throw new Error(`broadcast ${broadcastId} does not exist`);
        if (FINAL_STATUSES.includes(status)) throw new Error(`broadcast ${broadcastId} is ${status}; use \`bqctl broadcast resend\` to send to some of its recipients again`);
        const job = await enqueueBroadcast(pool, broadcastId, { ...options, maxAttempts: options.maxAttempts ?? config.maxAttempts });
        report(job, opts.json, broadcastId);
      });
      return;
    }
    const message = await messageFromFlags(opts);
    if (!message) throw new UsageError('give --broadcast-id, or a message with --text or --json-file');
    const audience = await audienceFromFlags(opts);
    if (!audience) throw new UsageError('say who receives it: --chats, --chats-file or --segment (\'{}\' for every subscriber)');
    // Inline payload, as from SQL: the daemon creates the broadcasts row when it first runs the job.
    const payload = audience.chat_ids && !audience.exclude_chat_ids
      ? { message, chat_ids: audience.chat_ids, ...(opts.title ? { title: opts.title } : {}) }
      : { message, audience, ...(opts.title ? { title: opts.title } : {}) };
    await runDb(broadcast, async ({ pool, config }) => {
      const job = await enqueueJob(pool, 'broadcast', payload, { ...options, maxAttempts: options.maxAttempts ?? config.maxAttempts });
      report(job, opts.json);
    });
  });
}

/**
 * Enqueues the job that drives a stored broadcast, keyed so a broadcast has at most one unfinished
 * job, and marks a draft as queued.
 */
function report(job: EnqueuedJob, json: boolean | undefined, broadcastId?: number): void {
  if (json) return printJson({ job_id: job.jobId, status: job.status, existing: job.existing, ...(broadcastId ? { broadcast_id: broadcastId } : {}) });
  // Only the id on stdout, so `id=$(bqctl enqueue …)` works; the note goes to stderr.
  if (job.existing) process.stderr.write(`note: an unfinished job for this broadcast already exists (job ${job.jobId}, ${job.status}); no new job created\n`);
  out(String(job.jobId));
}
