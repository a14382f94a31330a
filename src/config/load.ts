import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '../errors.js';
import { DEFAULTS, rescueAfterMsFor } from './defaults.js';
import { checkSetting, crossProblems, type RuleKey } from './validate.js';

/** Everything the daemon and bqctl read from the environment or flags, after validation. */
export interface Config {
  databaseUrl: string | undefined;
  listenDatabaseUrl: string | undefined;
  telegramBotToken: string | undefined;
  telegramApiRoot: string;
  queues: string[];
  concurrency: number;
  maxAttempts: number;
  rateLimit: number;
  paidRateLimit: number;
  delivery: 'at-most-once' | 'at-least-once';
  httpHost: string;
  httpPort: number;
  apiToken: string | undefined;
  dashboard: boolean;
  dashboardReadOnlyToken: string | undefined;
  webhookUrl: string | undefined;
  webhookSecret: string | undefined;
  publicHost: string;
  publicPort: number;
  publicUrl: string | undefined;
  linkSecret: string | undefined;
  linkTtlDays: number;
  cleanupDays: number;
  ledgerRetentionDays: number;
  logLevel: string;
  dataDir: string;
  embeddedPort: number;
  migrate: boolean;
  sweepMs: number;
  rescueAfterMs: number;
  shutdownTimeoutMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
}

type Parsed<T> = { ok: true; value: T } | { ok: false; problem: string };

interface Setting<K extends keyof Config = keyof Config> {
  key: K;
  env: string;
  flag: string;
  /** One line for --help; ends with the default in the same words everywhere. */
  doc: string;
  secret?: boolean;
  parse(raw: string | undefined): Parsed<Config[K]>;
}

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = <T>(problem: string): Parsed<T> => ({ ok: false, problem });

/** The value after the shared rule for `key` (config/validate.ts), so the daemon and the library say the same words. */
function ruled<T>(key: RuleKey, value: unknown): Parsed<T> {
  const problem = checkSetting(key, value, 'seconds');
  return problem ? bad(problem) : ok(value as T);
}

function optionalString(raw: string | undefined): Parsed<string | undefined> {
  return ok(raw === undefined || raw.trim() === '' ? undefined : raw.trim());
}

/** A number, which the rule wants whole; text that is no number goes to the rule as it is, which quotes it. */
function integer(key: RuleKey & keyof typeof DEFAULTS) {
  return (raw: string | undefined): Parsed<number> => {
    if (raw === undefined || raw.trim() === '') return ok(DEFAULTS[key] as number);
    return ruled(key, /^-?\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw) : raw);
  };
}

/** Seconds (decimals allowed, so tests can use 0.05) to milliseconds; no default means undefined. */
function seconds(key: RuleKey, fallbackMs: number | undefined) {
  return (raw: string | undefined): Parsed<number> => {
    if (raw === undefined || raw.trim() === '') return ok(fallbackMs as number);
    return ruled(key, /^\d+(\.\d+)?$/.test(raw.trim()) ? Math.round(Number(raw) * 1000) : raw);
  };
}

function postgresUrl(raw: string | undefined): Parsed<string | undefined> {
  if (raw === undefined || raw.trim() === '') return ok(undefined);
  try {
    const parsed = new URL(raw.trim());
    if (!['postgres:', 'postgresql:'].includes(parsed.protocol)) return bad(`must be a postgres: or postgresql: URL, got ${parsed.protocol}`);
    return ok(raw.trim());
  } catch {
    // The raw value may hold a password, so it is not echoed.
    return bad('is not a valid URL');
  }
}

function optionalHttpUrl(key: RuleKey, fallback?: string) {
  return (raw: string | undefined): Parsed<string | undefined> => {
    if (raw === undefined || raw.trim() === '') return ok(fallback);
    return ruled(key, raw.trim());
  };
}

function oneOf<T extends string>(key: RuleKey & keyof typeof DEFAULTS) {
  return (raw: string | undefined): Parsed<T> => ruled(key, (raw ?? '').trim() || DEFAULTS[key]);
}

