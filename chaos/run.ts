// `npm run chaos`: the reliability suite. Real daemons (bin/broadcast-queued in child processes),
// a real PostgreSQL this run starts itself (so it can restart it), and the Bot API stand-in; each
// scenario injects faults and checks the invariants: no job lost, no message twice, no crash.
//
//   npm run chaos                   # every scenario at full size
//   npm run chaos -- --quick        # smaller numbers, a few minutes (CI)
//   npm run chaos -- --soak         # also the hour-long soak (--soak-minutes N to shorten it)
//   npm run chaos -- --only crashes,telegram --seed 42
//   npm run chaos -- --quick --stress   # under CPU pressure: a busy process per core, daemons stalled at random
//
// DATABASE_URL, if set, is used for the scenarios that do not restart PostgreSQL (crashes,
// telegram, bad-input, load); the database scenario and the soak always use the embedded server.
// Exit status: 0 when every invariant held, 1 otherwise.
import { chmod, mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PgServer } from './lib/cluster.js';
import { liveChildren } from './lib/daemons.js';
import type { ChaosContext } from './lib/context.js';
import { allPassed, emptyResult, renderDetails, renderTable, type ScenarioResult } from './lib/report.js';
import { crashes } from './crashes.js';
import { databaseGoesAway } from './database.js';
import { telegramMisbehaves } from './telegram.js';
import { badInput } from './bad-input.js';
import { load } from './load.js';
import { soak } from './soak.js';
import { Stress } from './lib/stress.js';

const SCENARIOS: Record<string, (ctx: ChaosContext) => Promise<ScenarioResult>> = {
  crashes,
  database: databaseGoesAway,
  telegram: telegramMisbehaves,
  'bad-input': badInput,
  load,
  soak,
};

interface Args {
  quick: boolean;
  soak: boolean;
  soakMinutes: number;
  only: string[] | null;
  seed: number;
  keep: boolean;
  stress: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, soak: false, soakMinutes: 60, only: null, seed: Date.now() % 100_000, keep: false, stress: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v!;
    };
    if (a === '--quick') args.quick = true;
    else if (a === '--soak') args.soak = true;
    else if (a === '--soak-minutes') {
      args.soak = true;
      args.soakMinutes = Number(value());
      if (!(args.soakMinutes > 0)) usage('--soak-minutes must be a positive number');
    } else if (a === '--only') args.only = value().split(',').map((s) => s.trim()).filter(Boolean);
    else if (a === '--seed') {
      args.seed = Number(value());
      if (!Number.isSafeInteger(args.seed)) usage('--seed must be an integer');
    } else if (a === '--keep') args.keep = true;
    else if (a === '--stress') args.stress = true;
    else if (a === '--help' || a === '-h') usage(null);
    else usage(`unknown argument ${a}`);
  }
  for (const name of args.only ?? []) if (!SCENARIOS[name]) usage(`unknown scenario ${name} (known: ${Object.keys(SCENARIOS).join(', ')})`);
  if (args.only?.includes('soak')) args.soak = true;
  return args;
}

function usage(problem: string | null): never {
  const text = `usage: npm run chaos -- [--quick] [--soak | --soak-minutes N] [--only ${Object.keys(SCENARIOS).join(',')}] [--seed N] [--keep] [--stress]\n`;
  if (problem) {
    process.stderr.write(`chaos: ${problem}\n${text}`);
    process.exit(2);
  }
  process.stdout.write(text);
  process.exit(0);
}

const say = (text: string) => process.stderr.write(`${text}\n`);

