// Telegram's HTML and MarkdownV2 rules as the Compose page checks them (src/telegram/markup.ts):
// what Telegram accepts parses into entities, what it refuses gives the error it would.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseMarkup } from '../../src/telegram/markup.js';

const ok = (text: string, mode: 'HTML' | 'MarkdownV2') => {
  const r = parseMarkup(text, mode);
  assert.is(r.error, null, `${mode} ${JSON.stringify(text)}: ${r.error}`);
  return r;
};
const refused = (text: string, mode: 'HTML' | 'MarkdownV2', expected: string) => {
  const r = parseMarkup(text, mode);
  assert.ok(r.error, `${mode} ${JSON.stringify(text)} should be refused`);
  assert.match(r.error!, expected);
};

test('HTML: the supported tags and entities become entities; the length counts the text only', () => {
  const r = ok('<b>bold</b> <i>it</i> <u>u</u> <s>s</s> <tg-spoiler>sp</tg-spoiler> <a href="https://e.com/?a=1&amp;b=2">link</a> <code>c</code> &lt;&#x41;&#66;&gt; & done', 'HTML');
  assert.equal(r.nodes.slice(0, 2), [{ type: 'bold', children: ['bold'] }, ' ']);
  assert.equal(r.nodes[10], { type: 'link', children: ['link'], url: 'https://e.com/?a=1&b=2' });
  assert.ok(r.nodes.includes(' <AB> & done'));
  assert.is(r.length, 'bold it u s sp link c <AB> & done'.length);
  assert.equal(ok('<pre><code class="language-python">x = 1</code></pre>', 'HTML').nodes, [{ type: 'pre', language: 'python', children: [{ type: 'code', children: ['x = 1'] }] }]);
  ok('<span class="tg-spoiler">s</span> <blockquote expandable>q</blockquote> <tg-emoji emoji-id="5368324170671202286">👍</tg-emoji> <B>upper</B>', 'HTML');
});

test('HTML: what Telegram refuses', () => {
  refused('a <foo>b</foo>', 'HTML', 'Unsupported start tag "foo"');
  refused('1 < 2', 'HTML', 'Unsupported start tag ""');
  refused('<b>open', 'HTML', 'Can\'t find end tag corresponding to start tag "b"');
  refused('<b><i>x</b></i>', 'HTML', 'expected "</i>", found "</b>"');
  refused('x</b>', 'HTML', 'Unexpected end tag');
  refused('<span>x</span>', 'HTML', 'must have class "tg-spoiler"');
  refused('<a href="x>y</a>', 'HTML', 'Unclosed start tag');
});

test('MarkdownV2: entities, escapes, links, code and quotes', () => {
  const r = ok('*b* _i_ __u__ ~s~ ||sp|| [l](https://e.com/a\\)b) `co\\`de` 1\\.5\\!', 'MarkdownV2');
  assert.equal(r.nodes.filter((n) => typeof n !== 'string').map((n) => (n as { type: string }).type), ['bold', 'italic', 'underline', 'strikethrough', 'spoiler', 'link', 'code']);
  assert.equal(r.nodes[10], { type: 'link', children: ['l'], url: 'https://e.com/a)b' });
  assert.ok(r.nodes.includes(' 1.5!'));
  assert.equal(ok('```js\nlet a = *1*;\n```', 'MarkdownV2').nodes, [{ type: 'pre', language: 'js', children: ['let a = *1*;\n'] }]);
  assert.equal(ok('>one\n>two\nafter', 'MarkdownV2').nodes, [{ type: 'blockquote', children: ['one\ntwo'] }, '\nafter']);
  assert.equal(ok('*bold _italic bold_*', 'MarkdownV2').nodes, [{ type: 'bold', children: ['bold ', { type: 'italic', children: ['italic bold'] }] }]);
});

test('MarkdownV2: what Telegram refuses', () => {
  refused('Sale ends today.', 'MarkdownV2', "Character '.' is reserved");
  refused('50% off - today', 'MarkdownV2', "Character '-' is reserved");
  refused('*bold', 'MarkdownV2', "Can't find end of Bold entity");
  refused('[link](https://e.com', 'MarkdownV2', "Can't find end of a URL");
  refused('`code', 'MarkdownV2', "Can't find end of Code entity");
});

test('no parse mode: the text as it is', () => {
  assert.equal(parseMarkup('<b>1.</b>', null), { nodes: ['<b>1.</b>'], length: 9, error: null });
});

test.run();
