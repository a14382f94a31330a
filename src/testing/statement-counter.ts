import net from 'node:net';

/** A statement a client sent, with the text it ran. */
export interface SeenStatement {
  text: string;
}

/**
 * A TCP proxy in front of PostgreSQL that counts what clients send, read from the wire protocol:
 * each simple query ('Q') and each extended-protocol Execute ('E') is one statement, named by the
 * text of the Parse it runs (a named statement is parsed once and bound by name afterwards).
 * Counts whatever connects through it, LISTEN connection and pools alike.
 */
export class StatementCounter {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  statements: SeenStatement[] = [];
  connections = 0;

  private constructor(private readonly target: { host: string; port: number }) {
    this.server = net.createServer((client) => this.accept(client));
  }

  static async start(url: string): Promise<StatementCounter> {
    const parsed = new URL(url);
    const proxy = new StatementCounter({ host: parsed.hostname, port: Number(parsed.port || 5432) });
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  connectionString(url: string): string {
    const parsed = new URL(url);
    parsed.hostname = '127.0.0.1';
    parsed.port = String((this.server.address() as net.AddressInfo).port);
    return parsed.toString();
  }

  /** Starts counting afresh. */
  reset(): void {
    this.statements = [];
    this.connections = 0;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    this.connections++;
    this.sockets.add(client);
    const upstream = net.connect(this.target);
    this.sockets.add(upstream);
    for (const s of [client, upstream]) {
      s.on('close', () => {
        this.sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
      s.on('error', () => undefined);
    }
    const parsed = new Map<string, string>();
    let bound = '';
    let startup = true;
    let pending = Buffer.alloc(0);
    const cString = (body: Buffer, from: number): [string, number] => {
      const end = body.indexOf(0, from);
      return [body.toString('utf8', from, end), end + 1];
    };
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        // The startup packet (and an SSLRequest before it) has a length but no type byte.
        const header = startup ? 4 : 5;
        if (pending.length < header) break;
        const length = pending.readInt32BE(header - 4);
        const total = length + header - 4;
        if (pending.length < total) break;
        const type = startup ? '' : String.fromCharCode(pending[0]!);
        const body = pending.subarray(header, total);
        pending = pending.subarray(total);
        if (startup) {
          if (body.readInt32BE(0) !== 80877103) startup = false;
          continue;
        }
        if (type === 'Q') this.statements.push({ text: cString(body, 0)[0] });
        else if (type === 'P') {
          const [name, next] = cString(body, 0);
          parsed.set(name, cString(body, next)[0]);
        } else if (type === 'B') {
          const [, next] = cString(body, 0);
          bound = parsed.get(cString(body, next)[0]) ?? '?';
        } else if (type === 'E') this.statements.push({ text: bound });
      }
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
  }
}
