// The Compose page's form, read into a broadcast: its variants (each a message with buttons), the
// audience built from every filter of broadcast/audience.ts, the frequency cap, a test chat and a
// send time. Every field is checked here, on the server, with the checks the daemon applies
// (parseMessage, parseAudience, validateContent) and Telegram's own formatting rules (markup.ts):
// the browser's preview is a convenience, this is what decides. Problems are keyed by field name.
import { AUDIENCE_FILTERS, parseAudience, type AudienceSpec } from '../../broadcast/audience.js';
import { validateContent } from '../../broadcast/fanout.js';
import type { Variant } from '../../broadcast/broadcasts-store.js';
import { parseMarkup, type ParseMode } from '../../telegram/markup.js';
import { parseChatId, parseMessage } from '../../telegram/message.js';

export const MAX_VARIANTS = 5;
/**
 * The largest form POST /compose reads: five variants of 4,096 characters, each up to 12 bytes
 * form-encoded (%F0%9F%98%80 for two UTF-16 units: Cyrillic text takes 6 bytes a character), plus
 * buttons and an audience; the dashboard's other forms stay within 16 KB.
 */
export const COMPOSE_FORM_BYTES = 512 * 1024;
export const MAX_BUTTONS = 20;
const PARSE_MODES = ['', 'HTML', 'MarkdownV2'] as const;
export const INTENTS = ['draft', 'schedule', 'send', 'test'] as const;
export type Intent = (typeof INTENTS)[number];

export interface ButtonFields { text: string; target: string; layout: 'new' | 'same' }
export interface VariantFields { name: string; weight: string; text: string; parse_mode: string; buttons: ButtonFields[] }

/** The form as sent, to fill it in again. */
export interface ComposeFields {
  title: string;
  variants: VariantFields[];
  disable_notification: boolean;
  protect_content: boolean;
  no_link_preview: boolean;
  /** The audience filters, by name (AUDIENCE_FILTERS), as typed. */
  audience: Record<string, string>;
  frequency_cap: string;
  send_at: string;
  test_chat_id: string;
}

export interface ComposeRequest {
  fields: ComposeFields;
  /** Field name → what is wrong with it (v0.text, tags_any, send_at …). */
  errors: Record<string, string>;
  message?: Record<string, unknown>;
  variants?: Variant[];
  audience: AudienceSpec | null;
  frequencyCap: number | null;
  sendAt: Date | null;
  testChatId: number | null;
}

export const AUDIENCE_FIELDS = AUDIENCE_FILTERS.map((f) => f.name);

export function emptyFields(): ComposeFields {
  return {
    title: '', variants: [{ name: 'a', weight: '1', text: '', parse_mode: 'HTML', buttons: [] }],
    disable_notification: false, protect_content: false, no_link_preview: false,
    audience: {}, frequency_cap: '', send_at: '', test_chat_id: '',
  };
}

/** Reads the form's fields (v0.text, v0.btn_text …) without judging them. */
export function readFields(form: URLSearchParams): ComposeFields {
  const get = (name: string) => (form.get(name) ?? '').trim();
  const indexes = new Set<number>();
  for (const key of form.keys()) {
    const m = /^v(\d{1,2})\./.exec(key);
    if (m) indexes.add(Number(m[1]));
  }
  const variants = [...indexes].sort((a, b) => a - b).slice(0, MAX_VARIANTS + 1).map((i): VariantFields => {
    const texts = form.getAll(`v${i}.btn_text`), targets = form.getAll(`v${i}.btn_target`), layouts = form.getAll(`v${i}.btn_layout`);
    const buttons = texts.map((t, b) => ({ text: t.trim(), target: (targets[b] ?? '').trim(), layout: layouts[b] === 'same' ? 'same' as const : 'new' as const }))
      .filter((b) => b.text !== '' || b.target !== '');
    // The text keeps its spaces: they are the message.
    return { name: get(`v${i}.name`), weight: get(`v${i}.weight`), text: form.get(`v${i}.text`) ?? '', parse_mode: get(`v${i}.parse_mode`), buttons };
  });
  const audience: Record<string, string> = {};
  for (const name of AUDIENCE_FIELDS) if (get(name) !== '') audience[name] = get(name);
  return {
    title: get('title'), variants: variants.length ? variants : emptyFields().variants,
    disable_notification: form.has('disable_notification'), protect_content: form.has('protect_content'), no_link_preview: form.has('no_link_preview'),
    audience, frequency_cap: get('frequency_cap'), send_at: get('send_at'), test_chat_id: get('test_chat_id'),
  };
}

