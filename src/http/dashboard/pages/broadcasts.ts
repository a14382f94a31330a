// The broadcasts list (by key, newest first) and one broadcast's page with its live progress,
// counts, per-variant results and the pause / resume / cancel / resend-unknown actions.
import type { BroadcastCounts } from '../../../broadcast/finish.js';
import type { BroadcastProgress } from '../../../broadcast/progress.js';
import { KEEP_REPORT_MS, type ReportView } from '../kept-reports.js';
import { engagementSection } from './engagement.js';
import { count, duration, html, json, when, type Html } from '../html.js';
import { actionButton, badge, page, type PageContext } from '../layout.js';

export const BROADCAST_STATUSES = ['draft', 'queued', 'sending', 'paused', 'completed', 'cancelled', 'failed'] as const;

export function progressBar(b: BroadcastProgress): Html {
  return html`<progress max="1" value="${b.progress.toFixed(4)}" data-live="b:${b.broadcast_id}:progress" aria-label="progress of broadcast ${b.broadcast_id}"></progress>
<span class="pct" data-live="b:${b.broadcast_id}:pct">${(b.progress * 100).toFixed(1)}%</span>`;
}

export function broadcastsPage(ctx: PageContext, rows: BroadcastProgress[], status: string | null, next: number | null): Html {
  return page(ctx, 'Broadcasts', '/broadcasts', html`
<form method="get" class="filters"><label>status <select name="status"><option value="">any</option>
${BROADCAST_STATUSES.map((s) => html`<option${s === status ? html` selected` : ''}>${s}</option>`)}</select></label><button>Show</button></form>
<table class="grid"><thead><tr><th>id</th><th>title</th><th>status</th><th>progress</th><th>sent</th><th>failed</th><th>blocked</th><th>rate</th><th>created</th></tr></thead><tbody>
${rows.length ? rows.map((b) => html`<tr><td><a href="${ctx.base}/broadcasts/${b.broadcast_id}">${b.broadcast_id}</a></td><td>${b.title ?? '—'}</td><td>${badge(b.status)}</td><td>${progressBar(b)}</td>
<td class="num">${count(b.sent)}</td><td class="num">${count(b.failed)}</td><td class="num">${count(b.blocked)}</td><td class="num">${b.rate_per_second.toFixed(1)}/s</td><td>${when(b.created_at)}</td></tr>`)
    : html`<tr><td colspan="9">No broadcasts${status ? html` ${status}` : ''}.</td></tr>`}
</tbody></table>
${next !== null ? html`<p><a class="more" href="${ctx.base}/broadcasts?${new URLSearchParams({ ...(status ? { status } : {}), before: String(next) }).toString()}">Older →</a></p>` : ''}`);
}

/** A paused broadcast has no ETA, whatever it sent in the last seconds. */
const eta = (b: BroadcastProgress) => (b.status === 'paused' ? null : b.eta_seconds);

const COUNTS: (keyof BroadcastCounts)[] = ['total', 'sent', 'failed', 'blocked', 'skipped', 'unknown'];

