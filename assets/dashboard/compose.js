// broadcast-queued dashboard, Compose page: the formatted preview of each variant (parsed by the
// same module the server checks with, telegram-markup.js, and built as DOM nodes: no markup from
// the text is ever given to the browser as HTML), the server's checks and the live audience count
// as you type (POST /compose/check), adding buttons and variants, and sending the form by fetch so
// a test send keeps what you wrote on the page.
import { parseMarkup } from './telegram-markup.js';

const form = document.getElementById('compose');
const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.getAttribute('content') ?? '';
const base = meta('bq-base');
const csrf = meta('bq-csrf');
const textMax = Number(form.dataset.textMax);
const variants = document.getElementById('variants');
const previews = document.getElementById('previews');

const TAGS = { bold: 'strong', italic: 'em', underline: 'u', strikethrough: 's', spoiler: 'span', link: 'a', code: 'code', pre: 'pre', blockquote: 'blockquote', custom_emoji: 'span' };

function renderNodes(nodes, parent) {
  for (const node of nodes) {
    if (typeof node === 'string') {
      parent.append(document.createTextNode(node));
      continue;
    }
    const el = document.createElement(TAGS[node.type]);
    if (node.type === 'spoiler') el.className = 'spoiler';
    if (node.type === 'link') {
      // Only web and Telegram links get an href; javascript: and the like stay inert text.
      if (/^(https?|tg):/i.test(node.url ?? '')) el.href = node.url;
      el.rel = 'noopener noreferrer';
      el.target = '_blank';
      el.title = node.url ?? '';
    }
    if (node.type === 'pre' && node.language) el.dataset.language = node.language;
    renderNodes(node.children, el);
    parent.append(el);
  }
}

const field = (fieldset, name) => fieldset.querySelector(`[name="v${fieldset.dataset.variant}.${name}"]`);
const errorSlots = (name) => document.querySelectorAll(`[data-error-for="${CSS.escape(name)}"]`);

function setError(name, text) {
  for (const slot of errorSlots(name)) slot.textContent = text ?? '';
}

function buttonsOf(fieldset) {
  const rows = [];
  for (const row of fieldset.querySelectorAll('.button-row')) {
    const [text, target, layout] = row.querySelectorAll('input, select');
    if (!text.value.trim() && !target.value.trim()) continue;
    const button = { text: text.value.trim() || '(no label)', target: target.value.trim() };
    if (layout.value === 'same' && rows.length) rows[rows.length - 1].push(button);
    else rows.push([button]);
  }
  return rows;
}

/** The preview of one variant, and its formatting error at once (the server's check follows). */
function preview(fieldset) {
  const i = fieldset.dataset.variant;
  let box = previews.querySelector(`[data-preview-for="${i}"]`);
  if (!box) {
    box = document.createElement('div');
    box.className = 'phone';
    box.dataset.previewFor = i;
    previews.append(box);
  }
  box.replaceChildren();
  if (variants.children.length > 1) {
    const label = document.createElement('p');
    label.className = 'muted';
    const weights = [...variants.querySelectorAll('fieldset.variant')].map((f) => Number(field(f, 'weight').value) || 0);
    const weight = Number(field(fieldset, 'weight').value) || 0;
    const share = weights.reduce((a, b) => a + b, 0) ? ` (${Math.round((100 * weight) / weights.reduce((a, b) => a + b, 0))} % of recipients)` : '';
    label.textContent = `Variant ${field(fieldset, 'name').value || Number(i) + 1} · weight ${weight || '?'}${share}`;
    box.append(label);
  }
  const text = field(fieldset, 'text').value;
  const mode = field(fieldset, 'parse_mode').value || null;
  const parsed = parseMarkup(text, mode);
  const bubble = document.createElement('div');
  bubble.className = 'bubble';
  if (parsed.error) {
    bubble.classList.add('invalid');
    bubble.append(document.createTextNode(text));
  } else if (text.trim()) renderNodes(parsed.nodes, bubble);
  else bubble.append(Object.assign(document.createElement('span'), { className: 'muted', textContent: 'The message appears here as you type.' }));
  box.append(bubble);
  const rows = buttonsOf(fieldset);
  if (rows.length) {
    const keyboard = document.createElement('div');
    keyboard.className = 'keyboard';
    for (const row of rows) {
      const line = document.createElement('div');
      for (const b of row) {
        const key = document.createElement('span');
        key.className = /^(https?|tg):\/\//i.test(b.target) ? 'key link' : 'key';
        key.textContent = b.text;
        key.title = b.target;
        line.append(key);
      }
      keyboard.append(line);
    }
    box.append(keyboard);
  }
  const chars = fieldset.querySelector('.char-count');
  const length = parsed.error ? text.length : parsed.length;
  chars.textContent = `${length} / ${textMax} characters${mode ? ' after formatting' : ''}`;
  chars.classList.toggle('error', length > textMax);
  setError(`v${i}.text`, parsed.error ? `${mode}: ${parsed.error}` : length > textMax ? `the text is ${length} characters; Telegram takes at most ${textMax}` : '');
}

