import { once, type EventEmitter } from 'node:events';
import type { Job } from '../../src/queue/claimer.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';

/** Resolves with the first event whose arguments satisfy the predicate; rejects after timeoutMs. */
export async function waitForEvent<T = unknown>(emitter: EventEmitter, event: string, predicate: (value: T) => boolean = () => true, timeoutMs = 10_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, onEvent);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for '${event}'`));
    }, timeoutMs);
    function onEvent(value: T) {
      if (!predicate(value)) return;
      clearTimeout(timer);
      emitter.off(event, onEvent);
      resolve(value);
    }
    emitter.on(event, onEvent);
  });
}

/** Collects `count` events (each matching the predicate) and resolves with them. */
export async function collectEvents<T = unknown>(emitter: EventEmitter, event: string, count: number, predicate: (value: T) => boolean = () => true, timeoutMs = 30_000): Promise<T[]> {
  const seen: T[] = [];
  return new Promise<T[]>((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, onEvent);
      reject(new Error(`timed out after ${timeoutMs} ms with ${seen.length} of ${count} '${event}' events`));
    }, timeoutMs);
    function onEvent(value: T) {
      if (!predicate(value)) return;
      seen.push(value);
      if (seen.length < count) return;
      clearTimeout(timer);
      emitter.off(event, onEvent);
      resolve(seen);
    }
    emitter.on(event, onEvent);
  });
}

/**
 * Re-checks a database condition until it holds. Used only where no event exists (another
 * process's writes); each check is a query, not a sleep standing in for one.
 */
export async function until<T>(check: () => Promise<T | undefined | null | false>, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export { once };

/**
 * Records a queue's 'job:start' and 'job:done' events from the moment it is made. An insert can
 * hand its jobs to an idle daemon that starts, even finishes, them before the INSERT's answer is
 * read (sql/0025_idle_slots.sql), so a test makes the watch before it inserts and asks afterwards.
 *
 * Each event is handed out once, oldest first: a second `done(id)` for a job that runs twice
 * (a retry, a snooze) resolves with its second outcome, never the first again.
 */
export interface JobWatch {
  /** The job's next outcome, recorded already or still to come, that satisfies the predicate. */
  done(jobId: number, predicate?: (event: JobEvent) => boolean, timeoutMs?: number): Promise<JobEvent>;
  /** The job's next start (a run, attempt by attempt) that satisfies the predicate. */
  start(jobId: number, predicate?: (job: Job) => boolean, timeoutMs?: number): Promise<Job>;
  /** The next `count` outcomes of any jobs that satisfy the predicate, like collectEvents. */
  doneMany(count: number, predicate?: (event: JobEvent) => boolean, timeoutMs?: number): Promise<JobEvent[]>;
  /** Stops recording and rejects whatever still waits. */
  stop(): void;
}

interface Stream<T> {
  recorded: T[];
  waiters: Array<{ accepts: (value: T) => boolean; take: (value: T) => boolean }>;
}

export function watchJobs(emitter: EventEmitter): JobWatch {
  const started: Stream<Job> = { recorded: [], waiters: [] };
  const finished: Stream<JobEvent> = { recorded: [], waiters: [] };
  const pending = new Set<(error: Error) => void>();
  // A waiter first in line takes the event; one that still wants more stays in line.
  function offer<T>(stream: Stream<T>, value: T) {
    for (const waiter of stream.waiters) {
      if (!waiter.accepts(value)) continue;
      if (waiter.take(value)) stream.waiters.splice(stream.waiters.indexOf(waiter), 1);
      return;
    }
    stream.recorded.push(value);
  }
  const onStart = (job: Job) => offer(started, job);
  const onDone = (event: JobEvent) => offer(finished, event);
  emitter.on('job:start', onStart);
  emitter.on('job:done', onDone);

  function collect<T>(stream: Stream<T>, what: string, count: number, accepts: (value: T) => boolean, timeoutMs: number): Promise<T[]> {
    const seen: T[] = [];
    for (let i = 0; i < stream.recorded.length && seen.length < count; ) {
      if (accepts(stream.recorded[i])) seen.push(...stream.recorded.splice(i, 1));
      else i++;
    }
    if (seen.length === count) return Promise.resolve(seen);
    return new Promise<T[]>((resolve, reject) => {
      const fail = (error: Error) => {
        clearTimeout(timer);
        pending.delete(fail);
        const at = stream.waiters.indexOf(waiter);
        if (at >= 0) stream.waiters.splice(at, 1);
        reject(error);
      };
      const timer = setTimeout(() => fail(new Error(`timed out after ${timeoutMs} ms with ${seen.length} of ${count} ${what}`)), timeoutMs);
      const waiter = {
        accepts,
        take(value: T) {
          seen.push(value);
          if (seen.length < count) return false;
          clearTimeout(timer);
          pending.delete(fail);
          resolve(seen);
          return true;
        },
      };
      pending.add(fail);
      stream.waiters.push(waiter);
    });
  }

  return {
    async done(jobId, predicate = () => true, timeoutMs = 10_000) {
      const [event] = await collect(finished, `'job:done' events of job ${jobId}`, 1, (e) => e.job.jobId === jobId && predicate(e), timeoutMs);
      return event;
    },
    async start(jobId, predicate = () => true, timeoutMs = 10_000) {
      const [job] = await collect(started, `'job:start' events of job ${jobId}`, 1, (j) => j.jobId === jobId && predicate(j), timeoutMs);
      return job;
    },
    doneMany(count, predicate = () => true, timeoutMs = 30_000) {
      return collect(finished, `'job:done' events`, count, predicate, timeoutMs);
    },
    stop() {
      emitter.off('job:start', onStart);
      emitter.off('job:done', onDone);
      for (const fail of [...pending]) fail(new Error('the job watch was stopped'));
    },
  };
}
