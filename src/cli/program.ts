import { Command, CommanderError } from 'commander';
import { inProcessOnly } from './command.js';
import { PACKAGE_VERSION } from '../version.js';
import { errorMessage, scrubSecrets } from '../log.js';
import { PayloadError, UsageError } from '../errors.js';

// Exit codes a script can rely on.
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Where a bqctl run writes, and the environment it reads. */
export interface BqctlIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
}

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
  [['schedule'], async () => (await import('./commands/schedule.js')).registerSchedule],
];

function createProgram(io: BqctlIo): Command {
  return new Command('bqctl')
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
    // Before the subcommands are added: each copies these settings when it is created.
    .configureOutput({ writeOut: (text) => io.stdout(text), writeErr: (text) => io.stderr(text) })
    .showHelpAfterError('(add --help for usage and examples)');
}

/**
 * Registers the command named first on the command line, or every command when none is named
 * (--help, `help <command>`, a typo that commander answers with a suggestion).
 */
async function registerCommands(program: Command, argv: string[]): Promise<void> {
  const named = COMMANDS.find(([names]) => names.includes(argv[0] ?? ''));
  const registers = await Promise.all((named ? [named] : COMMANDS).map(([, load]) => load()));
  for (const register of registers) register(program);
}

/**
 * Runs bqctl with `argv` (the arguments after the program name) and resolves with its exit code.
 * bin/bqctl runs it on the process's own streams. Tests of argument checking run it in-process
 * with `database: false`: a command that got past its checks then fails (exit 1) instead of
 * opening a database, and its normal output, which commands write to process.stdout, never comes.
 */
export async function runBqctl(argv: string[], io: BqctlIo, options: { database?: boolean } = {}): Promise<number> {
  const program = createProgram(io);
  if (options.database === false) inProcessOnly.add(program);
  try {
    await registerCommands(program, argv);
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version exit through here with code 0; commander already printed the error.
      return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    // A bad value given on the command line (or in a file it names) is a usage error.
    const usage = error instanceof UsageError || error instanceof PayloadError;
    io.stderr(`error: ${errorMessage(error)}\n`);
    if (io.env.LOG_LEVEL === 'debug' || io.env.LOG_LEVEL === 'trace') {
      io.stderr(`${scrubSecrets(error instanceof Error ? (error.stack ?? '') : '')}\n`);
    }
    return usage ? EXIT_USAGE : EXIT_FAILURE;
  }
}