function previewAll() {
  for (const fieldset of variants.querySelectorAll('fieldset.variant')) preview(fieldset);
  for (const box of previews.querySelectorAll('[data-preview-for]')) {
    if (!variants.querySelector(`fieldset[data-variant="${box.dataset.previewFor}"]`)) box.remove();
  }
}

// --- the server's checks and the live count ---------------------------------------------------

let checkTimer;
let checkSeq = 0;
let checkController;
const countState = document.getElementById('count-state');

function formParams() {
  const params = new URLSearchParams(new FormData(form));
  params.delete('_csrf');
  return params;
}

function scheduleCheck() {
  clearTimeout(checkTimer);
  countState.textContent = 'counting…';
  checkTimer = setTimeout(check, 250);
}

async function check() {
  const seq = ++checkSeq;
  checkController?.abort();
  checkController = new AbortController();
  try {
    const res = await fetch(`${base}/compose/check`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrf-token': csrf, 'x-requested-with': 'bq-dashboard' },
      body: formParams().toString(),
      signal: checkController.signal,
      credentials: 'same-origin',
    });
    if (seq !== checkSeq) return;
    if (!res.ok) {
      countState.textContent = `The server did not check it (${res.status}).`;
      return;
    }
    const result = await res.json();
    showErrors(result.errors, (name) => name !== 'test_chat_id');
    for (const el of document.querySelectorAll('[data-count]')) {
      const value = result.count?.[el.dataset.count];
      el.textContent = value === undefined ? (result.count && el.dataset.count === 'over_frequency_cap' ? 'no cap' : '—') : value.toLocaleString('en');
    }
    const sendNow = form.querySelector('button[value="send"]');
    if (sendNow && result.count) sendNow.dataset.confirm = `Send this broadcast now to ${result.count.reachable.toLocaleString('en')} reachable recipients?`;
    document.getElementById('audience-json').textContent = JSON.stringify(result.audience ?? {}, null, 2);
    const problems = Object.keys(result.errors).length;
    countState.textContent = result.count ? (problems ? `${problems} field${problems > 1 ? 's need' : ' needs'} a change.` : 'Ready to send.') : 'Fix the audience to see the count.';
    form.classList.toggle('has-errors', problems > 0);
  } catch (error) {
    if (error.name !== 'AbortError' && seq === checkSeq) countState.textContent = `The check failed: ${error.message}`;
  }
}

/** Shows the server's errors in every slot `applies` to, clearing the others. */
function showErrors(errors, applies = () => true) {
  for (const slot of document.querySelectorAll('[data-error-for]')) {
    const name = slot.dataset.errorFor;
    if (applies(name)) slot.textContent = errors[name] ?? '';
  }
}

// --- buttons and variants -------------------------------------------------------------------

function addButton(fieldset) {
  const rows = fieldset.querySelector('.button-rows');
  if (rows.children.length >= Number(form.dataset.maxButtons)) return;
  const row = document.getElementById('button-template').content.firstElementChild.cloneNode(true);
  for (const input of row.querySelectorAll('[name]')) input.name = input.name.replace(/^v\d+\./, `v${fieldset.dataset.variant}.`);
  rows.append(row);
  row.querySelector('input').focus();
}

