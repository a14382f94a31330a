// The 'webhook' job: POSTs a finished broadcast's signed summary (broadcast/webhook.ts builds and
// signs it) to BQ_WEBHOOK_URL.
import { deadline } from '../abort.js';
import type { Pool } from '../db/pool.js';
import { PermanentError, RetriableError } from '../errors.js';
import type { Job } from '../queue/claimer.js';
import type { HandlerContext } from '../queue/worker-pool.js';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, signWebhook, webhookBody, type WebhookSettings } from '../broadcast/webhook.js';

const TIMEOUT_MS = 10_000;

/** POSTs the finished broadcast's summary. Retried with the job backoff; redirects are refused. */
export async function deliverWebhook(pool: Pool, settings: WebhookSettings, job: Job, ctx: HandlerContext): Promise<unknown> {
  const body = await webhookBody(pool, job);
  const timestamp = Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'broadcast-queued', [TIMESTAMP_HEADER]: String(timestamp) };
  if (settings.secret) headers[SIGNATURE_HEADER] = signWebhook(settings.secret, timestamp, body);
  let response: Response;
  const limit = deadline(TIMEOUT_MS, ctx.signal);
  try {
    // A followed 307 would re-POST the signed body to wherever the Location points.
    response = await fetch(settings.url, { method: 'POST', headers, body, signal: limit.signal, redirect: 'manual' });
    await response.body?.cancel().catch(() => undefined);
  } catch (error) {
    const timedOut = limit.signal.aborted && !ctx.signal.aborted;
    throw new RetriableError(`webhook POST failed: ${(error as Error).message}`, { reason: timedOut ? 'timeout' : 'network' });
  } finally {
    limit.done();
  }
  if (response.ok) return { status: response.status };
  if (response.status >= 300 && response.status < 400) {
    const location = (response.headers.get('location') ?? '(none)').slice(0, 200);
    throw new PermanentError(`webhook answered ${response.status} redirecting to ${location}; redirects are not followed (they would send the signed body elsewhere): set BQ_WEBHOOK_URL to the final address`, { reason: 'bad_request' });
  }
  const problem = `webhook answered ${response.status} ${response.statusText}`;
  // A 4xx other than timeout and throttling will not get better by itself.
  if (response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429) throw new PermanentError(problem, { reason: 'bad_request' });
  throw new RetriableError(problem, { reason: response.status === 408 ? 'timeout' : response.status === 429 ? 'rate_limited' : 'server_error' });
}
