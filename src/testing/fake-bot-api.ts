// A local Telegram Bot API server speaking the real wire format. It is the far
// side of the wire for tests, benchmarks and the demo: our code talks to it
// through an unmodified HTTP client (telegraf), so nothing of ours is mocked.
// Importing this module starts nothing; fake-bot-api-cli.ts runs it as a process.
import { EventEmitter } from 'node:events';
import http, { STATUS_CODES } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { seededRandom } from './random.js';

export type ChatState = 'blocked' | 'deactivated' | 'kicked' | 'chat_deleted' | 'not_found';
export type ChatId = number | string;
export interface FakeBotApiOptions {
  token?: string;
  rateLimit?: number; // send calls per rolling 1000 ms, all chats; every arrival counts, rejected ones too
  retryAfterSeconds?: number;
  perChatPerSecond?: number;
  groupPerMinute?: number; // rolling 60 s, negative chat ids only
  latencyMs?: number;
  host?: string;
  port?: number;
  seed?: number;
}
export interface FaultOptions { errorRate?: number; resetRate?: number; hangRate?: number; storm?: boolean; errorStatus?: number; seed?: number }
/** status 0 = never answered (`fault` says why). */
export interface CallRecord { at: number; method: string; chatId: ChatId | undefined; status: number; description?: string; fault?: 'hang' | 'reset' }
export interface DeliveredRecord { at: number; method: string; chatId: ChatId; messageId: number; text?: string; caption?: string; body: Record<string, unknown> }

/** Whether a Bot API method sends a message: only those count toward the message rate limit. */
export function isSendMethod(method: string): boolean {
  return Object.hasOwn(SEND_METHODS, method);
}

/** The largest number of arrival times (ms) spanning less than windowMs. */
export function maxArrivalsInWindow(arrivals: number[], windowMs = 1000): number {
  const t = [...arrivals].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; j < t.length; j++) {
    while (t[j]! - t[i]! >= windowMs) i++;
    best = Math.max(best, j - i + 1);
  }
  return best;
}

export const DEFAULT_FAKE_TOKEN = '123456:FAKE-TOKEN';
const BOT_USER = { id: 123456, is_bot: true, first_name: 'Fake', username: 'fake_bot' };
const CHAT_STATE_ERRORS: Record<ChatState, [number, string]> = {
  blocked: [403, 'Forbidden: bot was blocked by the user'],
  deactivated: [403, 'Forbidden: user is deactivated'],
  kicked: [403, 'Forbidden: bot was kicked from the group chat'],
  chat_deleted: [403, 'Forbidden: the group chat was deleted'],
  not_found: [400, 'Bad Request: chat not found'],
};
// Value = the media field the method requires (null: none).
const SEND_METHODS: Record<string, string | null> = {
  sendMessage: null, sendPhoto: 'photo', sendVideo: 'video', sendDocument: 'document', sendAnimation: 'animation', copyMessage: null,
};
const HTML_TAGS = new Set(['b', 'strong', 'i', 'em', 'u', 'ins', 's', 'strike', 'del', 'a', 'code', 'pre', 'tg-spoiler', 'span', 'blockquote']);

interface ChatInfo { arrivals: number[]; lastId: number; delivered: number; state?: ChatState; migrateTo?: number; failures: number; failStatus: number }
type Outcome = { fault: 'hang' | 'reset' } | { status: number; payload: unknown; parameters?: Record<string, number> };
const fail = (status: number, description: string, parameters?: Record<string, number>): Outcome => ({ status, payload: description, parameters });
const fail5xx = (status: number): Outcome => fail(status, STATUS_CODES[status] ?? 'Internal Server Error');

