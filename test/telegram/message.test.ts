import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PayloadError } from '../../src/errors.js';
import { parseChatId, parseMessage } from '../../src/telegram/message.js';

/** Asserts that parsing throws a PayloadError whose message is exactly (or matches) `expected`. */
function rejects(value: unknown, expected: string | RegExp, path?: string): void {
  try {
    parseMessage(value, path);
  } catch (error) {
    assert.instance(error, PayloadError);
    const message = (error as Error).message;
    if (typeof expected === 'string') assert.is(message, expected);
    else assert.match(message, expected);
    return;
  }
  assert.unreachable(`expected ${JSON.stringify(value)} to be rejected`);
}

function chatIdRejects(value: unknown, expected: string): void {
  try {
    parseChatId(value, 'payload.chat_id');
  } catch (error) {
    assert.instance(error, PayloadError);
    assert.is((error as Error).message, expected);
    return;
  }
  assert.unreachable(`expected chat id ${JSON.stringify(value)} to be rejected`);
}

const FILE_ID = 'AgACAgIAAxkBAAIBY2Zabc_def-123';

// --- what each kind of message becomes ----------------------------------------------------------

test('text becomes sendMessage with its options', () => {
  const markup = { inline_keyboard: [[{ text: 'Open', url: 'https://example.com' }]] };
  const out = parseMessage({
    text: 'Hello <b>there</b>',
    parse_mode: 'HTML',
    reply_markup: markup,
    disable_notification: true,
    protect_content: false,
    link_preview_options: { is_disabled: true },
    allow_paid_broadcast: true,
  });
  assert.equal(out, {
    method: 'sendMessage',
    params: {
      text: 'Hello <b>there</b>',
      parse_mode: 'HTML',
      link_preview_options: { is_disabled: true },
      reply_markup: markup,
      disable_notification: true,
      protect_content: false,
      allow_paid_broadcast: true,
    },
  });
});

test('a bare text message has only text', () => {
  assert.equal(parseMessage({ text: 'hi' }), { method: 'sendMessage', params: { text: 'hi' } });
});

test('text with entities', () => {
  const entities = [{ type: 'bold', offset: 0, length: 5 }, { type: 'text_link', offset: 6, length: 4, url: 'https://x.y' }];
  assert.equal(parseMessage({ text: 'Hello link', entities }), { method: 'sendMessage', params: { text: 'Hello link', entities } });
});

test('each media kind maps to its method with caption options', () => {
  const cases = [
    ['photo', 'sendPhoto'],
    ['video', 'sendVideo'],
    ['document', 'sendDocument'],
    ['animation', 'sendAnimation'],
  ] as const;
  for (const [kind, method] of cases) {
    const out = parseMessage({ [kind]: 'https://cdn.example.com/file.bin?x=1', caption: 'New *arrivals*', parse_mode: 'markdownv2' });
    assert.equal(out, { method, params: { [kind]: 'https://cdn.example.com/file.bin?x=1', caption: 'New *arrivals*', parse_mode: 'MarkdownV2' } });
  }
});

test('media-specific options pass through', () => {
  assert.equal(parseMessage({ photo: FILE_ID, has_spoiler: true, show_caption_above_media: true, caption: '' }), {
    method: 'sendPhoto',
    params: { photo: FILE_ID, caption: '', show_caption_above_media: true, has_spoiler: true },
  });
  assert.equal(parseMessage({ video: FILE_ID, supports_streaming: true }).params, { video: FILE_ID, supports_streaming: true });
  assert.equal(parseMessage({ document: FILE_ID, disable_content_type_detection: true }).params, { document: FILE_ID, disable_content_type_detection: true });
  const captionEntities = [{ type: 'italic', offset: 0, length: 3 }];
  assert.equal(parseMessage({ animation: FILE_ID, caption: 'Wow', caption_entities: captionEntities }).params, {
    animation: FILE_ID, caption: 'Wow', caption_entities: captionEntities,
  });
});

