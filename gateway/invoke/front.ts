import { STATUS_CODES } from 'node:http';
import type { Socket, SocketHandler, TCPSocketListener, TLSOptions } from 'bun';
import { errorAnswer } from '../errors';
import { PlatError } from '../../lib/errors';
import { readRequestHeaders } from './headers';
import { Outbox } from './outbox';
import type { Incoming, InvokeService } from './service';
import type { Answer } from './upstream';

/**
 * The invoke front: the gateway's public port, served as plain HTTP/1.1 (over TLS when the gateway
 * has a certificate) on Bun's own TCP sockets.
 *
 * Bun's HTTP server makes a Request and a Response of every exchange, and those objects cost the
 * invoke hop about a third of its throughput (bench/hop.ts measures a proxy on sockets alone). So the
 * front reads requests itself, and one for `/function/<name>` in the plainest framing (below) goes
 * straight to the invoke service: its answer is written from the container's bytes, with no Request
 * or Response made on either side. The service is the same one Bun's routes call, so who may call,
 * pools and cold starts, timeouts, retries, metrics and records are the same too.
 *
 * Anything else (the API, a chunked or large body, `Expect`, an upgrade, HTTP/1.0, a head that
 * looks odd) turns the connection into a tunnel to the gateway's Bun server on loopback, which sees
 * the same bytes and answers as it would on the public port. The tunnel's local port tells that
 * server which client it carries (`clientAddress`), for `x-forwarded-for`.
 */

/** Request bodies the front reads itself; larger ones (by Content-Length) go through the tunnel and stream. */
const MAX_BODY_BYTES = 1024 * 1024;
/** A head still without its end past this is left to Bun's server (which has its own limits and answers). */
const MAX_HEAD_BYTES = 64 * 1024;
/** Bytes a client may send ahead while its request is served (pipelining) before it is no longer read. */
const MAX_AHEAD_BYTES = MAX_BODY_BYTES + MAX_HEAD_BYTES;
/** An idle client connection is closed after this, as Bun's server does with the gateway's idleTimeout. */
const IDLE_SECONDS = 255;
const PREFIX = '/function/';
/** Methods served by the front (CONNECT, TRACE and the unknown ones are left to Bun's server). */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);
/** A header name, in lower case (RFC 9110 token). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
/** Anything but visible ASCII in a request target, or a dot segment: left to Bun's URL handling. */
const ODD_TARGET = /[^\x21-\x7e]|\/\.|%2e/i;
const CONTROL = /[\0\r\n]/;
const DIGITS = /^\d{1,10}$/;
const CRLF = Buffer.from('\r\n');
const LAST_CHUNK = Buffer.from('0\r\n\r\n');

/** Client addresses of the tunnels open now, by their local port: what the Bun server sees as its peer's port. */
const tunnelClients = new Map<number, string>();
/** With the native front (native.ts) before this one: the client a connection from it carries, by its port. */
let nativeClientOf: ((port: number) => string | undefined) | undefined;

/** The native front's connections to this one and to Bun's server carry its clients' requests: their addresses come from it. */
export function behindNative(clientOf: (port: number) => string | undefined): void {
  nativeClientOf = clientOf;
}

/**
 * The client's address for a request Bun's server took: the front's client when it came through a
 * tunnel (this front's or the native one's), else the peer itself.
 */
export function clientAddress(peer: { address: string; port: number } | null | undefined): string | undefined {
  if (!peer) return undefined;
  return tunnelClients.get(peer.port) ?? nativeClientOf?.(peer.port) ?? peer.address;
}

/** A request the front serves, as read from its head. */
export interface Parsed {
  method: string;
  /** The function's name (or `name@version`), percent-decoded as Bun's router does. */
  name: string;
  /** The path and query the function sees. */
  path: string;
  headers: [string, string][];
  contentLength?: number;
}

/**
 * Reads a request's head (without its final CRLF CRLF); undefined when the front leaves it to Bun's
 * server. Strict on purpose: whatever is not plainly a keep-alive HTTP/1.1 request to /function/ goes
 * to the server that checks everything.
 */
