import { ConfigError } from '../errors.js';
import { DEFAULTS, rescueAfterMsFor } from './defaults.js';
import { checkSetting, crossProblems, type RuleKey } from './validate.js';
import type { Config } from './load.js';
import type { Update as CaptureUpdate } from '../telegram/update.js';

/** The tunable options of a BroadcastQueue; each default is in DEFAULTS and said here in its words. */
export interface QueueSettings {
  /** Jobs run at once. Defaults to 2. */
  concurrency?: number;
  /**
   * Jobs claimed ahead of free slots, so short jobs start without a round trip each. A prefetched
   * job that waits over a second is handed back for other daemons. 0 turns it off. Defaults to
   * 'auto': as many as the slots finish in 10 ms at the recent jobs' duration (at most 500), so
   * none while jobs take 10 ms × concurrency or longer (a broadcast runs for minutes).
   */
  prefetch?: number | 'auto';
  /** Queues this instance works. Defaults to ['broadcasts']. */
  queues?: string[];
  /** Messages per second per bot, shared by every daemon. Defaults to 30. */
  rateLimit?: number;
  /** For broadcasts with allow_paid_broadcast. Defaults to 1000. */
  paidRateLimit?: number;
  /** Defaults to 'at-most-once': a send whose outcome a crash hid is not resent. */
  delivery?: 'at-most-once' | 'at-least-once';
  /** Apply pending migrations in start(). Defaults to true. */
  migrate?: boolean;
  /** Attempts for jobs enqueued through this object. Defaults to 3. */
  maxAttempts?: number;
  /** The fallback sweep: registers, rescues dead daemons' jobs, claims missed due jobs. Defaults to 30 000 ms. */
  sweepMs?: number;
  /** A daemon that holds its lock but has not swept for this long is hung. Defaults to 120 000 ms, or three sweeps if that is longer. */
  rescueAfterMs?: number;
  /** How long stop() lets running jobs finish before handing them back. Defaults to 25 000 ms. */
  shutdownTimeoutMs?: number;
  /** Wait before the second attempt, doubling after. Defaults to 60 000 ms. */
  retryBaseMs?: number;
  /** Longest wait between attempts. Defaults to 3 600 000 ms. */
  retryMaxMs?: number;
  /** Finished jobs older than this many days are deleted; 0 turns the cleaner off. Defaults to 7. */
  cleanupDays?: number;
  /**
   * Finished broadcasts older than this many days, and their ledger rows, are deleted (in small
   * batches, see broadcast/retention.ts); 0 keeps them forever. Defaults to 30: the frequency cap
   * and the statistics read the last 24 h, reports are read in the weeks after a send.
   */
  ledgerRetentionDays?: number;
}

/** How queue.telegraf() and queue.recordUpdate() keep broadcast_subscribers (src/engagement/capture.ts). */
export interface CaptureOptions {
  /** Commands (with or without the slash) that opt a private chat out of every later broadcast. Defaults to ['stop']. */
  optOutCommands?: string[];
  /** Commands that opt it back in. Defaults to ['start']. */
  optInCommands?: string[];
  /** The middleware's answer to an opt-out; null answers nothing. Defaults to a sentence saying how to come back. */
  optOutReply?: string | null;
  /** The middleware's answer to an opt-in; null answers nothing. Defaults to null (the bot's own /start answers). */
  optInReply?: string | null;
  /** How often recorded updates are written, coalesced, in one transaction. Defaults to 1 000 ms. */
  flushMs?: number;
  /**
   * The IANA zone of the private chat an update comes from, when the bot knows it (its own records, a
   * /timezone answer, a guess from language_code): written to the subscriber's time_zone with the next
   * flush. null or undefined leaves the stored zone alone. Called once per update from a private chat;
   * an unknown zone, or a throw, drops that update's zone with a warning and nothing else.
   */
  timeZone?: (update: CaptureUpdate) => string | null | undefined;
}

export type ResolvedCaptureOptions = {
  readonly [K in keyof CaptureOptions]-?: K extends 'optOutReply' | 'optInReply' ? string | null : K extends 'flushMs' ? number : K extends 'timeZone' ? NonNullable<CaptureOptions['timeZone']> | null : readonly string[];
};

