// Outcomes a handler can throw. Anything else thrown counts as retriable.

/** Fail the job now, whatever attempts remain. */
export class PermanentError extends Error {
  override name = 'PermanentError';
}

/** The payload cannot be used; a person has to fix the row. Fails at once. */
export class PayloadError extends PermanentError {
  override name = 'PayloadError';
}

/** Try again after the usual backoff, spending an attempt. */
export class RetriableError extends Error {
  override name = 'RetriableError';
}

/** Try again after `delayMs` without spending an attempt (a Telegram 429 is one of these). */
export class SnoozeError extends Error {
  override name = 'SnoozeError';
  constructor(
    readonly delayMs: number,
    message = `snoozed for ${delayMs} ms`,
  ) {
    super(message);
  }
}

/** Keep the job pending and stop claiming: nothing can succeed until a person acts (a revoked bot token). */
export class HaltError extends Error {
  override name = 'HaltError';
}

/** Every bad setting at once, so one restart fixes them all. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** The exit code for a configuration problem (EX_CONFIG); systemd's RestartPreventExitStatus names it. */
export const EXIT_CONFIG = 78;
