/**
 * The one validation of settings that can never work, used by the daemon and bqctl (config/load.ts,
 * which names the environment variable or flag) and by the library (config/options.ts, which names
 * the option). Each rule returns the problem without the name, so both say the same words:
 *   BQ_CLEANUP_DAYS must be a whole number from 0 to 3650, got -1
 *   cleanupDays must be a whole number from 0 to 3650, got -1
 * Durations are checked in milliseconds and shown in the unit the reader typed: seconds for the
 * daemon, milliseconds for the library. No rule echoes a secret.
 */

/** How a duration is shown in a problem: the daemon's settings are seconds, the library's options milliseconds. */
export type DurationUnit = 'seconds' | 'ms';

type Rule = (value: unknown, unit: DurationUnit) => string | undefined;

export const QUEUE_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;
const BOT_TOKEN = /^\d+:[A-Za-z0-9_-]{20,}$/;

function shown(value: unknown): string {
  return typeof value === 'number' ? String(value) : JSON.stringify(value) ?? String(value);
}

function whole(min: number, max: number): Rule {
  return (value) => (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max ? undefined : `must be a whole number from ${min} to ${max}, got ${shown(value)}`);
}

function duration(minMs: number, maxMs: number): Rule {
  return (value, unit) => {
    if (typeof value === 'number' && Number.isFinite(value) && value >= minMs && value <= maxMs) return undefined;
    const inUnit = (ms: number) => (unit === 'seconds' ? ms / 1000 : ms);
    return `must be between ${inUnit(minMs)} and ${inUnit(maxMs)} ${unit}, got ${typeof value === 'number' ? inUnit(value) : shown(value)}`;
  };
}

function oneOf(values: readonly string[]): Rule {
  return (value) => (typeof value === 'string' && values.includes(value) ? undefined : `must be one of ${values.join(', ')}, got ${shown(value)}`);
}

/** A URL's problem, or undefined; the value is never echoed, since a URL may carry a password. */
function httpUrl(value: unknown): { problem?: string; url?: URL } {
  if (typeof value !== 'string') return { problem: `must be a URL string, got ${value === null || value === undefined ? 'nothing' : typeof value}` };
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    return { problem: 'is not a valid URL' };
  }
  return ['http:', 'https:'].includes(url.protocol) ? { url } : { problem: `must be a http: or https: URL, got ${url.protocol}` };
}

export const RULES = {
  concurrency: whole(1, 1000),
  prefetch: (value, unit) => (value === 'auto' ? undefined : whole(0, 10_000)(value, unit)),
  maxAttempts: whole(1, 100),
  // Telegram allows 30/s per bot and 1000/s paid; higher figures make sense only against a stand-in
  // or a local server, which the tests and benchmarks use.
  rateLimit: whole(1, 100_000),
  paidRateLimit: whole(1, 100_000),
  delivery: oneOf(['at-most-once', 'at-least-once']),
  queues: (value) => {
    if (!Array.isArray(value) || !value.every((q) => typeof q === 'string')) return `must be a list of queue names, got ${shown(value)}`;
    if (value.length === 0) return 'must name at least one queue';
    const wrong = value.filter((q) => !QUEUE_NAME.test(q));
    return wrong.length ? `has invalid queue names (letters, digits, _ . : - only): ${wrong.join(', ')}` : undefined;
  },
  sweepMs: duration(50, 3_600_000),
  rescueAfterMs: duration(100, 86_400_000),
  shutdownTimeoutMs: duration(0, 3_600_000),
  retryBaseMs: duration(0, 86_400_000),
  retryMaxMs: duration(0, 7 * 86_400_000),
  // 0 turns each off, in the daemon and the library alike.
  cleanupDays: whole(0, 3650),
  ledgerRetentionDays: whole(0, 3650),
  linkTtlDays: whole(0, 3650),
  httpPort: whole(-1, 65535),
  publicPort: whole(-1, 65535),
  publicUrl: (value) => {
    const { problem, url } = httpUrl(value);
    if (problem) return problem;
    // Links are built as <publicUrl>/r/<token>: a query or fragment would land in the middle.
    if (url!.username || url!.password || url!.search || url!.hash) return 'must be a plain base URL without a user name, password, query or fragment (links are built as <url>/r/<token>)';
    return undefined;
  },
  // 32 characters at least: the key of every tracked link's token (engagement/token.ts). Never echoed.
  linkSecret: (value) => (typeof value === 'string' && value.length >= 32 ? undefined : `must be at least 32 characters, got ${typeof value === 'string' ? value.length : 'nothing'}`),
  // Longer than a minute would lose last_active_at's minute precision in the database.
  captureFlushMs: duration(10, 60_000),
  embeddedPort: whole(0, 65535),
  logLevel: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  telegramBotToken: (value) => (typeof value === 'string' && BOT_TOKEN.test(value) ? undefined : 'does not look like a bot token (digits, a colon, then at least 20 letters, digits, _ or -)'),
  telegramApiRoot: (value) => {
    const { problem, url } = httpUrl(value);
    if (problem) return problem;
    // Method URLs are resolved against the root: a query or fragment would be dropped, credentials never sent.
    if (url!.username || url!.password || url!.search || url!.hash) return 'must be a plain base URL without a user name, password, query or fragment (they would be dropped from every Bot API call)';
    return undefined;
  },
  webhookUrl: (value) => {
    const { problem, url } = httpUrl(value);
    if (problem) return problem;
    // fetch() refuses a URL with credentials, so every webhook would fail; the signature is the authentication.
    if (url!.username || url!.password) return 'must not hold a user name or password (fetch refuses such URLs, so every webhook would fail; receivers authenticate the daemon by the signature)';
    return undefined;
  },
} satisfies Record<string, Rule>;

export type RuleKey = keyof typeof RULES;

export function checkSetting(key: RuleKey, value: unknown, unit: DurationUnit = 'ms'): string | undefined {
  return RULES[key](value, unit);
}

/** Checks the settings against each other, as River's validate() does; `name` gives each the reader's name for it. */
export function crossProblems(
  values: { sweepMs: number; rescueAfterMs: number; retryBaseMs: number; retryMaxMs: number },
  name: (key: 'sweepMs' | 'rescueAfterMs' | 'retryBaseMs' | 'retryMaxMs') => string,
  unit: DurationUnit,
): string[] {
  const inUnit = (ms: number) => (unit === 'seconds' ? ms / 1000 : ms);
  const problems: string[] = [];
  // A hung window shorter than a few sweeps would hand back the jobs of a daemon that is merely a little late.
  if (values.rescueAfterMs < 3 * values.sweepMs) problems.push(`${name('rescueAfterMs')} (${inUnit(values.rescueAfterMs)}) must be at least three times ${name('sweepMs')} (${inUnit(values.sweepMs)})`);
  if (values.retryMaxMs < values.retryBaseMs) problems.push(`${name('retryMaxMs')} (${inUnit(values.retryMaxMs)}) must not be below ${name('retryBaseMs')} (${inUnit(values.retryBaseMs)})`);
  return problems;
}
