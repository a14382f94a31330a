// Enqueue: N single-row inserts one after another on one connection, and one statement inserting
// N rows, into a database with no worker running. graphile-worker's two configurations share one
// enqueue path, so it is measured once.
import { MAIN_CONFIGS, type ConfigId } from '../peers.js';
import { payloads, type Context } from '../plan.js';
import { openProducer, type Producer } from '../producers.js';
import { monoMs } from '../stats.js';

export interface EnqueueRun {
  singlePerSecond: number;
  bulkPerSecond: number;
}

const ENQUEUE_CONFIGS = MAIN_CONFIGS.filter((c) => c.id !== 'gw-default');

export async function measureEnqueue(ctx: Context): Promise<Partial<Record<ConfigId, EnqueueRun[]>>> {
  const { jobs, runs } = ctx.plan.enqueue;
  const lanes: { id: ConfigId; producer: Producer }[] = [];
  for (const config of ENQUEUE_CONFIGS) {
    const url = ctx.server.urlFor(await ctx.server.createDatabase(`enqueue_${config.id.replaceAll('-', '_')}`, ctx.templates[config.kind]));
    lanes.push({ id: config.id, producer: await openProducer(config, url) });
  }
  const results: Partial<Record<ConfigId, EnqueueRun[]>> = {};
  try {
    for (let run = 0; run < runs; run++) {
      const batch = payloads(run, jobs);
      for (const { id, producer } of lanes) {
        ctx.progress(`enqueue: ${id}, run ${run + 1} of ${runs}`);
        let start = monoMs();
        for (const payload of batch) await producer.single(payload);
        const singlePerSecond = (jobs / (monoMs() - start)) * 1000;
        await producer.clear();
        start = monoMs();
        await producer.bulk(batch);
        const bulkPerSecond = (jobs / (monoMs() - start)) * 1000;
        await producer.clear();
        (results[id] ??= []).push({ singlePerSecond, bulkPerSecond });
      }
    }
  } finally {
    for (const { producer } of lanes) await producer.close();
  }
  return results;
}
