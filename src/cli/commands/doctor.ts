// bqctl doctor: the checks an operator would otherwise run by hand when "nothing gets sent",
// each with the fix. A failed check makes the exit code 1; a warning does not.
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { dbCommand, examples, out, runDb } from '../command.js';
import { printJson } from '../format.js';
import type { CliContext } from '../context.js';
import { errorMessage } from '../../log.js';
import { migrationState } from '../../db/migrate.js';
import { notifyRoundTripMs, serverIdentity, triggerStates } from '../../db/health.js';
import { TelegramSender } from '../../telegram/sender.js';
import { readRateLimitState } from '../../telegram/rate-limit-sql.js';

type Status = 'ok' | 'fail' | 'warn' | 'skip';
interface Check { name: string; status: Status; detail: string; hint?: string }

const NOTIFY_TIMEOUT_MS = 5_000;
const HTTP_TIMEOUT_MS = 3_000;
const TRIGGERS = ['_900_notify_inserted', '_900_notify_due_again'];
const MARK: Record<Status, string> = { ok: '✓', fail: '✗', warn: '!', skip: '-' };

export function registerDoctor(program: Command): void {
  const doctor = program.command('doctor')
    .description('Check the database, schema, NOTIFY wake-ups, the bot token and the admin API; print a fix for each problem.');
  dbCommand(doctor, { settings: ['listenDatabaseUrl', 'telegramBotToken', 'telegramApiRoot', 'httpHost', 'httpPort', 'apiToken'] });
  doctor.addHelpText('after', '\nExit code 1 if any check failed (✗); warnings (!) and skipped checks (-) do not fail.');
  examples(doctor, ['bqctl doctor', 'TELEGRAM_BOT_TOKEN=123:abc… bqctl doctor --json']);
  doctor.action(async (opts: { json?: boolean }) => {
    await runDb(doctor, async (ctx) => {
      const checks: Check[] = [];
      const add = (check: Check) => {
        checks.push(check);
        if (!opts.json) out(`${MARK[check.status]} ${check.name}: ${check.detail}${check.hint ? `\n    fix: ${check.hint}` : ''}`);
      };
      const reachable = await checkDatabase(ctx);
      add(reachable);
      if (reachable.status === 'ok') {
        add(await guard('migrations current', () => checkMigrations(ctx)));
        add(await guard('NOTIFY trigger on broadcast_queue_jobs', () => checkTriggers(ctx)));
        add(await guard('NOTIFY round trip on broadcast_queue', () => checkNotify(ctx)));
      } else {
        for (const name of ['migrations current', 'NOTIFY trigger on broadcast_queue_jobs', 'NOTIFY round trip on broadcast_queue']) add({ name, status: 'skip', detail: 'the database is not reachable' });
      }
      add(await guard('bot token', () => checkToken(ctx)));
      if (reachable.status === 'ok') add(await guard('sending not halted or paused', () => checkRateLimit(ctx)));
      add(await guard('admin HTTP API', () => checkHttp(ctx)));
      const ok = !checks.some((c) => c.status === 'fail');
      if (opts.json) printJson({ ok, checks });
      else out(ok ? '\nall checks passed' : `\n${checks.filter((c) => c.status === 'fail').length} check(s) failed`);
      if (!ok) process.exitCode = 1;
    });
  });
}

/** A check that throws fails with the error's (secret-free) message. */
async function guard(name: string, fn: () => Promise<Omit<Check, 'name'>>): Promise<Check> {
  try {
    return { name, ...(await fn()) };
  } catch (error) {
    return { name, status: 'fail', detail: errorMessage(error) };
  }
}

async function checkDatabase({ pool }: CliContext): Promise<Check> {
  const name = 'database reachable';
  const started = Date.now();
  try {
    const server = await serverIdentity(pool);
    return { name, status: 'ok', detail: `PostgreSQL ${server.version}, database ${server.database} (${Date.now() - started} ms)` };
  } catch (error) {
    return { name, status: 'fail', detail: errorMessage(error), hint: 'check DATABASE_URL (host, port, user, password, database) and that PostgreSQL is running' };
  }
}

async function checkMigrations({ pool }: CliContext): Promise<Omit<Check, 'name'>> {
  const state = await migrationState(pool);
  if (state.pending.length) return { status: 'fail', detail: `pending: ${state.pending.map((m) => `${m.version} ${m.name}`).join(', ')}`, hint: 'run bqctl migrate (or start the daemon without --no-migrate)' };
  if (state.unknown.length) return { status: 'warn', detail: `the database has migrations this build does not know (${state.unknown.join(', ')})`, hint: 'upgrade bqctl to the version the daemon runs' };
  return { status: 'ok', detail: `${state.applied.length} applied, none pending` };
}

async function checkTriggers({ pool }: CliContext): Promise<Omit<Check, 'name'>> {
  const found = await triggerStates(pool, 'broadcast_queue_jobs', TRIGGERS);
  const missing = TRIGGERS.filter((t) => !found.has(t));
  const disabled = TRIGGERS.filter((t) => found.get(t) === false);
  if (missing.length) return { status: 'fail', detail: `missing: ${missing.join(', ')}; daemons wake only on the fallback sweep`, hint: 'run bqctl migrate; if the schema is current, a trigger was dropped by hand: restore it from sql/0001_jobs.sql' };
  if (disabled.length) return { status: 'fail', detail: `disabled: ${disabled.join(', ')}`, hint: `ALTER TABLE broadcast_queue_jobs ENABLE TRIGGER ${disabled[0]};` };
  return { status: 'ok', detail: TRIGGERS.join(', ') };
}