// Wording mirrors what the real server answers for malformed HTML.
function htmlError(text: string): string | null {
  const stack: string[] = [];
  for (const m of text.matchAll(/<(\/?)([a-zA-Z][\w-]*)[^>]*>/g)) {
    const name = m[2]!.toLowerCase();
    const off = Buffer.byteLength(text.slice(0, m.index));
    if (!m[1]) {
      if (!HTML_TAGS.has(name)) return `Unsupported start tag "${name}" at byte offset ${off}`;
      stack.push(name);
      continue;
    }
    const top = stack.pop();
    if (top === undefined) return `Unexpected end tag at byte offset ${off}`;
    if (top !== name) return `Unmatched end tag at byte offset ${off}, expected "</${top}>", found "</${name}>"`;
  }
  return stack.length ? `Can't find end tag corresponding to start tag "${stack[stack.length - 1]}"` : null;
}

// Telegram applies length limits to the text after entity parsing.
function visible(text: string, parseMode: unknown): string {
  if (String(parseMode).toLowerCase() !== 'html') return text;
  return text.replace(/<[^>]*>/g, '').replace(/&(lt|gt|amp|quot|#\d+|#x[0-9a-f]+);/gi, '_');
}

function parseBody(buf: Buffer, contentType: string): Record<string, unknown> {
  if (buf.length === 0) return {};
  if (contentType.includes('application/json')) {
    const v: unknown = JSON.parse(buf.toString('utf8'));
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : {};
  }
  const boundary = /multipart\/form-data.*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  if (!boundary) return Object.fromEntries(new URLSearchParams(buf.toString('utf8')));
  const out: Record<string, unknown> = {};
  // latin1 round-trips arbitrary bytes, so binary file parts can't corrupt the split.
  for (const part of buf.toString('latin1').split(`--${boundary[1] ?? boundary[2]}`)) {
    const sep = part.indexOf('\r\n\r\n');
    const head = part.slice(0, Math.max(sep, 0));
    const name = /(?:^|[;\s])name="([^"]*)"/i.exec(head)?.[1];
    if (sep < 0 || !name) continue;
    const value = part.slice(sep + 4).replace(/\r\n$/, '');
    const filename = /filename="([^"]*)"/i.exec(head)?.[1];
    out[name] = filename !== undefined ? { filename, size: value.length } : Buffer.from(value, 'latin1').toString('utf8');
  }
  return out;
}

// Form-encoded bodies carry chat ids as strings; records use numbers like JSON does.
function normChatId(v: unknown): ChatId | undefined {
  if (typeof v === 'number') return v;
  if (typeof v !== 'string' || v === '') return undefined;
  return /^-?\d+$/.test(v) ? Number(v) : v;
}

function chatShape(id: ChatId): Record<string, unknown> {
  if (typeof id === 'string') return { id: -1001000000000, type: 'channel', title: 'Channel', username: id.replace(/^@/, '') };
  if (id > 0) return { id, type: 'private', first_name: 'User' };
  return { id, type: id < -1000000000000 ? 'supergroup' : 'group', title: 'Group' };
}

export class FakeBotApi extends EventEmitter {
  calls: CallRecord[] = [];
  delivered: DeliveredRecord[] = [];
  tooManyRequests = 0;

  private token: string;
  private readonly o: Required<Omit<FakeBotApiOptions, 'token' | 'seed'>>;
  private rand: () => number;
  private faults: Required<Omit<FaultOptions, 'seed'>> = { errorRate: 0, resetRate: 0, hangRate: 0, storm: false, errorStatus: 500 };
  private server: http.Server | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly global: number[] = []; // arrival times; entries before globalHead have left the window
  private globalHead = 0;
  private readonly chats = new Map<string, ChatInfo>();
  private fileSeq = 0;

  private scripted: { status: number; headers?: Record<string, string>; body?: unknown } | undefined;

  constructor(opts: FakeBotApiOptions = {}) {
    super();
    this.token = opts.token ?? DEFAULT_FAKE_TOKEN;
    this.o = {
      rateLimit: opts.rateLimit ?? Infinity, retryAfterSeconds: opts.retryAfterSeconds ?? 1,
      perChatPerSecond: opts.perChatPerSecond ?? Infinity, groupPerMinute: opts.groupPerMinute ?? Infinity,
      latencyMs: opts.latencyMs ?? 0, host: opts.host ?? '127.0.0.1', port: opts.port ?? 0,
    };
    this.rand = opts.seed === undefined ? Math.random : seededRandom(opts.seed);
  }

