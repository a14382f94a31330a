// Telegram's HTML and MarkdownV2 formatting, parsed as the Bot API parses it: into a tree of
// entities for a preview, or the first error Telegram would answer ("can't parse entities"). The
// dashboard's Compose page runs it on the server before saving a broadcast, and the browser runs
// the same compiled file for the preview as you type (assets.ts serves dist/src/telegram/markup.js),
// so it imports nothing. Rules: https://core.telegram.org/bots/api#formatting-options
// It never produces HTML: the preview builds DOM nodes from the tree.

export type EntityType = 'bold' | 'italic' | 'underline' | 'strikethrough' | 'spoiler' | 'link' | 'code' | 'pre' | 'blockquote' | 'custom_emoji';

export interface Entity {
  type: EntityType;
  children: MarkupNode[];
  /** link: the URL; pre: the language (may be ''). */
  url?: string;
  language?: string;
}

export type MarkupNode = string | Entity;

export interface ParsedMarkup {
  nodes: MarkupNode[];
  /** The text as Telegram counts it (markup removed), in UTF-16 units; 0 with an error. */
  length: number;
  /** Telegram's refusal, or null when it would accept the text. */
  error: string | null;
}

export type ParseMode = 'HTML' | 'MarkdownV2';

export function parseMarkup(text: string, mode: ParseMode | null): ParsedMarkup {
  if (mode === null) return { nodes: text ? [text] : [], length: text.length, error: null };
  try {
    const nodes = mode === 'HTML' ? parseHtml(text) : parseMarkdownV2(text);
    return { nodes, length: textLength(nodes), error: null };
  } catch (error) {
    if (error instanceof MarkupError) return { nodes: [], length: 0, error: error.message };
    throw error;
  }
}

class MarkupError extends Error {}

const fail = (message: string): never => {
  throw new MarkupError(message);
};

function textLength(nodes: MarkupNode[]): number {
  let n = 0;
  for (const node of nodes) n += typeof node === 'string' ? node.length : textLength(node.children);
  return n;
}

/** Builds the tree: text is appended to the innermost open entity. */
class TreeBuilder {
  readonly root: MarkupNode[] = [];
  readonly open: { entity: Entity; token: string; at: number }[] = [];

  get children(): MarkupNode[] {
    return this.open.length ? this.open[this.open.length - 1]!.entity.children : this.root;
  }

  text(s: string): void {
    const list = this.children;
    if (typeof list[list.length - 1] === 'string') list[list.length - 1] += s;
    else list.push(s);
  }

  start(entity: Entity, token: string, at: number): void {
    this.children.push(entity);
    this.open.push({ entity, token, at });
  }

  get top() {
    return this.open[this.open.length - 1];
  }
}

// --- HTML ----------------------------------------------------------------------------------------

const HTML_TAGS: Record<string, EntityType> = {
  b: 'bold', strong: 'bold', i: 'italic', em: 'italic', u: 'underline', ins: 'underline',
  s: 'strikethrough', strike: 'strikethrough', del: 'strikethrough', 'tg-spoiler': 'spoiler', span: 'spoiler',
  a: 'link', code: 'code', pre: 'pre', blockquote: 'blockquote', 'tg-emoji': 'custom_emoji',
};

const NAMED_ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"' };

