// Reading an import file into records, each with the line it starts on. One pass over the bytes
// (a 300 MB line costs what 300 MB of short lines cost), and no record is held past
// MAX_RECORD_BYTES: a longer one is counted as it streams by and rejected with its line number.
//
// CSV records are framed here, before any field is parsed: a record ends at a newline outside
// quotes (an even count of `"` so far). A quote that is never closed would otherwise swallow the
// rest of the file as one field; csv-parse's error recovery also drops the rows after a bad quote
// (measured: `"4"z,w` lost the next two rows without a word). So a quote still open at the end of
// the file, or past the record limit, rejects only the line it opened on, and reading resumes on
// the line after it. Fields of a framed record are split by csvFields (RFC 4180).
import { PayloadError } from '../errors.js';
import { describeValue } from '../telegram/message.js';

/** The longest record an import accepts: a subscriber row is a few hundred bytes. */
export const MAX_RECORD_BYTES = 64 * 1024;

/** A record with its (first) line number, or the reason it cannot be read. */
export type Item = { line: number; fields: Record<string, unknown>; bytes: number } | { line: number; reason: string };

/** A physical line; `bytes` is null when the line was longer than the limit (its content is not kept). */
interface Line { n: number; bytes: Buffer | null; size: number }

const NEWLINE = 0x0a;
const QUOTE = 0x22;
const utf8 = new TextDecoder('utf-8', { fatal: true });
const tooLong = (size: number) => `longer than the ${MAX_RECORD_BYTES.toLocaleString('en-US')}-byte record limit (${size.toLocaleString('en-US')} bytes); skipped`;

async function* physicalLines(input: AsyncIterable<Buffer | string>): AsyncGenerator<Line> {
  let pieces: Buffer[] = [];
  let size = 0;
  let n = 0;
  const take = (): Line => {
    let bytes = size > MAX_RECORD_BYTES ? null : Buffer.concat(pieces, size);
    if (bytes && bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, bytes.length - 1); // CRLF
    const line = { n: ++n, bytes, size };
    pieces = [];
    size = 0;
    return line;
  };
  for await (const raw of input) {
    const chunk = typeof raw === 'string' ? Buffer.from(raw) : raw;
    for (let start = 0; ;) {
      const newline = chunk.indexOf(NEWLINE, start);
      const end = newline === -1 ? chunk.length : newline;
      if (size + (end - start) <= MAX_RECORD_BYTES) pieces.push(chunk.subarray(start, end));
      else pieces = [];
      size += end - start;
      if (newline === -1) break;
      yield take();
      start = newline + 1;
    }
  }
  if (size > 0) yield take();
}

function decode(bytes: Buffer): string | null {
  try {
    return utf8.decode(bytes);
  } catch {
    return null;
  }
}

export async function* jsonLines(input: AsyncIterable<Buffer | string>): AsyncGenerator<Item> {
  for await (const { n, bytes, size } of physicalLines(input)) {
    if (!bytes) {
      yield { line: n, reason: tooLong(size) };
      continue;
    }
    const text = decode(bytes);
    if (text === null) {
      yield { line: n, reason: 'not valid UTF-8' };
      continue;
    }
    if (!text.trim()) continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      yield { line: n, reason: `not valid JSON: ${(error as Error).message}` };
      continue;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) yield { line: n, reason: `must be a JSON object, got ${describeValue(value)}` };
    else yield { line: n, fields: value as Record<string, unknown>, bytes: size };
  }
}

function quotes(bytes: Buffer): number {
  let count = 0;
  for (let i = bytes.indexOf(QUOTE); i !== -1; i = bytes.indexOf(QUOTE, i + 1)) count++;
  return count;
}

/**
 * CSV with a header row. Blank lines are skipped. The header's problems (no chat_id, a name
 * twice) end the import before anything is written: they are the file's, not a row's.
 */