function boolean(fallback: boolean) {
  return (raw: string | undefined): Parsed<boolean> => {
    if (raw === undefined || raw.trim() === '') return ok(fallback);
    if (/^(1|true|yes|on)$/i.test(raw.trim())) return ok(true);
    if (/^(0|false|no|off)$/i.test(raw.trim())) return ok(false);
    return bad(`must be true or false, got "${raw}"`);
  };
}

function defaultDataDir(env: Record<string, string | undefined>): string {
  // systemd's StateDirectory= sets this; root's home is not readable by the postgres user.
  if (env.STATE_DIRECTORY) return env.STATE_DIRECTORY.split(':')[0]!;
  if (process.getuid?.() === 0) return '/var/lib/broadcast-queued';
  return path.join(env.XDG_DATA_HOME ?? path.join(os.homedir(), '.local', 'share'), 'broadcast-queued');
}

const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

const inSeconds = (ms: number) => ms / 1000;

/** A token typed into a login form or sent in an Authorization header. */
function httpToken(raw: string | undefined): Parsed<string | undefined> {
  const value = optionalString(raw);
  if (!value.ok || value.value === undefined) return value;
  if (value.value.length < 16) return bad('must be at least 16 characters');
  // It travels in an Authorization header: a space or a non-ASCII character makes every request 401.
  if (!/^[\x21-\x7e]+$/.test(value.value)) return bad('must be printable ASCII without spaces (it is sent in an Authorization header, where a space or a non-ASCII character cannot match)');
  return value;
}

function host(raw: string | undefined, fallback: string): Parsed<string> {
  const value = (raw ?? '').trim() || fallback;
  // "127.0.0.1:3000" or "http://…" would only fail when the server tries to listen.
  return isIP(value) || HOST_NAME.test(value) ? ok(value) : bad(`must be an IP address or a host name, without a port or scheme, got "${value}"`);
}

