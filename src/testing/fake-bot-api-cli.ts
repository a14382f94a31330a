// The Bot API stand-in as a process of its own, for trying a daemon by hand:
//   node dist/src/testing/fake-bot-api-cli.js --port 8081 --rate-limit 30 --token X   → prints the apiRoot.
// This file is an entry point only; fake-bot-api.ts does nothing when imported.
import { FakeBotApi, type FakeBotApiOptions } from './fake-bot-api.js';

const CLI_FLAGS: Record<string, keyof FakeBotApiOptions> = {
  '--token': 'token', '--host': 'host', '--port': 'port', '--rate-limit': 'rateLimit', '--retry-after': 'retryAfterSeconds',
  '--per-chat': 'perChatPerSecond', '--group-per-minute': 'groupPerMinute', '--latency': 'latencyMs', '--seed': 'seed',
};

function parseFlags(argv: string[]): FakeBotApiOptions {
  const opts: Record<string, string | number> = {};
  for (let i = 0; i < argv.length; i += 2) {
    const key = CLI_FLAGS[argv[i]!];
    const v = argv[i + 1] ?? '';
    const text = key === 'token' || key === 'host';
    if (!key || v === '' || (!text && Number.isNaN(Number(v)))) throw new Error(`bad option ${argv[i]} ${v}`.trim());
    opts[key] = text ? v : Number(v);
  }
  return opts as FakeBotApiOptions;
}

let options: FakeBotApiOptions;
try {
  options = parseFlags(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`fake-bot-api: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
}
const api = new FakeBotApi(options);
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => void api.stop().then(() => process.exit(0)));
api.start().then((root) => process.stdout.write(`${root}\n`), (err: unknown) => {
  process.stderr.write(`fake-bot-api: ${String(err)}\n`);
  process.exit(1);
});
