// The Bot API client's own deadlines and connection pool, against the stand-in.
import http from 'node:http';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { IDLE_SOCKET_MS, TelegramSender } from '../../src/telegram/sender.js';
import { parseMessage } from '../../src/telegram/message.js';
import { classifyTelegramError, describeClass, mayHaveBeenDelivered } from '../../src/telegram/classify.js';
import { FakeBotApi } from '../../src/testing/index.js';
import { TEST_TOKEN, range } from '../helpers/telegram.js';

test('a hung Bot API call is aborted by the per-call timeout', async () => {
  const api = new FakeBotApi({ token: TEST_TOKEN });
  const apiRoot = await api.start();
  try {
    api.setFaults({ hangRate: 1 });
    const sender = new TelegramSender({ token: TEST_TOKEN, apiRoot }, 200);
    const error = await sender.send(1, parseMessage({ text: 'hi' })).then(() => null, (e: unknown) => e);
    assert.is(classifyTelegramError(error).kind, 'transient');
  } finally {
    await api.stop();
  }
});

test('a call abandoned while waiting for a free connection is retried, not counted as possibly delivered', async () => {
  // chaos load: hundreds of broadcast recipients ended 'unknown' because the 10 s deadline also
  // ran while a call waited for a connection, before any byte of it left the process.
  const api = new FakeBotApi({ token: TEST_TOKEN });
  const apiRoot = await api.start();
  try {
    api.setFaults({ hangRate: 1 });
    // One connection, taken by a call the stand-in never answers.
    const sender = new TelegramSender({ token: TEST_TOKEN, apiRoot }, 60_000, 1);
    const holder = sender.send(1, parseMessage({ text: 'hold' })).catch((e: unknown) => e);
    await api.waitFor('call', (c) => c.chatId === 1);
    const stop = new AbortController();
    const queued = sender.send(2, parseMessage({ text: 'hi' }), stop.signal).then(() => null, (e: unknown) => e);
    stop.abort();
    const c = classifyTelegramError(await queued);
    assert.is(c.kind, 'transient');
    assert.is(mayHaveBeenDelivered(c), false, `classified ${JSON.stringify(c)}`);
    assert.is(api.calls.filter((call) => call.chatId === 2).length, 0);
    // A call that did reach the stand-in and then timed out may have been delivered.
    const other = new TelegramSender({ token: TEST_TOKEN, apiRoot }, 300);
    const hung = await other.send(3, parseMessage({ text: 'hi' })).then(() => null, (e: unknown) => e);
    assert.is(mayHaveBeenDelivered(classifyTelegramError(hung)), true);
    await api.stop();
    assert.is(mayHaveBeenDelivered(classifyTelegramError(await holder)), true);
  } finally {
    await api.stop();
  }
});

test('more calls than connections do not fail with a false "Premature close"', async () => {
  // node-fetch 2 fails a request that waited in the agent's queue for a keep-alive socket; with
  // the bounded agent (which telegraf had silently dropped for http:// API roots) every such call
  // ended 'unknown'.
  const api = new FakeBotApi({ token: TEST_TOKEN });
  const apiRoot = await api.start();
  try {
    const sender = new TelegramSender({ token: TEST_TOKEN, apiRoot }, 60_000, 4);
    const outcomes = await Promise.all(range(1, 200).map((chat) => sender.send(chat, parseMessage({ text: 'hi' })).then(() => 'sent', (e: unknown) => describeClass(classifyTelegramError(e)))));
    assert.equal(outcomes.filter((o) => o !== 'sent'), []);
    assert.is(api.delivered.length, 200);
  } finally {
    await api.stop();
  }
});

test('an idle connection is closed before the server says it will close it', async () => {
  // A call handed a kept-alive connection just as the server closed it failed with "socket hang up",
  // which at-most-once must count as possibly delivered: recipients written off with no fault at all.
  const api = new FakeBotApi({ token: TEST_TOKEN });
  const apiRoot = await api.start();
  try {
    const sender = new TelegramSender({ token: TEST_TOKEN, apiRoot });
    await sender.send(1, parseMessage({ text: 'hi' }));
    const agent = (sender as unknown as { client: { options: { agent: http.Agent } } }).client.options.agent;
    const idle = Object.values(agent.freeSockets).flat();
    assert.ok(idle.length > 0, 'the connection is kept for the next call');
    for (const socket of idle) assert.is(socket!.timeout, IDLE_SOCKET_MS);
  } finally {
    await api.stop();
  }
});

test.run();