export async function* csvRecords(input: AsyncIterable<Buffer | string>): AsyncGenerator<Item> {
  const source = physicalLines(input)[Symbol.asyncIterator]();
  const replay: Line[] = [];
  let group: Line[] = [];
  let groupSize = 0;
  let open = false;
  let header: string[] | null = null;

  // The first line of a record whose quote never closed is rejected; the lines after it are read again.
  function* unclosed(where: string): Generator<Item> {
    const [first, ...rest] = group;
    if (!header) throw new PayloadError(`the CSV header row (line ${first!.n}) has a quote that is not closed`);
    group = [];
    groupSize = 0;
    open = false;
    replay.unshift(...rest);
    yield { line: first!.n, reason: `a quote opened on this line is not closed ${where}; the line is skipped and reading goes on with line ${first!.n + 1}` };
  }

  function* finish(): Generator<Item> {
    const lines = group;
    group = [];
    groupSize = 0;
    const first = lines[0]!.n;
    const text = decode(Buffer.concat(lines.flatMap((l, i) => (i ? [Buffer.from('\n'), l.bytes!] : [l.bytes!]))));
    if (text === null) {
      if (!header) throw new PayloadError(`the CSV header row (line ${first}) is not valid UTF-8`);
      return yield { line: first, reason: 'not valid UTF-8' };
    }
    if (lines.length === 1 && !text.trim()) return;
    let fields: string[];
    try {
      fields = csvFields(text);
    } catch (error) {
      if (!(error instanceof PayloadError)) throw error;
      if (!header) throw new PayloadError(`the CSV header row (line ${first}) cannot be read: ${error.message}`);
      // Quotes that pair up across lines by accident (a stray quote here, another further down):
      // only this line is rejected, the ones after it are read again on their own.
      replay.unshift(...lines.slice(1));
      return yield { line: first, reason: `bad quoting: ${error.message}` };
    }
    if (!header) {
      header = fields.map((h) => h.trim().toLowerCase());
      if (!header.includes('chat_id')) throw new PayloadError(`the CSV header row has no chat_id column (got: ${header.join(', ')})`);
      const dup = header.find((h, i) => header!.indexOf(h) !== i);
      if (dup) throw new PayloadError(`the CSV header row names ${dup} twice`);
      return;
    }
    const span = lines.length > 1 ? ` (lines ${first}-${lines[lines.length - 1]!.n})` : '';
    if (fields.length !== header.length) return yield { line: first, reason: `has ${fields.length} fields where the header has ${header.length}${span}` };
    yield { line: first, fields: Object.fromEntries(header.map((h, i) => [h, fields[i]])), bytes: text.length };
  }

  let ended = false;
  for (;;) {
    let line = replay.shift();
    if (!line && !ended) {
      const next = await source.next();
      if (next.done) ended = true;
      else line = next.value;
    }
    if (!line) {
      if (!group.length) return;
      yield* unclosed('before the end of the file');
      continue;
    }
    if (!line.bytes || groupSize + line.size > MAX_RECORD_BYTES) {
      if (group.length) {
        replay.unshift(line);
        yield* unclosed(`within the ${MAX_RECORD_BYTES.toLocaleString('en-US')}-byte record limit`);
        continue;
      }
      if (!line.bytes) {
        if (!header) throw new PayloadError(`the CSV header row (line ${line.n}) is ${tooLong(line.size).replace(/; skipped$/, '')}`);
        yield { line: line.n, reason: tooLong(line.size) };
        continue;
      }
    }
    group.push(line);
    groupSize += line.size + 1;
    if (quotes(line.bytes) % 2 === 1) open = !open;
    if (!open) yield* finish();
  }
}

/** Splits one framed CSV record (its quotes pair up) into fields, as RFC 4180 reads them. */
export function csvFields(text: string): string[] {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    if (text.charCodeAt(i) === QUOTE) {
      let value = '';
      let from = i + 1;
      for (;;) {
        const q = text.indexOf('"', from);
        if (q === -1) throw new PayloadError(`field ${fields.length + 1} has a quote that is not closed`);
        value += text.slice(from, q);
        if (text.charCodeAt(q + 1) === QUOTE) {
          value += '"';
          from = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      fields.push(value);
      if (i === text.length) return fields;
      if (text[i] !== ',') throw new PayloadError(`field ${fields.length} has text after its closing quote`);
      i++;
    } else {
      const comma = text.indexOf(',', i);
      const value = text.slice(i, comma === -1 ? text.length : comma);
      if (value.includes('"')) throw new PayloadError(`field ${fields.length + 1} has a quote inside an unquoted value (quote the whole field and double the quote: "a ""b"" c")`);
      fields.push(value);
      if (comma === -1) return fields;
      i = comma + 1;
    }
  }
}
