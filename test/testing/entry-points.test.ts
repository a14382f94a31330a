// The stand-in is test tooling: reachable as `broadcast-queued/testing`, absent from the main
// entry, and inert on import (it once started a server when its file was the script being run).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const run = promisify(execFile);

test('broadcast-queued/testing exports FakeBotApi and the main entry does not', async () => {
  // A self-reference resolves through package.json "exports", as an installed package would.
  const script = `const main = await import('broadcast-queued');
const testing = await import('broadcast-queued/testing');
console.log(JSON.stringify({ main: 'FakeBotApi' in main, testing: typeof testing.FakeBotApi, create: typeof main.createBroadcastQueue }));`;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: root });
  assert.equal(JSON.parse(stdout), { main: false, testing: 'function', create: 'function' });
});

test('running the stand-in module itself starts nothing: only its CLI entry point listens', async () => {
  const module = fileURLToPath(new URL('../../src/testing/fake-bot-api.js', import.meta.url));
  // With a server started this would print its apiRoot and never exit; the timeout fails it.
  const quiet = await run(process.execPath, [module, '--port', '0'], { timeout: 30_000 });
  assert.equal([quiet.stdout, quiet.stderr], ['', '']);
  const index = fileURLToPath(new URL('../../src/testing/index.js', import.meta.url));
  assert.equal((await run(process.execPath, [index, '--port', '0'], { timeout: 30_000 })).stdout, '');

  const cli = fileURLToPath(new URL('../../src/testing/fake-bot-api-cli.js', import.meta.url));
  const bad = await run(process.execPath, [cli, '--port', 'eighty'], { timeout: 30_000 }).then(() => null, (e: { code: number; stderr: string }) => e);
  assert.is(bad?.code, 2);
  assert.match(bad!.stderr, /bad option --port eighty/);
});

test.run();