/** Reads and checks the whole form; `errors` is empty when it can be saved and sent. */
export function readCompose(form: URLSearchParams): ComposeRequest {
  const fields = readFields(form);
  const errors: Record<string, string> = {};
  const attempt = <T>(field: string, read: () => T): T | undefined => {
    try {
      return read();
    } catch (error) {
      errors[field] ??= (error as Error).message;
      return undefined;
    }
  };
  if (fields.title.length > 200) errors.title = 'the title must be at most 200 characters';
  if (fields.variants.length > MAX_VARIANTS) errors.variants = `at most ${MAX_VARIANTS} variants`;
  const messages = fields.variants.slice(0, MAX_VARIANTS).map((v, i) => attempt(`v${i}.text`, () => variantMessage(v, fields, i, errors)));
  const out: ComposeRequest = { fields, errors, audience: null, frequencyCap: null, sendAt: null, testChatId: null };
  if (messages.every((m) => m !== undefined)) {
    if (fields.variants.length === 1) out.message = messages[0];
    else {
      out.variants = fields.variants.map((v, i) => ({ name: v.name, weight: Number(v.weight), message: messages[i]! }));
      attempt('variants', () => validateContent({ message: undefined, variants: out.variants }, 'the variants'));
    }
  }
  try {
    out.audience = parseAudience(audienceValue(fields.audience), 'audience');
  } catch (error) {
    // "audience.tags_any must be …" belongs beside that filter's input.
    const message = (error as Error).message;
    const filter = /^audience\.(\w+)/.exec(message)?.[1];
    errors[filter ? `audience.${filter}` : 'audience'] = message;
  }
  if (fields.frequency_cap !== '') out.frequencyCap = attempt('frequency_cap', () => wholeNumber(fields.frequency_cap, 'the frequency cap', 1, 1_000_000)) ?? null;
  if (fields.send_at !== '') out.sendAt = attempt('send_at', () => utcTime(fields.send_at, 'the send time')) ?? null;
  if (fields.test_chat_id !== '') out.testChatId = attempt('test_chat_id', () => parseChatId(integer(fields.test_chat_id, 'the test chat id'), 'the test chat id')) ?? null;
  return out;
}

/** The errors that stop `intent`: a test needs a message and a chat, the rest a message and an audience. */
export function blockingErrors(r: ComposeRequest, intent: Intent): Record<string, string> {
  const e = { ...r.errors };
  if (intent === 'test') {
    for (const k of Object.keys(e)) if (k === 'audience' || k.startsWith('audience.') || k === 'frequency_cap' || k === 'send_at') delete e[k];
    if (r.testChatId === null && !e.test_chat_id) e.test_chat_id = 'give the chat to send the test to';
  } else {
    delete e.test_chat_id;
    if (intent === 'schedule' && r.sendAt === null && !e.send_at) e.send_at = 'give the time to send at (UTC)';
    if (intent !== 'schedule') delete e.send_at;
  }
  return e;
}

function variantMessage(v: VariantFields, f: ComposeFields, i: number, errors: Record<string, string>): Record<string, unknown> {
  const label = `message ${f.variants.length > 1 ? `"${v.name || i + 1}" ` : ''}`;
  if (!(PARSE_MODES as readonly string[]).includes(v.parse_mode)) throw new Error(`the formatting must be HTML, MarkdownV2 or none`);
  if (v.text.trim() === '') throw new Error(`the ${label}text is empty`);
  const mode = v.parse_mode === '' ? null : (v.parse_mode as ParseMode);
  const markup = parseMarkup(v.text, mode);
  if (markup.error) throw new Error(`${mode}: ${markup.error}`);
  const message: Record<string, unknown> = { text: v.text };
  if (mode) message.parse_mode = mode;
  if (f.no_link_preview) message.link_preview_options = { is_disabled: true };
  if (f.disable_notification) message.disable_notification = true;
  if (f.protect_content) message.protect_content = true;
  if (v.buttons.length) {
    if (v.buttons.length > MAX_BUTTONS) throw new Error(`at most ${MAX_BUTTONS} buttons`);
    const rows: Record<string, string>[][] = [];
    v.buttons.forEach((b, n) => {
      const button = buttonOf(b, `button ${n + 1}`);
      if (b.layout === 'same' && rows.length) rows[rows.length - 1]!.push(button);
      else rows.push([button]);
    });
    message.reply_markup = { inline_keyboard: rows };
  }
  if (f.variants.length > 1) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(v.name)) errors[`v${i}.name`] = 'a variant name is 1 to 64 letters, digits, _ or -';
    if (!/^\d{1,7}$/.test(v.weight) || Number(v.weight) < 1 || Number(v.weight) > 1_000_000) errors[`v${i}.weight`] = 'a weight is a whole number from 1 to 1000000';
  }
  // The daemon's own check: what it would refuse at the first send is refused here.
  parseMessage(message, label.trim());
  return message;
}

