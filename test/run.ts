// The test entry point behind `npm test`. With no DATABASE_URL it starts an embedded PostgreSQL
// (as on a fresh machine with only Node and npm); either way it migrates one template database
// that every test clones, runs the uvu suite in a child process, and prints one closing line.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../src/db/embedded.js';
import { createPool } from '../src/db/pool.js';
import { migrate } from '../src/db/migrate.js';
import { createLogger } from '../src/log.js';
import { withDatabase } from './helpers/db.js';

const log = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'warn', name: 'test-runner' });
const distTestDir = path.dirname(fileURLToPath(import.meta.url));
const pattern = process.argv[2] ?? '\\.test\\.js$';

async function main(): Promise<number> {
  let embedded: EmbeddedDatabase | null = null;
  let dataDir: string | null = null;
  let serverUrl = process.env.DATABASE_URL;
  if (!serverUrl) {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'bq-test-pg-'));
    console.log(`tests: no DATABASE_URL, starting an embedded PostgreSQL in ${dataDir}`);
    embedded = await startEmbeddedPostgres({ dataDir, port: 0, log, ephemeral: true, database: 'postgres' });
    serverUrl = embedded.connectionString;
  } else {
    console.log('tests: using the PostgreSQL at DATABASE_URL');
  }
  const template = `bq_template_${process.pid}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${template}`);
    await admin.query(`CREATE DATABASE ${template}`);
    const templateUrl = withDatabase(serverUrl, template);
    const pool = createPool({ connectionString: templateUrl, max: 2, applicationName: 'bq-test-template', log });
    await migrate(pool, log);
    await pool.end();

    const code = await runUvu({ ...process.env, BQ_TEST_SERVER_URL: serverUrl, BQ_TEST_TEMPLATE: template, BQ_TEST_EMBEDDED: embedded ? '1' : '' });
    return code;
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${template}`).catch(() => undefined);
    await admin.end();
    await embedded?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  }
}

function runUvu(env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    const uvu = fileURLToPath(new URL('../../node_modules/uvu/bin.js', import.meta.url));
    // Declaration and source-map files sit beside the tests in dist/; a loose pattern must not pick them up.
    const child = spawn(process.execPath, [uvu, distTestDir, pattern, '--ignore', '\\.(d\\.ts|js\\.map)$'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    // A test that leaves a handle open would keep uvu alive forever; CI deserves an answer.
    const watchdog = setTimeout(() => {
      console.error('tests: the suite ran past 15 minutes; killing it');
      child.kill('SIGKILL');
    }, 15 * 60_000);
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      process.stdout.write(chunk);
      output += chunk.toString();
    });
    child.on('close', (code) => {
      clearTimeout(watchdog);
      // uvu's own summary is not a format CI recognises; restate it as 'N passed, N failed'.
      const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
      const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1] ?? 0);
      const passed = Number(/Passed:\s+(\d+)/.exec(plain)?.[1] ?? 0);
      const skipped = Number(/Skipped:\s+(\d+)/.exec(plain)?.[1] ?? 0);
      // uvu's Total leaves skipped tests out (a machine without Chromium skips the browser tests).
      const failed = total - passed;
      console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
      resolve(code === 0 && total + skipped > 0 && failed === 0 ? 0 : 1);
    });
  });
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error('tests: the runner failed:', error);
    process.exit(1);
  },
);
