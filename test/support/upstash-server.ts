import { createHash } from 'node:crypto';
import { createServer, STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Redis, ReplyError } from 'ioredis';
import type { RedisServer } from './redis.js';

/**
 * A stand-in for Upstash's REST API (the protocol in DESIGN.md) executing every command on a real
 * Redis, with fault injection. Test support only.
 */

/** What the next request gets instead of a plain answer; each fault is used by one request. */
export type Fault =
  /** Run the commands, then destroy the socket instead of answering: a reply lost after execution. */
  | { readonly type: 'drop' }
  /** Answer `status` without running anything, as a rate limiter or a failing gateway does. */
  | { readonly type: 'status'; readonly status: 429 | 500 | 502 | 503; readonly retryAfterSeconds?: number }
  /** Run the commands, answer after `ms`. */
  | { readonly type: 'delay'; readonly ms: number }
  /** Run the commands, send the headers and the first half of the body, then destroy the socket. */
  | { readonly type: 'cut' };

export interface UpstashServerOptions {
  readonly token: string;
  /** Requests with a larger body are refused with 413. Default 10 MB, Upstash's limit. */
  readonly maxRequestBytes?: number;
}

export interface UpstashServer {
  readonly url: string;
  readonly token: string;
  /** HTTP requests received since the last reset(), by path (`/`, `/pipeline`, `/multi-exec`). */
  readonly requests: Readonly<Record<string, number>>;
  /** The `upstash-sync-token` the last request carried (undefined when it carried none). */
  readonly lastSyncToken: string | undefined;
  /** Queues `fault` for each of the next `times` requests. */
  inject(fault: Fault, times?: number): void;
  /** Clears queued faults and request counts. */
  reset(): void;
  close(): Promise<void>;
}

type Command = Array<string | number | boolean>;
type Reply = { result: unknown } | { error: string };
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const KEY_LOCKING = /^#!lua([^\n]*?) flags=([^\n]*)\n/;
const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');

/** The script without Upstash's `allow-key-locking` shebang flag, which stock Redis rejects. */
function withoutKeyLocking(script: string): string {
  return script.replace(KEY_LOCKING, (line, engineOptions: string, flags: string) => {
    const kept = flags.split(',').filter((flag) => flag.trim() !== 'allow-key-locking');
    return kept.length === flags.split(',').length ? line : `#!lua${engineOptions}${kept.length > 0 ? ` flags=${kept.join(',')}` : ''}\n`;
  });
}

/** Every string base64 (binary safe), nested arrays too; integers and null unchanged. */
function encode(value: unknown, base64: boolean): unknown {
  if (Buffer.isBuffer(value)) return value.toString(base64 ? 'base64' : 'utf8');
  if (typeof value === 'string') return base64 ? Buffer.from(value).toString('base64') : value;
  if (Array.isArray(value)) return value.map((v) => encode(v, base64));
  return value;
}

function encodeReply(reply: Reply, base64: boolean): Reply {
  return 'result' in reply ? { result: encode(reply.result, base64) } : reply;
}

function isCommand(value: unknown): value is Command {
  return Array.isArray(value) && value.length > 0 && value.every((v) => ['string', 'number', 'boolean'].includes(typeof v));
}

/** A connection to the test Redis; its commands reject while Redis is down (tests restart it). */
function connectRedis(redis: RedisServer): Redis {
  const connection = new Redis(redis.port, '127.0.0.1', { maxRetriesPerRequest: 1 });
  connection.on('error', () => {});
  return connection;
}

