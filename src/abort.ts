/**
 * A signal that aborts after `ms` or when any of `signals` aborts, and a cleanup to call when the
 * work is done. Node 20's AbortSignal.any() holds its sources weakly: a bare AbortSignal.timeout()
 * combined that way can be garbage-collected before it fires, leaving a hung call hanging forever
 * (found by the chaos suite). A timer we own cannot be collected.
 */
export function deadline(ms: number, ...signals: (AbortSignal | undefined)[]): { signal: AbortSignal; done(): void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException(`timed out after ${ms} ms`, 'TimeoutError')), ms);
  const sources = signals.filter((s): s is AbortSignal => s !== undefined);
  const onAbort = (event: Event) => controller.abort((event.target as AbortSignal).reason);
  for (const source of sources) {
    if (source.aborted) controller.abort(source.reason);
    else source.addEventListener('abort', onAbort, { once: true });
  }
  return {
    signal: controller.signal,
    done() {
      clearTimeout(timer);
      for (const source of sources) source.removeEventListener('abort', onAbort);
    },
  };
}

/** Aborts when any of `signals` aborts; `done()` detaches it. */
export function anySignal(...signals: AbortSignal[]): { signal: AbortSignal; done(): void } {
  return deadline(2 ** 31 - 1, ...signals);
}

/**
 * The promise's outcome, or a rejection with the signal's reason as soon as it aborts: for a
 * connect to an unreachable host, which can take minutes to fail and ignores anything but its
 * own timeout. `onAbort` lets the caller close what the abandoned promise was opening.
 */
export function unlessAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined, onAbort?: () => void): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) {
    onAbort?.();
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const abandon = () => {
      onAbort?.();
      reject(signal.reason);
    };
    signal.addEventListener('abort', abandon, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', abandon);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener('abort', abandon);
        reject(error);
      },
    );
  });
}
