// Subscribers: who can be reached (in all, by language, by tag, in a segment), one subscriber by
// chat id, and importing a CSV or JSON-lines file with a live progress bar and a report of the
// rejected rows.
import type { AudienceCount } from '../../../broadcast/audience.js';
import type { ReachCounts, SubscriberCounts, SubscriberRow } from '../../../broadcast/subscriber-counts.js';
import { count, html, json, when, type Html } from '../html.js';
import { page, type PageContext } from '../layout.js';
import { MAX_REPORTED_REJECTIONS, MAX_UPLOAD_BYTES, type ImportRun } from '../subscriber-imports.js';

export interface SubscribersView {
  counts: SubscriberCounts;
  /** The lookup form's chat id, and what it found (null: no such subscriber). */
  lookup: { chatId: string; row: SubscriberRow | null } | null;
  /** The segment form's JSON, and its count or the reason it could not be counted. */
  segment: { text: string; result: AudienceCount | null; error: string | null } | null;
  imports: ImportRun[];
  /** How long counts are kept before they are counted again. */
  keptSeconds: number;
}

const REACH_COLUMNS = html`<th>total</th><th>reachable</th><th>opted out</th><th>unreachable</th>`;
const reachCells = (c: ReachCounts) => html`<td class="num">${count(c.total)}</td><td class="num">${count(c.reachable)}</td><td class="num">${count(c.opted_out)}</td><td class="num">${count(c.unreachable)}</td>`;

function reachStats(c: ReachCounts, extra: Html | string = ''): Html {
  return html`<dl class="stats reach"><div><dt>subscribers</dt><dd>${count(c.total)}</dd></div><div><dt>reachable</dt><dd class="ok">${count(c.reachable)}</dd></div>
<div><dt>opted out</dt><dd>${count(c.opted_out)}</dd></div><div><dt>unreachable</dt><dd class="${c.unreachable ? 'warn' : ''}">${count(c.unreachable)}</dd></div>${extra}</dl>`;
}

export function subscribersPage(ctx: PageContext, v: SubscribersView): Html {
  const c = v.counts;
  return page(ctx, 'Subscribers', '/subscribers', html`
<section id="reach"><h2>Reach</h2>${reachStats(c.all)}
<p class="muted">Counted at ${when(c.counted_at)} in ${count(c.duration_ms)} ms; counts are kept ${v.keptSeconds} s and then counted again (a grouping reads the whole table).</p></section>
<section class="two"><div id="by-language"><h2>By language</h2>
<table class="grid"><thead><tr><th>language_code</th>${REACH_COLUMNS}</tr></thead><tbody>
${c.languages.length ? c.languages.map((l) => html`<tr><th scope="row">${l.language_code ?? html`<span class="muted">not given</span>`}</th>${reachCells(l)}</tr>`) : html`<tr><td colspan="5">No subscribers.</td></tr>`}
</tbody></table>${c.language_groups > c.languages.length ? html`<p class="muted">The ${c.languages.length} largest of ${count(c.language_groups)} languages.</p>` : ''}</div>
<div id="by-tag"><h2>By tag</h2>
<table class="grid"><thead><tr><th>tag</th>${REACH_COLUMNS}</tr></thead><tbody>
${c.tags.length ? c.tags.map((t) => html`<tr><th scope="row">${t.tag}</th>${reachCells(t)}</tr>`) : html`<tr><td colspan="5">No tags.</td></tr>`}
</tbody></table><p class="muted">${c.tag_groups > c.tags.length ? html`The ${c.tags.length} largest of ${count(c.tag_groups)} tags. ` : ''}${count(c.untagged)} subscribers have no tag.</p></div></section>
<section class="two"><div id="lookup"><h2>Look up a subscriber</h2>
<form method="get" class="filters"><label>chat id <input name="chat_id" inputmode="numeric" value="${v.lookup?.chatId ?? ''}" required></label><button>Look up</button></form>
${v.lookup ? lookupResult(v.lookup.chatId, v.lookup.row) : ''}</div>
<div id="segment"><h2>Count a segment</h2>
<form method="get" class="filters segment"><label>audience filters (JSON, as a broadcast's audience) <textarea name="segment" rows="3" cols="50" spellcheck="false" placeholder='{"languages": ["en"], "tags_any": ["vip"]}'>${v.segment?.text ?? ''}</textarea></label><button>Count</button></form>
${v.segment?.error ? html`<p class="error" role="alert">${v.segment.error}</p>` : ''}${v.segment?.result ? reachStats(v.segment.result) : ''}</div></section>
<section id="import"><h2>Import subscribers</h2>${importForm(ctx)}
${v.imports.length ? html`<h2>Recent imports</h2>${importsTable(ctx, v.imports)}` : ''}</section>`);
}

function lookupResult(chatId: string, s: SubscriberRow | null): Html {
  if (!s) return html`<p class="warn">No subscriber has chat id ${chatId}.</p>`;
  const state = s.opted_out ? 'opted out' : s.unreachable_reason ? 'unreachable' : 'reachable';
  return html`<dl class="facts subscriber"><dt>chat id</dt><dd>${s.chat_id}</dd><dt>state</dt><dd class="${state === 'reachable' ? 'ok' : 'warn'}">${state}${s.opted_out_at ? ` since ${when(s.opted_out_at)}` : ''}</dd>
${s.unreachable_reason ? html`<dt>unreachable</dt><dd>${s.unreachable_reason} (${when(s.unreachable_at)})</dd>` : ''}
<dt>language</dt><dd>${s.language_code ?? '—'}</dd><dt>tags</dt><dd>${s.tags.length ? s.tags.join(', ') : '—'}</dd><dt>time zone</dt><dd>${s.time_zone ?? '—'}</dd>
<dt>subscribed</dt><dd>${when(s.subscribed_at)}</dd><dt>last active</dt><dd>${when(s.last_active_at)}</dd></dl>
${Object.keys(s.attributes).length ? html`<pre>${json(s.attributes)}</pre>` : ''}`;
}