/** LISTEN on a connection of its own (the LISTEN URL, as the daemon uses), NOTIFY from the pool. */
async function checkNotify({ pool, config, connectionString }: CliContext): Promise<Omit<Check, 'name'>> {
  // A payload that is no queue's name, so live daemons ignore it.
  const token = `bqctl-doctor:${randomBytes(6).toString('hex')}`;
  const ms = await notifyRoundTripMs(pool, config.listenDatabaseUrl ?? connectionString, 'broadcast_queue', token, NOTIFY_TIMEOUT_MS, 'bqctl-doctor');
  if (ms === null) {
    return { status: 'fail', detail: `no notification within ${NOTIFY_TIMEOUT_MS / 1000} s`, hint: 'LISTEN does not work through PgBouncer in transaction mode: set BQ_LISTEN_DATABASE_URL to a direct connection' };
  }
  return { status: 'ok', detail: `delivered in ${ms} ms` };
}

async function checkToken({ config }: CliContext): Promise<Omit<Check, 'name'>> {
  if (!config.telegramBotToken) return { status: 'skip', detail: 'TELEGRAM_BOT_TOKEN is not set here, so the token was not checked (set it to check the one the daemon uses)' };
  const sender = new TelegramSender({ token: config.telegramBotToken, apiRoot: config.telegramApiRoot }, HTTP_TIMEOUT_MS * 2);
  try {
    const me = await sender.getMe();
    return { status: 'ok', detail: `getMe answered: ${me.username ? `@${me.username}` : 'bot'} (id ${me.id})` };
  } catch (error) {
    const message = errorMessage(error);
    const unauthorized = /401|unauthorized/i.test(message);
    return {
      status: 'fail',
      detail: message,
      hint: unauthorized ? 'the token was revoked or mistyped: get the current one from @BotFather and set TELEGRAM_BOT_TOKEN' : `cannot reach the Bot API at ${config.telegramApiRoot}: check TELEGRAM_API_ROOT, DNS and outbound HTTPS`,
    };
  }
}

async function checkRateLimit({ pool }: CliContext): Promise<Omit<Check, 'name'>> {
  const states = await readRateLimitState(pool);
  const halted = states.find((s) => s.haltedAt);
  if (halted) return { status: 'fail', detail: `bot ${halted.botId} halted since ${halted.haltedAt!.toISOString()}: ${halted.haltReason ?? 'token rejected'}`, hint: 'fix the token; a daemon lifts the halt when getMe works again' };
  const paused = states.find((s) => s.pausedUntil && s.pausedUntil.getTime() > Date.now());
  if (paused) return { status: 'warn', detail: `bot ${paused.botId} paused by a 429 until ${paused.pausedUntil!.toISOString()}` };
  return { status: 'ok', detail: states.length ? `${states.length} bot(s), none halted or paused` : 'no sends recorded yet' };
}

/**
 * /health answers without a token, so it cannot tell whether ours is right: the check goes on to
 * /status, which asks for it. A wrong BQ_API_TOKEN used to pass here and fail every call later.
 */
async function checkHttp({ config }: CliContext): Promise<Omit<Check, 'name'>> {
  if (config.httpPort < 0) return { status: 'skip', detail: 'BQ_HTTP_PORT=-1: the admin API is off' };
  if (config.httpPort === 0) return { status: 'skip', detail: 'BQ_HTTP_PORT=0 picks a random port, which bqctl cannot know' };
  const host = config.httpHost.includes(':') ? `[${config.httpHost}]` : config.httpHost;
  const base = `http://${host}:${config.httpPort}/api/admin/queue`;
  const get = async (route: string) => {
    const res = await fetch(`${base}${route}`, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS), redirect: 'manual', headers: config.apiToken ? { authorization: `Bearer ${config.apiToken}` } : {} });
    await res.body?.cancel();
    return res.status;
  };
  let health: number;
  try {
    health = await get('/health');
  } catch (error) {
    return { status: 'warn', detail: `${base}/health not reachable (${errorMessage((error as Error).cause ?? error)})`, hint: 'fine if the daemon is not running; otherwise check BQ_HTTP_HOST and BQ_HTTP_PORT' };
  }
  const status = await get('/status').catch((error: Error) => error);
  if (status instanceof Error) return { status: 'fail', detail: `${base}/status: ${errorMessage(status.cause ?? status)}` };
  if (status === 401 || status === 403) {
    return config.apiToken
      ? { status: 'fail', detail: `${base}/status answered ${status}: the daemon refuses this BQ_API_TOKEN`, hint: 'set BQ_API_TOKEN (or BQ_API_TOKEN_FILE) to the daemon\'s token' }
      : { status: 'warn', detail: `${base}/status answered ${status}: the daemon asks for a token`, hint: 'set BQ_API_TOKEN (or BQ_API_TOKEN_FILE) to the daemon\'s token to check it' };
  }
  if (status < 200 || status >= 300) return { status: 'fail', detail: `${base}/status answered ${status}`, hint: 'see the daemon\'s log' };
  const auth = config.apiToken ? 'the token is accepted' : 'no token needed';
  if (health !== 200) return { status: 'warn', detail: `${base}/health answered ${health}; /status answered ${status} (${auth})`, hint: '/health reports unhealthy while sending is halted or the database is unreachable' };
  return { status: 'ok', detail: `${base}/health and /status answered 200 (${auth})` };
}
