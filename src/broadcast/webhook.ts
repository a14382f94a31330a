// What the 'webhook' job (jobs/webhook-job.ts) signs and sends: a signed POST that tells a receiver
// a broadcast finished. The signature is only worth something if the daemon alone decides what
// gets signed, so the job carries nothing but a broadcast id: the body is built here from the
// broadcasts row, and only for the job that finished the broadcast recorded
// (broadcasts.webhook_job_id, set in the same statement).
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { PermanentError } from '../errors.js';
import type { Pool } from '../db/pool.js';
import type { Job } from '../queue/claimer.js';
import { countDeliveries } from './finish.js';
import { finishedBroadcastOfWebhook } from './broadcasts-store.js';

export interface WebhookSettings {
  url: string;
  /** HMAC-SHA256 key; the receiver recomputes the signature to trust the body. */
  secret?: string;
}

export const SIGNATURE_HEADER = 'x-broadcast-queued-signature';
export const TIMESTAMP_HEADER = 'x-broadcast-queued-timestamp';
/** verifyWebhook's default replay window: a signature older (or newer) than this is refused. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

/** The signature of a body sent at `timestamp` (seconds): hex HMAC-SHA256 of "timestamp.body". */
export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * For receivers: true if `body` (the raw bytes, before any JSON parsing) carries a valid signature
 * made with `secret` no more than `toleranceSeconds` (default 300) from now. The comparison is
 * constant-time. A retried delivery is signed anew, so within the window a receiver should still
 * treat a second POST for the same broadcast_id as a duplicate.
 */
export function verifyWebhook(
  secret: string,
  headers: IncomingHttpHeaders | Headers | Record<string, string | string[] | undefined>,
  body: string | Buffer,
  options: { toleranceSeconds?: number; now?: number } = {},
): boolean {
  const header = (name: string): string | undefined => {
    const value = typeof (headers as Headers).get === 'function' ? (headers as Headers).get(name) : (headers as Record<string, unknown>)[name];
    return typeof value === 'string' ? value : undefined;
  };
  const timestamp = header(TIMESTAMP_HEADER);
  const signature = /^sha256=([0-9a-f]{64})$/.exec(header(SIGNATURE_HEADER) ?? '')?.[1];
  if (!secret || timestamp === undefined || !/^[0-9]{1,12}$/.test(timestamp) || signature === undefined) return false;
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - Number(timestamp)) > tolerance) return false;
  const expected = createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest();
  return timingSafeEqual(expected, Buffer.from(signature, 'hex'));
}

/** Builds the body of a webhook job; a job the daemon did not enqueue is a PermanentError. */
export async function webhookBody(pool: Pool, job: Job): Promise<string> {
  const id = job.payload.broadcast_id;
  if (!Number.isSafeInteger(id) || (id as number) <= 0) throw new PermanentError(`webhook job ${job.jobId} names no broadcast_id; webhook jobs are enqueued by the daemon when a broadcast finishes, not by hand`, { reason: 'invalid_payload' });
  // The broadcast is the record the admin API shows (without its content), under the same names.
  const broadcast = await finishedBroadcastOfWebhook(pool, id as number, job.jobId);
  if (!broadcast) throw new PermanentError(`webhook job ${job.jobId} is not the one the daemon enqueued for finished broadcast ${id}; nothing was signed or sent`, { reason: 'invalid_payload' });
  const counts = await countDeliveries(pool, id as number);
  return JSON.stringify({ event: 'broadcast.finished', broadcast, variants: counts.variants ?? null });
}
