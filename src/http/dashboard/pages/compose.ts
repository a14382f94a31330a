// The Compose page: variants of a message (text with HTML or MarkdownV2 formatting, buttons), a
// segment builder over every audience filter, the frequency cap, and the four ways out (a test to
// one chat, a draft, a scheduled send, send now). It is a plain form that works without script;
// compose.js adds the formatted preview, checks as you type and the live count (POST /compose/check).
import { AUDIENCE_FILTERS } from '../../../broadcast/audience.js';
import { TEXT_MAX } from '../../../telegram/message.js';
import { html, type Html } from '../html.js';
import { page, type PageContext } from '../layout.js';
import { MAX_BUTTONS, MAX_VARIANTS, type ButtonFields, type ComposeFields, type VariantFields } from '../compose-form.js';

const FILTER_INPUTS: Record<string, { label: string; type: string; placeholder: string }> = {
  chat_ids: { label: 'exactly these chats', type: 'textarea', placeholder: '123456789, 987654321' },
  exclude_chat_ids: { label: 'never these chats', type: 'textarea', placeholder: '42' },
  tags_any: { label: 'tagged with any of', type: 'text', placeholder: 'vip, beta' },
  tags_all: { label: 'tagged with all of', type: 'text', placeholder: 'newsletter, en' },
  languages: { label: 'language is one of', type: 'text', placeholder: 'en, de' },
  active_within_days: { label: 'active within (days)', type: 'number', placeholder: '30' },
  subscribed_after: { label: 'subscribed after (UTC)', type: 'datetime-local', placeholder: '' },
  subscribed_before: { label: 'subscribed before (UTC)', type: 'datetime-local', placeholder: '' },
  attributes: { label: 'attributes equal (key=value per line)', type: 'textarea', placeholder: 'plan=pro' },
};

const errorSlot = (errors: Record<string, string>, field: string) => html`<p class="field-error" data-error-for="${field}" role="alert">${errors[field] ?? ''}</p>`;

export function composePage(ctx: PageContext, f: ComposeFields, errors: Record<string, string> = {}): Html {
  const admin = ctx.session.role === 'admin';
  const check = (name: 'disable_notification' | 'protect_content' | 'no_link_preview', label: string) => html`<label class="check"><input type="checkbox" name="${name}"${f[name] ? html` checked` : ''}> ${label}</label>`;
  return page(ctx, 'Compose', '/compose', html`<link rel="stylesheet" href="${ctx.base}/assets/compose.css">
<script type="module" src="${ctx.base}/assets/compose.js"></script>
<form method="post" action="${ctx.base}/compose" id="compose" class="compose${f.variants.length > 1 ? '' : ' single'}" novalidate data-max-variants="${MAX_VARIANTS}" data-max-buttons="${MAX_BUTTONS}" data-text-max="${TEXT_MAX}">
<input type="hidden" name="_csrf" value="${ctx.session.csrf}">
<div class="compose-main">
<section><h2>Message</h2>
<label class="field"><span>title <span class="hint">for you: the broadcasts list, bqctl</span></span><input name="title" value="${f.title}" maxlength="200" placeholder="December promo"></label>${errorSlot(errors, 'title')}
<div id="variants">${f.variants.map((v, i) => variantFieldset(v, i, errors))}</div>${errorSlot(errors, 'variants')}
<p class="row"><button type="button" class="secondary" id="add-variant">Add a variant</button> <span class="muted">Variants split the audience by weight, the same chat always getting the same one.</span></p>
<p class="row">${check('no_link_preview', 'no link preview')} ${check('disable_notification', 'silent (no notification sound)')} ${check('protect_content', 'protect from forwarding and saving')}</p>
</section>
<section><h2>Audience</h2>
<p class="muted">Every subscriber when nothing is filled in; filters are ANDed. A list of chats combines only with "never these chats".</p>
<div class="filters-grid">${AUDIENCE_FILTERS.map((filter) => filterInput(filter.name, filter.doc, f.audience[filter.name] ?? '', errors))}
<label class="field"><span>frequency cap <span class="hint">skip chats that already got this many broadcast messages in 24 h</span></span><input type="number" name="frequency_cap" min="1" value="${f.frequency_cap}" placeholder="none"></label>${errorSlot(errors, 'frequency_cap')}
</div>${errorSlot(errors, 'audience')}
</section>
<section><h2>Send</h2>
${admin ? html`<div class="send-grid">
<div><label class="field">test chat id<input name="test_chat_id" value="${f.test_chat_id}" inputmode="numeric" placeholder="your own chat id"></label>${errorSlot(errors, 'test_chat_id')}
<button name="intent" value="test" class="secondary">Send a test</button></div>
<div><p class="muted">Saved, not sent: queue it later from bqctl or the API.</p><button name="intent" value="draft" class="secondary">Save as draft</button></div>
<div><label class="field">send at (UTC)<input type="datetime-local" name="send_at" value="${f.send_at}"></label>${errorSlot(errors, 'send_at')}
<button name="intent" value="schedule">Schedule</button></div>
<div><p class="muted">To every reachable recipient counted here.</p><button name="intent" value="send" data-confirm="Send this broadcast now to every reachable recipient of the audience?">Send now</button></div>
</div>` : html`<p class="muted">This session is read-only: you can compose and preview, not send or save.</p>`}
</section>
</div>
<aside class="compose-side">
<section class="count-panel"><h2>Who would receive it</h2>
<p class="big"><span data-count="reachable">—</span> <span class="muted">reachable</span></p>
<dl class="count-list"><dt>opted out</dt><dd data-count="opted_out">—</dd><dt>unreachable</dt><dd data-count="unreachable">—</dd>
<dt>over the frequency cap</dt><dd data-count="over_frequency_cap">—</dd><dt>selected in all</dt><dd data-count="total">—</dd></dl>
<p class="muted count-state" id="count-state">Counted as you type.</p>
<details><summary>audience as JSON</summary><pre id="audience-json">{}</pre></details>
</section>
<section class="preview-panel"><h2>Preview</h2><div id="previews"></div>
<p class="muted">As Telegram formats it; links and buttons are not followed here.</p></section>
</aside>
</form>
<template id="button-template">${buttonRow(0, { text: '', target: '', layout: 'new' })}</template>`);
}

