// The maintenance loop (queue/maintenance.ts): its tasks in turn, one pass at a time, and a prompt stop.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Writable } from 'node:stream';
import { Maintenance, type MaintenanceTask } from '../../src/queue/maintenance.js';
import { createLogger, silentLogger } from '../../src/log.js';

function capturingLogger(): { log: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({ write(chunk, _enc, done) { lines.push(JSON.parse(String(chunk))); done(); } });
  return { log: createLogger({ level: 'debug', destination: destination as never }), lines };
}

function task(name: string, days: number, run: MaintenanceTask['run']): MaintenanceTask {
  return { name, days, run };
}

test('runs every task in turn, logs what each did, and a failing task does not keep the next from running', async () => {
  const ran: string[] = [];
  const { log, lines } = capturingLogger();
  const maintenance = new Maintenance([
    task('first cleanup', 7, async () => { ran.push('first'); throw new Error('lock timeout'); }),
    task('second cleanup', 30, async () => { ran.push('second'); return [{ level: 'info', fields: { deleted: 3 }, message: 'old rows deleted' }]; }),
  ], log);
  const reports = await maintenance.runOnce();
  assert.equal(ran, ['first', 'second']);
  assert.equal(reports, [{ level: 'info', fields: { deleted: 3 }, message: 'old rows deleted' }]);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(lines.map((l) => [l.msg, l.err ?? l.deleted]), [['first cleanup failed', 'lock timeout'], ['old rows deleted', 3]]);
});

test('a task whose retention is 0 days keeps everything: it never runs', async () => {
  let ran = 0;
  const maintenance = new Maintenance([task('kept forever', 0, async () => { ran++; return []; })], silentLogger());
  await maintenance.runOnce();
  maintenance.start();
  await maintenance.stop();
  assert.is(ran, 0);
});

test('a pass never overlaps another: a second call during a pass shares it', async () => {
  let passes = 0;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const maintenance = new Maintenance([task('slow', 1, async () => { passes++; await gate; return []; })], silentLogger());
  const first = maintenance.runOnce();
  const second = maintenance.runOnce();
  release();
  await Promise.all([first, second]);
  assert.is(passes, 1);
});

test('stop() ends the loop mid-pass: the running task sees the abort, the interval is not waited out, no task starts after', async () => {
  const ran: string[] = [];
  let started!: () => void;
  const running = new Promise<void>((resolve) => (started = resolve));
  const maintenance = new Maintenance([
    task('long', 1, (signal) => {
      ran.push('long');
      started();
      return new Promise((resolve) => signal.addEventListener('abort', () => resolve([]), { once: true }));
    }),
    task('next', 1, async () => { ran.push('next'); return []; }),
  ], silentLogger(), 3_600_000);
  maintenance.start();
  await running;
  // Without the abort this would wait for the long task forever, then for an hour.
  await maintenance.stop();
  assert.equal(ran, ['long']);
});

test.run();
