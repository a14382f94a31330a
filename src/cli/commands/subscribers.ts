// bqctl subscribers import / count.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { Command } from 'commander';
import { asUsage, parseJsonArg } from '../args.js';
import { dbCommand, examples, n, out, runDb } from '../command.js';
import { printJson } from '../format.js';
import { detectFormat, importSubscribers, ImportStoppedError, MAX_RECORD_BYTES, type ImportFormat, type ImportStats, type Rejection } from '../../broadcast/import.js';
import { AUDIENCE_FILTERS, countAudience, parseAudience } from '../../broadcast/audience.js';
import { inTransaction } from '../../db/transaction.js';
import { UsageError, RejectedRowError } from '../../errors.js';

/** Rejections kept for --json output; the rest are counted (a bad file must not fill memory). */
const MAX_REPORTED = 1_000;

export function registerSubscribers(program: Command): void {
  const group = program.command('subscribers').description('The subscriber list that segments select from (broadcast_subscribers).');
  examples(group, ['bqctl subscribers import users.csv', 'bqctl subscribers count --segment \'{"languages":["en"]}\'']);

  const imp = group.command('import')
    .description('Upsert subscribers from a CSV (header row) or JSON-lines file, or stdin, in batches.')
    .argument('[file]', 'the file; - or nothing reads stdin')
    .option('--format <format>', 'csv or jsonl (default: from the file extension, else the first character)')
    .option('--strict', 'stop at the first bad row and import nothing (one transaction)')
    .option('--batch-size <n>', 'rows per upsert statement', '1000');
  dbCommand(imp);
  imp.addHelpText('after', `
Columns (CSV header names or JSON keys): chat_id (required), language_code, tags (separated by ; or |,
or a JSON array), opted_out (true/false/1/0/yes/no), subscribed_at, last_active_at (ISO 8601),
time_zone (IANA, e.g. Europe/Berlin: where deliver_at_local broadcasts reach them). Any other column goes into attributes (merged with what is stored). An empty value leaves the stored
value unchanged. A bad row is reported with its line number and skipped, unless --strict: a value
PostgreSQL cannot store (a NUL character), a record longer than ${MAX_RECORD_BYTES / 1024} KiB, bad quoting, or a
quote never closed (only the line it opens on is skipped; reading goes on with the next line).
The summary counts records read, imported and rejected; read = imported + rejected.
Exit code 0 when the file was read to the end (even with rejected rows), 1 if the import stopped
early: the message says up to which line rows were kept.`);
  examples(imp, [
    'bqctl subscribers import users.csv',
    'bqctl subscribers import users.jsonl --strict',
    'psql -c "\\copy (SELECT id AS chat_id, lang AS language_code FROM users) TO STDOUT CSV HEADER" | bqctl subscribers import -',
  ]);
  imp.action(async (file: string | undefined, opts: { format?: string; strict?: boolean; batchSize: string; json?: boolean }) => {
    if (opts.format !== undefined && opts.format !== 'csv' && opts.format !== 'jsonl') throw new UsageError(`--format must be csv or jsonl, got ${JSON.stringify(opts.format)}`);
    const batchSize = Number(opts.batchSize);
    if (!/^\d+$/.test(opts.batchSize) || batchSize < 1 || batchSize > 50_000) throw new UsageError(`--batch-size must be a whole number from 1 to 50000, got ${JSON.stringify(opts.batchSize)}`);
    const fromStdin = file === undefined || file === '-';
    if (fromStdin && process.stdin.isTTY) throw new UsageError('give a file, or pipe the data to stdin (bqctl subscribers import - < users.csv)');
    if (!fromStdin) {
      const info = await stat(file!).catch((error: NodeJS.ErrnoException) => {
        throw new UsageError(`cannot read ${file}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`);
      });
      if (!info.isFile()) throw new UsageError(`${file} is not a file`);
    }
    let input: Readable = fromStdin ? process.stdin : createReadStream(file!);
    let format = opts.format as ImportFormat | undefined;
    if (!format && !fromStdin && /\.(csv|jsonl|ndjson|json)$/i.test(file!)) format = detectFormat(file, '');
    if (!format) ({ format, input } = await sniff(input));
    const name = fromStdin ? 'stdin' : file!;

    const progress = new Progress(opts.json === true);
    const rejections: Rejection[] = [];
    const onReject = (r: Rejection) => {
      if (opts.json) {
        if (rejections.length < MAX_REPORTED) rejections.push(r);
      } else progress.note(`${name}: line ${r.line}: ${r.reason}`);
    };
    await runDb(imp, async ({ pool }) => {
      let stats: ImportStats;
      if (opts.strict) {
        try {
          stats = await inTransaction(pool, (client) => importSubscribers(client, input, { format: format!, strict: true, batchSize, onProgress: (s) => progress.update(s) }));
        } catch (error) {
          progress.end();
          if (error instanceof RejectedRowError || error instanceof ImportStoppedError) {
            process.stderr.write(`error: ${name}: ${error.message}; nothing was imported (--strict)\n`);
            process.exitCode = 1;
            return;
          }
          throw error;
        }
      } else {
        try {
          stats = await importSubscribers(pool, input, { format: format!, batchSize, onReject, onProgress: (s) => progress.update(s) });
        } catch (error) {
          if (!(error instanceof ImportStoppedError)) throw error;
          progress.end();
          const s = error.stats;
          const kept = error.keptThroughLine ? `every accepted row through line ${n(error.keptThroughLine)} is stored, nothing after it` : 'nothing was stored';
          process.stderr.write(`error: ${name}: ${error.message}\nread ${n(s.read)} records: imported ${n(s.imported)}, rejected ${n(s.rejected)}; ${kept}\n`);
          if (opts.json) printJson({ file: name, format, ...s, stopped: error.message, kept_through_line: error.keptThroughLine, rejections, rejections_not_shown: Math.max(0, s.rejected - rejections.length) });
          process.exitCode = 1;
          return;
        }
      }
      progress.end();
      const seconds = progress.elapsedSeconds();
      if (opts.json) return printJson({ file: name, format, ...stats, record_limit_bytes: MAX_RECORD_BYTES, seconds, rejections, rejections_not_shown: Math.max(0, stats.rejected - rejections.length) });
      process.stderr.write(`read ${n(stats.read)} records: imported ${n(stats.imported)} rows (${n(Math.round(stats.imported / Math.max(seconds, 0.001)))}/s): ${n(stats.inserted)} new, ${n(stats.updated)} updated; ${n(stats.rejected)} rejected\n`);
    });
  });

  const count = group.command('count')
    .description('How many subscribers a segment selects, and how many of them can be reached.')
    .option('--segment <json>', 'audience filters as JSON; default {} (every subscriber)', '{}');
  dbCommand(count);
  count.addHelpText('after', `\nSegment filters (ANDed):\n${AUDIENCE_FILTERS.map((f) => `  ${f.name.padEnd(20)} ${f.value.padEnd(10)} ${f.doc}`).join('\n')}`);
  examples(count, [
    'bqctl subscribers count',
    'bqctl subscribers count --segment \'{"tags_any":["vip"],"languages":["en"]}\'',
    'bqctl subscribers count --segment \'{"attributes":{"plan":"pro"},"active_within_days":30}\' --json',
  ]);
  count.action(async (opts: { segment: string; json?: boolean }) => {
    const audience = asUsage(() => parseAudience(parseJsonArg(opts.segment, '--segment'), '--segment'));
    await runDb(count, async ({ pool }) => {
      const c = await countAudience(pool, audience, '--segment');
      if (opts.json) return printJson(c);
      out(`total ${n(c.total)}\nreachable ${n(c.reachable)}\nopted_out ${n(c.opted_out)}\nunreachable ${n(c.unreachable)}`);
    });
  });
}

