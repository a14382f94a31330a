import type { Command } from 'commander';
import { addSettingFlags, configFromCommand } from '../options.js';
import { withDatabase } from '../context.js';
import { migrate, migrationState } from '../../db/migrate.js';
import { printJson } from '../format.js';
import { examples } from '../command.js';

export function registerMigrate(program: Command): void {
  const command = program
    .command('migrate')
    .description('Apply pending schema migrations (the daemon also does this at start unless --no-migrate).')
    .option('--check', 'only report; exit 1 if migrations are pending')
    .option('--json', 'machine-readable output');
  addSettingFlags(command, ['databaseUrl', 'dataDir', 'embeddedPort', 'logLevel']);
  examples(command, ['bqctl migrate', 'bqctl migrate --check --json']);
  command.action(async (opts: { check?: boolean; json?: boolean }) => {
    const config = configFromCommand(command);
    await withDatabase(config, async ({ pool, log }) => {
      if (opts.check) {
        const state = await migrationState(pool);
        if (opts.json) printJson({ applied: state.applied, pending: state.pending.map((m) => m.version), unknown: state.unknown });
        else process.stdout.write(state.pending.length ? `pending: ${state.pending.map((m) => `${m.version} ${m.name}`).join(', ')}\n` : 'schema is current\n');
        if (state.pending.length) process.exitCode = 1;
        return;
      }
      const applied = await migrate(pool, log);
      if (opts.json) printJson({ applied: applied.map((m) => ({ version: m.version, name: m.name })) });
      else process.stdout.write(applied.length ? applied.map((m) => `applied ${m.version} ${m.name}\n`).join('') : 'schema is current; nothing to apply\n');
    });
  });
}