test('copy becomes copyMessage with from_chat_id and message_id first', () => {
  assert.equal(parseMessage({ copy: { from_chat_id: -1001234567890, message_id: 42 } }), {
    method: 'copyMessage',
    params: { from_chat_id: -1001234567890, message_id: 42 },
  });
  const markup = { inline_keyboard: [[{ text: 'Buy', callback_data: 'buy' }]] };
  assert.equal(
    parseMessage({ copy: { from_chat_id: '@my_channel', message_id: 7 }, caption: 'New caption', parse_mode: 'html', reply_markup: markup, disable_notification: true, protect_content: true, allow_paid_broadcast: false }),
    {
      method: 'copyMessage',
      params: { from_chat_id: '@my_channel', message_id: 7, caption: 'New caption', parse_mode: 'HTML', reply_markup: markup, disable_notification: true, protect_content: true, allow_paid_broadcast: false },
    },
  );
});

test('parse_mode is accepted in any case and sent in the documented spelling', () => {
  for (const [given, canonical] of [['HTML', 'HTML'], ['html', 'HTML'], ['Html', 'HTML'], ['MARKDOWNV2', 'MarkdownV2'], ['markdown', 'Markdown']]) {
    assert.is(parseMessage({ text: 'x', parse_mode: given }).params.parse_mode, canonical);
  }
});

test('undefined fields are ignored, the input is not modified', () => {
  const input = { text: 'x', parse_mode: 'html', reply_markup: undefined };
  assert.equal(parseMessage(input), { method: 'sendMessage', params: { text: 'x', parse_mode: 'HTML' } });
  assert.is(input.parse_mode, 'html');
});

test('reply keyboards, removal and force_reply are accepted', () => {
  for (const reply_markup of [
    { keyboard: [['Yes', { text: 'No' }]], resize_keyboard: true },
    { remove_keyboard: true },
    { force_reply: true },
  ]) {
    assert.equal(parseMessage({ text: 'x', reply_markup }).params.reply_markup, reply_markup);
  }
});

test('text length counts UTF-16 units as Telegram does: 2048 emoji fit, 4096 do not (regression: chaos bad-input)', () => {
  const emoji = '😀'; // two UTF-16 code units, one code point
  assert.is(parseMessage({ text: emoji.repeat(2048) }).method, 'sendMessage');
  rejects({ text: emoji.repeat(4096) }, 'payload.message.text must be 1 to 4096 characters, got 8192');
  assert.is(parseMessage({ photo: FILE_ID, caption: emoji.repeat(512) }).method, 'sendPhoto');
});

