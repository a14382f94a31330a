import { createHmac } from 'node:crypto';
import { PermanentError, RetriableError } from '../errors.js';
import { deadline } from '../abort.js';
import type { Job } from '../queue/claimer.js';
import type { HandlerContext } from '../queue/worker-pool.js';

export interface WebhookSettings {
  url: string;
  /** HMAC-SHA256 key; the receiver recomputes the signature to trust the body. */
  secret?: string;
}

export const SIGNATURE_HEADER = 'x-broadcast-queued-signature';
export const TIMESTAMP_HEADER = 'x-broadcast-queued-timestamp';
const TIMEOUT_MS = 10_000;

/** The signature of a body sent at `timestamp` (seconds): hex HMAC-SHA256 of "timestamp.body". */
export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * The 'webhook' job: POSTs a finished broadcast's summary. It is enqueued in the same statement
 * that finishes the broadcast, so it cannot be lost, and retried with the job backoff.
 */
export async function deliverWebhook(settings: WebhookSettings, job: Job, ctx: HandlerContext): Promise<unknown> {
  const body = JSON.stringify(job.payload);
  const timestamp = Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'broadcast-queued', [TIMESTAMP_HEADER]: String(timestamp) };
  if (settings.secret) headers[SIGNATURE_HEADER] = signWebhook(settings.secret, timestamp, body);
  let response: Response;
  const limit = deadline(TIMEOUT_MS, ctx.signal);
  try {
    response = await fetch(settings.url, { method: 'POST', headers, body, signal: limit.signal });
    await response.body?.cancel().catch(() => undefined);
  } catch (error) {
    throw new RetriableError(`webhook POST failed: ${(error as Error).message}`);
  } finally {
    limit.done();
  }
  if (response.ok) return { status: response.status };
  const problem = `webhook answered ${response.status} ${response.statusText}`;
  // A 4xx other than timeout and throttling will not get better by itself.
  if (response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429) throw new PermanentError(problem);
  throw new RetriableError(problem);
}