export function parseHead(head: string): Parsed | undefined {
  const lineEnd = head.indexOf('\r\n');
  const line = lineEnd < 0 ? head : head.slice(0, lineEnd);
  const space = line.indexOf(' ');
  const space2 = line.indexOf(' ', space + 1);
  if (space <= 0 || space2 < 0 || line.slice(space2 + 1) !== 'HTTP/1.1') return undefined;
  const method = line.slice(0, space);
  const target = line.slice(space + 1, space2);
  if (!METHODS.has(method) || !target.startsWith(PREFIX) || ODD_TARGET.test(target)) return undefined;
  let nameEnd = PREFIX.length;
  while (nameEnd < target.length && target[nameEnd] !== '/' && target[nameEnd] !== '?') nameEnd++;
  if (nameEnd === PREFIX.length) return undefined;
  let name = target.slice(PREFIX.length, nameEnd);
  if (name.includes('%')) {
    try {
      name = decodeURIComponent(name);
    } catch {
      return undefined;
    }
  }
  const rest = target.slice(nameEnd);
  const headers: [string, string][] = [];
  let contentLength: number | undefined;
  let at = lineEnd < 0 ? head.length : lineEnd + 2;
  while (at < head.length) {
    let end = head.indexOf('\r\n', at);
    if (end < 0) end = head.length;
    const colon = head.indexOf(':', at);
    if (colon <= at || colon > end) return undefined;
    const field = head.slice(at, colon).toLowerCase();
    const value = head.slice(colon + 1, end).trim();
    at = end + 2;
    if (!TOKEN.test(field) || CONTROL.test(value)) return undefined;
    switch (field) {
      case 'content-length':
        if (contentLength !== undefined || !DIGITS.test(value)) return undefined;
        contentLength = Number(value);
        if (contentLength > MAX_BODY_BYTES) return undefined;
        break;
      case 'transfer-encoding':
      case 'expect':
      case 'upgrade':
        return undefined;
      case 'connection':
        if (value.toLowerCase() !== 'keep-alive') return undefined;
        break;
    }
    headers.push([field, value]);
  }
  return { method, name, path: rest.startsWith('/') ? rest : `/${rest}`, headers, contentLength };
}

/** The front's listening socket, in front of the gateway's Bun server at `backend` (loopback). */
export class InvokeFront {
  private listener?: TCPSocketListener<Client>;

  /** Bun's server on loopback, where tunnels go. */
  backend = { hostname: '127.0.0.1', port: 0 };

  /** The scheme clients use: `https` when the front speaks TLS (for `x-forwarded-proto`). */
  scheme: 'http' | 'https' = 'http';

  constructor(readonly invoke: InvokeService) {}

  /**
   * Takes the gateway's port (with TLS when `tls` is given: the front ends it, and its tunnels carry
   * plain HTTP to Bun's server on loopback).
   */
  listen(
    hostname: string,
    port: number,
    backend: { hostname: string; port: number },
    tls?: TLSOptions,
  ): { hostname: string; port: number } {
    this.backend = backend;
    this.scheme = tls ? 'https' : 'http';
    const front = this;
    const handlers: SocketHandler<Client> = {
      open(socket) {
        socket.setNoDelay(true);
        socket.timeout(IDLE_SECONDS);
        socket.data = new Client(socket, front);
      },
      data: (socket, data) => {
        try {
          socket.data.onData(data as Buffer);
        } catch (error) {
          // A bug here must cost one connection, not the gateway.
          console.error('INTERNAL: the invoke front failed on a connection:', error);
          socket.data.destroy();
        }
      },
      drain: (socket) => socket.data.onDrain(),
      timeout: (socket) => socket.data.onTimeout(),
      end: (socket) => socket.data.onClose(),
      close: (socket) => socket.data.onClose(),
      error: (socket) => socket.data.onClose(),
    };
    this.listener = Bun.listen<Client>({ hostname, port, socket: handlers, tls });
    return { hostname: this.listener.hostname, port: this.listener.port };
  }

  /** Stops taking connections; those open end as their clients close them. */
  stop(): void {
    this.listener?.stop(false);
  }
}

