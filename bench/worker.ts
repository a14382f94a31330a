// One queue configuration in a process of its own, so that its CPU and memory are its own. The
// parent talks to it over IPC:
//   → { cmd: 'expect', run, n }   count handler calls of that run; report 'done' at n
//   → { cmd: 'report' }           the handler starts of the current run so far
//   → { cmd: 'restart', concurrency }  stop the queue and start it again at that concurrency
//   → { cmd: 'stop' }             stop gracefully and exit
//   ← { type: 'ready' } once the queue is listening; { type: 'expecting', run } as the ack;
//     { type: 'done' | 'report', run, seen, times } with each handler call's start on the
//     machine-wide monotonic clock, in ms, indexed by the job's seq.
import { EventEmitter, once } from 'node:events';
import { settingsOf, type ConfigId } from './peers.js';
import { monoMs } from './stats.js';

export interface WorkerSpec {
  id: ConfigId;
  kind: 'ours' | 'graphile' | 'pgboss';
  url: string;
  concurrency?: number;
}

interface Payload {
  run?: number;
  seq?: number;
}

const spec = JSON.parse(process.env.BENCH_WORKER ?? '{}') as WorkerSpec;
const send = (message: unknown) => process.send!(message);

let current = { run: -1, n: 0, seen: 0, times: [] as number[] };

/** Every handler calls this first: the moment a job's handler starts. */
function seen(payload: Payload | null | undefined): void {
  const at = monoMs();
  if (payload?.run !== current.run) return; // a late job of an earlier, capped run
  current.times[payload.seq ?? current.seen] = at;
  if (++current.seen === current.n) send({ type: 'done', run: current.run, seen: current.seen, times: current.times });
}

// Each process loads only the library it runs (they are slow to load on a busy machine).
async function startQueue(concurrency: number | undefined): Promise<() => Promise<void>> {
  const settings = settingsOf(spec.id, concurrency) as any;
  if (spec.kind === 'ours') {
    const { BroadcastQueue } = await import('../src/broadcast-queue.js');
    const queue = new BroadcastQueue({ connectionString: spec.url, ...settings, handlers: { noop: (job) => seen(job.payload) } });
    await queue.start();
    return () => queue.stop();
  }
  if (spec.kind === 'graphile') {
    const { run: runGraphile, Logger: GraphileLogger } = await import('graphile-worker');
    const events = new EventEmitter();
    const listening = once(events, 'pool:listen:success');
    const runner = await runGraphile({
      noHandleSignals: true,
      logger: new GraphileLogger(() => () => undefined),
      events: events as never,
      taskList: { noop: async (payload) => seen(payload as Payload) },
      preset: { worker: { connectionString: spec.url, ...settings } },
    });
    await listening;
    return () => runner.stop();
  }
  const { PgBoss } = await import('pg-boss');
  const boss = new PgBoss({ connectionString: spec.url, ...settings.constructor });
  boss.on('error', (error: Error) => send({ type: 'log', message: `pg-boss error: ${error.message}` }));
  await boss.start();
  await boss.work(settings.queue.name, settings.work, async (jobs: { data: Payload }[]) => {
    for (const job of jobs) seen(job.data);
  });
  return () => boss.stop({ graceful: true, close: true });
}

async function main(): Promise<void> {
  let stop = await startQueue(spec.concurrency);
  process.on('message', (message: { cmd: string; run?: number; n?: number; concurrency?: number }) => {
    if (message.cmd === 'expect') {
      current = { run: message.run!, n: message.n!, seen: 0, times: [] };
      send({ type: 'expecting', run: current.run });
    } else if (message.cmd === 'report') send({ type: 'report', run: current.run, seen: current.seen, times: current.times });
    else if (message.cmd === 'restart') {
      void stop()
        .then(() => startQueue(message.concurrency))
        .then((next) => {
          stop = next;
          send({ type: 'ready' });
        }, fail);
    } else if (message.cmd === 'stop') void stop().finally(() => process.exit(0));
  });
  process.on('disconnect', () => void stop().finally(() => process.exit(0)));
  send({ type: 'ready' });
}

function fail(error: unknown): void {
  send({ type: 'error', message: error instanceof Error ? error.stack ?? error.message : String(error) });
  process.exit(1);
}

main().catch(fail);
