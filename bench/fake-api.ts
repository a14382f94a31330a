// The Bot API stand-in (src/testing/fake-bot-api.ts) in a process of its own, so that answering
// a thousand calls a second does not take CPU from the daemon under test. It keeps only counts
// and arrival times; the stand-in's own per-call records are dropped as they come.
//   → { cmd: 'reset' }      forget the counts so far
//   → { cmd: 'expect', n }  send { type: 'reached' } once n sends have been answered 200
//   → { cmd: 'stats' }      send { type: 'stats', sends, ok, tooMany, first, last, maxInWindow }
//   → { cmd: 'arrivals' }   send { type: 'arrivals', arrivals } (ms, the stand-in's clock; for diagnosis)
//   ← { type: 'ready', apiRoot }
import { FakeBotApi, isSendMethod, maxArrivalsInWindow, type FakeBotApiOptions } from '../src/testing/index.js';

const api = new FakeBotApi(JSON.parse(process.env.BENCH_FAKE_API ?? '{}') as FakeBotApiOptions);
const send = (message: unknown) => process.send!(message);
const arrivals: number[] = [];
let ok = 0;
let tooMany = 0;
let target = Infinity;

api.on('call', (call: { method: string; status: number; at: number }) => {
  if (!isSendMethod(call.method)) return;
  arrivals.push(call.at);
  if (call.status === 200) ok++;
  if (call.status === 429) tooMany++;
  if (api.calls.length > 10_000) api.calls = [];
  if (api.delivered.length > 10_000) api.delivered = [];
  if (ok === target) send({ type: 'reached' });
});

process.on('message', (message: { cmd: string; n?: number }) => {
  if (message.cmd === 'reset') {
    arrivals.length = 0;
    ok = 0;
    tooMany = 0;
    target = Infinity;
  } else if (message.cmd === 'expect') {
    target = message.n!;
    if (ok >= target) send({ type: 'reached' });
  } else if (message.cmd === 'stats') {
    const sorted = [...arrivals].sort((a, b) => a - b);
    send({ type: 'stats', sends: arrivals.length, ok, tooMany, first: sorted[0] ?? null, last: sorted[sorted.length - 1] ?? null, maxInWindow: maxArrivalsInWindow(arrivals, 1000) });
  } else if (message.cmd === 'arrivals') {
    send({ type: 'arrivals', arrivals: [...arrivals].sort((a, b) => a - b) });
  } else if (message.cmd === 'stop') {
    void api.stop().finally(() => process.exit(0));
  }
});
process.on('disconnect', () => void api.stop().finally(() => process.exit(0)));

api.start().then((apiRoot) => send({ type: 'ready', apiRoot }), (error: unknown) => {
  send({ type: 'error', message: String(error) });
  process.exit(1);
});
