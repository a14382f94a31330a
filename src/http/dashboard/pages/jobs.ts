// The jobs list with its filters (paged by key; see searchJobs) and one job's page with its
// payload, result, error history and the retry / cancel actions.
import { SEARCH_WINDOW_IDS, type JobRow, type JobSearch, type JobSearchPage } from '../../../queue/jobs-store.js';
import { count, html, json, when, type Html } from '../html.js';
import { actionButton, badge, page, type PageContext } from '../layout.js';
import { filterQuery, JOB_STATES, type JobFilterForm } from '../job-filter.js';



export function jobsPage(ctx: PageContext, form: JobFilterForm, search: JobSearch, result: JobSearchPage): Html {
  const next = result.nextBefore === null ? null : `${ctx.base}/jobs?${filterQuery(form, { before: String(result.nextBefore) })}`;
  const bulk = (action: string, label: string) => html`<a class="button" href="${ctx.base}/jobs/bulk?${filterQuery(form, { action })}">${label}</a>`;
  const input = (name: keyof JobFilterForm, label: string, type = 'text') => html`<label>${label} <input type="${type}" name="${name}" value="${form[name]}"></label>`;
  return page(ctx, 'Jobs', '/jobs', html`
<form method="get" class="filters" id="job-filters"><label>state <select name="state"><option value="">any</option>
${JOB_STATES.map((s) => html`<option${s === form.state ? html` selected` : ''}>${s}</option>`)}</select></label>
${input('type', 'type')}${input('queue', 'queue')}${input('from', 'created from (UTC)', 'datetime-local')}${input('to', 'created before (UTC)', 'datetime-local')}${input('q', 'payload or error contains', 'search')}
<button>Filter</button> <a href="${ctx.base}/jobs">clear</a></form>
${ctx.session.role === 'admin' ? html`<p class="bulk">Every job matching this filter, on every page: ${bulk('retry', 'Retry…')} ${bulk('cancel', 'Cancel…')} <span class="muted">(the next page says how many and asks)</span></p>` : ''}
<table class="grid jobs"><thead><tr><th>id</th><th>queue</th><th>type</th><th>state</th><th>attempts</th><th>created</th><th>last error</th></tr></thead><tbody>
${result.jobs.length ? result.jobs.map((j) => html`<tr><td><a href="${ctx.base}/jobs/${j.job_id}">${j.job_id}</a></td><td>${j.queue}</td><td>${j.job_type}</td><td>${badge(j.status)}</td>
<td class="num">${j.attempts} / ${j.max_attempts}</td><td>${when(j.created_at)}</td><td class="error-text">${j.last_error ?? ''}</td></tr>`)
    : html`<tr><td colspan="7">No job matches${search.before !== undefined ? html` below id ${search.before}` : ''}${result.searchedDownTo !== null ? html` down to id ${result.searchedDownTo}` : ''}.</td></tr>`}
</tbody></table>
${next ? html`<p><a class="more" href="${next}">${result.jobs.length ? 'Older →' : `Search older (below id ${result.nextBefore})`}</a>
${result.jobs.length === 0 || result.searchedDownTo === result.nextBefore ? html`<span class="muted"> each page looks through at most ${count(SEARCH_WINDOW_IDS)} ids, so a rare match may need a few pages</span>` : ''}</p>` : ''}`);
}

export function jobPage(ctx: PageContext, j: JobRow): Html {
  const id = j.job_id;
  return page(ctx, `Job ${id}`, '/jobs', html`
<p>${badge(j.status)} · ${j.job_type} in ${j.queue} · attempt ${j.attempts} of ${j.max_attempts} · priority ${j.priority}</p>
<div class="actions">${j.status === 'failed' || j.status === 'cancelled' ? actionButton(ctx, `/jobs/${id}/retry`, 'Retry', `Retry job ${id}? It becomes pending, due now, with one more attempt.`) : ''}
${j.status === 'pending' || (j.status === 'processing' && j.job_type === 'broadcast') ? actionButton(ctx, `/jobs/${id}/cancel`, 'Cancel', `Cancel job ${id}?`, true) : ''}</div>
<dl class="facts"><dt>created</dt><dd>${when(j.created_at)}</dd><dt>run at</dt><dd>${when(j.run_at)}</dd><dt>started</dt><dd>${when(j.started_at)}</dd>
<dt>finished</dt><dd>${when(j.finished_at)}</dd><dt>key</dt><dd>${j.job_key ?? '—'}</dd><dt>locked by</dt><dd>${j.locked_by ?? '—'}</dd></dl>
${j.last_error ? html`<h2>Last error</h2><pre class="error-text">${j.last_error}</pre>` : ''}
<section class="two"><div><h2>Payload</h2><pre>${json(j.payload)}</pre></div><div><h2>Result</h2><pre>${json(j.result)}</pre></div></section>
<h2>Error history</h2>${Array.isArray(j.errors) && j.errors.length ? html`<ol class="errors">${j.errors.map((e) => html`<li><pre>${json(e)}</pre></li>`)}</ol>` : html`<p class="muted">None.</p>`}`);
}
