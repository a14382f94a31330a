import { AsyncLocalStorage } from 'node:async_hooks';
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { Telegram } from 'telegraf';
import { deadline } from '../abort.js';
import { NotSentError } from '../errors.js';
import type { OutgoingMessage } from './message.js';

/** What createBroadcastQueue accepts as `telegram`: a token, or the bot the user already has. */
export type TelegramOption =
  | { token: string; apiRoot?: string }
  | { telegram: Telegram; token?: string }
  | Telegram;

export interface SentMessage {
  messageId: number;
}

/** A Bot API call past this is abandoned (telegraf's own default is 500 s). */
export const CALL_TIMEOUT_MS = 10_000;

/**
 * Calls to the Bot API at once, each on a connection of its own. Reused (keep-alive) and bounded:
 * 1000 messages/s at ~100 ms each needs about 100; an unbounded burst of new connections overflows
 * the peer's accept backlog and leaves calls hanging until they time out.
 */
export const MAX_SOCKETS = 128;
/**
 * The agent may open this many more sockets than calls are allowed at once, so that a request never
 * waits in the agent's own queue: node-fetch 2 (telegraf's client) fails a request handed a
 * keep-alive socket the instant a chunked response freed it with a false "Premature close"
 * (ERR_STREAM_PREMATURE_CLOSE), which at-most-once must count as possibly delivered. Calls wait
 * for a free slot here instead (TelegramSender.send), before the call's deadline starts.
 */
const AGENT_SLACK = 32;

/**
 * An idle connection is closed by us after this long (or 1 s before the server's announced
 * `Keep-Alive: timeout=N`, if sooner; Node's agent honours that only when an agent timeout is set).
 * Kept open indefinitely, a connection idle for a minute was reused just as the server closed it:
 * on a busy machine the server's FIN sat unread while the agent handed the socket to a new call,
 * which failed with "socket hang up", possibly delivered, so at-most-once wrote the recipients off
 * as unknown (five at once in a chaos load run with no fault injected). A new connection after
 * 15 s of silence costs one handshake.
 */
export const IDLE_SOCKET_MS = 15_000;

/**
 * One Bot API call's clock. The per-call deadline counts from the moment the request is on a
 * connected socket, not from the call: time spent waiting for one of the agent's bounded sockets
 * (or for a new connection) is not time Telegram had the message. A call abandoned before that
 * moment certainly sent nothing, and says so (NotSentError), so that it is retried instead of being
 * counted as possibly delivered. Waiting for a socket has its own bound of the same length.
 */
class CallClock {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout;
  private readonly detach: () => void;
  /** The request reached a connected socket: from here on it may have been delivered. */
  onWire = false;
  /** Requests the call made; telegraf makes one, so a second is node-fetch following a redirect. */
  requests = 0;
  /** Where a refused redirect pointed (scheme and host only: the path holds the token). */
  redirectedTo: string | null = null;

  constructor(private readonly timeoutMs: number, signal: AbortSignal | undefined) {
    this.timer = setTimeout(() => this.controller.abort(new DOMException(`no connection to the Bot API within ${timeoutMs} ms`, 'TimeoutError')), timeoutMs);
    const onAbort = () => this.controller.abort(signal!.reason);
    if (signal?.aborted) this.controller.abort(signal.reason);
    else signal?.addEventListener('abort', onAbort, { once: true });
    this.detach = () => signal?.removeEventListener('abort', onAbort);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Called by the agent hook when the request has a connected socket; restarts the deadline. */
  wired(): void {
    if (this.onWire || this.controller.signal.aborted) return;
    this.onWire = true;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.controller.abort(new DOMException(`timed out after ${this.timeoutMs} ms`, 'TimeoutError')), this.timeoutMs);
  }

  done(): void {
    clearTimeout(this.timer);
    this.detach();
  }
}

/** A counting semaphore whose waiters leave when their signal aborts. */
class Slots {
  private readonly waiters: (() => void)[] = [];

  constructor(private free: number) {}

  acquire(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.free > 0 && this.waiters.length === 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const grant = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(grant);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal.reason);
      };
      this.waiters.push(grant);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.free++;
  }
}

/** The call whose request the agent is being handed (telegraf gives no per-request hook). */
const currentCall = new AsyncLocalStorage<CallClock>();
const hooked = new WeakSet<object>();

/**
 * Wraps an agent's addRequest (Node's internal entry point for every request that wants a socket)
 * so that the call that made the request learns when its bytes can leave: when the request has a
 * socket, and that socket is connected. Requests made outside a call are untouched.
 */
