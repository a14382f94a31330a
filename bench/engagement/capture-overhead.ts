// What queue.telegraf() costs a bot: (1) the time per update a real Telegraf instance spends in
// bot.handleUpdate with the middleware and without it, alternating rounds; (2) the database writes
// while the bot handles 1,000 updates/s from 5,000 people for 10 s (transactions, statements' time).
//
//   npx tsc -p tsconfig.json && nice -n 10 node dist/bench/engagement/capture-overhead.js [--updates 50000] [--rounds 3] [--seconds 10]
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Telegraf } from 'telegraf';
import type { Update } from 'telegraf/types';
import { openServer } from '../db.js';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { FakeBotApi } from '../../src/testing/index.js';

const { values: args } = parseArgs({ options: { updates: { type: 'string', default: '50000' }, rounds: { type: 'string', default: '3' }, seconds: { type: 'string', default: '10' } } });
const TOKEN = '123456:BENCH-token-abcdefghijklmnopqrstuvw';
const CHATS = 5_000;

function update(i: number): Update {
  const id = 10_000 + (i % CHATS);
  return { update_id: i, message: { message_id: i, date: 0, chat: { id, type: 'private', first_name: 'x' }, from: { id, is_bot: false, first_name: 'x', language_code: 'en' }, text: 'hello' } } as Update;
}

function makeBot(apiRoot: string, queue: BroadcastQueue | null): Telegraf {
  const bot = new Telegraf(TOKEN, { telegram: { apiRoot } });
  bot.botInfo = { id: 123456, is_bot: true, first_name: 'Bench', username: 'bench_bot', can_join_groups: true, can_read_all_group_messages: false, supports_inline_queries: false };
  if (queue) bot.use(queue.telegraf());
  bot.on('message', () => undefined);
  return bot;
}

async function main(): Promise<void> {
  const server = await openServer();
  const name = await server.createDatabase('capture_overhead');
  const api = new FakeBotApi({ token: TOKEN });
  const apiRoot = await api.start();
  const queue = new BroadcastQueue({ connectionString: server.urlFor(name), capture: { flushMs: 1_000 } });
  try {
    await queue.start();
    const updates = Number(args.updates);
    console.log(`PostgreSQL ${server.version} (${server.origin}); ${updates} updates per round from ${CHATS} chats, Node ${process.version}`);
    const perUpdate: Record<'with' | 'without', number[]> = { with: [], without: [] };
    for (let round = 0; round < Number(args.rounds); round++) {
      for (const mode of ['without', 'with'] as const) {
        const bot = makeBot(apiRoot, mode === 'with' ? queue : null);
        const started = performance.now();
        for (let i = 0; i < updates; i++) await bot.handleUpdate(update(round * updates + i));
        perUpdate[mode].push(((performance.now() - started) * 1000) / updates);
        await queue.flushUpdates();
      }
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const fmt = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(', ');
    console.log(`µs per update without the middleware: ${fmt(perUpdate.without)} (median ${med(perUpdate.without).toFixed(2)})`);
    console.log(`µs per update with it:                 ${fmt(perUpdate.with)} (median ${med(perUpdate.with).toFixed(2)})`);
    console.log(`overhead: ${(med(perUpdate.with) - med(perUpdate.without)).toFixed(2)} µs per update`);

    // 1,000 updates/s, paced in 10 ms ticks of 10, a new minute's worth of chats each time round.
    const pool = await queue.db();
    let transactions = 0;
    const count = () => { transactions++; };
    pool.on('acquire', count);
    const bot = makeBot(apiRoot, queue);
    const seconds = Number(args.seconds);
    const started = performance.now();
    let sent = 0;
    let worstTickMs = 0;
    while (sent < seconds * 1_000) {
      const tick = performance.now();
      for (let i = 0; i < 10; i++) await bot.handleUpdate(update(10_000_000 + sent++));
      worstTickMs = Math.max(worstTickMs, performance.now() - tick);
      const due = started + sent;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
    }
    const elapsed = (performance.now() - started) / 1000;
    await queue.flushUpdates();
    pool.off('acquire', count);
    console.log(`${sent} updates in ${elapsed.toFixed(1)} s (${(sent / elapsed).toFixed(0)}/s): ${transactions} database transactions (${(transactions / elapsed).toFixed(1)}/s); slowest tick of 10 updates ${worstTickMs.toFixed(1)} ms`);
  } finally {
    await queue.stop();
    await api.stop();
    await server.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
