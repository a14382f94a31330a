import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { SETTINGS } from '../src/config/load.js';

const root = new URL('../../', import.meta.url);
const readme = readFileSync(new URL('README.md', root), 'utf8');
const ci = readFileSync(new URL('.ci/run', root), 'utf8');
const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8'));

test('the README opens with the two commands, and both exist', () => {
  const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme)![1]!;
  assert.match(firstBlock, /npm install && npm run demo/);
  assert.match(firstBlock, /npm install && npm test/);
  assert.ok(pkg.scripts.demo && pkg.scripts.test);
});

test('CI runs the README\'s own test command, on the embedded default first', () => {
  assert.match(ci, /env -u DATABASE_URL npm test/);
});

test('every setting is documented in the README with its flag, and with the words --help gives, default included', () => {
  for (const setting of SETTINGS) {
    assert.ok(readme.includes(`| \`${setting.env}\` | \`${setting.flag}\` |`), `${setting.env} is missing from the README's settings table`);
    assert.ok(readme.includes(`| \`${setting.env}\` | \`${setting.flag}\` | ${setting.doc} |`), `${setting.env}'s README row differs from its --help text: ${setting.doc}`);
  }
});

test('every runtime dependency is explained in the README', () => {
  for (const name of Object.keys(pkg.dependencies)) assert.ok(readme.includes(`\`${name}\``), `${name} is not in the README's dependency table`);
});

test.run();
