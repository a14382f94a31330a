import net from 'node:net';

/**
 * A TCP proxy in front of PostgreSQL that can lose the answer to one statement: the statement
 * reaches the server and commits, then the connection dies before the client hears back, as when
 * PostgreSQL crashes (immediate shutdown) right after a commit. The client sees a connection error
 * for a write that landed. New connections can be held back meanwhile, so that a retry comes only
 * when the test lets it.
 */
export class ReplyLoss {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private armed: { marker: string; lost: () => void } | null = null;
  private held: (() => void)[] | null = null;

  private constructor(private readonly target: { host: string; port: number }) {
    this.server = net.createServer((client) => this.accept(client));
  }

  /** Starts a proxy for the server of `url`; connectionString() gives the URL through it. */
  static async start(url: string): Promise<ReplyLoss> {
    const parsed = new URL(url);
    const proxy = new ReplyLoss({ host: parsed.hostname, port: Number(parsed.port || 5432) });
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  connectionString(url: string): string {
    const parsed = new URL(url);
    parsed.hostname = '127.0.0.1';
    parsed.port = String((this.server.address() as net.AddressInfo).port);
    return parsed.toString();
  }

  /**
   * The next statement whose text contains `marker` runs, and its answer is lost with its
   * connection. Resolves once that happened. Connections opened after it wait until release().
   * Rejects when no such statement came within timeoutMs (a marker the code no longer sends),
   * rather than hanging the suite.
   */
  loseAnswerTo(marker: string, timeoutMs = 30_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.armed = null;
        reject(new Error(`no statement containing ${JSON.stringify(marker)} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.armed = {
        marker,
        lost: () => {
          clearTimeout(timer);
          resolve();
        },
      };
    });
  }

  /** Lets the connections held since the lost answer through. */
  release(): void {
    const held = this.held ?? [];
    this.held = null;
    for (const go of held) go();
  }

  async close(): Promise<void> {
    this.release();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    this.sockets.add(client);
    client.on('close', () => this.sockets.delete(client));
    client.on('error', () => undefined);
    client.pause();
    const go = () => this.pipe(client);
    if (this.held) this.held.push(go);
    else go();
  }

  private pipe(client: net.Socket): void {
    const upstream = net.connect(this.target);
    this.sockets.add(upstream);
    upstream.on('close', () => this.sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    let losing: (() => void) | null = null;
    client.on('data', (chunk: Buffer) => {
      if (this.armed && chunk.includes(this.armed.marker)) {
        losing = this.armed.lost;
        this.armed = null;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!losing) {
        client.write(chunk);
        return;
      }
      // PostgreSQL sends nothing of an extended-protocol statement before its Sync, which commits:
      // this first answer comes after the commit.
      const lost = losing;
      losing = null;
      this.held = [];
      upstream.destroy();
      client.destroy();
      lost();
    });
    client.resume();
  }
}
