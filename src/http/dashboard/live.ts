// Server-sent events: the overview and a broadcast's page stay live by reading the same snapshot
// again every interval and sending it as one `update` event. Streams are few (one per open tab),
// bounded in number, and ended when the server closes.
import type { ServerResponse } from 'node:http';
import { errorMessage, type Logger } from '../../log.js';
import { HttpError } from '../../errors.js';
import { SECURITY_HEADERS } from './respond.js';

/** Open streams per dashboard: each reads the database every interval. */
const MAX_STREAMS = 32;

export class LiveStreams {
  private readonly open = new Set<ServerResponse>();

  constructor(private readonly log: Logger) {}

  /** Sends `read()` now and every `intervalMs` until the client goes away or `read` says the end (null). */
  start(res: ServerResponse, intervalMs: number, read: () => Promise<unknown | null>): void {
    if (this.open.size >= MAX_STREAMS) throw new HttpError(503, `too many live views open (${MAX_STREAMS}); close a tab`, { 'retry-after': '5' });
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive' });
    // Tells EventSource how long to wait before reconnecting after the stream ends.
    res.write(`retry: ${Math.max(1000, intervalMs)}\n\n`);
    this.open.add(res);
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    const stop = () => {
      stopped = true;
      clearTimeout(timer);
      this.open.delete(res);
      if (!res.writableEnded) res.end();
    };
    res.on('close', stop);
    const tick = async () => {
      try {
        const value = await read();
        if (stopped) return;
        if (value === null) return stop();
        res.write(`event: update\ndata: ${JSON.stringify(value)}\n\n`);
      } catch (error) {
        this.log.warn({ err: errorMessage(error) }, 'dashboard live view read failed');
        if (!stopped) res.write(`event: problem\ndata: ${JSON.stringify('the database did not answer; retrying')}\n\n`);
      }
      if (!stopped) timer = setTimeout(tick, intervalMs);
    };
    void tick();
  }

  /** Ends every stream, so a server closing does not wait for open tabs. */
  closeAll(): void {
    for (const res of this.open) res.end();
    this.open.clear();
  }
}
