/**
 * Every default, once, in the library's units (milliseconds, days). The daemon's settings
 * (config/load.ts: environment and flags, in seconds where a person types them) and the
 * library's options (BroadcastQueueOptions) both fall back to these, so the two cannot drift.
 */
export const DEFAULTS = Object.freeze({
  queues: Object.freeze(['broadcasts']) as readonly string[],
  concurrency: 2,
  /** As many as the slots finish in 10 ms at the jobs' recent duration: none for broadcasts. */
  prefetch: 'auto' as number | 'auto',
  maxAttempts: 3,
  /** Telegram's limit for one bot without paid broadcasts. */
  rateLimit: 30,
  /** Telegram's limit with allow_paid_broadcast. */
  paidRateLimit: 1000,
  delivery: 'at-most-once' as 'at-most-once' | 'at-least-once',
  migrate: true,
  sweepMs: 30_000,
  /** At least three sweeps: see rescueAfterMsFor. */
  rescueAfterMs: 120_000,
  shutdownTimeoutMs: 25_000,
  retryBaseMs: 60_000,
  retryMaxMs: 3_600_000,
  /** 0 turns the cleaner off. */
  cleanupDays: 7,
  /** 0 keeps finished broadcasts and their ledger forever. */
  ledgerRetentionDays: 30,
  telegramApiRoot: 'https://api.telegram.org/',
  httpHost: '127.0.0.1',
  httpPort: 3000,
  embeddedPort: 0,
  /** The public redirect listener of tracked links: loopback until said otherwise (a proxy in front). */
  publicHost: '127.0.0.1',
  publicPort: 3001,
  /** Tracked links and buttons stop being tracked this many days after their broadcast finished; 0: never. The ledger retention deletes finished broadcasts after 30 days too. */
  linkTtlDays: 30,
  /** Clicks and presses are written together this often. */
  clickFlushMs: 250,
  logLevel: 'info',
  /** The subscriber capture (queue.telegraf(), queue.recordUpdate()): see CaptureOptions in config/options.ts. */
  capture: Object.freeze({
    optOutCommands: Object.freeze(['stop']) as readonly string[],
    optInCommands: Object.freeze(['start']) as readonly string[],
    optOutReply: 'You will no longer receive broadcasts from this bot. Send /start to receive them again.' as string | null,
    /** None: the bot's own /start handler answers. */
    optInReply: null as string | null,
    /** Minute precision is all last_active_at needs; a second bounds what a crash can lose. */
    flushMs: 1_000,
  }),
});

/**
 * The hung window when none is given: 120 s, or three sweeps if that is longer. A window shorter
 * than a few sweeps would hand back the jobs of a daemon that is merely a little late, so a long
 * sweep (tests use an hour to switch it off) stretches the default instead of being refused.
 */
export function rescueAfterMsFor(sweepMs: number): number {
  return Math.max(DEFAULTS.rescueAfterMs, 3 * sweepMs);
}
