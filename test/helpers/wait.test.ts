import { EventEmitter } from 'node:events';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { watchJobs } from './wait.js';

// Only the fields the watch reads; the rest of a job does not matter here.
const outcome = (jobId: number, attempt: number, kind: 'retry' | 'completed') =>
  ({ job: { jobId, attempt }, outcome: { kind }, recorded: true, durationMs: 0 }) as unknown as JobEvent;

test('watchJobs: an outcome emitted before the question is still the answer', async () => {
  const queue = new EventEmitter();
  const jobs = watchJobs(queue);
  queue.emit('job:start', { jobId: 1, attempt: 1 });
  queue.emit('job:done', outcome(1, 1, 'completed'));
  assert.is((await jobs.start(1)).attempt, 1);
  assert.is((await jobs.done(1)).outcome.kind, 'completed');
  jobs.stop();
});

test('watchJobs: each outcome is handed out once, oldest first, and a predicate skips without consuming', async () => {
  const queue = new EventEmitter();
  const jobs = watchJobs(queue);
  queue.emit('job:done', outcome(2, 1, 'retry'));
  queue.emit('job:done', outcome(3, 1, 'completed'));
  const second = jobs.done(2);
  const third = jobs.done(2);
  queue.emit('job:done', outcome(2, 2, 'completed'));
  assert.is((await second).job.attempt, 1);
  assert.is((await third).job.attempt, 2);
  assert.is((await jobs.done(3, (e) => e.outcome.kind === 'completed')).job.jobId, 3);
  const many = jobs.doneMany(2, (e) => e.job.jobId === 4);
  queue.emit('job:done', outcome(4, 1, 'retry'));
  queue.emit('job:done', outcome(4, 2, 'completed'));
  assert.equal((await many).map((e) => e.job.attempt), [1, 2]);
  jobs.stop();
});

test('watchJobs: stop() rejects what still waits and stops listening; a timeout says what was awaited', async () => {
  const queue = new EventEmitter();
  const jobs = watchJobs(queue);
  const pending = jobs.done(5).then(() => null, (e: Error) => e.message);
  jobs.stop();
  assert.is(await pending, 'the job watch was stopped');
  assert.is(queue.listenerCount('job:done') + queue.listenerCount('job:start'), 0);
  const other = watchJobs(queue);
  const timedOut = await other.done(6, undefined, 10).then(() => null, (e: Error) => e.message);
  assert.is(timedOut, "timed out after 10 ms with 0 of 1 'job:done' events of job 6");
  other.stop();
});

test.run();