/** Reads the first chunk to guess the format, and gives back a stream that still starts with it. */
async function sniff(input: Readable): Promise<{ format: ImportFormat; input: Readable }> {
  const it = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const first = await it.next();
  const head = first.done ? '' : first.value.toString('utf8', 0, Math.min(first.value.length, 256));
  async function* all() {
    if (!first.done) yield first.value;
    for (let next = await it.next(); !next.done; next = await it.next()) yield next.value;
  }
  return { format: detectFormat(undefined, head), input: Readable.from(all()) };
}

/** "imported 45,000 rows (12,000/s)" on stderr: redrawn on a terminal, every 5 s otherwise. */
class Progress {
  private readonly started = Date.now();
  private last = 0;
  private drawn = false;
  private readonly tty = process.stderr.isTTY === true;

  constructor(private readonly quiet: boolean) {}

  update(s: ImportStats): void {
    const now = Date.now();
    if (this.quiet || now - this.last < (this.tty ? 250 : 5_000)) return;
    this.last = now;
    const line = `imported ${n(s.imported)} rows (${n(Math.round(s.imported / Math.max((now - this.started) / 1000, 0.001)))}/s)`;
    if (this.tty) {
      process.stderr.write(`\r${line}\x1b[K`);
      this.drawn = true;
    } else process.stderr.write(`${line}\n`);
  }

  /** A line of its own (a rejection), without breaking the redrawn progress line. */
  note(text: string): void {
    this.end();
    process.stderr.write(`${text}\n`);
  }

  end(): void {
    if (this.drawn) process.stderr.write('\n');
    this.drawn = false;
  }

  elapsedSeconds(): number {
    return Math.round((Date.now() - this.started) / 10) / 100;
  }
}
