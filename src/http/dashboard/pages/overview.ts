// The overview: jobs by queue and state, daemons, the rate limit, broadcasts in progress and the
// throughput charts. Elements marked data-live are refreshed from the live stream (/events/overview).
import { count, duration, html, when, type Html } from '../html.js';
import { badge, dataBlock, page, type PageContext } from '../layout.js';
import type { OverviewData } from '../overview-data.js';
import { progressBar } from './broadcasts.js';
import { overviewShape } from './misc.js';

const STATES = ['pending', 'processing', 'completed', 'failed', 'cancelled'] as const;

export function overviewPage(ctx: PageContext, d: OverviewData): Html {
  const queues = Object.entries(d.status.queues).sort(([a], [b]) => a.localeCompare(b));
  const jobsLink = (queue: string, state: string) => `${ctx.base}/jobs?queue=${encodeURIComponent(queue)}&state=${state}`;
  return page(ctx, 'Overview', '/', html`
<section id="overview" data-shape="${overviewShape(d)}"><h2>Jobs by queue</h2>
<table class="grid"><thead><tr><th>queue</th>${STATES.map((s) => html`<th>${s}</th>`)}<th>due now</th><th>oldest due</th></tr></thead><tbody>
${queues.length ? queues.map(([queue, c]) => html`<tr><th scope="row">${queue}</th>${STATES.map((s) => html`<td class="num"><a href="${jobsLink(queue, s)}" data-live="q:${queue}:${s}">${count(c[s])}</a></td>`)}
<td class="num" data-live="q:${queue}:due">${count(d.due[queue] ?? 0)}</td><td class="num" data-live="q:${queue}:oldest">${duration(c.oldestDueSeconds)}</td></tr>`) : html`<tr><td colspan="8">No jobs yet.</td></tr>`}
</tbody></table>
${d.status.unrunnable.length ? html`<p class="warn">Pending jobs no live daemon works: ${d.status.unrunnable.map((u) => html`<span>${u.queue}/${u.jobType}: ${count(u.count)}</span> `)}</p>` : ''}
</section>
<section class="charts"><h2>Throughput</h2>
<div class="chart" id="chart-hour" data-title="Last hour, per minute"></div>
<div class="chart" id="chart-day" data-title="Last day, per 15 minutes"></div>
${dataBlock('chart-data', d.charts)}
</section>
<section><h2>Broadcasts in progress</h2>${inProgress(ctx, d)}</section>
<section class="two"><div><h2>Daemons</h2>${daemons(d)}</div><div><h2>Rate limit</h2>${rateLimits(d)}</div></section>`);
}

function inProgress(ctx: PageContext, d: OverviewData): Html {
  if (!d.inProgress.length) return html`<p class="muted">None queued, sending or paused.</p>`;
  return html`<table class="grid"><thead><tr><th>id</th><th>title</th><th>status</th><th>progress</th><th>rate</th><th>ETA</th></tr></thead><tbody>
${d.inProgress.map((b) => html`<tr><td><a href="${ctx.base}/broadcasts/${b.broadcast_id}">${b.broadcast_id}</a></td><td>${b.title ?? '—'}</td><td>${badge(b.status)}</td>
<td>${progressBar(b)}</td><td class="num">${b.rate_per_second.toFixed(1)}/s</td><td>${duration(b.eta_seconds)}</td></tr>`)}</tbody></table>`;
}

function daemons(d: OverviewData): Html {
  if (!d.status.daemons.length) return html`<p class="warn">No live daemon: nothing is being worked.</p>`;
  return html`<table class="grid"><thead><tr><th>host</th><th>pid</th><th>queues</th><th>running</th><th>since</th><th>version</th></tr></thead><tbody>
${d.status.daemons.map((x) => html`<tr><td>${x.hostname}</td><td class="num">${x.pid}</td><td>${x.queues.join(', ')}</td><td class="num">${x.running} / ${x.concurrency}</td><td>${when(x.startedAt)}</td><td>${x.version}</td></tr>`)}</tbody></table>`;
}

function rateLimits(d: OverviewData): Html {
  const now = Date.now();
  const r = d.rateLimited;
  return html`${d.halted ? html`<p class="error">Sending is halted: ${d.halted}</p>` : ''}
${r ? html`<p id="rate-limited">429 answers to this daemon: <strong data-live="rl:hour">${count(r.lastHour)}</strong> in the last hour
(<span data-live="rl:paused">${duration(r.pausedSecondsLastHour)}</span> of pause asked for), <span data-live="rl:total">${count(r.sinceStart)}</span> since ${when(r.since)}<span data-live="rl:last">${r.last ? `; the last at ${when(r.last)}` : ""}</span></p>` : ''}
${d.rateLimits.length ? html`<table class="grid"><thead><tr><th>bot</th><th>state</th><th>why</th></tr></thead><tbody>
${d.rateLimits.map((r) => {
    const state = r.haltedAt ? 'halted' : r.pausedUntil && r.pausedUntil.getTime() > now ? `paused by a 429 until ${when(r.pausedUntil)}` : 'sending';
    return html`<tr><td>${r.botId}</td><td>${state}</td><td>${r.haltReason ?? r.pauseReason ?? '—'}</td></tr>`;
  })}</tbody></table>` : html`<p class="muted">No sends recorded yet.</p>`}`;
}
