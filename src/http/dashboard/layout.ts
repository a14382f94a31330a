// The frame every dashboard page shares: navigation, who is logged in, the CSRF token for the
// page's script, and a form helper for actions (each carries the token and asks for confirmation).
import { html, raw, type Html } from './html.js';
import type { Session } from './session.js';

export interface PageContext {
  /** Where the dashboard is mounted, without a trailing slash ('' at the root). */
  base: string;
  session: Session;
  /** A message after an action (from ?done= or ?error=). */
  notice?: { kind: 'done' | 'error'; text: string };
}

const NAV: [string, string][] = [['/', 'Overview'], ['/jobs', 'Jobs'], ['/broadcasts', 'Broadcasts'], ['/compose', 'Compose'], ['/subscribers', 'Subscribers'], ['/health', 'Health']];

export function page(ctx: PageContext, title: string, current: string, body: Html): Html {
  const { base, session } = ctx;
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · broadcast-queued</title>
<meta name="bq-csrf" content="${session.csrf}"><meta name="bq-base" content="${base}">
<link rel="stylesheet" href="${base}/assets/dashboard.css"><link rel="stylesheet" href="${base}/assets/uplot.css">
<script src="${base}/assets/uplot.js" defer></script><script src="${base}/assets/dashboard.js" defer></script>
${current === '/subscribers' ? html`<script src="${base}/assets/subscribers.js" defer></script>` : ''}
</head><body>
<header><a class="brand" href="${base}/">broadcast-queued</a><nav>${NAV.map(([href, label]) => html`<a href="${base}${href}"${current === href ? html` aria-current="page"` : ''}>${label}</a>`)}</nav>
<span class="who">${session.role === 'read' ? 'read-only' : 'admin'}</span>
<form method="post" action="${base}/logout" class="logout" data-action><input type="hidden" name="_csrf" value="${session.csrf}"><button>Log out</button></form></header>
<main>${ctx.notice ? html`<p class="notice ${ctx.notice.kind}" role="status">${ctx.notice.text}</p>` : ''}<h1>${title}</h1>${body}</main>
</body></html>`;
}

/** A button that POSTs `action` after a confirmation; absent for a read-only session. */
export function actionButton(ctx: PageContext, action: string, label: string, confirm: string, danger = false): Html {
  if (ctx.session.role !== 'admin') return html``;
  return html`<form method="post" action="${ctx.base}${action}" class="action" data-action data-confirm="${confirm}"><input type="hidden" name="_csrf" value="${ctx.session.csrf}"><button class="${danger ? 'danger' : ''}">${label}</button></form>`;
}

/** A state as a coloured label. */
export const badge = (state: string) => html`<span class="badge s-${state.replace(/[^a-z_]/g, '')}">${state}</span>`;

/** JSON for the page's script, in a block the browser never runs (CSP allows no inline script anyway). */
export function dataBlock(id: string, value: unknown): Html {
  const text = JSON.stringify(value).replace(/</g, '\\u003c');
  // Inside <script> entities are not decoded, so the JSON goes in raw; with every '<' escaped it cannot end the block.
  return html`<script type="application/json" id="${id}">${raw(text)}</script>`;
}
