// Every error class the project throws on purpose.

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

/** The error of a Bot API call that failed before its request reached a connected socket: nothing was sent. */
export class NotSentError extends Error {
  // telegram/classify.ts reads the code: a call that never left is a network failure, never delivered.
  readonly code = 'ERR_NOT_SENT';
  constructor(override readonly cause: unknown) {
    super(`not sent: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'NotSentError';
  }
}

/** An admin API response decided before the route ran (bad input, refused caller); never logged as a server error. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** bqctl was called wrong: "error: …" on stderr and exit 2 (cli/bqctl.ts). */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** A subscribers import row that was refused, and why. */
export interface Rejection {
  line: number;
  reason: string;
}

/** In strict mode, the first bad row ends a subscribers import with this. */
export class RejectedRowError extends Error {
  override name = 'RejectedRowError';
  constructor(readonly rejection: Rejection) {
    super(`line ${rejection.line}: ${rejection.reason}`);
  }
}

/** This run no longer drives the broadcast: another run took it over after this one was rescued. */
export class DriverLostError extends Error {
  override name = 'DriverLostError';
  constructor(driver: { broadcastId: number; jobId: number }) {
    super(`job ${driver.jobId} no longer drives broadcast ${driver.broadcastId}: its run was rescued and another took over`);
  }
}
