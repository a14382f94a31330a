// Validation of a Bot API message as people write it in payloads. A message uses the Bot API's own
// field names, so a user can copy from Telegram's documentation:
//
//   {"text": "Hello <b>there</b>", "parse_mode": "HTML", "reply_markup": {"inline_keyboard": [...]}}
//   {"photo": "https://example.com/a.jpg", "caption": "New arrivals"}
//   {"copy": {"from_chat_id": "@mychannel", "message_id": 42}}
//
// Everything is checked before the first send, so a bad message fails its job once with a message
// a person can act on, instead of failing a hundred thousand deliveries one by one.

import { PayloadError } from '../errors.js';

export type MessageMethod = 'sendMessage' | 'sendPhoto' | 'sendVideo' | 'sendDocument' | 'sendAnimation' | 'copyMessage';

export interface OutgoingMessage {
  method: MessageMethod;
  /** Everything but chat_id, ready for telegraf's callApi(method, { chat_id, ...params }). */
  params: Record<string, unknown>;
}

/** What a message sends; exactly one of these keys must be present. */
type Kind = 'text' | 'photo' | 'video' | 'document' | 'animation' | 'copy';

const METHODS: Record<Kind, MessageMethod> = {
  text: 'sendMessage',
  photo: 'sendPhoto',
  video: 'sendVideo',
  document: 'sendDocument',
  animation: 'sendAnimation',
  copy: 'copyMessage',
};

const MEDIA = ['photo', 'video', 'document', 'animation'] as const;
const KINDS: readonly Kind[] = ['text', ...MEDIA, 'copy'];
const CAPTIONED: readonly Kind[] = [...MEDIA, 'copy'];

export const TEXT_MAX = 4096;
export const CAPTION_MAX = 1024;
const PARSE_MODES = ['HTML', 'MarkdownV2', 'Markdown'] as const;
const CHAT_ID_LIMIT = 2 ** 52;

// ---------------------------------------------------------------------------------------------
// Describing bad values

/** The JSON type of a value, for "must be an object, got string". */
export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/** A short description of a bad scalar, for "must be an integer, got string "abc"". */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') {
    const shown = value.length > 40 ? `${value.slice(0, 40)}…` : value;
    return `string ${JSON.stringify(shown)}`;
  }
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : `number ${String(value)}`;
  if (typeof value === 'boolean') return `boolean ${value}`;
  return typeName(value);
}

const fail = (message: string): never => {
  throw new PayloadError(message);
};

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function requireObject(value: unknown, path: string): Record<string, unknown> {
  if (!isPlainObject(value)) fail(`${path} must be an object, got ${typeName(value)}`);
  return value as Record<string, unknown>;
}

function unknownFields(path: string, keys: string[], known: readonly string[], hints: Record<string, string> = {}): never {
  const names = keys.map((k) => JSON.stringify(k)).join(', ');
  // hasOwn: a field named __proto__ or constructor must not pick up Object.prototype's members.
  const hint = keys.map((k) => (Object.hasOwn(hints, k) ? hints[k] : undefined)).find(Boolean);
  const tail = hint ? `; ${hint}` : ` (known fields: ${known.join(', ')})`;
  return fail(`${path} has unknown field${keys.length > 1 ? 's' : ''} ${names}${tail}`);
}

// ---------------------------------------------------------------------------------------------
// Field checks: each returns the value to send (normalised where Telegram allows it)

type Check = (value: unknown, path: string) => unknown;

/**
 * Telegram counts text and caption limits in UTF-16 code units *after* entity parsing (so HTML tags
 * and Markdown markers do not count). We count the raw string's UTF-16 units: exact for plain text,
 * an overestimate when markup is used, so a message we accept is never rejected for its length.
 * (Counting code points let 4,096 emoji through to a wasted call: the chaos suite found it.)
 */
const characters = (s: string): number => s.length;

