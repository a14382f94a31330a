import { EventEmitter } from 'node:events';
import type { Pool } from '../db/pool.js';
import { errorMessage, type Logger } from '../log.js';
import type { JobHandler } from '../queue/worker-pool.js';
import { BroadcastEngine, type EngineSettings } from '../broadcast/engine.js';
import { classifyTelegramError } from '../telegram/classify.js';
import { RateLimiter } from '../telegram/rate-limiter.js';
import { SendJob } from './send-job.js';
import type { WebhookSettings } from '../broadcast/webhook.js';
import { deliverWebhook } from './webhook-job.js';
import { TelegramSender, type TelegramOption } from '../telegram/sender.js';
import type { Sleep } from '../time.js';

/** Resolved settings (defaults from config/defaults.ts, filled in by the queue). */
export interface DeliverySettings {
  /** Messages per second per bot, shared by every daemon. */
  rateLimit: number;
  /** For broadcasts with allow_paid_broadcast. */
  paidRateLimit: number;
  delivery: 'at-most-once' | 'at-least-once';
  /** POST a signed summary here when a broadcast finishes. */
  webhook?: WebhookSettings;
  /** How the send path waits (see Sleep): tests make every wait late, as a busy machine does. */
  sleep?: Sleep;
  /** Tracked links and buttons (engagement/tracking.ts); without it a track: true broadcast fails. */
  tracking?: EngineSettings['tracking'];
}

/** While halted by a 401, the token is re-checked with getMe this often. */
const TOKEN_RECHECK_MS = 30_000;

/**
 * Telegram delivery for one bot: the 'send' and 'broadcast' handlers, and the halt state a 401
 * puts the bot in. Emits 'halted' (reason), 'resumed', 'delivery' ({ jobType, outcome, reason? }:
 * sent, blocked, failed, unknown, skipped, retry, deferred; a failed call's reason code) and
 * 'rate-limited' ({ retryAfterMs }).
 */
export class TelegramDelivery extends EventEmitter {
  readonly sender: TelegramSender;
  private limiter: RateLimiter | null = null;
  private haltReason: string | null = null;
  private recheck: NodeJS.Timeout | undefined;

  constructor(
    option: TelegramOption,
    private readonly settings: DeliverySettings,
    private readonly log: Logger,
  ) {
    super();
    this.sender = new TelegramSender(option);
  }

  get halted(): string | null {
    return this.haltReason;
  }

  get botId(): number {
    return this.sender.botId;
  }

  handlers(pool: Pool): Record<string, JobHandler> {
    this.limiter = new RateLimiter(pool, this.sender.botId, this.log, this.settings.sleep);
    const common = { rateLimit: this.settings.rateLimit, paidRateLimit: this.settings.paidRateLimit, atLeastOnce: this.settings.delivery === 'at-least-once', webhooks: Boolean(this.settings.webhook), tracking: this.settings.tracking ?? null };
    const webhook = this.settings.webhook;
    const send = new SendJob(pool, this.sender, this.limiter, common, this);
    const broadcast = new BroadcastEngine(pool, this.sender, this.limiter, common, this);
    return {
      send: (job, ctx) => send.run(job, ctx),
      broadcast: (job, ctx) => broadcast.run(job, ctx),
      ...(webhook ? { webhook: (job, ctx) => deliverWebhook(pool, webhook, job, ctx) } : {}),
    };
  }

  /** At start: a token that works lifts any halt a 401 left; a rejected one halts at once. */
  async checkToken(): Promise<void> {
    try {
      const me = await this.sender.getMe();
      this.log.info({ botId: me.id, username: me.username }, 'bot token accepted by Telegram');
      await this.limiter?.clearHalt();
      if (this.haltReason) {
        this.haltReason = null;
        clearInterval(this.recheck);
        this.recheck = undefined;
        this.log.warn('bot token works again; sending resumes');
        this.emit('resumed');
      }
    } catch (error) {
      const c = classifyTelegramError(error);
      if (c.kind === 'unauthorized') this.halt('Telegram rejected the bot token (401 Unauthorized); fix TELEGRAM_BOT_TOKEN');
      else this.log.warn({ err: errorMessage(error) }, 'could not reach Telegram to check the token; going on');
    }
  }

  /** Stops claiming send and broadcast jobs until getMe succeeds again. */
  halt(reason: string): void {
    if (this.haltReason) return;
    this.haltReason = reason;
    this.log.fatal({ reason }, 'SENDING HALTED: Telegram rejected the bot token; jobs stay pending until it is fixed');
    this.emit('halted', reason);
    void this.limiter?.halt(reason).catch(() => undefined);
    this.recheck = setInterval(() => void this.checkToken(), TOKEN_RECHECK_MS);
    this.recheck.unref();
  }

  stop(): void {
    clearInterval(this.recheck);
  }
}
