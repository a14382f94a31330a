import { once, type EventEmitter } from 'node:events';

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