function variantFieldset(v: VariantFields, i: number, errors: Record<string, string>): Html {
  const at = (field: string) => `v${i}.${field}`;
  return html`<fieldset class="variant" data-variant="${i}">
<legend>Variant <span class="variant-label">${v.name || i + 1}</span></legend>
<div class="variant-meta"><label class="field">name<input name="${at('name')}" value="${v.name}" maxlength="64"></label>${errorSlot(errors, at('name'))}
<label class="field">weight<input type="number" name="${at('weight')}" value="${v.weight}" min="1" max="1000000"></label>${errorSlot(errors, at('weight'))}
<button type="button" class="danger remove-variant">Remove</button></div>
<label class="field">formatting<select name="${at('parse_mode')}">${[['HTML', 'HTML'], ['MarkdownV2', 'MarkdownV2'], ['', 'none (plain text)']].map(([value, label]) => html`<option value="${value}"${v.parse_mode === value ? html` selected` : ''}>${label}</option>`)}</select></label>
<label class="field"><span>text <span class="hint char-count" data-chars-for="${at('text')}"></span></span><textarea name="${at('text')}" rows="7" placeholder="Hello &lt;b&gt;everyone&lt;/b&gt;!">${v.text}</textarea></label>${errorSlot(errors, at('text'))}
<div class="buttons"><p class="muted">Buttons under the message: a link (https://, tg://) or callback data for your bot.</p>
<div class="button-rows">${[...v.buttons, { text: '', target: '', layout: 'new' as const }].map((b) => buttonRow(i, b))}</div>
<button type="button" class="secondary add-button">Add a button</button></div>
</fieldset>`;
}

function buttonRow(variant: number, b: ButtonFields): Html {
  return html`<div class="button-row"><input name="v${variant}.btn_text" value="${b.text}" placeholder="label" aria-label="button label">
<input name="v${variant}.btn_target" value="${b.target}" placeholder="https://… or callback data" aria-label="button link or callback data">
<select name="v${variant}.btn_layout" aria-label="button placement"><option value="new"${b.layout === 'new' ? html` selected` : ''}>new row</option><option value="same"${b.layout === 'same' ? html` selected` : ''}>same row</option></select>
<button type="button" class="danger remove-button" aria-label="remove this button">×</button></div>`;
}

function filterInput(name: string, doc: string, value: string, errors: Record<string, string>): Html {
  const input = FILTER_INPUTS[name] ?? { label: name, type: 'text', placeholder: '' };
  const control = input.type === 'textarea'
    ? html`<textarea name="${name}" rows="2" placeholder="${input.placeholder}">${value}</textarea>`
    : html`<input type="${input.type}" name="${name}" value="${value}" placeholder="${input.placeholder}"${input.type === 'number' ? html` min="1"` : ''}>`;
  return html`<label class="field" title="${doc}"><span>${input.label} <code class="hint">${name}</code></span>${control}</label>${errorSlot(errors, `audience.${name}`)}`;
}
