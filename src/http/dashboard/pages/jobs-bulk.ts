// The confirmation of a bulk retry or cancel: which filter, what it applies to, and how many jobs.
import { BULK_LIMIT } from '../../../broadcast/bulk-control.js';
import type { BulkPreview } from '../bulk.js';
import { filterQuery } from '../job-filter.js';
import { count, html, type Html } from '../html.js';
import { page, type PageContext } from '../layout.js';
import type { JobFilterForm } from '../job-filter.js';

const APPLIES_TO = { retry: 'failed or cancelled jobs', cancel: 'pending or waiting jobs, and running broadcast jobs (through their broadcast)' };
const LABELS: Record<keyof JobFilterForm, string> = { state: 'state', type: 'type', queue: 'queue', from: 'created from (UTC)', to: 'created before (UTC)', q: 'payload or error contains' };

export function bulkPage(ctx: PageContext, p: BulkPreview): Html {
  const verb = p.action === 'retry' ? 'Retry' : 'Cancel';
  const query = filterQuery(p.form);
  const filled = (Object.keys(LABELS) as (keyof JobFilterForm)[]).filter((k) => p.form[k] !== '');
  const jobs = `${count(p.matching)} job${p.matching === 1 ? '' : 's'}`;
  const hidden = (name: string, value: string) => html`<input type="hidden" name="${name}" value="${value}">`;
  return page(ctx, `${verb} every matching job`, '/jobs', html`
<dl class="facts">${filled.length ? filled.map((k) => html`<dt>${LABELS[k]}</dt><dd>${p.form[k]}</dd>`) : html`<dt>filter</dt><dd>none: every job</dd>`}
<dt>applies to</dt><dd>${APPLIES_TO[p.action]}</dd><dt>jobs up to id</dt><dd>${p.upTo} (jobs enqueued after this page are left alone)</dd></dl>
${p.matching > BULK_LIMIT
    ? html`<p class="error" id="bulk-count">More than ${count(BULK_LIMIT)} jobs match, more than one action takes on: narrow the filter.</p>`
    : p.matching === 0
      ? html`<p id="bulk-count">No job matching the filter can be ${p.action === 'retry' ? 'retried' : 'cancelled'}.</p>`
      : html`<p id="bulk-count"><strong>${jobs}</strong> will be ${p.action === 'retry' ? 'retried: each becomes pending, due now, with one more attempt' : 'cancelled'}.</p>
${ctx.session.role === 'admin' ? html`<form method="post" action="${ctx.base}/jobs/bulk" class="action" id="bulk-confirm" data-action>${hidden('_csrf', ctx.session.csrf)}${hidden('bulk_action', p.action)}${hidden('up_to', String(p.upTo))}
${(Object.keys(LABELS) as (keyof JobFilterForm)[]).map((k) => hidden(k, p.form[k]))}<button class="${p.action === 'cancel' ? 'danger' : ''}">${verb} ${jobs}</button></form>` : html`<p class="muted">This session is read-only.</p>`}`}
<p><a href="${ctx.base}/jobs${query ? `?${query}` : ''}">Back to the list</a></p>`);
}
