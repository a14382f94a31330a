// What job dependencies cost jobs that have none (bench/measure/dependencies.ts), alone and with
// more rounds than `npm run bench` gives it:
//   npx tsc -p tsconfig.json && node dist/bench/production/dependency-cost.js [--jobs 20000] [--batch 250] [--rounds 3]
import { parseArgs } from 'node:util';
import { openServer } from '../db.js';
import { DEPENDENCY_MODES, measureDependencyCost } from '../measure/dependencies.js';

const { values: args } = parseArgs({ options: { jobs: { type: 'string', default: '20000' }, batch: { type: 'string', default: '250' }, rounds: { type: 'string', default: '3' } } });

async function main(): Promise<void> {
  const server = await openServer();
  try {
    const plan = { jobs: Number(args.jobs), batch: Number(args.batch), rounds: Number(args.rounds) };
    console.log(`PostgreSQL ${server.version} (${server.origin}); ${plan.jobs} independent jobs per round, claims of ${plan.batch}`);
    const { rates, shares, released } = await measureDependencyCost(server, plan);
    const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ');
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    for (const mode of DEPENDENCY_MODES) console.log(`jobs/s, dependencies ${mode.padEnd(15)} ${fmt(rates[mode])} (median ${med(rates[mode]).toFixed(0)}, ${(med(rates[mode]) / med(rates.off)).toFixed(3)}x of off)`);
    console.log(`dependents released in the 'with dependents' rounds: ${released}`);
    for (const [mode, xs] of Object.entries(shares)) {
      console.log(`share of a ${plan.batch}-job completion statement spent in the dependency triggers, ${mode.padEnd(15)} median ${(100 * med(xs)).toFixed(2)} % (min ${(100 * Math.min(...xs)).toFixed(2)}, max ${(100 * Math.max(...xs)).toFixed(2)}; ${xs.length} statements)`);
    }
  } finally {
    await server.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
