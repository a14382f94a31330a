import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Job } from '../../src/queue/claimer.js';
import { RunRegistry } from '../../src/queue/run-registry.js';

const job = (jobId: number, claimedAt = '2026-12-04T22:00:00.000000Z') => ({ jobId, claimedAt }) as Job;

/** Runs body with Date.now() reading `clock.now`. */
async function withClock(body: (clock: { now: number }) => void | Promise<void>): Promise<void> {
  const real = Date.now;
  const clock = { now: real() };
  Date.now = () => clock.now;
  try {
    await body(clock);
  } finally {
    Date.now = real;
  }
}

test('a run is accepted once, and the same job claimed again is a new run', () => {
  const runs = new RunRegistry();
  assert.equal(runs.accept([job(1), job(2)]).map((j) => j.jobId), [1, 2]);
  assert.equal(runs.accept([job(1)]), [], 'a late claim answer or notification for a live run');
  runs.resolve(job(1));
  assert.equal(runs.accept([job(1, '2026-12-04T22:00:05.000000Z')]).map((j) => j.jobId), [1], 'a new claim of the job');
});

test("an adopted run's late notification starts nothing, minutes after the run ended", () =>
  withClock((clock) => {
    // A read-back (after a reconnect or a failed claim) adopted the run; it ran for ten minutes; its
    // notification, held up on a LISTEN connection that stalled without closing, arrives 90 s after
    // the run ended. Kept for 60 s after the adoption, the key was gone and the job ran again.
    const runs = new RunRegistry();
    runs.beginAdoption();
    assert.equal(runs.endAdoption([job(7)]).map((j) => j.jobId), [7]);
    clock.now += 10 * 60_000;
    runs.resolve(job(7));
    clock.now += 90_000;
    assert.equal(runs.accept([job(8)]).map((j) => j.jobId), [8], 'other runs are accepted (and old adoptions swept)');
    assert.equal(runs.accept([job(7)]), [], 'the adopted run, notified late');
    clock.now += 60 * 60_000;
    runs.accept([]);
    assert.equal(runs.accept([job(7)]).map((j) => j.jobId), [7], 'forgotten in the end: memory stays bounded');
  }));

test('a run whose outcome was written while a read-back was reading is not adopted by that read', () => {
  const runs = new RunRegistry();
  runs.accept([job(3)]);
  runs.beginAdoption();
  runs.resolve(job(3));
  assert.equal(runs.endAdoption([job(3)]), [], 'the read saw it still held');
});

test.run();
