import type { Socket, SocketHandler } from 'bun';
import { Outbox } from './outbox';

/**
 * The invoke proxy's HTTP/1.1 client: a pool of kept-alive TCP connections per container, on Bun's
 * own sockets, that parses only what a proxy must (the status line, the headers, the body's framing).
 * `fetch` as the upstream client cost the hop about half of nginx's throughput; this is what nginx
 * itself does (`proxy_http_version 1.1` with upstream keepalive).
 *
 * - A request goes out in one write when its body is at hand, chunked when it streams in.
 * - An answer whose body is already here (most are) becomes an Answer over its bytes, and its
 *   connection goes back to the pool at once; a longer one streams through, with back-pressure
 *   (the socket stops reading while the client does), and its connection is kept once it ended.
 * - Nothing here keeps time: the caller aborts a call (its timeout, a client gone, a container
 *   gone), and sweeps the pool of connections idle too long.
 */

/** Answer heads larger than this fail the exchange (Node's limit is 16 KiB; nginx's, 32). */
const MAX_HEAD_BYTES = 64 * 1024;
/**
 * A kept connection idle this long is closed by `sweep`: well under any runtime's keep-alive (Node's
 * 5 s, Bun's 10 s), so a server never closes one just as a request goes out on it.
 */
export const IDLE_CLOSE_MS = 2000;
/** Origins kept parsed, at most. */
const MAX_ORIGINS = 4096;
/** Kept connections per container, at most; more are closed once their answer ended. */
const MAX_IDLE = 256;
/** Methods whose requests may be sent again when a kept connection turns out to have closed. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
const CRLF = Buffer.from('\r\n');
/**
 * An answer's status line and header lines, which reach the client: a control byte other than HTAB
 * (a bare CR or LF, NUL) or a name that is not a token would let a function forge a header or a second
 * answer. gateway/native/src/http.rs `parse_answer` reads them alike.
 */
const STATUS_START = /^HTTP\/1\.[01] [1-5]\d\d/;
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Whether a line holds a control byte other than HTAB: a bare CR or LF, NUL, DEL. */
function hasControl(line: string): boolean {
  for (let i = 0; i < line.length; i++) {
    const code = line.charCodeAt(i);
    if ((code < 0x20 && code !== 0x09) || code === 0x7f) return true;
  }
  return false;
}
const LENGTH = /^\d{1,15}$/;
/** A chunk's size line: hex digits, then maybe an extension (dropped). */
const CHUNK_SIZE = /^[0-9a-fA-F]{1,15}(?:[ \t;]|$)/;
const LAST_CHUNK = Buffer.from('0\r\n\r\n');

/**
 * A call that failed. `reached` says whether the function may have seen the request (false only
 * when no connection was made); `code` is the system's error code when there is one.
 */
export class UpstreamError extends Error {
  constructor(
    message: string,
    readonly reached: boolean,
    readonly code?: string,
  ) {
    super(message);
  }
}

export interface OutgoingRequest {
  method: string;
  /** Path and query. */
  target: string;
  /** The header lines, `name: value\r\n` each, sent as they are; `host` and the framing headers are the client's to set. */
  head: string;
  /** Bytes at hand (sent with a Content-Length), a stream (sent chunked), or none. */
  body: Uint8Array | ReadableStream<Uint8Array> | null;
}

/**
 * A function's answer as it came: its status, the headers passed on (`passes`) as name/value pairs
 * (`[name, value, name, value, ...]`, names in lower case), and its body: the bytes when it was
 * whole on arrival (most are), a stream when it goes on, or none. No Response is made: the invoke
 * front writes an answer to its client as it is (front.ts), and Bun's routes make one (toResponse).
 */
export interface Answer {
  status: number;
  statusText: string;
  headers: string[];
  body: Buffer<ArrayBuffer> | ReadableStream<Uint8Array> | null;
}