function importForm(ctx: PageContext): Html {
  if (ctx.session.role !== 'admin') return html`<p class="muted">This session is read-only: it cannot import.</p>`;
  return html`<form id="import-form" class="filters" method="post" action="${ctx.base}/subscribers/import" data-max-bytes="${MAX_UPLOAD_BYTES}">
<label>CSV (header row) or JSON lines, at most ${MAX_UPLOAD_BYTES / 1024 / 1024} MB <input type="file" name="file" accept=".csv,.jsonl,.ndjson,.json,text/csv,application/x-ndjson" required></label>
<button>Import</button><span class="error" id="import-problem" role="alert"></span></form>
<p class="muted">Columns (CSV header names or JSON keys): chat_id (required), language_code, tags (separated by ; or |, or a JSON array),
opted_out, subscribed_at, last_active_at, time_zone; any other column goes into attributes. A subscriber already stored is
updated; an empty value keeps what is stored. Bad rows are skipped and reported with their line numbers. The upload is sent by
the page's script; a larger file: <code>bqctl subscribers import FILE</code>.</p>`;
}

function importsTable(ctx: PageContext, runs: ImportRun[]): Html {
  return html`<table class="grid imports"><thead><tr><th>import</th><th>file</th><th>state</th><th>read</th><th>imported</th><th>rejected</th><th>started</th></tr></thead><tbody>
${runs.map((r) => html`<tr><td><a href="${ctx.base}/subscribers/imports/${r.id}">${r.id}</a></td><td>${r.fileName}</td><td><span class="badge s-${stateBadge(r)}">${r.state}</span></td>
<td class="num">${count(r.stats.read)}</td><td class="num">${count(r.stats.imported)}</td><td class="num">${count(r.stats.rejected)}</td><td>${when(r.startedAt)}</td></tr>`)}</tbody></table>`;
}

/** The run's state in the badge colours the other pages use. */
const stateBadge = (r: ImportRun) => (r.state === 'running' ? 'processing' : r.state === 'finished' ? 'completed' : 'failed');

const fraction = (r: ImportRun) => (r.state === 'finished' ? 1 : r.bytes ? r.bytesRead / r.bytes : 0);

/** The values the import page's data-live fields show; sent again by its live stream. */
export function importLive(r: ImportRun): Record<string, string | number> {
  const k = `imp:${r.id}`;
  return {
    [`${k}:progress`]: fraction(r), [`${k}:pct`]: `${(fraction(r) * 100).toFixed(1)}%`, [`${k}:state`]: r.state,
    [`${k}:read`]: count(r.stats.read), [`${k}:imported`]: count(r.stats.imported), [`${k}:inserted`]: count(r.stats.inserted),
    [`${k}:updated`]: count(r.stats.updated), [`${k}:rejected`]: count(r.stats.rejected),
  };
}

export function importPage(ctx: PageContext, r: ImportRun): Html {
  const values = importLive(r);
  const live = (key: string) => html`<span data-live="imp:${r.id}:${key}">${values[`imp:${r.id}:${key}`]}</span>`;
  const stat = (key: string, label: string) => html`<div><dt>${label}</dt><dd>${live(key)}</dd></div>`;
  return page(ctx, `Import ${r.id} · ${r.fileName}`, '/subscribers', html`
<section class="live-import" data-import="${r.id}" data-state="${r.state}">
<p><span class="badge s-${stateBadge(r)}">${live('state')}</span> · ${r.format} · ${count(r.bytes)} bytes · started ${when(r.startedAt)}${r.finishedAt ? html` · ended ${when(r.finishedAt)}` : ''}</p>
<div class="big-progress"><progress max="1" value="${fraction(r).toFixed(4)}" data-live="imp:${r.id}:progress" aria-label="import progress"></progress>${live('pct')}</div>
<dl class="stats">${stat('read', 'records read')}${stat('imported', 'imported')}${stat('inserted', 'new')}${stat('updated', 'updated')}${stat('rejected', 'rejected')}</dl>
${r.error ? html`<p class="error" role="alert">${r.error}${r.keptThroughLine !== null ? html` — ${r.keptThroughLine ? `every accepted row through line ${count(r.keptThroughLine)} is stored, none after it` : 'nothing was stored'}.` : ''}</p>` : ''}
</section>
${r.state !== 'running' ? rejectedRows(r) : html`<p class="muted">The rejected rows are listed here when the import ends.</p>`}
<p><a href="${ctx.base}/subscribers">← Subscribers</a></p>`);
}

function rejectedRows(r: ImportRun): Html {
  if (!r.rejections.length) return html`<section id="rejected"><h2>Rejected rows</h2><p class="ok">None.</p></section>`;
  const hidden = r.stats.rejected - r.rejections.length;
  return html`<section id="rejected"><h2>Rejected rows (${count(r.stats.rejected)})</h2>
<table class="grid rejected"><thead><tr><th>line</th><th>reason</th></tr></thead><tbody>
${r.rejections.map((x) => html`<tr><td class="num">${x.line}</td><td class="error-text">${x.reason}</td></tr>`)}</tbody></table>
${hidden > 0 ? html`<p class="muted">The first ${count(MAX_REPORTED_REJECTIONS)} are listed; ${count(hidden)} more were rejected.</p>` : ''}</section>`;
}