/** One client connection: its requests, served one at a time in order (pipelining included), or its tunnel. */
class Client {
  /** Bytes received and not yet served. */
  private pending?: Buffer;
  private busy = false;
  private closed = false;
  /** Aborted when the client goes away while its request is served (made when first asked for: `signal`). */
  private controller?: AbortController;
  private tunnel?: Tunnel;
  /** Unsent bytes, and who waits for them to go. */
  private readonly outbox = new Outbox();
  private drained?: () => void;
  private reader?: ReadableStreamDefaultReader<Uint8Array>;
  private readPaused = false;
  /** Ends the connection once what is left to send is sent (the tunnel's server closed its side). */
  private ending = false;
  /** The client's address, read once (each read of `remoteAddress` makes a string in native code). */
  readonly address: string;
  /** A connection from the native front, which carries one client's request after another's. */
  private readonly viaNative: boolean;

  constructor(
    readonly socket: Socket<Client>,
    readonly front: InvokeFront,
  ) {
    this.address = socket.remoteAddress;
    this.viaNative = nativeClientOf !== undefined && this.address === '127.0.0.1';
  }

  onData(data: Buffer): void {
    if (this.tunnel) {
      this.tunnel.send(data);
      return;
    }
    // Bun may reuse the buffer it hands over: what is kept is copied.
    this.pending = this.pending ? Buffer.concat([this.pending, data]) : Buffer.from(data);
    if (!this.busy) this.next();
    else if (this.pending.byteLength > MAX_AHEAD_BYTES) this.pauseReading();
  }

  /** Serves the next request once its head and body are in, or hands the connection to a tunnel. */
  private next(): void {
    const bytes = this.pending;
    if (this.busy || this.closed || this.tunnel || !bytes) return;
    const end = bytes.indexOf('\r\n\r\n');
    if (end < 0) {
      if (bytes.byteLength > MAX_HEAD_BYTES) this.leave();
      return;
    }
    const parsed = end <= MAX_HEAD_BYTES ? parseHead(bytes.toString('latin1', 0, end)) : undefined;
    if (!parsed) {
      this.leave();
      return;
    }
    const bodyStart = end + 4;
    const bodyEnd = bodyStart + (parsed.contentLength ?? 0);
    if (bytes.byteLength < bodyEnd) return;
    const body = parsed.contentLength === undefined ? null : bytes.subarray(bodyStart, bodyEnd);
    this.pending = bytes.byteLength > bodyEnd ? bytes.subarray(bodyEnd) : undefined;
    this.busy = true;
    void this.serve(parsed, body);
  }

  private async serve(parsed: Parsed, body: Buffer | null): Promise<void> {
    const address = this.viaNative ? (nativeClientOf?.(this.socket.remotePort) ?? this.address) : this.address;
    const heads = readRequestHeaders(parsed.headers, address, this.front.scheme);
    const headOnly = parsed.method === 'HEAD';
    const client = this;
    let controller: AbortController | undefined;
    const incoming: Incoming = {
      method: parsed.method,
      path: parsed.path,
      body: () => body,
      // Made only when read: a quick request never needs one.
      get signal() {
        controller ??= client.abortable();
        return controller.signal;
      },
    };
    try {
      const answer = await this.front.invoke.serve(parsed.name, incoming, heads);
      this.controller = undefined;
      if (this.closed) {
        if (answer.body instanceof ReadableStream) await answer.body.cancel().catch(() => {});
        return;
      }
      const streaming = this.writeAnswer(answer, heads.requestId, headOnly);
      if (streaming !== undefined) await streaming;
    } catch (error) {
      this.controller = undefined;
      if (this.closed) return;
      await this.writeError(error, heads.requestId, headOnly);
    }
    // What a client sends ahead waits until it reads what it was sent.
    if (!this.outbox.empty && !this.closed) await new Promise<void>((resolve) => (this.drained = resolve));
    this.busy = false;
    if (this.readPaused && !this.closed) {
      this.readPaused = false;
      this.socket.resume();
    }
    this.next();
  }

  /** A controller for the request served now, aborted when its client goes away (at once if it is gone already). */
  private abortable(): AbortController {
    const controller = new AbortController();
    if (this.closed) controller.abort();
    this.controller = controller;
    return controller;
  }

