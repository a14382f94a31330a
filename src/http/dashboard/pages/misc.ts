// The error page, and what the overview's live stream sends.
import { count, duration, html, when, type Html } from '../html.js';
import type { OverviewData } from '../overview-data.js';

export function errorPage(base: string, status: number, message: string): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${status} · broadcast-queued</title>
<link rel="stylesheet" href="${base}/assets/dashboard.css"></head><body class="login"><main>
<h1>${status}</h1><p class="error">${message}</p><p><a href="${base}/">Back to the overview</a></p></main></body></html>`;
}

const STATES = ['pending', 'processing', 'completed', 'failed', 'cancelled'] as const;

/**
 * The overview's data-live values and charts. `shape` names the queues and the broadcasts in
 * progress: when it changes, the page reloads to show the new rows.
 */
export function overviewLive(d: OverviewData) {
  const values: Record<string, string | number> = {};
  for (const [queue, c] of Object.entries(d.status.queues)) {
    for (const s of STATES) values[`q:${queue}:${s}`] = count(c[s]);
    values[`q:${queue}:due`] = count(d.due[queue] ?? 0);
    values[`q:${queue}:oldest`] = duration(c.oldestDueSeconds);
  }
  for (const b of d.inProgress) {
    values[`b:${b.broadcast_id}:progress`] = b.progress;
    values[`b:${b.broadcast_id}:pct`] = `${(b.progress * 100).toFixed(1)}%`;
  }
  if (d.rateLimited) {
    values['rl:hour'] = count(d.rateLimited.lastHour);
    values['rl:paused'] = duration(d.rateLimited.pausedSecondsLastHour);
    values['rl:total'] = count(d.rateLimited.sinceStart);
    values['rl:last'] = d.rateLimited.last ? `; the last at ${when(d.rateLimited.last)}` : '';
  }
  return { values, charts: d.charts, shape: overviewShape(d) };
}

export const overviewShape = (d: OverviewData) => `${Object.keys(d.status.queues).sort().join(',')}|${d.inProgress.map((b) => `${b.broadcast_id}:${b.status}`).join(',')}`;
