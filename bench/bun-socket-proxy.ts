/**
 * For bench/hop.ts: how fast the invoke hop can be on Bun when neither side makes a Request or a
 * Response. Both sides are Bun's own TCP sockets (Bun.listen for clients, Bun.connect with a
 * keep-alive pool for the container), and it does the header work the gateway does per request:
 * the bearer token checked, hop-by-hop and `x-plat-*` headers dropped, the request id kept or made,
 * the forwarding headers and the instance header added, and the answer's head rewritten with the
 * request id. No pools of instances, timeouts, metrics or error answers: a bench floor, not a proxy
 * to deploy. It handles what the bench sends (bodiless requests, answers framed by Content-Length).
 *
 *   bun bench/bun-socket-proxy.ts LISTEN_PORT UPSTREAM_HOST:PORT INSTANCE_ID   (token in AUTH_TOKEN)
 */
import type { Socket, SocketHandler } from 'bun';
import { HOP_BY_HOP } from '../gateway/invoke/headers';
import { REQUEST_ID_PATTERN } from '../lib/logs';
import { PLATFORM_HEADER_PREFIX } from '../lib/names';

const [port, upstream, instanceId] = [Number(process.argv[2]), process.argv[3] ?? '', process.argv[4] ?? ''];
const [upstreamHost, upstreamPort] = upstream.split(':');
const token = process.env.AUTH_TOKEN ?? '';
const PREFIX = '/function/';

/** A client connection: the bytes not yet parsed, and whether a request of it is at the container. */
interface Client {
  socket: Socket<Client>;
  pending?: Buffer;
  busy: boolean;
}

/** A kept connection to the container, and the exchange it carries. */
interface Upstream {
  socket: Socket<Upstream>;
  client?: Client;
  requestId: string;
  head?: Buffer;
  inHead: boolean;
  left: number;
}

const idle: Upstream[] = [];

/** Each header line of a head (`name: value`), name in lower case. */
function* headerLines(head: string, from: number): Generator<[string, string, number, number]> {
  let at = from;
  while (at < head.length) {
    let end = head.indexOf('\r\n', at);
    if (end < 0) end = head.length;
    const colon = head.indexOf(':', at);
    yield [head.slice(at, colon).toLowerCase(), head.slice(colon + 1, end).trim(), at, end];
    at = end + 2;
  }
}

/** Serves the client's requests in order, one at a time (HTTP/1.1 pipelining included). */
function serve(client: Client): void {
  while (!client.busy && client.pending) {
    const bytes = client.pending;
    const end = bytes.indexOf('\r\n\r\n');
    if (end < 0) return;
    client.pending = end + 4 < bytes.byteLength ? bytes.subarray(end + 4) : undefined;
    const head = bytes.toString('latin1', 0, end);
    const lineEnd = head.indexOf('\r\n');
    const [method, target = '/'] = head.slice(0, lineEnd < 0 ? head.length : lineEnd).split(' ');
    let lines = '';
    let bearer: string | undefined;
    let host = '';
    let givenId: string | undefined;
    for (const [name, value] of headerLines(head, lineEnd + 2)) {
      if (name === 'authorization') bearer = value.slice(7);
      else if (name === 'host') host = value;
      else if (name === 'x-request-id') givenId = value;
      else if (!HOP_BY_HOP.has(name) && !name.startsWith(PLATFORM_HEADER_PREFIX)) lines += `${name}: ${value}\r\n`;
    }
    if (bearer !== token || !target.startsWith(PREFIX)) {
      client.socket.write('HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n');
      continue;
    }
    let nameEnd = PREFIX.length;
    while (nameEnd < target.length && target[nameEnd] !== '/' && target[nameEnd] !== '?') nameEnd++;
    const requestId = givenId !== undefined && REQUEST_ID_PATTERN.test(givenId) ? givenId : crypto.randomUUID();
    const out =
      `${method} ${target.slice(nameEnd) || '/'} HTTP/1.1\r\nhost: ${upstream}\r\n${lines}x-request-id: ${requestId}\r\n` +
      `x-forwarded-for: ${client.socket.remoteAddress}\r\nx-forwarded-host: ${host}\r\nx-forwarded-proto: http\r\nx-plat-instance: ${instanceId}\r\n\r\n`;
    client.busy = true;
    const kept = idle.pop();
    if (kept) send(kept, client, out, requestId);
    else
      void Bun.connect<Upstream>({
        hostname: upstreamHost ?? '',
        port: Number(upstreamPort),
        socket: upstreamHandlers,
        data: { requestId, inHead: true, left: 0 } as Upstream,
      }).then((socket) => {
        socket.setNoDelay(true);
        socket.data.socket = socket;
        send(socket.data, client, out, requestId);
      });
  }
}

function send(connection: Upstream, client: Client, request: string, requestId: string): void {
  connection.client = client;
  connection.requestId = requestId;
  connection.inHead = true;
  connection.socket.write(request);
}

const upstreamHandlers: SocketHandler<Upstream> = {
  data(socket, chunk) {
    const connection = socket.data;
    const client = connection.client;
    if (!client) return;
    let bytes = chunk as Buffer;
    let out: Buffer = bytes;
    if (connection.inHead) {
      bytes = connection.head ? Buffer.concat([connection.head, bytes]) : bytes;
      const end = bytes.indexOf('\r\n\r\n');
      if (end < 0) {
        connection.head = Buffer.from(bytes);
        return;
      }
      connection.head = undefined;
      const head = bytes.toString('latin1', 0, end);
      const lineEnd = head.indexOf('\r\n');
      let answer = `${head.slice(0, lineEnd)}\r\n`;
      let length = 0;
      for (const [name, value, from, to] of headerLines(head, lineEnd + 2)) {
        if (name === 'content-length') length = Number(value);
        if (!HOP_BY_HOP.has(name) && !name.startsWith(PLATFORM_HEADER_PREFIX)) answer += `${head.slice(from, to)}\r\n`;
      }
      const body = bytes.subarray(end + 4, end + 4 + length);
      connection.inHead = false;
      connection.left = length - body.byteLength;
      out = Buffer.concat([Buffer.from(`${answer}x-request-id: ${connection.requestId}\r\n\r\n`, 'latin1'), body]);
    } else {
      out = bytes.subarray(0, connection.left);
      connection.left -= out.byteLength;
    }
    client.socket.write(out);
    if (connection.left === 0) {
      connection.client = undefined;
      idle.push(connection);
      client.busy = false;
      serve(client);
    }
  },
  close(socket) {
    const at = idle.indexOf(socket.data);
    if (at >= 0) idle.splice(at, 1);
  },
};

Bun.listen<Client>({
  hostname: '127.0.0.1',
  port,
  socket: {
    open(socket) {
      socket.setNoDelay(true);
      socket.data = { socket, busy: false };
    },
    data(socket, chunk) {
      const client = socket.data;
      // Bun may reuse the buffer it hands over: what is kept is copied.
      client.pending = client.pending ? Buffer.concat([client.pending, chunk]) : Buffer.from(chunk);
      serve(client);
    },
  },
});