/** The answer as a Response, for Bun's own server. */
export function toResponse(answer: Answer): Response {
  const headers = new Headers();
  const pairs = answer.headers;
  for (let i = 0; i < pairs.length; i += 2) headers.append(pairs[i] as string, pairs[i + 1] as string);
  return new Response(answer.body, { status: answer.status, statusText: answer.statusText, headers });
}

/** The value of an answer's header (the first one of that name), by its lower-case name. */
export function answerHeader(answer: Answer, name: string): string | undefined {
  const pairs = answer.headers;
  for (let i = 0; i < pairs.length; i += 2) if (pairs[i] === name) return pairs[i + 1];
  return undefined;
}

/** One request on its way: its answer (status and headers; the body may still stream), and how to end it early. */
export interface UpstreamCall {
  response: Promise<Answer>;
  /** Ends the call with `error` (no-op once the answer's head is in): the connection is closed, never reused. */
  abort(error: Error): void;
}

interface Origin {
  hostname: string;
  port: number;
  /** `host:port`, as the Host header. */
  host: string;
  /** The container's Unix socket, when it is reached there (the Host header stays its address's). */
  unix?: string;
  /** The pool's key: the socket, or `host`. */
  key: string;
}

/** One call's state, shared by the pool (which may send it twice) and its connection. */
class Call {
  settled = false;
  connection?: Connection;
  constructor(
    readonly request: OutgoingRequest,
    private readonly resolveWith: (answer: Answer) => void,
    private readonly rejectWith: (error: Error) => void,
  ) {}

  resolve(answer: Answer): void {
    if (this.settled) return;
    this.settled = true;
    this.resolveWith(answer);
  }

  reject(error: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.rejectWith(error);
  }
}

type Framing = { kind: 'none' } | { kind: 'length'; left: number } | { kind: 'chunked' } | { kind: 'close' };

/** The connections to containers, kept alive between requests. */
export class Upstreams {
  private readonly idle = new Map<string, Connection[]>();
  private readonly origins = new Map<string, Origin>();

  /** `passes(name, status)` says which headers of an answer the caller gets (the framing ones never: a Response sets its own). */
  constructor(readonly passes: (name: string, status: number) => boolean = () => true) {}

  /** Sends `request` to the container at `url` (`http://host:port`), through its Unix socket `unix` when it has one. */
  request(url: string, request: OutgoingRequest, unix?: string): UpstreamCall {
    let call!: Call;
    const response = new Promise<Answer>((resolve, reject) => {
      call = new Call(request, resolve, reject);
    });
    const origin = this.origin(url, unix);
    const kept = this.take(origin.key);
    if (kept) kept.send(call, true);
    else void this.sendFresh(origin, call);
    return {
      response,
      abort: (error) => {
        if (call.settled) return;
        call.reject(error);
        call.connection?.destroy();
      },
    };
  }

  /** Closes the connections idle for longer than IDLE_CLOSE_MS. */
  sweep(now = performance.now()): void {
    for (const [host, list] of this.idle) {
      const keep = list.filter((connection) => {
        if (now - connection.idleSince < IDLE_CLOSE_MS) return true;
        connection.destroy();
        return false;
      });
      if (keep.length === 0) this.idle.delete(host);
      else if (keep.length !== list.length) this.idle.set(host, keep);
    }
  }

  /** Closes every kept connection. */
  close(): void {
    for (const list of this.idle.values()) for (const connection of list) connection.destroy();
    this.idle.clear();
  }

  /** Kept connections, by `host:port` or socket (for tests). */
  idleCount(key?: string): number {
    if (key !== undefined) return this.idle.get(key)?.length ?? 0;
    let count = 0;
    for (const list of this.idle.values()) count += list.length;
    return count;
  }

  /** A call sent again on a new connection: its kept one had closed before any answer came. */
  resend(connection: Connection, call: Call): void {
    void this.sendFresh(connection.origin, call);
  }

  private async sendFresh(origin: Origin, call: Call): Promise<void> {
    let connection: Connection;
    try {
      connection = await Connection.open(origin, this);
    } catch (error) {
      const code = (error as { code?: string }).code;
      const message = (error as Error).message || String(error);
      call.reject(new UpstreamError(`could not connect to ${origin.unix ?? origin.host}: ${message}`, false, code));
      return;
    }
    if (call.settled) {
      this.keep(connection);
      return;
    }
    connection.send(call, false);
  }

