// Flags shared by the commands that create work: the message (--text, --parse-mode, a JSON file)
// and the job's options (--queue, --priority, --run-at, --max-attempts). Everything is validated
// here, before a row is written, with the same checks the daemon applies (parseMessage).
import type { Command } from 'commander';
import type { Config } from '../config/load.js';
import { DEFAULTS } from '../config/defaults.js';
import type { EnqueueOptions } from '../queue/enqueue.js';
import { validateContent, type Variant } from '../broadcast/fanout.js';
import { parseMessage } from '../telegram/message.js';
import { asUsage, intInRange, parseRunAt, readJsonFile } from './args.js';
import { UsageError } from '../errors.js';

export interface MessageFlags { text?: string; parseMode?: string; jsonFile?: string; messageFile?: string }
export interface JobFlags { queue?: string; priority?: string; runAt?: string; maxAttempts?: string }

export function addMessageFlags(command: Command, fileFlag: '--json-file' | '--message-file'): Command {
  return command
    .option('--text <text>', 'message text (up to 4096 characters)')
    .option('--parse-mode <mode>', 'HTML, MarkdownV2 or Markdown')
    .option(`${fileFlag} <file>`, 'a Bot API message object as JSON ({"photo": "…", "caption": "…", "reply_markup": …}); --text and --parse-mode override its fields');
}

export function addJobFlags(command: Command): Command {
  return command
    .option('--queue <queue>', 'queue to put the job on (default broadcasts)')
    .option('--priority <n>', 'higher runs first (default 0)')
    .option('--run-at <when>', 'not before this ISO date-time, or a delay such as 10m')
    .option('--max-attempts <n>', `attempts before the job fails (default BQ_MAX_ATTEMPTS, ${DEFAULTS.maxAttempts})`);
}

/**
 * The message the flags describe, validated with parseMessage; undefined when no message flag was
 * given. A file gives the base object and --text / --parse-mode override its fields.
 */
export async function messageFromFlags(opts: MessageFlags): Promise<Record<string, unknown> | undefined> {
  const file = opts.jsonFile ?? opts.messageFile;
  if (opts.text === undefined && file === undefined) {
    if (opts.parseMode !== undefined) throw new UsageError('--parse-mode needs --text or a message file');
    return undefined;
  }
  let message: Record<string, unknown> = {};
  if (file !== undefined) {
    const parsed = await readJsonFile(file);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UsageError(`${file} must hold a JSON object (a Bot API message), got ${Array.isArray(parsed) ? 'an array' : typeof parsed}`);
    message = parsed as Record<string, unknown>;
  }
  if (opts.text !== undefined) message = { ...message, text: opts.text };
  if (opts.parseMode !== undefined) message = { ...message, parse_mode: opts.parseMode };
  asUsage(() => parseMessage(message, file !== undefined ? file : 'message'));
  return message;
}

/** A variants file: [{"name": "a", "weight": 1, "message": {...}}, …], checked as the daemon will. */
export async function variantsFromFile(file: string): Promise<Variant[]> {
  const parsed = await readJsonFile(file);
  if (!Array.isArray(parsed)) throw new UsageError(`${file} must hold a JSON array of variants [{"name", "weight", "message"}], got ${typeof parsed}`);
  asUsage(() => validateContent({ message: null, variants: parsed as Variant[] }, file));
  return parsed as Variant[];
}

const QUEUE_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;

/** The job options the flags describe; --max-attempts defaults to BQ_MAX_ATTEMPTS. */
export function jobOptionsFromFlags(opts: JobFlags, config?: Pick<Config, 'maxAttempts'>): EnqueueOptions {
  const options: EnqueueOptions = {};
  if (opts.queue !== undefined) {
    if (!QUEUE_NAME.test(opts.queue)) throw new UsageError(`--queue must be 1 to 128 letters, digits, _ . : or -, got ${JSON.stringify(opts.queue)}`);
    options.queue = opts.queue;
  }
  if (opts.priority !== undefined) options.priority = intInRange(opts.priority, '--priority', -1_000_000, 1_000_000);
  if (opts.runAt !== undefined) options.runAt = parseRunAt(opts.runAt);
  if (opts.maxAttempts !== undefined) options.maxAttempts = intInRange(opts.maxAttempts, '--max-attempts', 1, 100);
  else if (config) options.maxAttempts = config.maxAttempts;
  return options;
}
