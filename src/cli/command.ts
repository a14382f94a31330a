// What every bqctl subcommand shares: the connection flags, --json, examples in --help, and a
// way to run against the database. Arguments are validated by the caller BEFORE runDb, so a
// usage error exits 2 at once without starting anything.
import type { Command } from 'commander';
import type { Config } from '../config/load.js';
import { addSettingFlags, configFromCommand } from './options.js';
import { withDatabase, type CliContext } from './context.js';

/** The settings every database command accepts as flags (each also read from its env var). */
export const DB_FLAGS: (keyof Config)[] = ['databaseUrl', 'dataDir', 'embeddedPort', 'logLevel'];

/** Adds the connection flags (and any extra settings) plus, for read commands, --json. */
export function dbCommand(command: Command, options: { json?: boolean; settings?: (keyof Config)[] } = {}): Command {
  if (options.json !== false) command.option('--json', 'machine-readable output');
  return addSettingFlags(command, [...DB_FLAGS, ...(options.settings ?? [])]);
}

/** Appends an Examples section to the command's --help. */
export function examples(command: Command, lines: string[]): Command {
  return command.addHelpText('after', `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}`);
}

/** Programs run in-process to check arguments only (runBqctl's `database: false`). */
export const inProcessOnly = new WeakSet<Command>();

/** Loads the configuration (exit 78 on a bad value) and runs fn with a pool. */
export async function runDb<T>(command: Command, fn: (ctx: CliContext) => Promise<T>): Promise<T> {
  let root = command;
  while (root.parent) root = root.parent;
  if (inProcessOnly.has(root)) throw new Error(`bqctl ${command.name()} passed its argument checks; run in-process it opens no database`);
  const config = configFromCommand(command);
  return withDatabase(config, fn);
}

export function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** 12345 → "12,345", for counts people read. */
export const n = (value: number): string => value.toLocaleString('en-US');