async function machine(server: PgServer | null): Promise<string> {
  const cpus = os.cpus();
  let pgVersion = 'not started';
  if (server) pgVersion = await server.admin(async (c) => (await c.query('SHOW server_version')).rows[0].server_version as string).catch(() => 'unknown');
  return `${os.type()} ${os.release()}, ${cpus.length} × ${cpus[0]?.model.trim() ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GB RAM, Node ${process.version}, PostgreSQL ${pgVersion}`;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const names = (args.only ?? Object.keys(SCENARIOS)).filter((n) => n !== 'soak' || args.soak);
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'bq-chaos-'));
  // As root the embedded PostgreSQL runs as the postgres user, which must be able to enter it.
  await chmod(workDir, 0o755);
  const logDir = path.join(workDir, 'logs');
  await mkdir(logDir, { recursive: true });
  const externalUrl = process.env.DATABASE_URL?.trim() || null;
  let embedded: PgServer | null = null;
  let embeddedStarting: Promise<PgServer> | null = null;
  const external = externalUrl ? PgServer.external(externalUrl) : null;
  const ctx: ChaosContext = {
    quick: args.quick,
    soakMinutes: args.soakMinutes,
    seed: args.seed,
    workDir,
    logDir,
    embedded: () => (embeddedStarting ??= PgServer.embedded(path.join(workDir, 'pg')).then((s) => (embedded = s))),
    server: () => (external ? Promise.resolve(external) : ctx.embedded()),
    say,
  };
  say(`chaos: ${args.quick ? 'quick' : 'full'} run${args.stress ? ' under CPU pressure (--stress)' : ''}, seed ${args.seed}, scenarios ${names.join(', ')}; logs in ${logDir}`);
  if (external) say('chaos: DATABASE_URL is set: crashes, telegram, bad-input and load run there; database and soak use an embedded PostgreSQL');

  const results: ScenarioResult[] = [];
  const stress = args.stress ? Stress.start({ seed: args.seed }) : null;
  const stopAll = async () => {
    stress?.stop();
    await embedded?.stop();
  };
  // Daemons (and the busy processes) are killed with the run, whatever ends it.
  process.on('exit', () => {
    stress?.stop();
    for (const child of liveChildren) child.kill('SIGKILL');
  });
  process.once('SIGINT', () => {
    say('chaos: interrupted; killing the daemons and stopping PostgreSQL');
    stress?.stop();
    for (const child of liveChildren) child.kill('SIGKILL');
    void stopAll().finally(() => process.exit(130));
  });
  try {
    for (const name of names) {
      say(`\n== ${name}`);
      const began = Date.now();
      try {
        const r = await SCENARIOS[name]!(ctx);
        results.push(r);
      } catch (error) {
        const r = emptyResult(name);
        r.failures.push(`scenario aborted: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
        r.durationMs = Date.now() - began;
        results.push(r);
      }
      const last = results[results.length - 1]!;
      say(`== ${name}: ${last.skipped ? 'skipped' : last.failures.length ? `FAIL (${last.failures.length})` : 'PASS'} in ${Math.round((Date.now() - began) / 1000)} s`);
    }
    const command = `npm run chaos${process.argv.slice(2).length ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
    const where = external
      ? 'crashes, telegram, bad-input and load on the PostgreSQL at DATABASE_URL; database and soak on an embedded PostgreSQL started by the run'
      : 'every scenario on an embedded PostgreSQL started by the run';
    const table = renderTable(results);
    const details = renderDetails(results);
    const summary = `${allPassed(results) ? 'every invariant held' : 'SOME INVARIANTS FAILED'} (seed ${args.seed})`;
    process.stdout.write(`\n${table}\n\n${details}\n${summary}\n`);
    const md = [
      '# Chaos results',
      '',
      `Command: \`${command}\` (seed ${args.seed}; repeat a run with \`--seed ${args.seed}\`)`,
      `Machine: ${await machine(embedded ?? external)}`,
      `Database: ${where}`,
      `Pressure: ${stress ? stress.describe() : 'none added (add --stress for CPU pressure)'}`,
      `Date: ${new Date().toISOString()}`,
      '',
      table,
      '',
      '## Details',
      '',
      details,
      summary,
      '',
    ].join('\n');
    // A partial run (--only) must not overwrite the table of a whole one.
    const resultsFile = args.only ? path.join(workDir, 'RESULTS.md') : fileURLToPath(new URL('../../chaos/RESULTS.md', import.meta.url));
    await writeFile(resultsFile, md);
    say(`chaos: table written to ${args.only ? resultsFile : 'chaos/RESULTS.md'}; daemon logs in ${logDir}`);
    return allPassed(results) ? 0 : 1;
  } finally {
    await stopAll();
    if (!args.keep && !args.only && allPassed(results)) await rm(workDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

main().then(
  (code) => process.exit(code),
  (error) => {
    say(`chaos: the run itself failed: ${error instanceof Error ? error.stack : String(error)}`);
    process.exit(1);
  },
);