export const SETTINGS: Setting[] = [
  { key: 'databaseUrl', env: 'DATABASE_URL', flag: '--database-url', secret: true, doc: 'PostgreSQL connection string. Defaults to an embedded PostgreSQL in the data directory.', parse: postgresUrl },
  { key: 'listenDatabaseUrl', env: 'BQ_LISTEN_DATABASE_URL', flag: '--listen-database-url', secret: true, doc: 'Direct connection (not through PgBouncer) for LISTEN, the liveness lock and claims, when DATABASE_URL goes through PgBouncer. Defaults to DATABASE_URL.', parse: postgresUrl },
  { key: 'telegramBotToken', env: 'TELEGRAM_BOT_TOKEN', flag: '--telegram-bot-token', secret: true, doc: 'Bot API token from @BotFather. Defaults to none (send and broadcast jobs are not claimed).', parse: (raw) => {
    const value = optionalString(raw);
    return value.ok && value.value !== undefined ? ruled('telegramBotToken', value.value) : value;
  } },
  { key: 'telegramApiRoot', env: 'TELEGRAM_API_ROOT', flag: '--telegram-api-root', doc: `Bot API root URL. Defaults to ${DEFAULTS.telegramApiRoot}.`, parse: (raw) => {
    const parsed = optionalHttpUrl('telegramApiRoot', DEFAULTS.telegramApiRoot)(raw);
    // telegraf resolves method URLs against the root, so a path prefix survives only with a trailing slash.
    return parsed.ok && parsed.value && !parsed.value.endsWith('/') ? ok(`${parsed.value}/`) : parsed;
  } },
  { key: 'queues', env: 'BQ_QUEUES', flag: '--queues', doc: `Comma-separated queues this daemon works. Defaults to ${DEFAULTS.queues.join(',')}.`, parse: (raw) => {
    if (raw === undefined) return ok([...DEFAULTS.queues]);
    const names = [...new Set(raw.split(',').map((q) => q.trim()).filter(Boolean))];
    return ruled('queues', names);
  } },
  { key: 'concurrency', env: 'BQ_CONCURRENCY', flag: '--concurrency', doc: `Jobs run at once by this daemon. Defaults to ${DEFAULTS.concurrency}.`, parse: integer('concurrency') },
  { key: 'maxAttempts', env: 'BQ_MAX_ATTEMPTS', flag: '--max-attempts', doc: `Attempts for jobs enqueued through bqctl or the library. Defaults to ${DEFAULTS.maxAttempts}.`, parse: integer('maxAttempts') },
  { key: 'rateLimit', env: 'BQ_RATE_LIMIT', flag: '--rate-limit', doc: `Messages per second per bot, shared by every daemon. Defaults to ${DEFAULTS.rateLimit}.`, parse: integer('rateLimit') },
  { key: 'paidRateLimit', env: 'BQ_PAID_RATE_LIMIT', flag: '--paid-rate-limit', doc: `Messages per second for broadcasts with allow_paid_broadcast. Defaults to ${DEFAULTS.paidRateLimit}.`, parse: integer('paidRateLimit') },
  { key: 'delivery', env: 'BQ_DELIVERY', flag: '--delivery', doc: `at-most-once (never resend a send whose outcome a crash hid) or at-least-once. Defaults to ${DEFAULTS.delivery}.`, parse: oneOf('delivery') },
  { key: 'httpHost', env: 'BQ_HTTP_HOST', flag: '--http-host', doc: `Admin API address. Defaults to ${DEFAULTS.httpHost}.`, parse: (raw) => host(raw, DEFAULTS.httpHost) },
  { key: 'httpPort', env: 'BQ_HTTP_PORT', flag: '--http-port', doc: `Admin API port; -1 turns the server off, 0 picks a free port. Defaults to ${DEFAULTS.httpPort}.`, parse: integer('httpPort') },
  { key: 'apiToken', env: 'BQ_API_TOKEN', flag: '--api-token', secret: true, doc: 'Bearer token for the admin API and /metrics, and the dashboard\'s admin login. Defaults to none (loopback only).', parse: httpToken },
  { key: 'dashboard', env: 'BQ_DASHBOARD', flag: '--dashboard', doc: 'Serve the web dashboard at / of the admin server (--no-dashboard to turn it off). Defaults to true.', parse: boolean(true) },
  { key: 'dashboardReadOnlyToken', env: 'BQ_VIEWER_TOKEN', flag: '--viewer-token', secret: true, doc: 'A second dashboard login that shows everything and changes nothing (`BQ_API_TOKEN` must then be at least 24 characters). Defaults to none.', parse: httpToken },
  { key: 'publicHost', env: 'BQ_PUBLIC_HOST', flag: '--public-host', doc: `Address of the public redirect listener of tracked links (GET /r/<token>, nothing else). Defaults to ${DEFAULTS.publicHost}.`, parse: (raw) => host(raw, DEFAULTS.publicHost) },
  { key: 'publicPort', env: 'BQ_PUBLIC_PORT', flag: '--public-port', doc: `Port of the redirect listener; -1 turns it off, 0 picks a free port. It runs only with BQ_PUBLIC_URL and BQ_LINK_SECRET. Defaults to ${DEFAULTS.publicPort}.`, parse: integer('publicPort') },
  { key: 'publicUrl', env: 'BQ_PUBLIC_URL', flag: '--public-url', doc: 'Where recipients reach the redirect listener (e.g. https://t.example.com, usually a proxy in front of it); tracked links are <url>/r/<token>. Defaults to none (track: true broadcasts fail).', parse: optionalHttpUrl('publicUrl') },
  { key: 'linkSecret', env: 'BQ_LINK_SECRET', flag: '--link-secret', secret: true, doc: 'Key of the tracked-link tokens, at least 32 characters, of its own; changing it breaks the links already sent. Required with BQ_PUBLIC_URL.', parse: (raw) => {
    const value = optionalString(raw);
    return value.ok && value.value !== undefined ? ruled('linkSecret', value.value) : value;
  } },
  { key: 'linkTtlDays', env: 'BQ_LINK_TTL_DAYS', flag: '--link-ttl-days', doc: `Days after a broadcast finished that its tracked links redirect and its button presses count; an expired link gets a 404 and nothing is recorded. 0 keeps them forever (unless BQ_LEDGER_RETENTION_DAYS deletes the broadcast). Defaults to ${DEFAULTS.linkTtlDays}.`, parse: integer('linkTtlDays') },
  { key: 'webhookUrl', env: 'BQ_WEBHOOK_URL', flag: '--webhook-url', doc: 'URL that receives a signed POST when a broadcast finishes. Defaults to none.', parse: optionalHttpUrl('webhookUrl') },
  { key: 'webhookSecret', env: 'BQ_WEBHOOK_SECRET', flag: '--webhook-secret', secret: true, doc: 'HMAC-SHA256 key for webhook signatures; required with BQ_WEBHOOK_URL.', parse: optionalString },
  { key: 'cleanupDays', env: 'BQ_CLEANUP_DAYS', flag: '--cleanup-days', doc: `Finished jobs older than this many days are deleted; 0 keeps them forever. Defaults to ${DEFAULTS.cleanupDays}.`, parse: integer('cleanupDays') },
  { key: 'ledgerRetentionDays', env: 'BQ_LEDGER_RETENTION_DAYS', flag: '--ledger-retention-days', doc: `Finished broadcasts older than this many days are deleted with their delivery ledger, in small batches that never make a sender wait; 0 keeps them forever. The frequency cap reads the last 24 hours. Defaults to ${DEFAULTS.ledgerRetentionDays}, which keeps a month of reports.`, parse: integer('ledgerRetentionDays') },
  { key: 'logLevel', env: 'LOG_LEVEL', flag: '--log-level', doc: `fatal, error, warn, info, debug, trace or silent. Defaults to ${DEFAULTS.logLevel}.`, parse: oneOf('logLevel') },
  { key: 'dataDir', env: 'BQ_DATA_DIR', flag: '--data-dir', doc: 'Where the embedded PostgreSQL keeps its files. Defaults to $STATE_DIRECTORY, /var/lib/broadcast-queued as root, else ~/.local/share/broadcast-queued.', parse: (raw) => ok(raw?.trim() ? path.resolve(raw.trim()) : '') },
  { key: 'embeddedPort', env: 'BQ_EMBEDDED_PORT', flag: '--embedded-port', doc: `Port of the embedded PostgreSQL; 0 picks a free one and remembers it. Defaults to ${DEFAULTS.embeddedPort}.`, parse: integer('embeddedPort') },
  { key: 'migrate', env: 'BQ_MIGRATE', flag: '--migrate', doc: `Apply pending migrations at start (--no-migrate to skip). Defaults to ${DEFAULTS.migrate}.`, parse: boolean(DEFAULTS.migrate) },
  { key: 'sweepMs', env: 'BQ_SWEEP_SECONDS', flag: '--sweep-seconds', doc: `The fallback sweep: one statement that registers this daemon, rescues the jobs of dead daemons and claims due jobs a lost notification missed. Defaults to ${inSeconds(DEFAULTS.sweepMs)} seconds.`, parse: seconds('sweepMs', DEFAULTS.sweepMs) },
  // No fallback here: the default depends on the sweep (rescueAfterMsFor), filled in by loadConfig.
  { key: 'rescueAfterMs', env: 'BQ_RESCUE_AFTER_SECONDS', flag: '--rescue-after-seconds', doc: `A daemon that still holds its liveness lock but has not swept for this long is hung, and its jobs are handed back. Defaults to ${inSeconds(DEFAULTS.rescueAfterMs)} seconds, or three sweeps if that is longer.`, parse: seconds('rescueAfterMs', undefined) },
  { key: 'shutdownTimeoutMs', env: 'BQ_SHUTDOWN_TIMEOUT_SECONDS', flag: '--shutdown-timeout-seconds', doc: `On SIGTERM, how long running jobs may finish before they are handed back. Defaults to ${inSeconds(DEFAULTS.shutdownTimeoutMs)} seconds.`, parse: seconds('shutdownTimeoutMs', DEFAULTS.shutdownTimeoutMs) },
  { key: 'retryBaseMs', env: 'BQ_RETRY_BASE_SECONDS', flag: '--retry-base-seconds', doc: `Wait before the second attempt; doubles each attempt after. Defaults to ${inSeconds(DEFAULTS.retryBaseMs)} seconds.`, parse: seconds('retryBaseMs', DEFAULTS.retryBaseMs) },
  { key: 'retryMaxMs', env: 'BQ_RETRY_MAX_SECONDS', flag: '--retry-max-seconds', doc: `Longest wait between attempts. Defaults to ${inSeconds(DEFAULTS.retryMaxMs)} seconds.`, parse: seconds('retryMaxMs', DEFAULTS.retryMaxMs) },
];

