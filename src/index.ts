import { BroadcastQueue, type BroadcastQueueOptions } from './broadcast-queue.js';

export { BroadcastQueue, type BroadcastQueueOptions, type BroadcastQueueStatus } from './broadcast-queue.js';
export type { Job, DependencyResult } from './queue/claimer.js';
export type { JobHandler, HandlerContext, JobEvent } from './queue/worker-pool.js';
export type { EnqueueOptions, EnqueuedJob } from './queue/enqueue.js';
export { PermanentError, PayloadError, RetriableError, SnoozeError, HaltError, ConfigError } from './errors.js';
export { loadConfig, type Config } from './config/load.js';
export type { QueueSettings, ResolvedQueueSettings } from './config/options.js';
export { migrate } from './db/migrate.js';
export { createAdminHandler, type AdminHandler } from './http/admin.js';
export { createDashboardHandler, type DashboardHandler, type DashboardOptions } from './http/dashboard/handler.js';
export { startAdminServer, ADMIN_PATH, type AdminServer, type AdminServerOptions } from './http/admin-server.js';
export { signWebhook, verifyWebhook, SIGNATURE_HEADER, TIMESTAMP_HEADER, DEFAULT_TOLERANCE_SECONDS } from './broadcast/webhook.js';

/** The library entry point (DESIGN.md): a queue for an existing Node or Telegraf bot. */
export function createBroadcastQueue(options: BroadcastQueueOptions = {}): BroadcastQueue {
  return new BroadcastQueue(options);
}
export type { ScheduleRow, ScheduleSpec } from './schedules/schedules-store.js';
export type { RecordedUpdate } from './engagement/bot-engagement.js';
export type { TrackedPress } from './engagement/tracked-press.js';