  async start(): Promise<string> {
    if (this.server) throw new Error('FakeBotApi already started');
    const server = (this.server = http.createServer((req, res) => this.handle(req, res)));
    // Outlive the client's keep-alive (Node's default agent: 5 s) so a reused socket is never closed under it.
    server.keepAliveTimeout = 65_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => { this.server = undefined; reject(err); });
      server.listen(this.o.port, this.o.host, resolve);
    });
    const { port } = server.address() as AddressInfo;
    return `http://${this.o.host.includes(':') ? `[${this.o.host}]` : this.o.host}:${port}/`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections(); // hung requests and idle keep-alive sockets alike
    });
  }

  /**
   * While set, every send call is answered with exactly this (status, headers, JSON body), for
   * answers the real API may give but the stand-in never decides on: a redirect, a huge description.
   */
  answerSendsWith(answer: { status: number; headers?: Record<string, string>; body?: unknown } | null): void {
    this.scripted = answer ?? undefined;
  }

  setChatState(chatId: ChatId, state: ChatState | null): void { this.chat(chatId).state = state ?? undefined; }
  migrate(chatId: ChatId, newChatId: number): void { this.chat(chatId).migrateTo = newChatId; }
  flaky(chatId: ChatId, failures: number, status = 500): void { Object.assign(this.chat(chatId), { failures, failStatus: status }); }
  setFaults({ seed, ...rest }: FaultOptions): void {
    this.faults = { ...this.faults, ...rest };
    if (seed !== undefined) this.rand = seededRandom(seed);
  }
  setToken(token: string): void { this.token = token; }
  deliveredCount(chatId: ChatId): number { return this.chats.get(String(chatId))?.delivered ?? 0; }

  /** Largest number of send calls (the ones rateLimit counts) arriving within less than windowMs. */
  maxCallsInWindow(windowMs = 1000): number {
    return maxArrivalsInWindow(this.calls.filter((c) => isSendMethod(c.method)).map((c) => c.at), windowMs);
  }

  /** Clears observations only; chat states, message ids and limiter windows persist. */
  reset(): void {
    this.calls = [];
    this.delivered = [];
    for (const c of this.chats.values()) c.delivered = 0;
    this.tooManyRequests = 0;
  }

  /** Resolves with the next future 'call'/'delivered' record matching `pred`. */
  waitFor(event: 'call', pred?: (r: CallRecord) => boolean): Promise<CallRecord>;
  waitFor(event: 'delivered', pred?: (r: DeliveredRecord) => boolean): Promise<DeliveredRecord>;
  waitFor(event: 'call' | 'delivered', pred: (r: CallRecord & DeliveredRecord) => boolean = () => true): Promise<unknown> {
    return new Promise((resolve) => {
      const l = (r: CallRecord & DeliveredRecord): void => {
        if (pred(r)) { this.off(event, l); resolve(r); }
      };
      this.on(event, l);
    });
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    // Limiter admission and the fault draw happen synchronously at arrival so that
    // concurrent body parsing can't reorder them (keeps seeded runs reproducible).
    const at = performance.now();
    const draw = this.rand();
    // Telegram's limits are on messages sent: getMe and the like do not use up the budget.
    const sendMethod = /\/([A-Za-z]+)(?:\?|$)/.exec(req.url ?? '')?.[1];
    const overGlobal = sendMethod !== undefined && Object.hasOwn(SEND_METHODS, sendMethod) ? this.admitGlobal(at) : false;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      const route = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(url.pathname);
      const method = route?.[2] ?? url.pathname.split('/').pop() ?? ''; // never record a token
      let body: Record<string, unknown> = {};
      let outcome: Outcome | undefined;
      try {
        body = { ...Object.fromEntries(url.searchParams), ...parseBody(Buffer.concat(chunks), String(req.headers['content-type'] ?? '')) };
      } catch {
        outcome = fail(400, "Bad Request: can't parse JSON object");
      }
      const chatId = normChatId(body.chat_id);
      const scripted = this.scripted;
      if (scripted && route && Object.hasOwn(SEND_METHODS, method)) {
        res.writeHead(scripted.status, { 'content-type': 'application/json', ...scripted.headers }).end(JSON.stringify(scripted.body ?? {}));
        return this.record({ at, method, chatId, status: scripted.status });
      }
      const overChat = chatId === undefined ? null : this.admitChat(chatId, at);
      outcome ??= route ? this.decide(route[1]!, method, req.method ?? 'GET', chatId, body, at, draw, overGlobal, overChat) : fail(404, 'Not Found');
      this.respond(res, { at, method, chatId }, outcome);
    });
  }

  private decide(token: string, method: string, verb: string, chatId: ChatId | undefined, body: Record<string, unknown>,
    at: number, draw: number, overGlobal: boolean, overChat: number | null): Outcome {
    if (token !== this.token) return fail(401, 'Unauthorized');
    if (!(Object.hasOwn(SEND_METHODS, method) && verb === 'POST') && method !== 'getMe' && method !== 'answerCallbackQuery') return fail(404, 'Not Found');
    const { retryAfterSeconds: retry } = this.o;
    const f = this.faults;
    if (f.storm || overGlobal) return fail(429, `Too Many Requests: retry after ${retry}`, { retry_after: retry });
    if (draw < f.hangRate) return { fault: 'hang' };
    if (draw < f.hangRate + f.resetRate) return { fault: 'reset' };
    if (draw < f.hangRate + f.resetRate + f.errorRate) return fail5xx(f.errorStatus);
    if (method === 'getMe') return { status: 200, payload: BOT_USER };
    // Tracked callback buttons are answered by the middleware; the call is recorded like any other.
    if (method === 'answerCallbackQuery') return typeof body.callback_query_id === 'string' && body.callback_query_id ? { status: 200, payload: true } : fail(400, 'Bad Request: query is too old and response timeout expired or query ID is invalid');
    if (chatId === undefined) return fail(400, 'Bad Request: chat_id is empty');
    if (overChat !== null) return fail(429, `Too Many Requests: retry after ${overChat}`, { retry_after: overChat });
    const chat = this.chat(chatId);
    if (chat.failures > 0) {
      chat.failures--;
      return fail5xx(chat.failStatus);
    }
    if (chat.state) return fail(...CHAT_STATE_ERRORS[chat.state]);
    if (typeof chatId === 'string' && !chatId.startsWith('@')) return fail(400, 'Bad Request: chat not found');
    if (chat.migrateTo !== undefined) return fail(400, 'Bad Request: group chat was upgraded to a supergroup chat', { migrate_to_chat_id: chat.migrateTo });
    const problem = this.validate(method, body);
    if (problem) return fail(400, `Bad Request: ${problem}`);
    return { status: 200, payload: this.deliver(method, chatId, body, at) };
  }

  private validate(method: string, body: Record<string, unknown>): string | null {
    const mode = body.parse_mode;
    const isHtml = String(mode).toLowerCase() === 'html';
    const media = SEND_METHODS[method];
    if (media && (body[media] === undefined || body[media] === '')) return `there is no ${media} in the request`;
    if (method === 'copyMessage' && (body.from_chat_id === undefined || body.message_id === undefined)) return 'message to copy not found';
    const text = method === 'sendMessage' ? String(body.text ?? '') : typeof body.caption === 'string' ? body.caption : null;
    if (text === null) return null;
    const err = isHtml ? htmlError(text) : null;
    if (err) return `can't parse entities: ${err}`;
    if (method !== 'sendMessage') return visible(text, mode).length > 1024 ? 'message caption is too long' : null;
    if (visible(text, mode).trim() === '') return 'message text is empty';
    return visible(text, mode).length > 4096 ? 'message is too long' : null;
  }

  // Delivery happens before the answer leaves (and before latencyMs), so a client that
  // gives up mid-flight has still delivered: the same ambiguity as the real API.
  private deliver(method: string, chatId: ChatId, body: Record<string, unknown>, at: number): unknown {
    const chat = this.chat(chatId);
    const messageId = ++chat.lastId;
    chat.delivered++;
    const text = typeof body.text === 'string' ? body.text : undefined;
    const caption = typeof body.caption === 'string' ? body.caption : undefined;
    const rec: DeliveredRecord = { at, method, chatId, messageId, body, ...(text !== undefined && { text }), ...(caption !== undefined && { caption }) };
    this.delivered.push(rec);
    this.emit('delivered', rec);
    if (method === 'copyMessage') return { message_id: messageId };
    const msg: Record<string, unknown> = { message_id: messageId, from: BOT_USER, chat: chatShape(chatId), date: Math.floor(Date.now() / 1000) };
    if (text !== undefined) msg.text = visible(text, body.parse_mode);
    if (caption !== undefined) msg.caption = visible(caption, body.parse_mode);
    const media = SEND_METHODS[method];
    if (media) {
      const given = body[media];
      const id = typeof given === 'string' && !/^https?:/.test(given) ? given : `fake-${media}-${++this.fileSeq}`;
      const file = { file_id: id, file_unique_id: `uniq-${id.slice(-16)}` };
      const dims = media === 'document' ? {} : { width: 320, height: 240, ...(media !== 'photo' && { duration: 1 }) };
      msg[media] = media === 'photo' ? [{ ...file, ...dims, file_size: 1024 }] : { ...file, ...dims };
      if (media === 'animation') msg.document = file; // the real API returns both for animations
    }
    return msg;
  }

  private admitGlobal(at: number): boolean {
    const w = this.global;
    while (this.globalHead < w.length && at - w[this.globalHead]! >= 1000) this.globalHead++;
    if (this.globalHead > 1024 && this.globalHead * 2 > w.length) { w.splice(0, this.globalHead); this.globalHead = 0; }
    const over = w.length - this.globalHead >= this.o.rateLimit;
    w.push(at);
    return over;
  }

  // Returns retry_after seconds if this chat is over its limit, else null.
  private admitChat(chatId: ChatId, at: number): number | null {
    const { perChatPerSecond, groupPerMinute, retryAfterSeconds } = this.o;
    if (perChatPerSecond === Infinity && groupPerMinute === Infinity) return null;
    const chat = this.chat(chatId);
    const w = chat.arrivals.filter((t) => at - t < 60_000);
    chat.arrivals = [...w, at];
    if (w.filter((t) => at - t < 1000).length >= perChatPerSecond) return retryAfterSeconds;
    if (typeof chatId !== 'number' || chatId >= 0 || w.length < groupPerMinute) return null;
    // Group limits answer with the time until the minute window frees, as the real API does.
    return Math.max(retryAfterSeconds, Math.ceil((Math.min(...w) + 60_000 - at) / 1000));
  }

  private respond(res: http.ServerResponse, base: Omit<CallRecord, 'status'>, out: Outcome): void {
    if ('fault' in out) {
      if (out.fault === 'reset') res.socket?.destroy();
      return this.record({ ...base, status: 0, fault: out.fault });
    }
    const ok = out.status === 200;
    const payload = ok ? { ok: true, result: out.payload }
      : { ok: false, error_code: out.status, description: out.payload, ...(out.parameters && { parameters: out.parameters }) };
    const send = (): void => {
      if (res.destroyed) return;
      res.writeHead(out.status, STATUS_CODES[out.status] ?? '', { 'content-type': 'application/json' });
      res.end(JSON.stringify(payload));
      if (out.status === 429) this.tooManyRequests++;
      this.record({ ...base, status: out.status, ...(!ok && { description: String(out.payload) }) });
    };
    if (this.o.latencyMs <= 0) return send();
    const t = setTimeout(() => { this.timers.delete(t); send(); }, this.o.latencyMs);
    this.timers.add(t);
  }

  private chat(id: ChatId): ChatInfo {
    const key = String(id);
    let c = this.chats.get(key);
    if (!c) this.chats.set(key, (c = { arrivals: [], lastId: 0, delivered: 0, failures: 0, failStatus: 500 }));
    return c;
  }

  private record(rec: CallRecord): void {
    this.calls.push(rec);
    this.emit('call', rec);
  }
}