export async function startUpstashServer(redis: RedisServer, options: UpstashServerOptions): Promise<UpstashServer> {
  const maxRequestBytes = options.maxRequestBytes ?? 10 * 1024 * 1024;
  const shared = connectRedis(redis);
  const transactions = new Set<Redis>();
  /** SHA1 of a script as the client sent it (with the flag) → SHA1 of what Redis cached. */
  const shaAliases = new Map<string, string>();
  let faults: Fault[] = [];
  let requests: Record<string, number> = {};
  let lastSyncToken: string | undefined;
  let syncToken = 0;

  /** The command as Redis must see it: flag stripped from scripts, flagged SHAs resolved. */
  function forRedis(command: Command): string[] {
    const argv = command.map(String);
    const name = argv[0]!.toLowerCase();
    const scriptAt = name === 'eval' || name === 'eval_ro' ? 1 : name === 'script' && argv[1]?.toLowerCase() === 'load' ? 2 : -1;
    if (scriptAt > 0 && argv[scriptAt] !== undefined) {
      const stripped = withoutKeyLocking(argv[scriptAt]!);
      if (stripped !== argv[scriptAt]) shaAliases.set(sha1(argv[scriptAt]!), sha1(stripped));
      argv[scriptAt] = stripped;
    }
    if ((name === 'evalsha' || name === 'evalsha_ro') && argv[1] !== undefined) argv[1] = shaAliases.get(argv[1].toLowerCase()) ?? argv[1];
    return argv;
  }

  /** SCRIPT LOAD answers the SHA of the text the client sent, as Upstash does. */
  function reply(command: Command, result: unknown): unknown {
    const isLoad = String(command[0]).toLowerCase() === 'script' && String(command[1]).toLowerCase() === 'load';
    return isLoad ? sha1(String(command[2])) : result;
  }

  /** Redis error replies become `{error}`; anything else (Redis unreachable) fails the request. */
  async function run(connection: Redis, command: Command): Promise<Reply> {
    const [name, ...args] = forRedis(command);
    try {
      return { result: reply(command, await connection.callBuffer(name!, ...args)) };
    } catch (error) {
      if (error instanceof ReplyError) return { error: (error as Error).message };
      throw new HttpError(500, `ERR ${(error as Error).message}`);
    }
  }

  /** One MULTI/EXEC on a connection of its own; a command refused while queuing discards it all. */
  async function transaction(commands: Command[]): Promise<Reply[]> {
    const connection = connectRedis(redis);
    transactions.add(connection);
    try {
      await connection.call('MULTI');
      for (const command of commands) await run(connection, command);
      const exec = await run(connection, ['EXEC']);
      if ('error' in exec) throw new HttpError(400, exec.error);
      return (exec.result as unknown[]).map((result, i) => (result instanceof Error ? { error: result.message } : { result: reply(commands[i]!, result) }));
    } finally {
      transactions.delete(connection);
      connection.disconnect();
    }
  }

  async function execute(path: string, body: unknown): Promise<Reply | Reply[]> {
    if (path === '/') {
      if (!isCommand(body)) throw new HttpError(400, 'ERR a command is a JSON array of strings');
      const replied = await run(shared, body);
      if ('error' in replied) throw new HttpError(400, replied.error);
      return replied;
    }
    if (!Array.isArray(body) || body.length === 0 || !body.every(isCommand)) {
      throw new HttpError(400, 'ERR a pipeline is a non-empty JSON array of commands');
    }
    if (path === '/pipeline') {
      const replies: Reply[] = [];
      for (const command of body) replies.push(await run(shared, command));
      return replies;
    }
    if (path === '/multi-exec') return transaction(body);
    throw new HttpError(404, `ERR unknown path ${path}`);
  }

  function readBody(req: IncomingMessage): Promise<Buffer | null> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= maxRequestBytes) chunks.push(chunk);
      });
      req.on('end', () => resolve(size <= maxRequestBytes ? Buffer.concat(chunks) : null));
      req.on('error', reject);
    });
  }

  function answer(res: ServerResponse, status: number, body: unknown, fault: Fault | undefined): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'upstash-sync-token': String(++syncToken) });
    if (fault?.type === 'cut') {
      res.write(text.slice(0, Math.floor(text.length / 2)));
      setTimeout(() => res.destroy(), 10);
    } else {
      res.end(text);
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    requests[path] = (requests[path] ?? 0) + 1;
    lastSyncToken = req.headers['upstash-sync-token'] as string | undefined;
    const fault = faults.shift();
    const raw = await readBody(req);
    if (req.headers.authorization !== `Bearer ${options.token}`) {
      return answer(res, 401, { error: 'WRONGPASS invalid or missing auth token' }, undefined);
    }
    if (req.method !== 'POST') return answer(res, 405, { error: 'ERR only POST is supported' }, undefined);
    if (raw === null) return answer(res, 413, { error: `ERR max request size exceeded (${maxRequestBytes} bytes)` }, undefined);
    if (fault?.type === 'status') {
      if (fault.retryAfterSeconds !== undefined) res.setHeader('retry-after', String(fault.retryAfterSeconds));
      return answer(res, fault.status, { error: `ERR ${STATUS_CODES[fault.status]}` }, undefined);
    }
    const base64 = req.headers['upstash-encoding'] === 'base64';
    let status = 200;
    let body: Reply | Reply[];
    try {
      const replies = await execute(path, JSON.parse(raw.toString('utf8')));
      body = Array.isArray(replies) ? replies.map((r) => encodeReply(r, base64)) : encodeReply(replies, base64);
    } catch (error) {
      status = error instanceof HttpError ? error.status : 400;
      body = { error: (error as Error).message };
    }
    if (fault?.type === 'drop') return void req.socket.destroy();
    if (fault?.type === 'delay') await new Promise((resolve) => setTimeout(resolve, fault.ms));
    answer(res, status, body, fault);
  }

  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    token: options.token,
    get requests() {
      return requests;
    },
    get lastSyncToken() {
      return lastSyncToken;
    },
    inject(fault, times = 1) {
      for (let i = 0; i < times; i++) faults.push(fault);
    },
    reset() {
      faults = [];
      requests = {};
    },
    async close() {
      sockets.forEach((socket) => socket.destroy());
      await new Promise<void>((resolve) => server.close(() => resolve()));
      transactions.forEach((connection) => connection.disconnect());
      shared.disconnect();
    },
  };
}