/** Reads a secret file; replaceable in tests. */
export type SecretReader = (file: string) => string;
const readSecretFile: SecretReader = (file) => readFileSync(file, 'utf8');

/**
 * A secret's raw value and where it came from. Besides the flag and the variable itself, a secret
 * can come from a file named by <VARIABLE>_FILE (Docker and Kubernetes secrets) or from a systemd
 * credential, $CREDENTIALS_DIRECTORY/<VARIABLE> (LoadCredential=): neither shows in `ps` or in
 * /proc/<pid>/environ, and a credential is readable by this service alone.
 */
function secretValue(setting: Setting, env: Record<string, string | undefined>, read: SecretReader, problems: string[]): { raw: string | undefined; from: string } {
  const fileVar = `${setting.env}_FILE`;
  const direct = env[setting.env];
  const file = env[fileVar]?.trim();
  if (direct !== undefined && direct.trim() !== '') {
    if (file) problems.push(`${setting.env} and ${fileVar} are both set: set one`);
    return { raw: direct, from: setting.env };
  }
  const fromFile = (name: string, where: string, optional: boolean) => {
    let text: string;
    try {
      text = read(name);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (optional && code === 'ENOENT') return undefined;
      problems.push(`${where}: cannot read ${name}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (error as Error).message}`);
      return undefined;
    }
    // One trailing newline is what `echo` and editors add; it is not part of the secret.
    const value = text.replace(/\r?\n$/, '');
    if (value.trim() === '') problems.push(`${where}: ${name} is empty`);
    return value;
  };
  if (file) return { raw: fromFile(file, fileVar, false), from: `${fileVar} (${file})` };
  const credentials = env.CREDENTIALS_DIRECTORY?.trim();
  if (credentials) {
    const name = path.join(credentials, setting.env);
    const raw = fromFile(name, `credential ${setting.env}`, true);
    if (raw !== undefined) return { raw, from: `credential ${setting.env}` };
  }
  return { raw: direct, from: setting.env };
}

