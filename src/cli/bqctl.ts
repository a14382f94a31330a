import { Command, CommanderError } from 'commander';
import { PACKAGE_VERSION } from '../version.js';
import { errorMessage } from '../log.js';
import { registerMigrate } from './commands/migrate.js';
import { registerStatus } from './commands/status.js';

// Exit codes a script can rely on.
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

const program = new Command('bqctl')
  .version(PACKAGE_VERSION)
  .description('Operate broadcast-queued: talks to the database directly, so it works while the daemon is down.')
  .addHelpText('after', `
Exit codes: 0 ok, 1 failure, 2 usage error, 78 configuration error.
Connection: DATABASE_URL, or the daemon's embedded PostgreSQL in BQ_DATA_DIR (started for the
command if the daemon is not running).

Examples:
  bqctl status
  bqctl status --json | jq .queues
  bqctl migrate`)
  .exitOverride()
  .showHelpAfterError();

registerMigrate(program);
registerStatus(program);

program.parseAsync(process.argv).then(
  () => process.exit(process.exitCode ?? EXIT_OK),
  (error) => {
    if (error instanceof CommanderError) {
      // --help and --version exit through here with code 0.
      process.exit(error.exitCode === 0 ? EXIT_OK : EXIT_USAGE);
    }
    process.stderr.write(`bqctl: ${errorMessage(error)}\n`);
    process.exit(EXIT_FAILURE);
  },
);