/** Deeper than any real keyboard or entity list; JSON nested thousands deep overflows the stack later. */
const MAX_DEPTH = 12;

function depthOf(value: unknown, limit: number): number {
  if (typeof value !== 'object' || value === null) return 0;
  if (limit <= 0) return 1;
  let deepest = 0;
  for (const child of Object.values(value)) deepest = Math.max(deepest, depthOf(child, limit - 1));
  return deepest + 1;
}

const text: Check = (value, path) => {
  if (typeof value !== 'string') return fail(`${path} must be a string, got ${describeValue(value)}`);
  const n = characters(value);
  if (n < 1 || n > TEXT_MAX) fail(`${path} must be 1 to ${TEXT_MAX} characters, got ${n}`);
  if (value.trim() === '') fail(`${path} must not be only whitespace; Telegram rejects empty text`);
  return value;
};

const caption: Check = (value, path) => {
  if (typeof value !== 'string') return fail(`${path} must be a string, got ${describeValue(value)}`);
  const n = characters(value);
  if (n > CAPTION_MAX) fail(`${path} must be at most ${CAPTION_MAX} characters, got ${n}`);
  return value;
};

/** Telegram matches parse_mode case-insensitively; we send the documented spelling. */
const parseMode: Check = (value, path) => {
  const canonical = typeof value === 'string' ? PARSE_MODES.find((m) => m.toLowerCase() === value.toLowerCase()) : undefined;
  if (!canonical) fail(`${path} must be one of ${PARSE_MODES.join(', ')}, got ${typeof value === 'string' ? JSON.stringify(value) : describeValue(value)}`);
  return canonical;
};

const boolean: Check = (value, path) => {
  if (typeof value !== 'boolean') fail(`${path} must be true or false, got ${describeValue(value)}`);
  return value;
};

const isInteger = (value: unknown): value is number => typeof value === 'number' && Number.isInteger(value);

/** A MessageEntity list: [{"type": "bold", "offset": 0, "length": 5}, …]. */
const entities: Check = (value, path) => {
  if (!Array.isArray(value)) return fail(`${path} must be an array of MessageEntity objects, got ${typeName(value)}`);
  value.forEach((entity, i) => {
    const at = `${path}[${i}]`;
    const e = requireObject(entity, at);
    if (typeof e.type !== 'string' || e.type === '') fail(`${at}.type must be a non-empty string, got ${describeValue(e.type)}`);
    if (!isInteger(e.offset) || e.offset < 0) fail(`${at}.offset must be a non-negative integer, got ${describeValue(e.offset)}`);
    if (!isInteger(e.length) || e.length < 1) fail(`${at}.length must be a positive integer, got ${describeValue(e.length)}`);
  });
  return value;
};

const FILE_ID = /^[A-Za-z0-9_-]+$/;
const HTTP_URL = /^https?:\/\//i;

/** A file already on Telegram's servers (file_id) or a URL Telegram fetches; uploads are not supported. */
const file: Check = (value, path) => {
  const problem = `${path} must be a file_id or an http(s) URL string`;
  if (typeof value !== 'string') return fail(`${problem}, got ${describeValue(value)}`);
  if (HTTP_URL.test(value)) {
    if (!URL.canParse(value)) fail(`${problem}; ${JSON.stringify(value)} is not a valid URL`);
    return value;
  }
  if (!FILE_ID.test(value)) fail(`${problem}, got ${describeValue(value)}`);
  return value;
};

const LINK_PREVIEW_FIELDS: Record<string, Check> = {
  is_disabled: boolean,
  url: (value, path) => {
    if (typeof value !== 'string' || !HTTP_URL.test(value) || !URL.canParse(value)) fail(`${path} must be an http(s) URL, got ${describeValue(value)}`);
    return value;
  },
  prefer_small_media: boolean,
  prefer_large_media: boolean,
  show_above_text: boolean,
};