/**
 * The shortest admin token accepted beside a read-only one. The dashboard's session key comes from the
 * tokens alone (so sessions survive restarts and cross daemons), so a read-only user holding a signed
 * cookie and their own token can try admin tokens offline, past the login throttle; scrypt slows
 * each try, and this length puts a random token out of reach.
 */
export const MIN_ADMIN_TOKEN_BESIDE_READ_ONLY = 24;

export function adminTokenTooShort(admin: string, readOnly: string): string {
  return `${admin} must be at least ${MIN_ADMIN_TOKEN_BESIDE_READ_ONLY} characters when ${readOnly} is set: a read-only user could otherwise guess it offline from their own session cookie (use a random one, e.g. openssl rand -base64 24)`;
}

/**
 * Builds the configuration from a plain object of environment variables, with flag values (by
 * config key) taking precedence. Secrets may also come from <VARIABLE>_FILE or a systemd
 * credential (see secretValue). Reports every problem at once in a ConfigError.
 */
export function loadConfig(env: Record<string, string | undefined>, flags: Partial<Record<keyof Config, string>> = {}, read: SecretReader = readSecretFile): Config {
  const problems: string[] = [];
  const config: Record<string, unknown> = {};
  for (const setting of SETTINGS) {
    const fromFlag = flags[setting.key];
    const { raw, from } = fromFlag !== undefined ? { raw: fromFlag, from: setting.flag } : setting.secret ? secretValue(setting, env, read, problems) : { raw: env[setting.env], from: setting.env };
    const parsed = setting.parse(raw);
    if (parsed.ok) config[setting.key] = parsed.value;
    else problems.push(`${from} ${parsed.problem}`);
  }
  // The name DESIGN.md gives (BQ_VIEWER_TOKEN) replaced this one before any release; a token set
  // under the old name would otherwise be ignored without a word.
  for (const old of ['BQ_DASHBOARD_READONLY_TOKEN', 'BQ_DASHBOARD_READONLY_TOKEN_FILE']) {
    if (env[old]?.trim()) problems.push(`${old} is now ${old.replace('DASHBOARD_READONLY', 'VIEWER')}: rename it`);
  }
  const result = config as unknown as Config;
  if (problems.length === 0) {
    if (!result.dataDir) result.dataDir = defaultDataDir(env);
    result.rescueAfterMs ??= rescueAfterMsFor(result.sweepMs);
    problems.push(...crossProblems(result, (key) => SETTINGS.find((setting) => setting.key === key)!.env, 'seconds'));
    if (!result.apiToken && result.httpPort >= 0 && !isLoopback(result.httpHost)) problems.push(`BQ_HTTP_HOST ${result.httpHost} is not a loopback address, so BQ_API_TOKEN must be set`);
    if (result.dashboardReadOnlyToken && result.dashboardReadOnlyToken === result.apiToken) problems.push('BQ_VIEWER_TOKEN is the same as BQ_API_TOKEN: the read-only login must have a token of its own');
    if (result.dashboard && result.dashboardReadOnlyToken && result.apiToken && result.apiToken.length < MIN_ADMIN_TOKEN_BESIDE_READ_ONLY) problems.push(adminTokenTooShort('BQ_API_TOKEN', 'BQ_VIEWER_TOKEN'));
    // A key of its own: signing with the admin token would hand every receiver the admin API.
    if (result.webhookUrl && !result.webhookSecret) problems.push('BQ_WEBHOOK_URL is set, so BQ_WEBHOOK_SECRET must be set too (a key of its own: the receiver needs it to check signatures, and the admin token would let it operate the queue)');
    // A link needs both: where it points and the key that makes its token.
    if (result.publicUrl && !result.linkSecret) problems.push('BQ_PUBLIC_URL is set, so BQ_LINK_SECRET must be set too (a key of its own for the tracked-link tokens)');
    if (result.linkSecret && !result.publicUrl) problems.push('BQ_LINK_SECRET is set but BQ_PUBLIC_URL is not: tracked links need the address recipients reach the redirect listener at');
    if (result.publicUrl && result.publicPort >= 0 && result.httpPort >= 0 && result.publicPort === result.httpPort && result.publicPort > 0) problems.push(`BQ_PUBLIC_PORT and BQ_HTTP_PORT are both ${result.publicPort}: the public redirect listener must not share the admin API's`);
    // Notifications are per database: LISTEN elsewhere than the jobs are inserted would never wake.
    if (result.listenDatabaseUrl && !result.databaseUrl) problems.push('BQ_LISTEN_DATABASE_URL is set but DATABASE_URL is not: the embedded PostgreSQL would hold the jobs and the listener would wait on another database');
    if (result.httpPort > 0 && result.httpPort === result.embeddedPort && !result.databaseUrl) problems.push(`BQ_HTTP_PORT and BQ_EMBEDDED_PORT are both ${result.httpPort}: the admin API and the embedded PostgreSQL cannot share a port`);
  }
  if (problems.length) throw new ConfigError(problems);
  return result;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