test('fields named __proto__ or constructor get a plain unknown-field error (regression: chaos bad-input)', () => {
  rejects(JSON.parse('{"text": "x", "__proto__": {}}'), /^payload\.message has unknown field "__proto__" \(known fields/);
  rejects({ text: 'x', constructor: 1 }, /^payload\.message has unknown field "constructor" \(known fields/);
});

test('a message nested thousands deep is refused before any call (regression: chaos bad-input)', () => {
  let deep: Record<string, unknown> = { text: 'b', callback_data: 'x' };
  for (let i = 0; i < 5000; i++) deep = { nested: deep };
  rejects({ text: 'hi', reply_markup: { inline_keyboard: [[deep]] } }, 'payload.message is nested more than 12 levels deep');
});

test('the path is configurable', () => {
  rejects('hi', 'payload.variants[1].message must be an object, got string', 'payload.variants[1].message');
  rejects({ txt: 'x' }, /^variants\[0\]\.message has unknown field "txt"/, 'variants[0].message');
});

// --- errors ------------------------------------------------------------------------------------

test('the message must be an object', () => {
  rejects('hello', 'payload.message must be an object, got string');
  rejects(null, 'payload.message must be an object, got null');
  rejects(undefined, 'payload.message must be an object, got nothing');
  rejects([{ text: 'x' }], 'payload.message must be an object, got array');
  rejects(42, 'payload.message must be an object, got number');
});

test('text length limits', () => {
  rejects({ text: 'a'.repeat(5000) }, 'payload.message.text must be 1 to 4096 characters, got 5000');
  rejects({ text: '' }, 'payload.message.text must be 1 to 4096 characters, got 0');
  rejects({ text: '  \n ' }, 'payload.message.text must not be only whitespace; Telegram rejects empty text');
  rejects({ text: 42 }, 'payload.message.text must be a string, got 42');
  assert.is(parseMessage({ text: 'a'.repeat(4096) }).params.text, 'a'.repeat(4096));
});

test('caption length limit', () => {
  rejects({ photo: FILE_ID, caption: 'c'.repeat(2000) }, 'payload.message.caption must be at most 1024 characters, got 2000');
  rejects({ copy: { from_chat_id: 1, message_id: 1 }, caption: 'c'.repeat(1025) }, 'payload.message.caption must be at most 1024 characters, got 1025');
  rejects({ photo: FILE_ID, caption: ['x'] }, 'payload.message.caption must be a string, got array');
});

test('a message needs something to send', () => {
  rejects({}, 'payload.message needs text, one of photo/video/document/animation, or copy');
  rejects({ parse_mode: 'HTML', disable_notification: true }, 'payload.message needs text, one of photo/video/document/animation, or copy');
});

test('a message sends one thing', () => {
  rejects({ text: 'x', photo: FILE_ID }, 'payload.message has both text and photo; use caption with media');
  rejects({ text: 'x', document: FILE_ID }, 'payload.message has both text and document; use caption with media');
  rejects({ photo: FILE_ID, video: FILE_ID }, /^payload\.message has both photo and video; /);
  rejects({ text: 'x', copy: { from_chat_id: 1, message_id: 1 } }, /^payload\.message has both text and copy; /);
});

test('parse_mode must be a known mode', () => {
  rejects({ text: 'x', parse_mode: 'htm' }, 'payload.message.parse_mode must be one of HTML, MarkdownV2, Markdown, got "htm"');
  rejects({ text: 'x', parse_mode: 1 }, 'payload.message.parse_mode must be one of HTML, MarkdownV2, Markdown, got 1');
  rejects({ text: 'x', parse_mode: null }, 'payload.message.parse_mode must be one of HTML, MarkdownV2, Markdown, got null');
});

test('parse_mode and entities exclude each other', () => {
  rejects({ text: 'x', parse_mode: 'HTML', entities: [] }, /^payload\.message has both parse_mode and entities; use one/);
  rejects({ photo: FILE_ID, caption: 'x', parse_mode: 'HTML', caption_entities: [] }, /^payload\.message has both parse_mode and caption_entities; use one/);
});

test('reply_markup must be a keyboard object', () => {
  rejects({ text: 'x', reply_markup: 'buttons' }, 'payload.message.reply_markup must be an object, got string');
  rejects({ text: 'x', reply_markup: [[{ text: 'a' }]] }, 'payload.message.reply_markup must be an object, got array');
  rejects({ text: 'x', reply_markup: {} }, 'payload.message.reply_markup must have exactly one of inline_keyboard, keyboard, remove_keyboard, force_reply');
  rejects(
    { text: 'x', reply_markup: { inline_keyboard: [], remove_keyboard: true } },
    'payload.message.reply_markup must have exactly one of inline_keyboard, keyboard, remove_keyboard, force_reply, got inline_keyboard and remove_keyboard',
  );
  rejects({ text: 'x', reply_markup: { inline_keyboard: [{ text: 'a' }] } }, 'payload.message.reply_markup.inline_keyboard must be an array of button rows (arrays)');
  rejects({ text: 'x', reply_markup: { inline_keyboard: [[{ url: 'https://x.y' }]] } }, 'payload.message.reply_markup.inline_keyboard[0][0].text must be a non-empty string, got nothing');
  rejects({ text: 'x', reply_markup: { inline_keyboard: [[{ text: 'a' }, 'b']] } }, 'payload.message.reply_markup.inline_keyboard[0][1] must be an object, got string');
});

test('copy needs from_chat_id and message_id', () => {
  rejects({ copy: { from_chat_id: 'mychannel', message_id: 1 } }, 'payload.message.copy.from_chat_id must be an integer or @channelusername, got string "mychannel"');
  rejects({ copy: { from_chat_id: 1.5, message_id: 1 } }, 'payload.message.copy.from_chat_id must be an integer or @channelusername, got 1.5');
  rejects({ copy: { from_chat_id: 0, message_id: 1 } }, 'payload.message.copy.from_chat_id must be an integer or @channelusername, got 0');
  rejects({ copy: { from_chat_id: '@ab', message_id: 1 } }, 'payload.message.copy.from_chat_id must be an integer or @channelusername, got string "@ab"');
  rejects({ copy: { from_chat_id: 1, message_id: 0 } }, 'payload.message.copy.message_id must be a positive integer, got 0');
  rejects({ copy: { from_chat_id: 1, message_id: '5' } }, 'payload.message.copy.message_id must be a positive integer, got string "5"');
  rejects({ copy: { from_chat_id: 1 } }, 'payload.message.copy.message_id is required');
  rejects({ copy: { message_id: 1 } }, 'payload.message.copy.from_chat_id is required');
  rejects({ copy: 'https://t.me/c/1/2' }, 'payload.message.copy must be an object, got string');
  rejects({ copy: { from_chat_id: 1, message_id: 1, chat_id: 2 } }, 'payload.message.copy has unknown field "chat_id" (known fields: from_chat_id, message_id)');
});

test('media must be a file_id or an http(s) URL', () => {
  rejects({ photo: 'ftp://example.com/a.jpg' }, 'payload.message.photo must be a file_id or an http(s) URL string, got string "ftp://example.com/a.jpg"');
  rejects({ photo: '/tmp/a.jpg' }, 'payload.message.photo must be a file_id or an http(s) URL string, got string "/tmp/a.jpg"');
  rejects({ photo: 'attach://file' }, /^payload\.message\.photo must be a file_id or an http\(s\) URL string/);
  rejects({ video: 'https://' }, 'payload.message.video must be a file_id or an http(s) URL string; "https://" is not a valid URL');
  rejects({ document: { file_id: FILE_ID } }, 'payload.message.document must be a file_id or an http(s) URL string, got object');
  rejects({ animation: '' }, 'payload.message.animation must be a file_id or an http(s) URL string, got string ""');
  assert.is(parseMessage({ photo: 'HTTPS://EXAMPLE.COM/A.JPG' }).method, 'sendPhoto');
});

test('unknown fields are all listed', () => {
  rejects({ txt: 'x' }, /^payload\.message has unknown field "txt" \(known fields: text, photo, /);
  rejects({ text: 'x', foo: 1, bar: 2 }, /^payload\.message has unknown fields "foo", "bar" \(known fields: /);
  rejects({ text: 'x', disable_web_page_preview: true }, 'payload.message has unknown field "disable_web_page_preview"; the Bot API replaced it with link_preview_options: {"is_disabled": true}');
  rejects({ text: 'x', chat_id: 5 }, 'payload.message has unknown field "chat_id"; the recipient is given outside the message');
});

test('fields that do not apply to the kind of message', () => {
  rejects({ text: 'x', caption: 'y' }, 'payload.message.caption does not apply to a text message (sendMessage); a text message has no caption');
  rejects({ photo: FILE_ID, entities: [] }, 'payload.message.entities does not apply to a photo message (sendPhoto); use caption_entities for a caption');
  rejects({ text: 'x', caption_entities: [] }, 'payload.message.caption_entities does not apply to a text message (sendMessage); use entities for text');
  rejects({ document: FILE_ID, has_spoiler: true }, 'payload.message.has_spoiler does not apply to a document message (sendDocument)');
  rejects({ photo: FILE_ID, link_preview_options: { is_disabled: true } }, 'payload.message.link_preview_options does not apply to a photo message (sendPhoto)');
  rejects({ copy: { from_chat_id: 1, message_id: 1 }, has_spoiler: true }, 'payload.message.has_spoiler does not apply to a copied message (copyMessage)');
});

test('booleans must be booleans', () => {
  rejects({ text: 'x', disable_notification: 'yes' }, 'payload.message.disable_notification must be true or false, got string "yes"');
  rejects({ text: 'x', protect_content: 1 }, 'payload.message.protect_content must be true or false, got 1');
  rejects({ text: 'x', allow_paid_broadcast: null }, 'payload.message.allow_paid_broadcast must be true or false, got null');
  rejects({ photo: FILE_ID, has_spoiler: 'true' }, 'payload.message.has_spoiler must be true or false, got string "true"');
});

test('entities must be arrays of entities', () => {
  rejects({ text: 'x', entities: { type: 'bold' } }, 'payload.message.entities must be an array of MessageEntity objects, got object');
  rejects({ photo: FILE_ID, caption_entities: 'bold' }, 'payload.message.caption_entities must be an array of MessageEntity objects, got string');
  rejects({ text: 'x', entities: ['bold'] }, 'payload.message.entities[0] must be an object, got string');
  rejects({ text: 'x', entities: [{ offset: 0, length: 1 }] }, 'payload.message.entities[0].type must be a non-empty string, got nothing');
  rejects({ text: 'x', entities: [{ type: 'bold', offset: -1, length: 1 }] }, 'payload.message.entities[0].offset must be a non-negative integer, got -1');
  rejects({ text: 'x', entities: [{ type: 'bold', offset: 0, length: 1 }, { type: 'bold', offset: 0, length: 0 }] }, 'payload.message.entities[1].length must be a positive integer, got 0');
});

test('link_preview_options is checked field by field', () => {
  const options = { is_disabled: false, url: 'https://example.com', prefer_small_media: true, show_above_text: true };
  assert.equal(parseMessage({ text: 'x', link_preview_options: options }).params.link_preview_options, options);
  rejects({ text: 'x', link_preview_options: true }, 'payload.message.link_preview_options must be an object, got boolean');
  rejects({ text: 'x', link_preview_options: { is_disabled: 'yes' } }, 'payload.message.link_preview_options.is_disabled must be true or false, got string "yes"');
  rejects({ text: 'x', link_preview_options: { url: 'example.com' } }, 'payload.message.link_preview_options.url must be an http(s) URL, got string "example.com"');
  rejects({ text: 'x', link_preview_options: { disabled: true } }, /^payload\.message\.link_preview_options has unknown field "disabled" \(known fields: is_disabled, url, /);
});

test('long bad strings are shortened in messages', () => {
  rejects({ photo: `not a file ${'x'.repeat(100)}` }, `payload.message.photo must be a file_id or an http(s) URL string, got string "not a file ${'x'.repeat(29)}…"`);
});

// --- parseChatId -------------------------------------------------------------------------------

test('parseChatId accepts users, groups, supergroups and channels', () => {
  for (const id of [1, 123456789, -123456, -1001234567890, 2 ** 52 - 1, -(2 ** 52 - 1)]) assert.is(parseChatId(id, 'payload.chat_id'), id);
});

test('parseChatId rejects what is not a chat id', () => {
  chatIdRejects('abc', 'payload.chat_id must be an integer, got string "abc"');
  chatIdRejects('123', 'payload.chat_id must be an integer, got string "123"');
  chatIdRejects(1.5, 'payload.chat_id must be an integer, got 1.5');
  chatIdRejects(null, 'payload.chat_id must be an integer, got null');
  chatIdRejects(undefined, 'payload.chat_id must be an integer, got nothing');
  chatIdRejects(Number.NaN, 'payload.chat_id must be an integer, got number NaN');
  chatIdRejects(true, 'payload.chat_id must be an integer, got boolean true');
  chatIdRejects(0, 'payload.chat_id must be a non-zero integer within ±2^52, got 0');
  chatIdRejects(2 ** 52, 'payload.chat_id must be a non-zero integer within ±2^52, got 4503599627370496');
  chatIdRejects(-(2 ** 53), 'payload.chat_id must be a non-zero integer within ±2^52, got -9007199254740992');
});

test.run();
