// Parsing of bqctl's own argument values. Bad values throw UsageError, which bqctl.ts turns into
// "error: …" on stderr and exit 2, the same code commander uses for its own usage errors: a script
// can tell "you called me wrong" (2) from "the operation failed" (1).
import { readFile } from 'node:fs/promises';
import { PayloadError, UsageError } from '../errors.js';
import { parseAudience, type AudienceSpec } from '../broadcast/audience.js';
import { parseChatId } from '../telegram/message.js';

/** A positive integer id (job, broadcast); `what` names it in the message. */
export function positiveInt(raw: string, what: string): number {
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value <= 0) {
    throw new UsageError(`${what} must be a positive integer, got ${JSON.stringify(raw)}`);
  }
  return value;
}

export function positiveInts(raws: string[], what: string): number[] {
  return [...new Set(raws.map((r) => positiveInt(r, what)))];
}

/** A whole number within [min, max] for flags such as --limit and --priority. */
export function intInRange(raw: string, what: string, min: number, max: number): number {
  const value = Number(raw);
  if (!/^-?\d+$/.test(raw.trim()) || value < min || value > max) {
    throw new UsageError(`${what} must be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `--since`: an ISO date-time, or an age such as 30m, 1h, 2d, 1w (that long before now). */
export function parseSince(raw: string, now = Date.now()): Date {
  const age = /^(\d+)\s*([smhdw])$/i.exec(raw.trim());
  if (age) return new Date(now - Number(age[1]) * UNITS[age[2]!.toLowerCase()]!);
  const ms = /^\d{4}-\d{2}-\d{2}/.test(raw.trim()) ? Date.parse(raw.trim()) : NaN;
  if (Number.isNaN(ms)) throw new UsageError(`--since must be an ISO date-time (2024-05-01T12:00:00Z) or an age such as 30m, 1h, 2d, got ${JSON.stringify(raw)}`);
  return new Date(ms);
}

/** `--run-at`: an ISO date-time, or a delay such as 10m from now. */
export function parseRunAt(raw: string, now = Date.now()): Date {
  const delay = /^(\d+)\s*([smhdw])$/i.exec(raw.trim());
  if (delay) return new Date(now + Number(delay[1]) * UNITS[delay[2]!.toLowerCase()]!);
  const ms = /^\d{4}-\d{2}-\d{2}/.test(raw.trim()) ? Date.parse(raw.trim()) : NaN;
  if (Number.isNaN(ms)) throw new UsageError(`--run-at must be an ISO date-time (2024-05-01T12:00:00Z) or a delay such as 10m, got ${JSON.stringify(raw)}`);
  return new Date(ms);
}

/** Parses JSON given on the command line; `what` names the flag. */
export function parseJsonArg(raw: string, what: string): unknown {
  try {
    return JSON.parse(raw);
  } catch (error) {
    throw new UsageError(`${what} is not valid JSON: ${(error as Error).message}`);
  }
}

/** Reads and parses a JSON file, naming the file in every error. */
export async function readJsonFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${file} is not valid JSON: ${(error as Error).message}`);
  }
}

/** `--chats 1,2,-1003`: chat ids separated by commas or whitespace. */
export function parseChatList(raw: string, what: string): number[] {
  const parts = raw.split(/[\s,]+/).filter(Boolean);
  if (parts.length === 0) throw new UsageError(`${what} must list at least one chat id`);
  return parts.map((p, i) => {
    if (!/^-?\d+$/.test(p)) throw new UsageError(`${what} entry ${i + 1} must be an integer chat id, got ${JSON.stringify(p)}`);
    return asUsage(() => parseChatId(Number(p), `${what} entry ${i + 1}`));
  });
}

/** `--chats-file f`: one chat id per line (or a JSON array). */
export async function readChatFile(file: string): Promise<number[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
  }
  if (text.trimStart().startsWith('[')) {
    const list = asUsage(() => JSON.parse(text) as unknown, file);
    if (!Array.isArray(list)) throw new UsageError(`${file} must hold a JSON array of chat ids or one id per line`);
    return list.map((id, i) => asUsage(() => parseChatId(id, `${file}[${i}]`)));
  }
  return parseChatList(text, file);
}

/** The audience flags shared by `enqueue broadcast` and `broadcast create`, validated. */
export async function audienceFromFlags(opts: { segment?: string; chats?: string; chatsFile?: string }): Promise<AudienceSpec | undefined> {
  const given = [opts.segment, opts.chats, opts.chatsFile].filter((v) => v !== undefined).length;
  if (given > 1) throw new UsageError('give one of --segment, --chats or --chats-file');
  if (opts.chats !== undefined) return { chat_ids: parseChatList(opts.chats, '--chats') };
  if (opts.chatsFile !== undefined) return { chat_ids: await readChatFile(opts.chatsFile) };
  if (opts.segment !== undefined) return asUsage(() => parseAudience(parseJsonArg(opts.segment!, '--segment'), '--segment'));
  return undefined;
}

/** Runs a validator and reports its PayloadError (or JSON error) as a usage error. */
export function asUsage<T>(fn: () => T, prefix?: string): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof PayloadError || error instanceof SyntaxError) {
      throw new UsageError(prefix ? `${prefix}: ${error.message}` : error.message);
    }
    throw error;
  }
}
