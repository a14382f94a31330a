// What a BroadcastQueue shows its admin API and metrics. http/ reads the queue only through this,
// so it never imports the class that mounts it (broadcast-queue.ts imports http/, not the reverse).
import type { Pool } from '../db/pool.js';
import type { Logger } from '../log.js';
import type { QueueStatus } from '../queue/status.js';

export interface QueueRuntime {
  running: boolean;
  listenerConnected: boolean;
  paused: boolean;
  activeJobs: number;
  concurrency: number;
}

/** The Telegram side as the admin API and metrics see it: its bot, halt state and delivery events. */
export interface TelegramView {
  readonly botId: number;
  /** Why sending is halted (a rejected token), or null. */
  readonly halted: string | null;
  /** 'delivery' ({ jobType, outcome, count?, reason? }), 'rate-limited' ({ retryAfterMs }) and 'broadcast:ab-decided' ({ broadcastId, metric, winner, … }). */
  on(event: 'delivery' | 'rate-limited' | 'broadcast:ab-decided', listener: (...args: any[]) => void): unknown;
}

/** What a BroadcastQueue lets its admin handler and metrics see, without ever connecting. */
export interface QueueAccess {
  readonly log: Logger;
  /** The queues this instance works. */
  readonly queues: string[];
  /** The queue's pool, or null while it is not connected. Never opens one. */
  pool(): Pool | null;
  runtime(): QueueRuntime;
  /** getStatus(): the job counts and live daemons, with this instance's runtime fields. */
  status(): Promise<QueueStatus>;
  telegram(): TelegramView | null;
  /** The queue's events: 'claimed', 'job:start', 'job:done', 'listener:connected', 'listener:disconnected'. */
  on(event: string, listener: (...args: any[]) => void): unknown;
}