  /**
   * Writes the function's answer: its own head with the request id, and its body as it comes. The
   * answer to HEAD is the head alone, with the Content-Length the function gave (of the body GET would get).
   * Returns a promise only while a streamed body goes on (most answers are whole: no promise is made).
   */
  private writeAnswer(answer: Answer, requestId: string, headOnly: boolean): Promise<void> | undefined {
    const { status, body } = answer;
    let head = `HTTP/1.1 ${status} ${answer.statusText}\r\n`;
    const pairs = answer.headers;
    let length: string | undefined;
    for (let i = 0; i < pairs.length; i += 2) {
      const name = pairs[i] as string;
      if (name === 'content-length') length = pairs[i + 1];
      else if (name !== 'x-request-id') head += `${name}: ${pairs[i + 1]}\r\n`;
    }
    head += `x-request-id: ${requestId}\r\n`;
    if (headOnly || status === 204 || status === 304 || status < 200) {
      if (headOnly && length !== undefined) head += `content-length: ${length}\r\n`;
      this.write(Buffer.from(`${head}\r\n`, 'latin1'));
      return body instanceof ReadableStream ? body.cancel().catch(() => {}) : undefined;
    }
    if (!(body instanceof ReadableStream)) {
      const bytes = body ?? EMPTY;
      this.write(Buffer.concat([Buffer.from(`${head}content-length: ${bytes.byteLength}\r\n\r\n`, 'latin1'), bytes]));
      return undefined;
    }
    // A body that goes on: with its length when the function gave one, else chunked.
    const chunked = length === undefined;
    this.write(Buffer.from(`${head}${chunked ? 'transfer-encoding: chunked' : `content-length: ${length}`}\r\n\r\n`, 'latin1'));
    return this.stream(body, chunked);
  }

  /** Writes a streamed body as it comes, chunked when the function gave no length, with back-pressure. */
  private async stream(body: ReadableStream<Uint8Array>, chunked: boolean): Promise<void> {
    const reader = body.getReader();
    this.reader = reader;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (this.closed) return;
        if (value.byteLength === 0) continue;
        const bytes = chunked ? Buffer.concat([Buffer.from(`${value.byteLength.toString(16)}\r\n`), value, CRLF]) : Buffer.from(value);
        if (!this.write(bytes)) await new Promise<void>((resolve) => (this.drained = resolve));
      }
      if (chunked) this.write(LAST_CHUNK);
    } catch {
      // The function's answer broke off: so does this one, whose framing can no longer end cleanly.
      this.destroy();
    } finally {
      this.reader = undefined;
    }
  }

  /** The platform's error answer (errors.ts), as Bun's routes give it, written as any answer is (to HEAD, its head alone). */
  private async writeError(error: unknown, requestId: string, headOnly: boolean, close = false): Promise<void> {
    const { status, headers, body } = errorAnswer(error, requestId);
    const bytes = Buffer.from(body);
    const pairs = [...Object.entries(headers).flat(), 'content-length', String(bytes.byteLength)];
    if (close) pairs.push('connection', 'close');
    await this.writeAnswer({ status, statusText: STATUS_CODES[status] ?? '', headers: pairs, body: bytes }, requestId, headOnly);
  }

  /** Writes what the socket takes now and keeps the rest for `drain`; false when some is kept. */
  write(bytes: Buffer): boolean {
    return this.closed || this.outbox.write(this.socket, bytes);
  }

  onDrain(): void {
    if (!this.outbox.flush(this.socket)) return;
    if (this.ending) {
      this.socket.end();
      return;
    }
    const drained = this.drained;
    this.drained = undefined;
    drained?.();
    this.tunnel?.clientDrained();
  }

  onTimeout(): void {
    // Idle only when nothing is under way: a request waits for its function as long as its timeout
    // says, and a tunnel's server keeps its own idle time.
    if (this.busy || this.tunnel) this.socket.timeout(IDLE_SECONDS);
    else this.socket.end();
  }

  onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.controller?.abort();
    this.reader?.cancel().catch(() => {});
    const drained = this.drained;
    this.drained = undefined;
    drained?.();
    this.tunnel?.close();
  }

  destroy(): void {
    this.socket.terminate();
    this.onClose();
  }

  /** Ends the connection once its backlog is sent. */
  end(): void {
    if (this.outbox.empty) this.socket.end();
    else this.ending = true;
  }

  pauseReading(): void {
    if (this.readPaused) return;
    this.readPaused = true;
    this.socket.pause();
  }

  resumeReading(): void {
    if (!this.readPaused || this.closed) return;
    this.readPaused = false;
    this.socket.resume();
  }

  /**
   * A request this front does not read: Bun's server gets the connection (a tunnel). Not one from the
   * native front, which carries one client's request after another's and passes only requests it read
   * as this front does: the tunnel would carry later clients' requests to Bun's server too. The request
   * is refused and the connection closed instead (the native front then opens another).
   */
  private leave(): void {
    if (!this.viaNative) {
      this.toTunnel();
      return;
    }
    this.busy = true;
    this.pending = undefined;
    const error = new PlatError('BAD_REQUEST', 'the gateway could not read this request; send it as plain HTTP/1.1');
    void this.writeError(error, crypto.randomUUID(), false, true).then(() => this.end());
  }

  /** From now on the connection's bytes go both ways between the client and Bun's server, starting with those not served. */
  private toTunnel(): void {
    const first = this.pending;
    this.pending = undefined;
    this.tunnel = new Tunnel(this, this.front.backend, first);
  }
}