  private take(key: string): Connection | undefined {
    const list = this.idle.get(key);
    return list?.pop();
  }

  /** A connection whose exchange ended cleanly goes back to its container's pool. */
  keep(connection: Connection): void {
    let list = this.idle.get(connection.origin.key);
    if (!list) {
      list = [];
      this.idle.set(connection.origin.key, list);
    }
    if (list.length >= MAX_IDLE) {
      connection.destroy();
      return;
    }
    connection.idleSince = performance.now();
    list.push(connection);
  }

  /** A kept connection that closed leaves the pool. */
  forget(connection: Connection): void {
    const list = this.idle.get(connection.origin.key);
    const at = list?.indexOf(connection) ?? -1;
    if (list && at >= 0) list.splice(at, 1);
  }

  private origin(url: string, unix?: string): Origin {
    const at = unix ?? url;
    let origin = this.origins.get(at);
    if (!origin) {
      // Sockets' paths are never reused (each names its instance): the cache is emptied now and then.
      if (this.origins.size >= MAX_ORIGINS) this.origins.clear();
      const parsed = new URL(url);
      const port = Number(parsed.port || 80);
      const host = `${parsed.hostname}:${port}`;
      origin = { hostname: parsed.hostname, port, host, unix, key: unix ?? host };
      this.origins.set(at, origin);
    }
    return origin;
  }
}

const handlers: SocketHandler<Connection> = {
  data: (socket, data) => socket.data.onData(data as Buffer),
  drain: (socket) => socket.data.onDrain(),
  end: (socket) => socket.data.onEnd(),
  close: (socket, error) => socket.data.onClose(error),
  error: (socket, error) => socket.data.onClose(error),
};

/** One kept-alive connection to a container: one exchange at a time. */
class Connection {
  socket!: Socket<Connection>;
  idleSince = 0;
  closed = false;
  private call?: Call;
  /** Whether the call went out on a connection an earlier exchange used. */
  private reused = false;
  /** Bytes of the current answer received so far. */
  private received = 0;
  private phase: 'head' | 'body' = 'head';
  private head?: Buffer;
  private framing: Framing = { kind: 'none' };
  /** Whether the connection may carry another exchange once this one ends. */
  private reusable = true;
  private requestSent = false;
  /** The streamed body's controller, while it streams. */
  private stream?: ReadableStreamDefaultController<Uint8Array>;
  private paused = false;
  /** Chunked decoding: bytes left in the current chunk, and where in a chunk's framing we are. */
  private chunkLeft = 0;
  private chunkState: 'size' | 'data' | 'data-end' | 'trailer' = 'size';
  private line = '';
  /** Unsent bytes, and who waits for them to go. */
  private readonly outbox = new Outbox();
  private drained?: () => void;

  private constructor(
    readonly origin: Origin,
    private readonly pool: Upstreams,
  ) {}

  static async open(origin: Origin, pool: Upstreams): Promise<Connection> {
    const connection = new Connection(origin, pool);
    connection.socket = origin.unix
      ? await Bun.connect<Connection>({ unix: origin.unix, data: connection, socket: handlers })
      : await Bun.connect<Connection>({ hostname: origin.hostname, port: origin.port, data: connection, socket: handlers });
    if (!origin.unix) connection.socket.setNoDelay(true);
    return connection;
  }

  send(call: Call, reused: boolean): void {
    this.call = call;
    call.connection = this;
    this.reused = reused;
    this.received = 0;
    this.phase = 'head';
    this.requestSent = false;
    this.reusable = true;
    this.head = undefined;
    this.chunkState = 'size';
    this.line = '';
    const { method, target, body } = call.request;
    const head = `${method} ${target} HTTP/1.1\r\nhost: ${this.origin.host}\r\n${call.request.head}`;
    if (body === null) {
      this.write(Buffer.from(`${head}\r\n`, 'latin1'));
      this.requestSent = true;
    } else if (body instanceof Uint8Array) {
      this.write(Buffer.concat([Buffer.from(`${head}content-length: ${body.byteLength}\r\n\r\n`, 'latin1'), body]));
      this.requestSent = true;
    } else {
      this.write(Buffer.from(`${head}transfer-encoding: chunked\r\n\r\n`, 'latin1'));
      void this.pump(body, call);
    }
  }

