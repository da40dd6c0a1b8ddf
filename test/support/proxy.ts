import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on 127.0.0.1 between a client and Redis, for faults and measurements:
 *  - `cutAfter(k)`: exactly k more bytes from the client are forwarded, then both sides are
 *    closed (a connection cut at byte k of the next request; k = its length: cut before the reply);
 *  - `cutReplyAfter(k)`: the same on the way back: k more bytes from Redis reach the client (a
 *    reply lost at byte k, after the request ran);
 *  - each cut happens once (a client that reconnects is not cut again) and is counted in `cuts`;
 *  - `delayMs`: added to each direction of every chunk (20 ms RTT = 10);
 *  - byte counters for both directions.
 */
export class TcpProxy {
  bytesUp = 0;
  bytesDown = 0;
  delayMs = 0;
  /** Cuts made so far. */
  cuts = 0;
  /** When set, every forwarded byte is appended here, by direction. */
  capture: { up: Buffer[]; down: Buffer[] } | undefined;
  private cut: number | undefined;
  private replyCut: number | undefined;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {
    this.server = createServer((client) => this.accept(client));
  }

  static async start(targetPort: number, host = '127.0.0.1'): Promise<TcpProxy> {
    const proxy = new TcpProxy({ host, port: targetPort });
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    proxy.port = (proxy.server.address() as { port: number }).port;
    return proxy;
  }

  /** From now on, forward `bytes` more client bytes, then close both sides; undefined: never. */
  cutAfter(bytes: number | undefined): void {
    this.cut = bytes === undefined ? undefined : this.bytesUp + bytes;
  }

  /** From now on, forward `bytes` more server bytes, then close both sides; undefined: never. */
  cutReplyAfter(bytes: number | undefined): void {
    this.replyCut = bytes === undefined ? undefined : this.bytesDown + bytes;
  }

  resetCounters(): void {
    this.bytesUp = 0;
    this.bytesDown = 0;
  }

  /** Closes every open connection (clients see a reset). */
  dropAll(): void {
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    const upstream = connect(this.target.port, this.target.host);
    this.sockets.add(client).add(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    const forward = (from: Socket, to: Socket, up: boolean) => {
      from.on('data', (chunk: Buffer) => {
        const limit = up ? this.cut : this.replyCut;
        if (limit !== undefined) {
          const allowed = limit - (up ? this.bytesUp : this.bytesDown);
          if (allowed <= chunk.length) {
            const head = chunk.subarray(0, Math.max(0, allowed));
            if (up) {
              this.bytesUp += head.length;
              this.cut = undefined;
            } else {
              this.bytesDown += head.length;
              this.replyCut = undefined;
            }
            this.cuts++;
            this.capture?.[up ? 'up' : 'down'].push(head);
            // Flush what is allowed, then cut both sides.
            if (head.length > 0) to.write(head, end);
            else end();
            return;
          }
        }
        if (up) this.bytesUp += chunk.length;
        else this.bytesDown += chunk.length;
        this.capture?.[up ? 'up' : 'down'].push(chunk);
        if (this.delayMs > 0) setTimeout(() => to.writable && to.write(chunk), this.delayMs);
        else to.write(chunk);
      });
      from.on('close', end);
      from.on('error', end);
    };
    forward(client, upstream, true);
    forward(upstream, client, false);
  }
}

/** Where each top-level RESP value in `bytes` ends (offsets just past it): commands or replies. */
export function respEnds(bytes: Buffer): number[] {
  const ends: number[] = [];
  const line = (at: number) => {
    const end = bytes.indexOf('\r\n', at);
    if (end < 0) throw new Error('respEnds: truncated');
    return { text: bytes.toString('latin1', at + 1, end), next: end + 2 };
  };
  const value = (at: number): number => {
    const { text, next } = line(at);
    const type = String.fromCharCode(bytes[at]!);
    if (type === '$') return Number(text) < 0 ? next : next + Number(text) + 2;
    if (type === '*') {
      let pos = next;
      for (let i = 0; i < Number(text); i++) pos = value(pos);
      return pos;
    }
    return next;
  };
  for (let at = 0; at < bytes.length; ) ends.push((at = value(at)));
  return ends;
}