const EMPTY = Buffer.alloc(0);
/** How long a closed tunnel's client address is kept, for the requests its server has yet to read. */
const TUNNEL_ADDRESS_KEPT_MS = 10_000;

const tunnelHandlers: SocketHandler<Tunnel> = {
  data: (socket, data) => socket.data.onData(data as Buffer),
  drain: (socket) => socket.data.flush(),
  end: (socket) => socket.data.onServerClosed(),
  close: (socket) => socket.data.onServerClosed(),
  error: (socket) => socket.data.onServerClosed(),
};

/** A client connection passed through to Bun's server, byte for byte, with back-pressure both ways. */
class Tunnel {
  private socket?: Socket<Tunnel>;
  /** Bytes from the client not yet taken by the server (all of them until it is connected). */
  private readonly outbox = new Outbox();
  private closed = false;
  private paused = false;

  constructor(
    private readonly client: Client,
    backend: { hostname: string; port: number },
    first: Buffer | undefined,
  ) {
    if (first) this.outbox.write(undefined, first);
    Bun.connect<Tunnel>({ hostname: backend.hostname, port: backend.port, data: this, socket: tunnelHandlers }).then(
      (socket) => {
        if (this.closed) {
          socket.terminate();
          return;
        }
        socket.setNoDelay(true);
        this.socket = socket;
        tunnelClients.set(socket.localPort, client.address);
        this.flush();
      },
      () => client.destroy(),
    );
  }

  /** The client's bytes, on to the server (kept while it cannot take them, and the client paused). */
  send(data: Buffer): void {
    if (!this.closed && !this.outbox.write(this.socket, data)) this.client.pauseReading();
  }

  /** Sends what the server can take now; once all is sent, the client is read again. */
  flush(): void {
    if (this.socket && this.outbox.flush(this.socket)) this.client.resumeReading();
  }

  /** The server's bytes, on to the client; the server is not read while the client does not take them. */
  onData(data: Buffer): void {
    if (!this.client.write(data) && !this.paused) {
      this.paused = true;
      this.socket?.pause();
    }
  }

  clientDrained(): void {
    if (!this.paused) return;
    this.paused = false;
    this.socket?.resume();
  }

  onServerClosed(): void {
    if (this.closed) return;
    this.close();
    this.client.end();
  }

  /** The client went away (or the server): the other side is closed too. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const socket = this.socket;
    if (!socket) return;
    socket.end();
    const port = socket.localPort;
    setTimeout(() => {
      if (tunnelClients.get(port) === this.client.address) tunnelClients.delete(port);
    }, TUNNEL_ADDRESS_KEPT_MS).unref?.();
  }
}
