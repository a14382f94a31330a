// The public options of createBroadcastQueue and what getStatus() answers (broadcast-queue.ts).
import type { Logger } from './log.js';
import type { JobHandler } from './queue/worker-pool.js';
import type { QueueStatus } from './queue/status.js';
import type { TelegramOption } from './telegram/sender.js';
import type { Sleep } from './time.js';
import type { TrackingOptions, CaptureOptions, QueueSettings } from './config/options.js';

/** The options of createBroadcastQueue; the tunable ones, with their defaults, are in QueueSettings (config/options.ts). */
export interface BroadcastQueueOptions extends QueueSettings {
  /** PostgreSQL URL. Without one, an embedded PostgreSQL is started in `embedded.dataDir`. */
  connectionString?: string;
  /** Direct connection for LISTEN, the liveness lock and claims when connectionString goes through PgBouncer. Defaults to connectionString. */
  listenConnectionString?: string;
  embedded?: { dataDir: string; port?: number; ephemeral?: boolean };
  /** Your own job types; a job is only claimed by an instance that has its handler. */
  handlers?: Record<string, JobHandler>;
  /** Adds the 'send' and 'broadcast' job types: a bot token (and apiRoot), or your Telegraf's telegram. */
  telegram?: TelegramOption;
  /** POST a signed JSON summary to this URL when a broadcast finishes (retried through the queue). */
  webhook?: { url: string; secret?: string };
  /** How queue.telegraf() and queue.recordUpdate() keep the subscriber list: opt-out and opt-in commands and replies. */
  capture?: CaptureOptions;
  /** Tracked links and buttons for track: true broadcasts: the redirect listener's public URL and the tokens' key. */
  tracking?: TrackingOptions;
  log?: Logger;
  /** How the Telegram send path waits for slots and pauses. A seam for tests that make every wait 100–500 ms late; defaults to timers. */
  sleep?: Sleep;
}

export interface BroadcastQueueStatus extends QueueStatus {
  running: boolean;
  daemonId: string;
  listenerConnected: boolean;
  paused: boolean;
  concurrency: number;
  activeJobs: number;
  jobTypes: string[];
  telegram: { botId: number; halted: string | null } | null;
}