/** A URL button (http, https or tg://) or, for anything else, a callback button (1 to 64 bytes of data). */
function buttonOf(b: ButtonFields, label: string): Record<string, string> {
  if (b.text === '') throw new Error(`${label} has no label`);
  if (b.target === '') throw new Error(`${label} ("${b.text}") needs a link or callback data`);
  if (/^(https?|tg):\/\//i.test(b.target)) {
    if (!URL.canParse(b.target)) throw new Error(`${label} ("${b.text}"): ${JSON.stringify(b.target)} is not a valid URL`);
    return { text: b.text, url: b.target };
  }
  if (/^[a-z]+:/i.test(b.target)) throw new Error(`${label} ("${b.text}"): a link must start with https://, http:// or tg://`);
  if (Buffer.byteLength(b.target) > 64) throw new Error(`${label} ("${b.text}"): callback data is at most 64 bytes`);
  return { text: b.text, callback_data: b.target };
}

/** The audience object the typed filters make: lists split on commas, spaces or lines; attributes as key=value lines. */
export function audienceValue(typed: Record<string, string>): Record<string, unknown> {
  const audience: Record<string, unknown> = {};
  const list = (s: string) => s.split(/[\s,]+/).filter(Boolean);
  for (const [name, value] of Object.entries(typed)) {
    if (name === 'chat_ids' || name === 'exclude_chat_ids') audience[name] = list(value).map((id) => integer(id, `audience.${name}: "${id}"`));
    else if (name === 'tags_any' || name === 'tags_all' || name === 'languages') audience[name] = value.split(',').map((s) => s.trim()).filter(Boolean);
    else if (name === 'active_within_days') audience[name] = Number(value);
    else if (name === 'subscribed_before' || name === 'subscribed_after') audience[name] = /Z|[+-]\d\d:?\d\d$/.test(value) || !value.includes('T') ? value : `${value}Z`;
    else if (name === 'attributes') audience[name] = attributes(value);
  }
  return audience;
}

/** key=value lines; a value that reads as a JSON number, true, false or null is that, else a string ("3" in quotes stays a string). */
function attributes(text: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const line of text.split(/\r?\n|,/).map((l) => l.trim()).filter(Boolean)) {
    const eq = line.indexOf('=');
    if (eq < 1) throw new Error(`audience.attributes: write each as key=value, got ${JSON.stringify(line)}`);
    const key = line.slice(0, eq).trim();
    // Assigning it would set the object's prototype instead, and the filter would silently vanish.
    if (key === '__proto__') throw new Error('audience.attributes: "__proto__" cannot be an attribute name here');
    const raw = line.slice(eq + 1).trim();
    let value: unknown = raw;
    try {
      const parsed: unknown = JSON.parse(raw);
      if (parsed === null || ['number', 'boolean', 'string'].includes(typeof parsed)) value = parsed;
    } catch {
      // not JSON: the text itself
    }
    out[key] = value;
  }
  return out;
}

function integer(text: string, what: string): number {
  if (!/^-?\d{1,16}$/.test(text)) throw new Error(`${what} must be a whole number`);
  return Number(text);
}

function wholeNumber(text: string, what: string, min: number, max: number): number {
  const n = integer(text, what);
  if (n < min || n > max) throw new Error(`${what} must be from ${min} to ${max}`);
  return n;
}

/** A datetime-local value, read as UTC as every time on these pages is shown. */
function utcTime(text: string, what: string): Date {
  const d = new Date(/Z|[+-]\d\d:?\d\d$/.test(text) ? text : `${text}Z`);
  if (Number.isNaN(d.getTime())) throw new Error(`${what} must be a date and time such as 2026-12-24T09:00 (UTC)`);
  return d;
}
