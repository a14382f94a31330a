// Which links and callback buttons a broadcast's messages hold, and each recipient's copy with them
// pointing at the redirect listener. The same function lists them for the sender (from the checked
// params) and for the redirect listener (from the broadcasts row), so an index means the same link
// on both sides, and the listener redirects only to a URL that was in that broadcast's message.
//
// Tracked: text_link and url entities of text or caption, <a href> in parse_mode HTML, and the url
// and callback_data of inline keyboard buttons. A plain URL that Telegram would find in text
// without entities, and Markdown links, are sent as they are.
import { PayloadError } from '../errors.js';
import { MAX_TRACKED, type LinkTokens } from './token.js';

/** A message's fields as the Bot API names them (a broadcast's message JSON, or checked params). */
type Fields = Record<string, unknown>;
interface Entity { type: string; offset: number; length: number; url?: string; [k: string]: unknown }
interface Button { text: string; url?: string; callback_data?: string; [k: string]: unknown }

export interface TrackedParts {
  /** Distinct http(s) URLs in order of first appearance across the broadcast's messages. */
  urls: string[];
  /** Distinct callback_data values of inline buttons, in the same order. */
  buttons: string[];
}

const HREF = /(<a\s[^>]*?href\s*=\s*)(["'])(.*?)\2/gi;
const TRACKABLE = /^https?:\/\//i;
export const CALLBACK_PREFIX = 'bq:';

const decodeHtml = (s: string) => s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
/** A url entity's text may lack a scheme ("example.com"); Telegram opens it as http. */
const absolute = (u: string) => (/^[a-z][a-z0-9+.-]*:/i.test(u) ? u : `http://${u}`);

function textAndEntities(m: Fields): { text: string | null; key: 'entities' | 'caption_entities' } {
  if (typeof m.text === 'string') return { text: m.text, key: 'entities' };
  return { text: typeof m.caption === 'string' ? m.caption : null, key: 'caption_entities' };
}

function keyboard(m: Fields): Button[][] {
  const markup = m.reply_markup as { inline_keyboard?: Button[][] } | undefined;
  return Array.isArray(markup?.inline_keyboard) ? markup.inline_keyboard : [];
}

/** Visits every trackable link and button of one message, in a fixed order; `replace` may rewrite each. */
function visit(m: Fields, onUrl: (url: string) => string | void, onButton: (data: string) => string | void): Fields {
  const out: Fields = { ...m };
  const { text, key } = textAndEntities(m);
  const entities = Array.isArray(m[key]) ? (m[key] as Entity[]) : null;
  if (text !== null && entities) {
    out[key] = entities.map((e) => {
      if (e.type === 'text_link' && typeof e.url === 'string' && TRACKABLE.test(e.url)) {
        const replaced = onUrl(e.url);
        return replaced ? { ...e, url: replaced } : e;
      }
      if (e.type === 'url') {
        const url = absolute(text.slice(e.offset, e.offset + e.length));
        if (!TRACKABLE.test(url)) return e;
        // The text stays as it was; the entity becomes a link with the tracked address behind it.
        const replaced = onUrl(url);
        return replaced ? { type: 'text_link', offset: e.offset, length: e.length, url: replaced } : e;
      }
      return e;
    });
  }
  if (text !== null && String(m.parse_mode ?? '').toUpperCase() === 'HTML') {
    const rewritten = text.replace(HREF, (all, head: string, quote: string, href: string) => {
      const url = decodeHtml(href);
      if (!TRACKABLE.test(url)) return all;
      const replaced = onUrl(url);
      return replaced ? `${head}${quote}${replaced}${quote}` : all;
    });
    out[key === 'entities' ? 'text' : 'caption'] = rewritten;
  }
  const rows = keyboard(m);
  if (rows.length) {
    out.reply_markup = {
      ...(m.reply_markup as object),
      inline_keyboard: rows.map((row) => row.map((b) => {
        if (typeof b.url === 'string' && TRACKABLE.test(b.url)) {
          const replaced = onUrl(b.url);
          return replaced ? { ...b, url: replaced } : b;
        }
        if (typeof b.callback_data === 'string') {
          const replaced = onButton(b.callback_data);
          return replaced ? { ...b, callback_data: replaced } : b;
        }
        return b;
      })),
    };
  }
  return out;
}

/** The links and buttons of a broadcast: its message, or each variant's in order. */
export function trackedParts(messages: Fields[]): TrackedParts {
  const urls: string[] = [];
  const buttons: string[] = [];
  for (const m of messages) {
    visit(m, (u) => { if (!urls.includes(u)) urls.push(u); }, (d) => { if (!buttons.includes(d)) buttons.push(d); });
  }
  if (urls.length > MAX_TRACKED || buttons.length > MAX_TRACKED) throw new PayloadError(`a tracked broadcast can hold at most ${MAX_TRACKED} distinct links and ${MAX_TRACKED} distinct callback buttons, got ${urls.length} and ${buttons.length}`);
  return { urls, buttons };
}

/** One recipient's copy of a message: every tracked link through the redirect, every button's data a token. */
export function personalize(params: Fields, parts: TrackedParts, tokens: LinkTokens, publicUrl: string, broadcastId: number, chatId: number): Fields {
  const base = publicUrl.replace(/\/+$/, '');
  return visit(
    params,
    (url) => `${base}/r/${tokens.encode({ kind: 'link', broadcastId, chatId, index: parts.urls.indexOf(url) })}`,
    (data) => `${CALLBACK_PREFIX}${tokens.encode({ kind: 'button', broadcastId, chatId, index: parts.buttons.indexOf(data) })}`,
  );
}
