// What the Compose page asks the server: POST /compose/check (the form's problems and the live
// count of its audience, for the page's script: a POST because a message in a query string would
// outgrow the request line, but it changes nothing, so a read-only session may ask)
// and POST /compose (save as a draft, schedule, send now, or send a test to one chat). Through the
// same area operations as bqctl: countAudience, createBroadcast, enqueueJob.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Pool } from '../../db/pool.js';
import type { Logger } from '../../log.js';
import { DEFAULTS } from '../../config/defaults.js';
import { countAudience, type AudienceCount } from '../../broadcast/audience.js';
import { createBroadcast } from '../../broadcast/broadcasts-store.js';
import { enqueueJob } from '../../queue/enqueue.js';
import { HttpError } from '../../errors.js';
import type { HeavyReads } from './heavy-reads.js';
import { when } from './html.js';
import type { PageContext } from './layout.js';
import { blockingErrors, INTENTS, readCompose, type ComposeRequest, type Intent } from './compose-form.js';
import { composePage } from './pages/compose.js';
import { SECURITY_HEADERS, sendHtml } from './respond.js';

export interface ComposeCheck {
  errors: Record<string, string>;
  /** Who would receive it; null while the audience has an error. */
  count: AudienceCount | null;
  audience: Record<string, unknown> | null;
}

/** The form's problems and its audience's count, as the page's script shows them while you type. */
export async function checkCompose(pool: Pool, form: URLSearchParams, heavy: HeavyReads): Promise<ComposeCheck> {
  const r = readCompose(form);
  const errors = { ...r.errors };
  delete errors.test_chat_id;
  let count: AudienceCount | null = null;
  const audience = r.audience;
  if (audience && !errors.frequency_cap) count = await heavy.run(pool, 'counting the audience', (c) => countAudience(c, audience, 'audience', r.frequencyCap));
  return { errors, count, audience: r.audience as Record<string, unknown> | null };
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

export interface ComposeOutcome {
  /** Where to go next (a saved broadcast's page), or null to stay on the form (a test, or errors). */
  location: string | null;
  notice: { kind: 'done' | 'error'; text: string };
  errors: Record<string, string>;
}

/** Runs the form's intent; the caller has checked the CSRF token and that the session may change things. */
export async function runCompose(pool: Pool, form: URLSearchParams, log: Logger): Promise<ComposeOutcome> {
  const intent = form.get('intent') as Intent;
  if (!(INTENTS as readonly string[]).includes(intent)) throw new HttpError(400, `intent must be one of ${INTENTS.join(', ')}`);
  const r = readCompose(form);
  const errors = blockingErrors(r, intent);
  if (Object.keys(errors).length) return { location: null, errors, notice: { kind: 'error', text: `Nothing was ${intent === 'test' ? 'sent' : 'saved'}: ${Object.keys(errors).length === 1 ? 'one field needs' : `${Object.keys(errors).length} fields need`} a change.` } };
  if (intent === 'test') return sendTest(pool, r, log);
  const saved = await createBroadcast(pool, {
    title: r.fields.title || null, message: r.message, variants: r.variants, audience: r.audience!, frequencyCap: r.frequencyCap, allowPaidBroadcast: false,
    send: intent === 'draft' ? null : { runAt: intent === 'schedule' ? r.sendAt! : undefined, maxAttempts: DEFAULTS.maxAttempts },
  });
  log.info({ broadcastId: saved.broadcast_id, jobId: saved.job_id, intent }, 'dashboard broadcast composed');
  const text = intent === 'draft'
    ? `Broadcast ${saved.broadcast_id} is saved as a draft: nothing is sent until it is queued.`
    : intent === 'schedule'
      ? `Broadcast ${saved.broadcast_id} is scheduled for ${when(r.sendAt)} (job ${saved.job_id}).`
      : `Broadcast ${saved.broadcast_id} is queued (job ${saved.job_id}).`;
  return { location: `/broadcasts/${saved.broadcast_id}`, errors: {}, notice: { kind: 'done', text } };
}

/** Each variant's message to the test chat, as 'send' jobs: the low-latency path, ahead of broadcasts. */
async function sendTest(pool: Pool, r: ComposeRequest, log: Logger): Promise<ComposeOutcome> {
  const messages = r.variants ? r.variants.map((v) => v.message) : [r.message!];
  const jobs: number[] = [];
  for (const message of messages) jobs.push((await enqueueJob(pool, 'send', { chat_id: r.testChatId, message }, { maxAttempts: DEFAULTS.maxAttempts })).jobId);
  log.info({ chatId: r.testChatId, jobs }, 'dashboard test message enqueued');
  const what = messages.length > 1 ? `${messages.length} test messages (one per variant)` : 'A test message';
  return { location: null, errors: {}, notice: { kind: 'done', text: `${what} to chat ${r.testChatId} ${messages.length > 1 ? 'are' : 'is'} on the way (job ${jobs.join(', ')}).` } };
}

/**
 * Answers POST /compose: the page's script (X-Requested-With) gets JSON; a plain form gets a
 * redirect to the saved broadcast, or the form again with its values, notice and errors.
 */
export async function answerCompose(req: IncomingMessage, res: ServerResponse, ctx: PageContext, pool: Pool, form: URLSearchParams, log: Logger, noticeCookie: (notice: ComposeOutcome['notice']) => string): Promise<void> {
  const outcome = await runCompose(pool, form, log);
  const script = req.headers['x-requested-with'] !== undefined;
  if (outcome.location) {
    const location = `${ctx.base}${outcome.location}`;
    const cookie = { 'set-cookie': noticeCookie(outcome.notice) };
    if (script) return sendJson(res, 200, { location }, cookie);
    res.writeHead(303, { ...SECURITY_HEADERS, location, 'content-length': 0, ...cookie });
    return void res.end();
  }
  const status = Object.keys(outcome.errors).length ? 422 : 200;
  if (script) return sendJson(res, status, { notice: outcome.notice, errors: outcome.errors });
  sendHtml(res, status, composePage({ ...ctx, notice: outcome.notice }, readCompose(form).fields, outcome.errors));
}
