// What one BroadcastQueue does with its bot's updates and its tracked links: the subscriber list
// kept by queue.telegraf() and queue.recordUpdate(), and the clicks the redirect listener records.
// The options are checked at construction, so a bad capture or tracking option throws there.
import type { Context, MiddlewareFn } from 'telegraf';
import type { Pool } from '../db/pool.js';
import type { Logger } from '../log.js';
import { ConfigError, PayloadError } from '../errors.js';
import { DEFAULTS } from '../config/defaults.js';
import { checkTrackingOptions, resolveCaptureOptions, type CaptureOptions, type ResolvedCaptureOptions, type TrackingOptions } from '../config/options.js';
import { SubscriberCapture, type CapturedUpdate, type Update } from './capture.js';
import { resolveTrackedPress, type TrackedPress } from './tracked-press.js';
import { captureMiddleware } from './telegraf.js';
import { Tracking } from './tracking.js';
import { createRedirectHandler, type RedirectHandler } from './redirect-server.js';

/** What queue.recordUpdate() says about one update. */
export interface RecordedUpdate extends CapturedUpdate {
  /** A tracked callback button's press (recorded): the button's own data and the query to answer; null for any other update. */
  press: TrackedPress | null;
}

export class BotEngagement {
  /** Tracked links and buttons; null when the tracking option is absent. */
  readonly tracking: Tracking | null;
  private readonly captureSettings: ResolvedCaptureOptions;
  private captureRef: SubscriberCapture | null = null;

  /** `db` connects on first use; `onEvent` hears each engagement event's kind, `onRefused` each refused token's (link, button). */
  constructor(
    capture: CaptureOptions | undefined,
    tracking: TrackingOptions | undefined,
    private readonly db: () => Promise<Pool>,
    private readonly log: Logger,
    private readonly onEvent: (kind: string) => void,
    onRefused: (kind: 'link' | 'button') => void = () => undefined,
  ) {
    this.captureSettings = resolveCaptureOptions(capture);
    const checked = checkTrackingOptions(tracking);
    this.tracking = checked ? new Tracking(db, { ...checked, flushMs: DEFAULTS.clickFlushMs }, log, onEvent, onRefused) : null;
  }

  private capture(): SubscriberCapture {
    this.captureRef ??= new SubscriberCapture(this.db, this.captureSettings, this.log, this.onEvent);
    return this.captureRef;
  }

  middleware(): MiddlewareFn<Context> {
    return captureMiddleware(this.capture(), this.tracking, this.log);
  }

  /** Throws at once for what is no update; the returned promise never rejects. */
  record(update: Record<string, unknown>): Promise<RecordedUpdate> {
    if (update === null || typeof update !== 'object' || Array.isArray(update)) throw new PayloadError(`recordUpdate needs a Bot API update object, got ${update === null ? 'null' : typeof update}`);
    const captured = this.capture().record(update as Update);
    return resolveTrackedPress(this.tracking, update as Update, this.log).then((press) => ({ ...captured, press }));
  }

  redirectHandler(): RedirectHandler {
    if (!this.tracking) throw new ConfigError(['redirectHandler() needs the tracking option (publicUrl and linkSecret)']);
    return createRedirectHandler(this.tracking, this.log);
  }

  async flush(): Promise<void> {
    await this.captureRef?.flush();
    await this.tracking?.flush();
  }

  /** Before the pool closes: what the updates and clicks said until now is written (only if it was ever opened). */
  async close(connected: boolean): Promise<void> {
    if (connected) {
      await this.captureRef?.close();
      await this.tracking?.flush();
    }
    this.captureRef = null;
  }
}