const COMMAND = /^\/?[A-Za-z0-9_]{1,32}$/;

/** The capture options checked and completed from DEFAULTS.capture; throws one ConfigError naming every problem. */
export function resolveCaptureOptions(options: CaptureOptions = {}): ResolvedCaptureOptions {
  const problems: string[] = [];
  const commands = (name: string, value: unknown): void => {
    if (value === undefined) return;
    if (!Array.isArray(value) || !value.every((c) => typeof c === 'string' && COMMAND.test(c))) problems.push(`capture.${name} must be a list of bot commands (1-32 letters, digits or _, an optional leading /), got ${JSON.stringify(value)}`);
  };
  const reply = (name: string, value: unknown): void => {
    if (value === undefined || value === null) return;
    if (typeof value !== 'string' || value.trim() === '' || value.length > 4096) problems.push(`capture.${name} must be null or a text of 1 to 4096 characters, got ${typeof value === 'string' ? `${value.length} characters` : typeof value}`);
  };
  if (options.timeZone !== undefined && options.timeZone !== null && typeof options.timeZone !== 'function') problems.push(`capture.timeZone must be a function of the update returning an IANA time zone, got ${typeof options.timeZone}`);
  commands('optOutCommands', options.optOutCommands);
  commands('optInCommands', options.optInCommands);
  reply('optOutReply', options.optOutReply);
  reply('optInReply', options.optInReply);
  if (options.flushMs !== undefined) {
    const problem = checkSetting('captureFlushMs', options.flushMs, 'ms');
    if (problem) problems.push(`capture.flushMs ${problem}`);
  }
  const strip = (list: string[]) => list.map((c) => c.replace(/^\//, '').toLowerCase());
  const optOut = strip(options.optOutCommands ?? [...DEFAULTS.capture.optOutCommands]);
  const optIn = strip(options.optInCommands ?? [...DEFAULTS.capture.optInCommands]);
  const both = optOut.filter((c) => optIn.includes(c));
  if (both.length) problems.push(`capture: /${both.join(', /')} cannot both opt out and opt in`);
  if (problems.length) throw new ConfigError(problems);
  return {
    optOutCommands: optOut,
    optInCommands: optIn,
    optOutReply: options.optOutReply === undefined ? DEFAULTS.capture.optOutReply : options.optOutReply,
    optInReply: options.optInReply === undefined ? DEFAULTS.capture.optInReply : options.optInReply,
    flushMs: options.flushMs ?? DEFAULTS.capture.flushMs,
    timeZone: options.timeZone ?? null,
  };
}

/** Tracked links and buttons (track: true broadcasts); both fields are needed. */
export interface TrackingOptions {
  /** The public address of the redirect listener, e.g. https://t.example.com; links are <publicUrl>/r/<token>. */
  publicUrl: string;
  /** The key of the link tokens, at least 32 characters, of its own (not the admin token). */
  linkSecret: string;
  /** Days after a broadcast finished that its links redirect and its presses count (BQ_LINK_TTL_DAYS); 0: forever. Defaults to 30. */
  linkTtlDays?: number;
}

/** The tracking options checked; throws one ConfigError naming every problem, secrets never echoed. */
export function checkTrackingOptions(options: TrackingOptions | undefined): Required<TrackingOptions> | null {
  if (options === undefined) return null;
  const problems: string[] = [];
  for (const [name, key] of [['publicUrl', 'publicUrl'], ['linkSecret', 'linkSecret']] as const) {
    const problem = checkSetting(key, options[name], 'ms');
    if (problem) problems.push(`tracking.${name} ${problem}`);
  }
  const linkTtlDays = options.linkTtlDays ?? DEFAULTS.linkTtlDays;
  const ttlProblem = checkSetting('linkTtlDays', linkTtlDays);
  if (ttlProblem) problems.push(`tracking.linkTtlDays ${ttlProblem}`);
  if (problems.length) throw new ConfigError(problems);
  return { publicUrl: options.publicUrl.trim().replace(/\/+$/, ''), linkSecret: options.linkSecret, linkTtlDays };
}

/** Every setting with its default filled in: what a queue actually runs with. */
export type ResolvedQueueSettings = { readonly [K in keyof QueueSettings]-?: K extends 'queues' ? readonly string[] : NonNullable<QueueSettings[K]> };

const SETTING_KEYS = ['concurrency', 'prefetch', 'queues', 'rateLimit', 'paidRateLimit', 'delivery', 'migrate', 'maxAttempts', 'sweepMs', 'rescueAfterMs', 'shutdownTimeoutMs', 'retryBaseMs', 'retryMaxMs', 'cleanupDays', 'ledgerRetentionDays'] as const satisfies readonly (keyof QueueSettings)[];

/** The parts of the library's other options that can be impossible, checked by the daemon's rules too. */
interface CheckedOptions extends QueueSettings {
  telegram?: unknown;
  webhook?: { url?: unknown };
  embedded?: { port?: unknown };
}

/**
 * The library's options checked by the daemon's rules (config/validate.ts) and completed from
 * DEFAULTS. Throws one ConfigError naming every impossible option, as the daemon's start-up does.
 */
export function resolveQueueOptions(options: CheckedOptions): ResolvedQueueSettings {
  const problems: string[] = [];
  const check = (name: string, key: RuleKey, value: unknown) => {
    if (value === undefined) return;
    const problem = checkSetting(key, value, 'ms');
    if (problem) problems.push(`${name} ${problem}`);
  };
  for (const key of SETTING_KEYS) {
    if (key === 'migrate') {
      if (options.migrate !== undefined && typeof options.migrate !== 'boolean') problems.push(`migrate must be true or false, got ${typeof options.migrate}`);
    } else check(key, key, options[key]);
  }
  // A Telegraf instance is checked by Telegram itself at start (getMe); a token we can check here.
  const telegram = options.telegram as { token?: unknown; apiRoot?: unknown; telegram?: unknown } | undefined;
  if (telegram && Object.getPrototypeOf(telegram) === Object.prototype && !('telegram' in telegram)) {
    check('telegram.token', 'telegramBotToken', telegram.token ?? null);
    check('telegram.apiRoot', 'telegramApiRoot', telegram.apiRoot);
  }
  if (options.webhook) check('webhook.url', 'webhookUrl', options.webhook.url ?? null);
  if (options.embedded) check('embedded.port', 'embeddedPort', options.embedded.port);
  if (problems.length) throw new ConfigError(problems);

  const sweepMs = options.sweepMs ?? DEFAULTS.sweepMs;
  const resolved: ResolvedQueueSettings = {
    concurrency: options.concurrency ?? DEFAULTS.concurrency,
    prefetch: options.prefetch ?? DEFAULTS.prefetch,
    queues: options.queues ?? DEFAULTS.queues,
    rateLimit: options.rateLimit ?? DEFAULTS.rateLimit,
    paidRateLimit: options.paidRateLimit ?? DEFAULTS.paidRateLimit,
    delivery: options.delivery ?? DEFAULTS.delivery,
    migrate: options.migrate ?? DEFAULTS.migrate,
    maxAttempts: options.maxAttempts ?? DEFAULTS.maxAttempts,
    sweepMs,
    rescueAfterMs: options.rescueAfterMs ?? rescueAfterMsFor(sweepMs),
    shutdownTimeoutMs: options.shutdownTimeoutMs ?? DEFAULTS.shutdownTimeoutMs,
    retryBaseMs: options.retryBaseMs ?? DEFAULTS.retryBaseMs,
    retryMaxMs: options.retryMaxMs ?? DEFAULTS.retryMaxMs,
    cleanupDays: options.cleanupDays ?? DEFAULTS.cleanupDays,
    ledgerRetentionDays: options.ledgerRetentionDays ?? DEFAULTS.ledgerRetentionDays,
  };
  const crossed = crossProblems(resolved, (key) => key, 'ms');
  if (crossed.length) throw new ConfigError(crossed);
  return resolved;
}

/** The daemon's settings (environment and flags) as the library's options: the daemon is a library user. */
export function settingsFromConfig(config: Config): QueueSettings {
  const settings: QueueSettings = {};
  for (const key of SETTING_KEYS) if (key in config) Object.assign(settings, { [key]: config[key as keyof Config] });
  return settings;
}
