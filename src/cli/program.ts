import { Command, CommanderError } from 'commander';
import { PACKAGE_VERSION } from '../version.js';
import { errorMessage, scrubSecrets } from '../log.js';
import { PayloadError } from '../errors.js';
import { UsageError } from './args.js';

// Exit codes a script can rely on.
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

const program = new Command('bqctl')
  .version(PACKAGE_VERSION)
  .description('Operate broadcast-queued: talks to the database directly, so it works while the daemon is down.')
  .addHelpText('after', `
Exit codes: 0 ok, 1 failure (or the output could not be written whole, e.g. | head closed the pipe),
2 usage error, 78 configuration error.
Connection: DATABASE_URL, or the daemon's embedded PostgreSQL in BQ_DATA_DIR (started for the
command if the daemon is not running). Every read command takes --json.

Examples:
  bqctl status
  bqctl list --status failed --since 1h
  bqctl retry --failed --type send
  bqctl broadcast create --title 'Nov promo' --text 'Hello' --segment '{"tags_any":["vip"]}' --send
  bqctl watch 42
  bqctl subscribers import users.csv
  bqctl doctor`)
  .exitOverride()
  .showHelpAfterError('(add --help for usage and examples)');

type Register = (program: Command) => void;

// Each command's module is loaded only when it is the command run. Loaded all at once they brought
// in telegraf, pg-listen and every area's SQL: `bqctl status` spent most of its time loading code
// it never ran. The order is --help's.
const COMMANDS: [names: string[], load: () => Promise<Register>][] = [
  [['status'], async () => (await import('./commands/status.js')).registerStatus],
  [['list', 'show'], async () => (await import('./commands/jobs.js')).registerJobs],
  [['retry', 'cancel'], async () => (await import('./commands/retry.js')).registerRetry],
  [['enqueue'], async () => (await import('./commands/enqueue.js')).registerEnqueue],
  [['broadcast'], async () => (await import('./commands/broadcast.js')).registerBroadcast],
  [['watch'], async () => (await import('./commands/watch.js')).registerWatch],
  [['subscribers'], async () => (await import('./commands/subscribers.js')).registerSubscribers],
  [['cleanup', 'workers'], async () => (await import('./commands/maintenance.js')).registerMaintenance],
  [['doctor'], async () => (await import('./commands/doctor.js')).registerDoctor],
  [['migrate'], async () => (await import('./commands/migrate.js')).registerMigrate],
];

/**
 * Registers the command named first on the command line, or every command when none is named
 * (--help, `help <command>`, a typo that commander answers with a suggestion).
 */
async function registerCommands(argv: string[]): Promise<void> {
  const named = COMMANDS.find(([names]) => names.includes(argv[2] ?? ''));
  const registers = await Promise.all((named ? [named] : COMMANDS).map(([, load]) => load()));
  for (const register of registers) register(program);
}

// A reader that went away (`bqctl list | head`) is not an error worth a stack trace: stop at once,
// as a process killed by SIGPIPE would, and say by the exit code that not everything was written.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE' && stream === process.stdout) process.stderr.write(`error: cannot write the output: ${error.message}\n`);
    process.exit(EXIT_FAILURE);
  });
}

/**
 * Exits once stdout and stderr have handed everything to the kernel. process.exit() alone drops
 * what is still queued: a pipe (| jq, | wc) used to get the first 64 KiB and exit code 0.
 */
async function exitAfterOutput(code: number): Promise<never> {
  const flushed = (stream: NodeJS.WriteStream) => new Promise<void>((resolve) => (stream.writable ? stream.write('', () => resolve()) : resolve()));
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
}

registerCommands(process.argv).then(() => program.parseAsync(process.argv)).then(
  () => exitAfterOutput(typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK),
  (error) => {
    if (error instanceof CommanderError) {
      // --help and --version exit through here with code 0; commander already printed the error.
      return exitAfterOutput(error.exitCode === 0 ? EXIT_OK : EXIT_USAGE);
    }
    // A bad value given on the command line (or in a file it names) is a usage error.
    const usage = error instanceof UsageError || error instanceof PayloadError;
    process.stderr.write(`error: ${errorMessage(error)}\n`);
    if (process.env.LOG_LEVEL === 'debug' || process.env.LOG_LEVEL === 'trace') {
      process.stderr.write(`${scrubSecrets(error instanceof Error ? (error.stack ?? '') : '')}\n`);
    }
    return exitAfterOutput(usage ? EXIT_USAGE : EXIT_FAILURE);
  },
);