export function hookAgent(agent: unknown): void {
  if (!agent || typeof agent !== 'object' || hooked.has(agent)) return;
  const target = agent as { addRequest?: (req: http.ClientRequest, ...rest: unknown[]) => unknown };
  const original = target.addRequest;
  if (typeof original !== 'function') return;
  hooked.add(agent);
  target.addRequest = function addRequest(this: unknown, req: http.ClientRequest, ...rest: unknown[]) {
    const call = currentCall.getStore();
    if (call && ++call.requests > 1) {
      // node-fetch (telegraf's client) follows a 3xx with a new request on the same agent; telegraf
      // offers no redirect: 'manual'. Following would count another host's answer as Telegram's
      // (a 307 re-POSTs the message there), so the follow-up never gets a socket.
      call.redirectedTo = `${req.protocol}//${String(req.getHeader('host') ?? req.host)}`;
      // With no socket, destroy() only records the error; node-fetch waits for it as an 'error' event.
      const refused = new Error('redirect refused');
      req.destroy(refused);
      process.nextTick(() => req.emit('error', refused));
      return undefined;
    }
    if (call) {
      req.once('socket', (socket: Socket) => {
        if (socket.connecting) socket.once('connect', () => call.wired());
        else call.wired();
      });
    }
    return original.call(this, req, ...rest);
  };
}

/**
 * The Bot API client: telegraf's Telegram class, with a per-call timeout. Errors are thrown as
 * telegraf raises them; telegram/classify.ts decides what they mean.
 */
export class TelegramSender {
  readonly client: Telegram;
  readonly botId: number;

  private readonly slots: Slots;

  constructor(option: TelegramOption, private readonly timeoutMs = CALL_TIMEOUT_MS, maxSockets = MAX_SOCKETS) {
    this.slots = new Slots(maxSockets);
    if (option instanceof Telegram) {
      this.client = option;
    } else if ('telegram' in option) {
      this.client = option.telegram;
    } else {
      // telegraf resolves method URLs against apiRoot, so a path prefix needs its trailing slash.
      const apiRoot = option.apiRoot && !option.apiRoot.endsWith('/') ? `${option.apiRoot}/` : option.apiRoot;
      const secure = !apiRoot || apiRoot.startsWith('https:');
      const agentOptions = { keepAlive: true, maxSockets: maxSockets + AGENT_SLACK, timeout: IDLE_SOCKET_MS };
      const agent = secure ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
      this.client = new Telegram(option.token, { agent, ...(apiRoot ? { apiRoot } : {}) });
      // telegraf drops the agent for an http:// apiRoot (a local Bot API server, the stand-in), which
      // left Node's global agent: unbounded sockets, a connection storm after every stall.
      (this.client as unknown as { options: { agent?: unknown } }).options.agent = agent;
    }
    hookAgent((this.client as unknown as { options?: { agent?: unknown } }).options?.agent);
    // The numeric bot id before the colon keys the shared rate budget; it is not secret.
    this.botId = Number((this.client as unknown as { token: string }).token.split(':')[0]);
    if (!Number.isSafeInteger(this.botId) || this.botId <= 0) throw new Error('the bot token does not start with a numeric bot id');
  }

  /**
   * One send. Throws NotSentError when the call failed before its request was on a connected
   * socket (nothing reached Telegram); otherwise what telegraf threw.
   */
  async send(chatId: number, message: OutgoingMessage, signal?: AbortSignal): Promise<SentMessage> {
    const call = new CallClock(this.timeoutMs, signal);
    try {
      await this.slots.acquire(call.signal);
    } catch (error) {
      call.done();
      throw new NotSentError(error);
    }
    try {
      // Only callApi takes a signal; telegraf's typings name the abort-controller polyfill's type.
      const result = (await currentCall.run(call, () =>
        this.client.callApi(message.method as 'sendMessage', { chat_id: chatId, ...message.params } as never, { signal: call.signal as never }),
      )) as { message_id: number };
      return { messageId: result.message_id };
    } catch (error) {
      if (call.redirectedTo) throw new NotSentError(new Error(`the Bot API answered with a redirect (3xx) to ${call.redirectedTo}, which is not followed; check TELEGRAM_API_ROOT`));
      // An agent we could not hook never reports the wire: keep the old, cautious reading then.
      if (!call.onWire && this.hooked) throw new NotSentError(error);
      throw error;
    } finally {
      call.done();
      this.slots.release();
    }
  }

  private get hooked(): boolean {
    const agent = (this.client as unknown as { options?: { agent?: unknown } }).options?.agent;
    return typeof agent === 'object' && agent !== null && hooked.has(agent);
  }

  async getMe(): Promise<{ id: number; username?: string }> {
    const limit = deadline(this.timeoutMs);
    try {
      return (await this.client.callApi('getMe', {}, { signal: limit.signal as never })) as { id: number; username?: string };
    } finally {
      limit.done();
    }
  }
}
