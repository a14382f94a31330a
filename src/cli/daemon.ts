import { Command } from 'commander';
import { addSettingFlags, configFromCommand } from './options.js';
import { createLogger, errorMessage } from '../log.js';
import { BroadcastQueue } from '../broadcast-queue.js';
import { settingsFromConfig } from '../config/options.js';
import { redactConnectionString } from '../db/pool.js';
import { PACKAGE_VERSION } from '../version.js';
import { startAdminServer, type AdminServer } from '../http/admin-server.js';
import { startRedirectServer, type RedirectServer } from '../engagement/redirect-server.js';

const program = addSettingFlags(
  new Command('broadcast-queued')
    .version(PACKAGE_VERSION)
    .description('Delivers Telegram bot broadcasts from the broadcast_queue_jobs table, woken by LISTEN/NOTIFY.')
    .addHelpText('after', `
Every flag can also be set by its environment variable; flags win. A bad value stops start-up
with one message naming every problem and exit code 78.

Examples:
  DATABASE_URL=postgres://bq@db/bot TELEGRAM_BOT_TOKEN=123:abc… broadcast-queued
  broadcast-queued --concurrency 4 --queues broadcasts,transactional
  broadcast-queued                      # no DATABASE_URL: runs on an embedded PostgreSQL`),
);
program.parse();
const config = configFromCommand(program);
const log = createLogger({ level: config.logLevel });

const queue = new BroadcastQueue({
  ...settingsFromConfig(config),
  connectionString: config.databaseUrl,
  listenConnectionString: config.listenDatabaseUrl,
  embedded: config.databaseUrl ? undefined : { dataDir: config.dataDir, port: config.embeddedPort },
  telegram: config.telegramBotToken ? { token: config.telegramBotToken, apiRoot: config.telegramApiRoot } : undefined,
  webhook: config.webhookUrl && config.webhookSecret ? { url: config.webhookUrl, secret: config.webhookSecret } : undefined,
  tracking: config.publicUrl && config.linkSecret ? { publicUrl: config.publicUrl, linkSecret: config.linkSecret, linkTtlDays: config.linkTtlDays } : undefined,
  log,
});

// After the shutdown timeout, stop() still hands back jobs and closes connections: this long.
const SHUTDOWN_GRACE_MS = 5_000;

let admin: AdminServer | null = null;
let redirects: RedirectServer | null = null;
let stopping: Promise<void> | null = null;
function shutdown(signal: string): void {
  if (stopping) {
    log.warn({ signal }, 'second signal: exiting without waiting for running jobs');
    process.exit(1);
  }
  log.info({ signal, timeoutMs: config.shutdownTimeoutMs }, 'shutting down');
  // The admin server goes first, so no request reaches a queue that is stopping.
  const adminClosed = Promise.all([
    admin?.close().catch((error) => log.warn({ err: errorMessage(error) }, 'admin server did not close cleanly')),
    redirects?.close(),
  ]);
  // stop() gives running jobs the shutdown timeout and caps every write after it; this is the
  // last word, so that no state (a start still retrying, a hung connection) outlives SIGTERM.
  setTimeout(() => {
    log.error({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown did not finish in time; exiting');
    process.exit(1);
  }, config.shutdownTimeoutMs + SHUTDOWN_GRACE_MS).unref();
  stopping = adminClosed.then(() => queue.stop()).then(
    () => process.exit(0),
    (error) => {
      log.error({ err: errorMessage(error) }, 'shutdown failed');
      process.exit(1);
    },
  );
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
// A handler's stray rejection must not take down every other job; it is logged and counted.
process.on('unhandledRejection', (reason) => log.error({ err: errorMessage(reason) }, 'unhandled promise rejection'));

async function main(): Promise<void> {
  if (!config.databaseUrl) log.info({ dataDir: config.dataDir }, 'no DATABASE_URL: using the embedded PostgreSQL');
  else log.info({ database: redactConnectionString(config.databaseUrl) }, 'connecting');
  if (!config.telegramBotToken) log.warn('TELEGRAM_BOT_TOKEN is not set: send and broadcast jobs will not be claimed');
  // Created before start() so that the counters see the first claims.
  if (config.httpPort >= 0) queue.metrics();
  await queue.start();
  if (config.httpPort >= 0 && !stopping) {
    const dashboard = config.dashboard ? { readOnlyToken: config.dashboardReadOnlyToken } : false;
    admin = await startAdminServer(queue, { host: config.httpHost, port: config.httpPort, apiToken: config.apiToken, dashboard, log });
    log.info({ url: admin.url, api: `${admin.url}/api/admin/queue`, metrics: `${admin.url}/metrics`, dashboard: config.dashboard ? `${admin.url}/` : 'off', auth: config.apiToken ? 'bearer token' : 'none (loopback only)' }, 'admin API listening');
  }
  if (queue.tracking && config.publicPort >= 0 && !stopping) {
    redirects = await startRedirectServer(queue.redirectHandler(), config.publicHost, config.publicPort);
    log.info({ host: config.publicHost, port: redirects.port, publicUrl: config.publicUrl }, 'tracked-link redirect listener listening');
  }
  if (queue.embedded) {
    process.stderr.write(`broadcast-queued: embedded PostgreSQL at ${queue.embedded.dataDir}; connect with:\n  ${queue.embedded.psqlHint}\n`);
  }
}

main().catch((error) => {
  // A signal during start-up aborts it; shutdown() is already stopping and exits.
  if (stopping) return;
  log.fatal({ err: errorMessage(error) }, 'start-up failed');
  void queue.stop().finally(() => process.exit(1));
});