/** The character an entity at `i` stands for and where it ends; null when it is not one (a lone & is text). */
function htmlEntity(text: string, i: number): [string, number] | null {
  const m = /^&(?:(lt|gt|amp|quot)|#(\d{1,7})|#x([0-9a-fA-F]{1,6}));/.exec(text.slice(i, i + 12));
  if (!m) return null;
  const code = m[1] ? null : m[2] ? Number(m[2]) : parseInt(m[3]!, 16);
  if (code === null) return [NAMED_ENTITIES[m[1]!]!, i + m[0].length];
  if (code === 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return null;
  return [String.fromCodePoint(code), i + m[0].length];
}

function decodeEntities(value: string): string {
  let out = '';
  for (let i = 0; i < value.length;) {
    const e = value[i] === '&' ? htmlEntity(value, i) : null;
    if (e) [out, i] = [out + e[0], e[1]];
    else out += value[i++];
  }
  return out;
}

/** The attributes of a start tag from `i` (just after its name) to its '>'; returns them and the index after '>'. */
function htmlAttributes(text: string, i: number, tag: string, at: number): [Record<string, string>, number] {
  const attributes: Record<string, string> = {};
  for (;;) {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (i >= text.length) return fail(`Unclosed start tag at character ${at}`);
    if (text[i] === '>') return [attributes, i + 1];
    if (text[i] === '/' && text[i + 1] === '>') return fail(`Unsupported self-closing tag "${tag}" at character ${at}`);
    const name = /^[A-Za-z0-9_-]+/.exec(text.slice(i))?.[0];
    if (!name) return fail(`Empty attribute name in the tag "${tag}" at character ${at}`);
    i += name.length;
    while (i < text.length && /\s/.test(text[i]!)) i++;
    let value = '';
    if (text[i] === '=') {
      i++;
      while (i < text.length && /\s/.test(text[i]!)) i++;
      const quote = text[i];
      if (quote === '"' || quote === "'") {
        const end = text.indexOf(quote, i + 1);
        if (end < 0) return fail(`Unclosed start tag at character ${at}`);
        value = decodeEntities(text.slice(i + 1, end));
        i = end + 1;
      } else {
        const bare = /^[A-Za-z0-9.\-_:/?#=&%+]*/.exec(text.slice(i))![0];
        if (!bare) return fail(`Expected an attribute value in the tag "${tag}" at character ${at}`);
        value = decodeEntities(bare);
        i += bare.length;
      }
    }
    attributes[name.toLowerCase()] = value;
  }
}

function parseHtml(text: string): MarkupNode[] {
  const tree = new TreeBuilder();
  for (let i = 0; i < text.length;) {
    const c = text[i]!;
    if (c === '&') {
      const e = htmlEntity(text, i);
      tree.text(e ? e[0] : '&');
      i = e ? e[1] : i + 1;
      continue;
    }
    if (c !== '<') {
      tree.text(c);
      i++;
      continue;
    }
    const at = i;
    if (text[i + 1] === '/') {
      const m = /^<\/([A-Za-z0-9-]*)\s*>/.exec(text.slice(i));
      if (!m) return fail(`Unclosed end tag at character ${at}`);
      const name = m[1]!.toLowerCase();
      const top = tree.top;
      if (!top) return fail(`Unexpected end tag "</${name}>" at character ${at}`);
      if (top.token !== name) return fail(`Unmatched end tag at character ${at}: expected "</${top.token}>", found "</${name}>"`);
      tree.open.pop();
      i += m[0].length;
      continue;
    }
    const name = /^<([A-Za-z0-9-]*)/.exec(text.slice(i))![1]!.toLowerCase();
    const type = Object.hasOwn(HTML_TAGS, name) ? HTML_TAGS[name] : undefined;
    if (!type) return fail(`Unsupported start tag "${name}" at character ${at} (write < as &lt;)`);
    const [attributes, next] = htmlAttributes(text, i + 1 + name.length, name, at);
    i = next;
    const entity: Entity = { type, children: [] };
    if (name === 'span' && attributes.class !== 'tg-spoiler') return fail(`Tag "span" must have class "tg-spoiler" at character ${at}`);
    if (type === 'link') entity.url = attributes.href ?? '';
    if (type === 'custom_emoji' && !/^\d+$/.test(attributes['emoji-id'] ?? '')) return fail(`Tag "tg-emoji" needs a numeric emoji-id at character ${at}`);
    if (type === 'code' && tree.top?.entity.type === 'pre' && attributes.class?.startsWith('language-')) tree.top.entity.language = attributes.class.slice('language-'.length);
    if (type === 'pre') entity.language = '';
    tree.start(entity, name, at);
  }
  const open = tree.top;
  if (open) fail(`Can't find end tag corresponding to start tag "${open.token}" (at character ${open.at})`);
  return tree.root;
}

// --- MarkdownV2 ----------------------------------------------------------------------------------

const RESERVED = new Set('_*[]()~`>#+-=|{}.!');

const MARKDOWN_NAMES: Record<EntityType, string> = {
  bold: 'Bold', italic: 'Italic', underline: 'Underline', strikethrough: 'Strikethrough', spoiler: 'Spoiler',
  link: 'TextUrl', code: 'Code', pre: 'Pre', blockquote: 'BlockQuote', custom_emoji: 'CustomEmoji',
};

/** Any character from 1 to 126 can be escaped with a preceding backslash. */
const escapable = (c: string | undefined) => c !== undefined && c.charCodeAt(0) >= 1 && c.charCodeAt(0) <= 126;

function parseMarkdownV2(text: string): MarkupNode[] {
  const tree = new TreeBuilder();
  const lineStart = (i: number) => i === 0 || text[i - 1] === '\n';
  for (let i = 0; i < text.length;) {
    const c = text[i]!;
    const top = tree.top;
    // Inside code and pre only ` and \ mean anything.
    if (top && (top.entity.type === 'code' || top.entity.type === 'pre')) {
      if (c === '\\' && escapable(text[i + 1])) {
        tree.text(text[i + 1]!);
        i += 2;
      } else if (top.entity.type === 'pre' ? text.startsWith('```', i) : c === '`') {
        tree.open.pop();
        i += top.entity.type === 'pre' ? 3 : 1;
      } else {
        tree.text(c);
        i++;
      }
      continue;
    }
    if (c === '\\' && escapable(text[i + 1])) {
      tree.text(text[i + 1]!);
      i += 2;
      continue;
    }
    if (c === '\n' && top?.entity.type === 'blockquote' && text[i + 1] !== '>') {
      tree.open.pop();
      tree.text(c);
      i++;
      continue;
    }
    if (c === '>' && lineStart(i)) {
      if (top?.entity.type !== 'blockquote') tree.start({ type: 'blockquote', children: [] }, '>', i);
      i++;
      continue;
    }
    const closes = top !== undefined && text.startsWith(top.token, i);
    if (closes && (top.entity.type === 'link' || top.entity.type === 'custom_emoji')) {
      i += 1;
      if (text[i] === '(') {
        let url = '';
        for (i++; i < text.length && text[i] !== ')'; i++) {
          if (text[i] === '\\' && escapable(text[i + 1])) i++;
          url += text[i];
        }
        if (i >= text.length) return fail(`Can't find end of a URL at character ${top.at}`);
        i++;
        top.entity.url = url;
      } else {
        top.entity.url = textOf(top.entity.children);
      }
      tree.open.pop();
      continue;
    }
    if (closes && top.entity.type !== 'blockquote') {
      tree.open.pop();
      i += top.token.length;
      continue;
    }
    const start = markdownStart(text, i);
    if (start) {
      const [entity, token, length] = start;
      if (tree.open.some((o) => o.entity.type === entity.type)) return fail(`Can't nest ${MARKDOWN_NAMES[entity.type]} entities at character ${i}`);
      i += length;
      if (entity.type === 'pre') {
        const newline = text.indexOf('\n', i);
        const first = newline < 0 ? '' : text.slice(i, newline);
        if (newline >= 0 && /^[^\s`]+$/.test(first)) [entity.language, i] = [first, newline + 1];
        else entity.language = '';
      }
      tree.start(entity, token, i - length);
      continue;
    }
    if (RESERVED.has(c)) return fail(`Character '${c}' is reserved and must be escaped with the preceding '\\' (at character ${i})`);
    tree.text(c);
    i++;
  }
  const open = tree.open.filter((o) => o.entity.type !== 'blockquote');
  if (open.length) fail(`Can't find end of ${MARKDOWN_NAMES[open[open.length - 1]!.entity.type]} entity at character ${open[open.length - 1]!.at}`);
  return tree.root;
}

/** An entity starting at `i`: the entity, the token that ends it, and how many characters start it. */
function markdownStart(text: string, i: number): [Entity, string, number] | null {
  const entity = (type: EntityType): Entity => ({ type, children: [] });
  if (text.startsWith('```', i)) return [entity('pre'), '```', 3];
  if (text.startsWith('||', i)) return [entity('spoiler'), '||', 2];
  if (text.startsWith('__', i)) return [entity('underline'), '__', 2];
  if (text.startsWith('![', i)) return [entity('custom_emoji'), ']', 2];
  switch (text[i]) {
    case '*': return [entity('bold'), '*', 1];
    case '_': return [entity('italic'), '_', 1];
    case '~': return [entity('strikethrough'), '~', 1];
    case '`': return [entity('code'), '`', 1];
    case '[': return [entity('link'), ']', 1];
    default: return null;
  }
}

function textOf(nodes: MarkupNode[]): string {
  return nodes.map((n) => (typeof n === 'string' ? n : textOf(n.children))).join('');
}
