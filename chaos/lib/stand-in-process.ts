// The Bot API stand-in in a process of its own (see stand-in.ts for why). It forwards every call
// and delivery record to the parent, stamped on the epoch clock both processes share, and takes
// commands: { cmd: 'setFaults', faults } · { cmd: 'reset' } · { cmd: 'sync', id } (answered with
// { type: 'synced', id } once every earlier record is on its way) · { cmd: 'stop' }.
import { FakeBotApi, type FakeBotApiOptions } from '../../src/testing/index.js';

const api = new FakeBotApi(JSON.parse(process.env.CHAOS_STAND_IN ?? '{}') as FakeBotApiOptions);
const send = (message: unknown) => process.send!(message);

// One IPC message per call would cost more than answering the call: records leave in batches.
let outbox: ['call' | 'delivered', Record<string, unknown>][] = [];
let flushScheduled = false;
function flush(): void {
  flushScheduled = false;
  if (outbox.length) send({ type: 'records', records: outbox });
  outbox = [];
}
function post(kind: 'call' | 'delivered', record: { at: number }): void {
  outbox.push([kind, { ...record, at: performance.timeOrigin + record.at }]);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flush);
  }
  // The parent keeps the records; this process must not grow with them.
  if (api.calls.length > 1_000) api.calls = [];
  if (api.delivered.length > 1_000) api.delivered = [];
}
api.on('call', (record) => post('call', record));
api.on('delivered', (record) => post('delivered', record));

process.on('message', (message: { cmd: string; faults?: object; id?: number }) => {
  if (message.cmd === 'setFaults') api.setFaults(message.faults ?? {});
  else if (message.cmd === 'reset') api.reset();
  else if (message.cmd === 'sync') {
    flush();
    send({ type: 'synced', id: message.id });
  } else if (message.cmd === 'stop') void api.stop().finally(() => process.exit(0));
});
process.on('disconnect', () => void api.stop().finally(() => process.exit(0)));

api.start().then(
  (apiRoot) => send({ type: 'ready', apiRoot }),
  (error: unknown) => {
    send({ type: 'error', message: String(error) });
    process.exit(1);
  },
);