const linkPreviewOptions: Check = (value, path) => checkFields(requireObject(value, path), path, LINK_PREVIEW_FIELDS);

const KEYBOARD_TYPES = ['inline_keyboard', 'keyboard', 'remove_keyboard', 'force_reply'] as const;

/** One of InlineKeyboardMarkup, ReplyKeyboardMarkup, ReplyKeyboardRemove or ForceReply. */
const replyMarkup: Check = (value, path) => {
  const markup = requireObject(value, path);
  const present = KEYBOARD_TYPES.filter((k) => k in markup);
  if (present.length !== 1) fail(`${path} must have exactly one of ${KEYBOARD_TYPES.join(', ')}${present.length ? `, got ${present.join(' and ')}` : ''}`);
  const [type] = present;
  if (type === 'inline_keyboard' || type === 'keyboard') {
    const rows = markup[type];
    if (!Array.isArray(rows) || !rows.every(Array.isArray)) return fail(`${path}.${type} must be an array of button rows (arrays)`);
    (rows as unknown[][]).forEach((row, r) =>
      row.forEach((button, b) => {
        const at = `${path}.${type}[${r}][${b}]`;
        // A reply keyboard button may be a bare string; an inline one is always an object with text.
        if (type === 'keyboard' && typeof button === 'string') return;
        const btn = requireObject(button, at);
        if (typeof btn.text !== 'string' || btn.text === '') fail(`${at}.text must be a non-empty string, got ${describeValue(btn.text)}`);
      }),
    );
  }
  return markup;
};

/** Checks a chat id that must be a number: an integer, non-zero, within ±2^52 as Telegram promises. */
export function parseChatId(value: unknown, path: string): number {
  if (!isInteger(value)) return fail(`${path} must be an integer, got ${describeValue(value)}`);
  if (value === 0 || Math.abs(value) >= CHAT_ID_LIMIT) fail(`${path} must be a non-zero integer within ±2^52, got ${value}`);
  return value;
}

// Public usernames: 5 to 32 letters, digits and underscores, starting with a letter (allow 4 for
// the short collectible names).
const CHANNEL_USERNAME = /^@[A-Za-z][A-Za-z0-9_]{3,31}$/;

const COPY_FIELDS: Record<string, Check> = {
  from_chat_id: (value, path) => {
    if (typeof value === 'string' && CHANNEL_USERNAME.test(value)) return value;
    if (isInteger(value) && value !== 0 && Math.abs(value) < CHAT_ID_LIMIT) return value;
    return fail(`${path} must be an integer or @channelusername, got ${describeValue(value)}`);
  },
  message_id: (value, path) => {
    if (!isInteger(value) || value < 1) fail(`${path} must be a positive integer, got ${describeValue(value)}`);
    return value;
  },
};

const copy: Check = (value, path) => {
  const spec = requireObject(value, path);
  const checked = checkFields(spec, path, COPY_FIELDS);
  for (const field of Object.keys(COPY_FIELDS)) if (!(field in checked)) fail(`${path}.${field} is required`);
  return checked;
};

