import { Option, type Command } from 'commander';
import { SETTINGS, loadConfig, type Config } from '../config/load.js';
import { ConfigError, EXIT_CONFIG } from '../errors.js';

/** Adds one flag per setting, each documented with its environment variable and default. */
export function addSettingFlags(command: Command, keys?: (keyof Config)[]): Command {
  for (const setting of SETTINGS) {
    if (keys && !keys.includes(setting.key)) continue;
    if (setting.key === 'migrate') {
      command.addOption(new Option('--no-migrate', `Do not apply pending migrations at start (env ${setting.env}=false).`));
      continue;
    }
    if (setting.key === 'dashboard') {
      command.addOption(new Option('--no-dashboard', `Do not serve the web dashboard at / of the admin server (env ${setting.env}=false).`));
      continue;
    }
    const why = setting.secret ? ` Prefer ${setting.env}, ${setting.env}_FILE or the systemd credential ${setting.env}: a flag is visible to every user of the machine in ps.` : '';
    const option = new Option(`${setting.flag} <value>`, `${setting.doc}${why} [env ${setting.env}]`);
    command.addOption(option);
  }
  return command;
}

/** The configuration from environment and flags; on bad values prints every problem and exits 78. */
export function configFromCommand(command: Command, env: NodeJS.ProcessEnv = process.env): Config {
  const opts = command.opts() as Record<string, unknown>;
  const flags: Partial<Record<keyof Config, string>> = {};
  for (const setting of SETTINGS) {
    const name = setting.flag.replace(/^--/, '').replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
    const value = opts[name];
    if (typeof value === 'string') flags[setting.key] = value;
  }
  if (opts.migrate === false) flags.migrate = 'false';
  if (opts.dashboard === false) flags.dashboard = 'false';
  for (const setting of SETTINGS) {
    if (setting.secret && flags[setting.key] !== undefined) {
      process.stderr.write(`${command.name()}: warning: ${setting.flag} is visible to every user of this machine in ps; use ${setting.env}, ${setting.env}_FILE or the systemd credential ${setting.env} instead\n`);
    }
  }
  try {
    return loadConfig(env, flags);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${command.name()}: ${error.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    throw error;
  }
}