function addVariant() {
  const all = variants.querySelectorAll('fieldset.variant');
  if (all.length >= Number(form.dataset.maxVariants)) return;
  const last = all[all.length - 1];
  const index = Math.max(...[...all].map((f) => Number(f.dataset.variant))) + 1;
  const copy = last.cloneNode(true);
  copy.dataset.variant = String(index);
  for (const el of copy.querySelectorAll('[name]')) el.name = el.name.replace(/^v\d+\./, `v${index}.`);
  for (const el of copy.querySelectorAll('[data-error-for]')) {
    el.dataset.errorFor = el.dataset.errorFor.replace(/^v\d+\./, `v${index}.`);
    el.textContent = '';
  }
  const names = new Set([...all].map((f) => field(f, 'name').value));
  let name = 'b';
  for (let c = 98; names.has(name) && c < 123; c++) name = String.fromCharCode(c);
  field(copy, 'name').value = name;
  field(copy, 'weight').value = '1';
  copy.querySelector('.variant-label').textContent = name;
  variants.append(copy);
  form.classList.remove('single');
  changed();
  field(copy, 'text').focus();
}

function removeVariant(fieldset) {
  if (variants.children.length <= 1) return;
  fieldset.remove();
  form.classList.toggle('single', variants.children.length === 1);
  changed();
}

function changed() {
  previewAll();
  scheduleCheck();
}

form.addEventListener('input', (event) => {
  const fieldset = event.target.closest('fieldset.variant');
  if (fieldset && event.target.name?.endsWith('.name')) fieldset.querySelector('.variant-label').textContent = event.target.value || Number(fieldset.dataset.variant) + 1;
  if (fieldset) event.target.name?.endsWith('.weight') ? previewAll() : preview(fieldset);
  if (event.target.name !== 'test_chat_id') scheduleCheck();
});
form.addEventListener('change', () => changed());
form.addEventListener('click', (event) => {
  const button = event.target.closest('button');
  if (!button || button.type !== 'button') return;
  const fieldset = button.closest('fieldset.variant');
  if (button.id === 'add-variant') addVariant();
  else if (button.classList.contains('add-button')) addButton(fieldset);
  else if (button.classList.contains('remove-variant')) removeVariant(fieldset);
  else if (button.classList.contains('remove-button')) {
    const row = button.closest('.button-row');
    if (row.parentElement.children.length > 1) row.remove();
    else for (const input of row.querySelectorAll('input')) input.value = '';
    changed();
  }
});

// --- sending --------------------------------------------------------------------------------

function notice(kind, text) {
  let el = document.querySelector('main > .notice');
  if (!el) {
    el = document.createElement('p');
    el.setAttribute('role', 'status');
    document.querySelector('main').prepend(el);
  }
  el.className = `notice ${kind}`;
  el.textContent = text;
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const submitter = event.submitter;
  const question = submitter?.dataset.confirm;
  if (question && !window.confirm(question)) return;
  const body = new URLSearchParams(new FormData(form));
  if (submitter?.name) body.set(submitter.name, submitter.value);
  const buttons = form.querySelectorAll('button[name="intent"]');
  for (const b of buttons) b.disabled = true;
  try {
    const res = await fetch(form.action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrf-token': csrf, 'x-requested-with': 'bq-dashboard' },
      body: body.toString(),
      credentials: 'same-origin',
    });
    const type = res.headers.get('content-type') ?? '';
    if (!type.startsWith('application/json')) {
      document.documentElement.innerHTML = await res.text();
      return;
    }
    const answer = await res.json();
    if (answer.location) return location.assign(answer.location);
    notice(answer.notice.kind, answer.notice.text);
    showErrors(answer.errors ?? {});
    const first = Object.keys(answer.errors ?? {})[0];
    if (first) document.querySelector(`[data-error-for="${CSS.escape(first)}"]`)?.scrollIntoView({ block: 'center' });
    else window.scrollTo({ top: 0 });
  } catch (error) {
    notice('error', `The request failed: ${error.message}`);
  } finally {
    for (const b of buttons) b.disabled = false;
  }
});

previewAll();
check();