export function broadcastPage(ctx: PageContext, b: BroadcastProgress, variants: Record<string, BroadcastCounts> | null, report: ReportView | null = null): Html {
  const id = b.broadcast_id;
  const live = (key: string, text: string) => html`<span data-live="b:${id}:${key}">${text}</span>`;
  const actions = html`${b.status === 'sending' || b.status === 'queued' ? actionButton(ctx, `/broadcasts/${id}/pause`, 'Pause', `Pause broadcast ${id}? Sending stops until it is resumed.`) : ''}
${b.status === 'paused' ? actionButton(ctx, `/broadcasts/${id}/resume`, 'Resume', `Resume broadcast ${id}?`) : ''}
${['draft', 'queued', 'sending', 'paused'].includes(b.status) ? actionButton(ctx, `/broadcasts/${id}/cancel`, 'Cancel', `Cancel broadcast ${id}? Recipients not sent yet will not be.`, true) : ''}
${b.unknown > 0 ? actionButton(ctx, `/broadcasts/${id}/resend-unknown`, `Resend ${count(b.unknown)} unknown`, `Resend to the ${count(b.unknown)} recipients whose delivery a crash hid? Some may get the message twice.`) : ''}`;
  return page(ctx, `Broadcast ${id}${b.title ? ` · ${b.title}` : ''}`, '/broadcasts', html`
<section class="live-broadcast" data-broadcast="${id}"${report?.state === 'counting' ? html` data-report-counting` : ''}>
<p>${live('status', b.status)} · started ${when(b.started_at)} · finished ${live('finished', when(b.finished_at))}</p>
<div class="big-progress">${progressBar(b)}</div>
<dl class="stats"><div><dt>rate</dt><dd>${live('rate', `${b.rate_per_second.toFixed(1)}/s`)}</dd></div><div><dt>ETA</dt><dd>${live('eta', duration(eta(b)))}</dd></div>
<div><dt>done</dt><dd>${live('done', count(b.done))}</dd></div><div><dt>remaining</dt><dd>${live('remaining', count(b.remaining))}</dd></div>
<div><dt>waiting</dt><dd>${live('waiting', count(b.waiting))}</dd></div><div><dt>next due</dt><dd>${live('next-due', when(b.next_due_at))}</dd></div>
${COUNTS.map((k) => html`<div><dt>${k}</dt><dd>${live(k, count(b[k]))}</dd></div>`)}</dl>
${b.failure_reason ? html`<p class="error">${b.failure_reason}</p>` : ''}
<div class="actions" data-live-actions="${id}">${actions}</div>
</section>
${variants ? html`<section><h2>Variants</h2><table class="grid"><thead><tr><th>variant</th>${COUNTS.map((k) => html`<th>${k}</th>`)}</tr></thead><tbody>
${Object.entries(variants).map(([name, c]) => html`<tr><th scope="row">${name}</th>${COUNTS.map((k) => html`<td class="num">${count(c[k])}</td>`)}</tr>`)}</tbody></table></section>` : ''}
${report ? reportSection(report) : ''}
<section class="two"><div><h2>Message</h2><pre>${json(b.variants ?? b.message)}</pre></div><div><h2>Audience</h2><pre>${json(b.audience)}</pre>
<p>frequency cap ${b.frequency_cap ?? 'none'} · paid broadcast ${b.allow_paid_broadcast ? 'yes' : 'no'}${b.deliver_at_local ? html` · at ${b.deliver_at_local} local time (default ${b.default_time_zone})` : ''}${b.job_id ? html` · <a href="${ctx.base}/jobs/${b.job_id}">job ${b.job_id}</a>` : ''}</p></div></section>`);
}

/** The kept report with its age, or why there is none yet: the page never waits for the ledger to be read. */
function reportSection(r: ReportView): Html {
  if (r.state === 'counting') return html`<section id="engagement"><h2>Engagement</h2><p class="muted">counting… (the report reads the whole ledger; this page shows it when it is ready)</p></section>`;
  if (r.state === 'failed') return html`<section id="engagement"><h2>Engagement</h2><p class="error">The report could not be counted: ${r.error}</p></section>`;
  return html`${engagementSection(r.report)}<p class="muted">Engagement as counted ${r.ageSeconds < 1 ? 'just now' : `${r.ageSeconds} s ago`}; kept for up to ${KEEP_REPORT_MS / 1000} s between counts.</p>`;
}

/** What the live stream sends for one broadcast: the values of its data-live fields. */
export function broadcastLive(b: BroadcastProgress): Record<string, string | number> {
  const id = b.broadcast_id;
  const out: Record<string, string | number> = {
    [`b:${id}:progress`]: b.progress, [`b:${id}:pct`]: `${(b.progress * 100).toFixed(1)}%`, [`b:${id}:status`]: b.status,
    [`b:${id}:rate`]: `${b.rate_per_second.toFixed(1)}/s`, [`b:${id}:eta`]: duration(eta(b)), [`b:${id}:done`]: count(b.done),
    [`b:${id}:remaining`]: count(b.remaining), [`b:${id}:finished`]: when(b.finished_at),
    [`b:${id}:waiting`]: count(b.waiting), [`b:${id}:next-due`]: when(b.next_due_at),
  };
  for (const k of COUNTS) out[`b:${id}:${k}`] = count(b[k]);
  return out;
}