/** Checks an object whose fields are all optional and listed in `fields`; rejects any other key. */
function checkFields(obj: Record<string, unknown>, path: string, fields: Record<string, Check>): Record<string, unknown> {
  const unknown = Object.keys(obj).filter((k) => !Object.hasOwn(fields, k));
  if (unknown.length) unknownFields(path, unknown, Object.keys(fields));
  const out: Record<string, unknown> = {};
  for (const [name, check] of Object.entries(fields)) if (obj[name] !== undefined) out[name] = check(obj[name], `${path}.${name}`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The message fields: which sends each applies to, and how to check it. Order is the order of
// the params sent.

interface Field {
  check: Check;
  kinds: readonly Kind[];
  /** Added to "does not apply to …" when the field sits on the wrong kind of message. */
  instead?: string;
}

const FIELDS: Record<string, Field> = {
  text: { check: text, kinds: ['text'] },
  photo: { check: file, kinds: ['photo'] },
  video: { check: file, kinds: ['video'] },
  document: { check: file, kinds: ['document'] },
  animation: { check: file, kinds: ['animation'] },
  copy: { check: copy, kinds: ['copy'] },
  caption: { check: caption, kinds: CAPTIONED, instead: 'a text message has no caption' },
  parse_mode: { check: parseMode, kinds: KINDS },
  entities: { check: entities, kinds: ['text'], instead: 'use caption_entities for a caption' },
  caption_entities: { check: entities, kinds: CAPTIONED, instead: 'use entities for text' },
  link_preview_options: { check: linkPreviewOptions, kinds: ['text'] },
  show_caption_above_media: { check: boolean, kinds: ['photo', 'video', 'animation', 'copy'] },
  has_spoiler: { check: boolean, kinds: ['photo', 'video', 'animation'] },
  supports_streaming: { check: boolean, kinds: ['video'] },
  disable_content_type_detection: { check: boolean, kinds: ['document'] },
  reply_markup: { check: replyMarkup, kinds: KINDS },
  disable_notification: { check: boolean, kinds: KINDS },
  protect_content: { check: boolean, kinds: KINDS },
  allow_paid_broadcast: { check: boolean, kinds: KINDS },
};

const UNKNOWN_FIELD_HINTS: Record<string, string> = {
  disable_web_page_preview: 'the Bot API replaced it with link_preview_options: {"is_disabled": true}',
  chat_id: 'the recipient is given outside the message',
  reply_to_message_id: 'a broadcast cannot reply to a message',
};

/** Checks a message object from a payload and turns it into the Bot API call that sends it. */
export function parseMessage(value: unknown, path = 'payload.message'): OutgoingMessage {
  const message = requireObject(value, path);
  if (depthOf(message, MAX_DEPTH + 1) > MAX_DEPTH) fail(`${path} is nested more than ${MAX_DEPTH} levels deep`);
  const keys = Object.keys(message).filter((k) => message[k] !== undefined);

  const unknown = keys.filter((k) => !Object.hasOwn(FIELDS, k));
  if (unknown.length) unknownFields(path, unknown, Object.keys(FIELDS), UNKNOWN_FIELD_HINTS);

  const kinds = KINDS.filter((k) => keys.includes(k));
  if (kinds.length === 0) fail(`${path} needs text, one of ${MEDIA.join('/')}, or copy`);
  if (kinds.length > 1) {
    const [a, b] = kinds as [Kind, Kind];
    const advice = a === 'text' && b !== 'copy' ? 'use caption with media' : 'a message sends one of them; use two broadcasts or a media group';
    fail(`${path} has both ${a} and ${b}; ${advice}`);
  }
  const kind = kinds[0] as Kind;

  for (const key of keys) {
    const field = FIELDS[key] as Field;
    if (!field.kinds.includes(kind)) {
      fail(`${path}.${key} does not apply to ${describeKind(kind)}${field.instead ? `; ${field.instead}` : ''}`);
    }
  }
  const textLike = kind === 'text' ? 'entities' : 'caption_entities';
  if (message.parse_mode !== undefined && message[textLike] !== undefined) {
    fail(`${path} has both parse_mode and ${textLike}; use one: parse_mode marks up the text itself, ${textLike} describe plain text (Telegram ignores ${textLike} when parse_mode is set)`);
  }

  const params: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(FIELDS)) {
    if (message[name] === undefined) continue;
    const checked = field.check(message[name], `${path}.${name}`);
    if (name === 'copy') Object.assign(params, checked);
    else params[name] = checked;
  }
  return { method: METHODS[kind], params };
}

function describeKind(kind: Kind): string {
  if (kind === 'text') return 'a text message (sendMessage)';
  if (kind === 'copy') return 'a copied message (copyMessage)';
  return `a ${kind} message (${METHODS[kind]})`;
}
