// A broadcast's engagement report on its page (engagement/report.ts, the same record as the admin
// API's /broadcasts/:id/report and `bqctl broadcast report`): per variant and in total, per link,
// and the A/B test's plan and decision.
import type { BroadcastReport, EngagementCounts } from '../../../engagement/report.js';
import { count, html, when, type Html } from '../html.js';

const percent = (rate: number | null) => (rate === null ? '—' : `${(rate * 100).toFixed(1)}%`);
const pValue = (p: number | null) => (p === null ? '—' : p < 0.0001 ? '< 0.0001' : p.toFixed(4));

function row(label: Html | string, c: EngagementCounts): Html {
  return html`<tr><th scope="row">${label}</th><td class="num">${count(c.delivered)}</td><td class="num">${count(c.unique_clickers)}</td><td class="num">${count(c.clicks)}</td>
<td class="num">${percent(c.ctr)}</td><td class="num">${count(c.replies)}</td><td class="num">${count(c.reactions)}</td>
<td class="num">${count(c.opt_outs)} (${percent(c.opt_out_rate)})</td><td class="num">${count(c.blocks)} (${percent(c.block_rate)})</td></tr>`;
}

function abTest(r: BroadcastReport): Html {
  const ab = r.ab_test;
  if (!ab) return html``;
  const plan = ab.plan;
  const decision = ab.decision;
  return html`<h3>A/B test</h3><dl class="facts" id="ab-test">
<dt>test</dt><dd>${ab.test} on ${ab.metric} (${ab.better} wins), α ${ab.alpha}</dd>
<dt>${plan ? 'on the sample now' : 'now'}</dt><dd>p-value ${pValue(ab.p_value)} · ${r.winner ? html`winner <strong>${r.winner}</strong>` : 'no significant winner yet'}</dd>
${plan ? html`<dt>plan</dt><dd>${plan.sample_percent}% sample, decide after ${plan.decide_after} (at ${when(plan.decide_at)}), fallback ${plan.fallback}</dd>
<dt>decision</dt><dd>${decision
    ? html`at ${when(decision.decided_at)}: ${decision.winner ? html`winner <strong>${decision.winner}</strong>` : 'no significant winner'}, p-value ${pValue(decision.p_value)}; the rest were sent <strong>${decision.sent_variant}</strong>`
    : html`not yet: due ${when(plan.decide_at)}`}</dd>` : ''}</dl>`;
}

export function engagementSection(r: BroadcastReport): Html {
  const rest = r.rest;
  return html`<section id="engagement"><h2>Engagement</h2>
${r.track ? '' : html`<p class="muted">Links were not tracked (track: false): clicks are not counted; replies, reactions, opt-outs and blocks are.</p>`}
<table class="grid engagement"><thead><tr><th></th><th>delivered</th><th>unique clickers</th><th>clicks</th><th>CTR</th><th>replies</th><th>reactions</th><th>opt-outs</th><th>blocks</th></tr></thead><tbody>
${r.variants.map((v) => row(html`variant ${v.name}${r.winner === v.name ? html` <span class="badge s-completed">best</span>` : ''}`, v))}
${rest ? row(html`the rest${rest.variant ? html` (sent ${rest.variant})` : ''}${rest.waiting ? html`, ${count(rest.waiting)} waiting` : ''}`, rest) : ''}
${row('total', r)}</tbody></table>
${abTest(r)}
${r.links.length ? html`<h3>Links</h3><table class="grid links"><thead><tr><th>#</th><th>link</th><th>clicks</th><th>unique clickers</th></tr></thead><tbody>
${r.links.map((l) => html`<tr><td class="num">${l.index}</td><td class="url">${l.url}</td><td class="num">${count(l.clicks)}</td><td class="num">${count(l.unique_clickers)}</td></tr>`)}</tbody></table>` : ''}
</section>`;
}
