// Every error class the project throws on purpose, and the reason codes job outcomes carry.
//
// A failed, retried or snoozed run records why as a ReasonCode, beside its message: the job's
// last_error_reason column and each entry of its errors history, the ledger row's error_reason,
// the metrics' reason label and the API's fields all read the code, so nothing parses a message
// back into a class (River's JobCancel/JobSnooze and Oban's {:cancel, reason} carry theirs so).

/**
 * The closed set of reasons. Telegram's answers are mapped to them in one place
 * (telegram/decision.ts); the queue's own ones are given where they happen (queue/worker-pool.ts).
 */
export const REASON_CODES = [
  // Telegram's answer to a send.
  /** 429 Too Many Requests: sending pauses for retry_after, then resumes. */
  'rate_limited',
  /** 5xx from the Bot API. */
  'server_error',
  /** No answer: the connection failed, was reset or refused, or the request never left. */
  'network',
  /** The Bot API call took longer than its deadline. */
  'timeout',
  /** 403: the user blocked the bot, was deactivated, the bot was kicked, or the chat deleted. */
  'blocked',
  /** 400 chat not found (or user not found, PEER_ID_INVALID). */
  'chat_not_found',
  /** 400 with migrate_to_chat_id: the group became a supergroup (a failure only when it keeps migrating). */
  'migrated',
  /** 400 about the message itself: too long, entities that do not parse, a bad file id. */
  'content',
  /** Any other refusal by the Bot API (a 4xx not named above). */
  'bad_request',
  /** 401: the bot token was revoked or is wrong; sending halts. */
  'unauthorized',
  /** At-most-once: the call may have delivered the message, so it is not sent again. */
  'outcome_unknown',
  // The queue's own.
  /** The handler threw something that names no reason (a library user's own error, a bug). */
  'handler_error',
  /** The job's payload cannot be used (PayloadError). */
  'invalid_payload',
  /** No handler for the job's job_type in this daemon. */
  'no_handler',
  /** Shutdown or a lost lease stopped the run; it runs again without spending an attempt. */
  'interrupted',
  /** The database went away under the handler. */
  'database_unavailable',
  /** A HaltError that names no reason of its own. */
  'halted',
  /** A SnoozeError that names no reason of its own. */
  'snoozed',
  /** The broadcast the job drives is paused. */
  'paused',
  /** No recipient of the broadcast is due for a while (deliver_at_local): the job sleeps until the first is. */
  'not_due',
  /** The daemon running the job died; the sweep handed the job back (queue/rescuer.ts). */
  'rescued',
  /** The handler's result cannot be stored as JSON. */
  'unstorable_result',
] as const;

export type ReasonCode = (typeof REASON_CODES)[number];

const KNOWN_REASONS: ReadonlySet<string> = new Set(REASON_CODES);

export function isReasonCode(value: unknown): value is ReasonCode {
  return typeof value === 'string' && KNOWN_REASONS.has(value);
}

export interface OutcomeErrorOptions {
  /** Why, as one of REASON_CODES. A value outside the set (plain JavaScript callers) counts as the default. */
  reason?: ReasonCode;
  cause?: unknown;
}

/** What the outcome errors share: a reason code, checked against the closed set. */
abstract class OutcomeError extends Error {
  readonly reason: ReasonCode;

  protected constructor(message: string | undefined, options: OutcomeErrorOptions, fallback: ReasonCode) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.reason = isReasonCode(options.reason) ? options.reason : fallback;
  }
}

// Outcomes a handler can throw. Anything else thrown counts as retriable, with reason 'handler_error'.

/** Fail the job now, whatever attempts remain. */
export class PermanentError extends OutcomeError {
  override name = 'PermanentError';
  constructor(message?: string, options: OutcomeErrorOptions = {}) {
    super(message, options, 'handler_error');
  }
}

/** The payload cannot be used; a person has to fix the row. Fails at once. */
export class PayloadError extends PermanentError {
  override name = 'PayloadError';
  constructor(message?: string, options: OutcomeErrorOptions = {}) {
    super(message, { reason: 'invalid_payload', ...options });
  }
}

/**
 * Try again after the usual backoff, spending an attempt, and say why: a handler that calls a
 * flaky service throws `new RetriableError(msg, { reason: 'timeout' })`, and the job's
 * last_error_reason and the metrics say 'timeout' instead of 'handler_error'.
 */
export class RetriableError extends OutcomeError {
  override name = 'RetriableError';
  constructor(message?: string, options: OutcomeErrorOptions = {}) {
    super(message, options, 'handler_error');
  }
}

/** Try again after `delayMs` without spending an attempt (a Telegram 429 is one of these). */
export class SnoozeError extends OutcomeError {
  override name = 'SnoozeError';
  constructor(
    readonly delayMs: number,
    message = `snoozed for ${delayMs} ms`,
    options: OutcomeErrorOptions = {},
  ) {
    super(message, options, 'snoozed');
  }
}

/** Keep the job pending and stop claiming: nothing can succeed until a person acts (a revoked bot token). */
export class HaltError extends OutcomeError {
  override name = 'HaltError';
  constructor(message?: string, options: OutcomeErrorOptions = {}) {
    super(message, options, 'halted');
  }
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