  /** Sends a streamed body, chunked, at the pace the connection takes it. */
  private async pump(body: ReadableStream<Uint8Array>, call: Call): Promise<void> {
    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (this.call !== call || this.closed) {
          await reader.cancel().catch(() => {});
          return;
        }
        if (done) break;
        if (value.byteLength === 0) continue;
        const sent = this.write(Buffer.concat([Buffer.from(`${value.byteLength.toString(16)}\r\n`), value, CRLF]));
        if (!sent) await new Promise<void>((resolve) => (this.drained = resolve));
      }
      this.write(LAST_CHUNK);
      this.requestSent = true;
    } catch (error) {
      if (this.call !== call) return;
      call.reject(new UpstreamError(`the request's body could not be read: ${(error as Error).message}`, true));
      this.destroy();
    }
  }

  /** Writes what the socket takes now and keeps the rest for `drain`; false when some is kept. */
  private write(bytes: Buffer): boolean {
    return this.outbox.write(this.socket, bytes);
  }

  onDrain(): void {
    if (!this.outbox.flush(this.socket)) return;
    const drained = this.drained;
    this.drained = undefined;
    drained?.();
  }

  onData(data: Buffer): void {
    const call = this.call;
    if (!call) {
      // Nothing was asked: a server that talks out of turn is not kept.
      this.destroy();
      return;
    }
    this.received += data.byteLength;
    if (this.phase === 'head') this.onHead(call, data);
    else this.onBody(data);
  }

  private onHead(call: Call, data: Buffer): void {
    const bytes = this.head ? Buffer.concat([this.head, data]) : data;
    const end = bytes.indexOf('\r\n\r\n');
    if (end < 0) {
      if (bytes.byteLength > MAX_HEAD_BYTES) {
        this.fail(call, `its answer's headers are larger than ${MAX_HEAD_BYTES / 1024} KiB`);
        return;
      }
      // Bun may reuse the buffer it handed over: what is kept is copied.
      this.head = bytes === data ? Buffer.from(data) : bytes;
      return;
    }
    this.head = undefined;
    const lines = bytes.toString('latin1', 0, end).split('\r\n');
    const statusLine = lines[0] ?? '';
    if (!STATUS_START.test(statusLine)) {
      this.fail(call, `it answered something other than HTTP/1.1 (${JSON.stringify(statusLine.slice(0, 40))})`);
      return;
    }
    if ((statusLine.length > 12 && statusLine[12] !== ' ') || hasControl(statusLine)) {
      this.fail(call, 'its answer has a malformed status line');
      return;
    }
    const status = Number(statusLine.slice(9, 12));
    if (status === 101) {
      // Requests that ask to upgrade never come this way (the fronts leave them to Bun's server).
      this.fail(call, 'it switched protocols (101), which the request did not ask for');
      return;
    }
    if (statusLine[7] === '0') this.reusable = false;
    const headers: string[] = [];
    let length: string | undefined;
    let chunked = false;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i] as string;
      const colon = line.indexOf(':');
      if (colon <= 0 || !HEADER_NAME.test(line.slice(0, colon)) || hasControl(line)) {
        this.fail(call, 'its answer has a malformed header line');
        return;
      }
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === 'content-length') {
        if (!LENGTH.test(value)) {
          this.fail(call, `its answer's Content-Length is not a number`);
          return;
        }
        if (length !== undefined && Number(length) !== Number(value)) {
          this.fail(call, 'its answer has conflicting Content-Length headers');
          return;
        }
        length = value;
      } else if (name === 'transfer-encoding') {
        // As nginx: a coding other than chunked could not be passed on (it is hop-by-hop) nor undone here.
        if (chunked || value.toLowerCase() !== 'chunked') {
          this.fail(call, 'its answer uses a transfer coding other than chunked');
          return;
        }
        chunked = true;
        continue;
      } else if (name === 'connection') {
        if (/\bclose\b/i.test(value)) this.reusable = false;
        continue;
      } else if (!this.pool.passes(name, status)) continue;
      headers.push(name, value);
    }
    if (chunked && length !== undefined) {
      this.fail(call, 'its answer has both Content-Length and Transfer-Encoding');
      return;
    }
    const rest = bytes.subarray(end + 4);
    if (status < 200) {
      // An interim answer (100 Continue, 103 Early Hints): the real one follows.
      if (rest.byteLength > 0) this.onHead(call, rest);
      return;
    }
    const method = call.request.method;
    if (method === 'HEAD' || status === 204 || status === 304) this.framing = { kind: 'none' };
    else if (chunked) this.framing = { kind: 'chunked' };
    else if (length !== undefined) this.framing = { kind: 'length', left: Number(length) };
    else this.framing = { kind: 'close' };
    this.phase = 'body';
    const statusText = statusLine.slice(13);

    // Most answers are already here whole: their body is bytes, not a stream.
    const framing = this.framing;
    if (framing.kind === 'none') {
      if (rest.byteLength > 0) this.reusable = false;
      call.resolve({ status, statusText, headers, body: null });
      this.answerEnded();
      return;
    }
    if (framing.kind === 'length' && rest.byteLength >= framing.left) {
      if (rest.byteLength > framing.left) this.reusable = false;
      call.resolve({ status, statusText, headers, body: Buffer.from(rest.subarray(0, framing.left)) });
      this.answerEnded();
      return;
    }
    const parts: Uint8Array[] = [];
    if (framing.kind === 'chunked') {
      let done: boolean;
      try {
        done = this.dechunk(rest, parts);
      } catch (error) {
        this.fail(call, (error as Error).message);
        return;
      }
      if (done) {
        call.resolve({ status, statusText, headers, body: Buffer.concat(parts) });
        this.answerEnded();
        return;
      }
    } else if (rest.byteLength > 0) {
      if (framing.kind === 'length') framing.left -= rest.byteLength;
      parts.push(Buffer.from(rest));
    }
    const body = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.stream = controller;
          for (const part of parts) controller.enqueue(part);
        },
        pull: () => {
          if (this.paused && !this.closed) {
            this.paused = false;
            this.socket.resume();
          }
        },
        cancel: () => {
          // The client went away: this exchange cannot end cleanly.
          this.stream = undefined;
          this.destroy();
        },
      },
      { highWaterMark: 64 * 1024, size: (chunk) => chunk?.byteLength ?? 0 },
    );
    call.resolve({ status, statusText, headers, body });
  }

  private onBody(data: Buffer): void {
    const framing = this.framing;
    if (framing.kind === 'length') {
      const take = Math.min(framing.left, data.byteLength);
      if (take < data.byteLength) this.reusable = false;
      framing.left -= take;
      this.enqueue(Buffer.from(data.subarray(0, take)));
      if (framing.left === 0) this.endStream();
    } else if (framing.kind === 'chunked') {
      const parts: Uint8Array[] = [];
      let done: boolean;
      try {
        done = this.dechunk(data, parts);
      } catch (error) {
        this.stream?.error(error);
        this.stream = undefined;
        this.destroy();
        return;
      }
      for (const part of parts) this.enqueue(part);
      if (done) this.endStream();
    } else if (framing.kind === 'close') {
      this.enqueue(Buffer.from(data));
    } else {
      // Bytes after an answer without a body: the connection is out of step.
      this.destroy();
    }
  }

  private enqueue(bytes: Uint8Array): void {
    const stream = this.stream;
    if (!stream || bytes.byteLength === 0) return;
    stream.enqueue(bytes);
    if ((stream.desiredSize ?? 1) <= 0 && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }

  private endStream(): void {
    this.stream?.close();
    this.stream = undefined;
    this.answerEnded();
  }

  /**
   * Decodes chunked framing from `data` into `parts` (copies); true once the last chunk and its
   * trailers are in. Throws on malformed framing.
   */
  private dechunk(data: Buffer, parts: Uint8Array[]): boolean {
    let at = 0;
    while (at < data.byteLength) {
      if (this.chunkState === 'data') {
        const take = Math.min(this.chunkLeft, data.byteLength - at);
        parts.push(Buffer.from(data.subarray(at, at + take)));
        at += take;
        this.chunkLeft -= take;
        if (this.chunkLeft === 0) this.chunkState = 'data-end';
        continue;
      }
      // The other states read lines.
      const newline = data.indexOf(10, at);
      const piece = data.toString('latin1', at, newline < 0 ? data.byteLength : newline + 1);
      at = newline < 0 ? data.byteLength : newline + 1;
      this.line += piece;
      if (this.line.length > 4096) throw new Error('its answer has a malformed chunk');
      if (newline < 0) return false;
      // Lines end in CRLF, with no other control byte (as gateway/native/src/http.rs `Chunks` reads them):
      // the client gets the data chunked anew, but a lenient reading here could end the body elsewhere.
      const line = this.line.slice(0, -2);
      if (!this.line.endsWith('\r\n') || hasControl(line)) throw new Error('its answer has a malformed chunk');
      this.line = '';
      if (this.chunkState === 'data-end') {
        if (line !== '') throw new Error('its answer has a malformed chunk');
        this.chunkState = 'size';
      } else if (this.chunkState === 'size') {
        const size = Number.parseInt(line, 16);
        if (!CHUNK_SIZE.test(line)) throw new Error('its answer has a malformed chunk');
        if (size === 0) this.chunkState = 'trailer';
        else {
          this.chunkLeft = size;
          this.chunkState = 'data';
        }
      } else if (line === '') {
        // The empty line after the trailers: the body is whole.
        this.chunkState = 'size';
        if (at < data.byteLength) this.reusable = false;
        return true;
      }
    }
    return false;
  }

  /** The answer is whole: the connection is kept once its request is sent too. */
  private answerEnded(): void {
    if (this.requestSent) {
      this.release();
      return;
    }
    // It answered before it took the whole body: the rest is not wanted, and the connection is out of step.
    this.call = undefined;
    this.destroy();
  }

  private release(): void {
    this.call = undefined;
    if (this.reusable && !this.closed && this.outbox.empty) this.pool.keep(this);
    else this.destroy();
  }

  private fail(call: Call, reason: string): void {
    call.reject(new UpstreamError(reason, true));
    this.destroy();
  }

  /** The server closed its side: a body framed by the close ends here; anything else was cut short. */
  onEnd(): void {
    if (this.phase === 'body' && this.framing.kind === 'close' && this.stream) {
      this.reusable = false;
      this.endStream();
    }
    this.onClose();
  }

  onClose(error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    const call = this.call;
    this.call = undefined;
    this.pool.forget(this);
    if (this.stream) {
      this.stream.error(new Error(`the connection to the function closed before its answer ended${error ? ` (${error.message})` : ''}`));
      this.stream = undefined;
    }
    this.drained?.();
    if (!call || call.settled) return;
    // A kept connection the server had closed before the request reached it: send it once more, on a new one.
    if (
      this.reused &&
      this.received === 0 &&
      this.requestSent &&
      !(call.request.body instanceof ReadableStream) &&
      IDEMPOTENT.has(call.request.method)
    ) {
      this.pool.resend(this, call);
      return;
    }
    const code = (error as { code?: string } | undefined)?.code;
    const why = error?.message ? `: ${error.message}` : '';
    call.reject(
      new UpstreamError(
        this.received === 0 ? `the connection closed before any answer${why}` : `the connection closed mid-answer${why}`,
        true,
        code,
      ),
    );
  }

  destroy(): void {
    if (this.closed) return;
    this.socket.terminate();
    this.onClose();
  }
}
