import { afterAll, describe, expect, it } from 'bun:test';
import type { Socket } from 'bun';
import { toResponse, UpstreamError, Upstreams } from '../../gateway/invoke/upstream';

// The invoke proxy's HTTP/1.1 client against servers that write their answers byte for byte, so
// every framing a function's server may use (and some it should not) is tried, with the connections
// counted: a kept-alive connection must carry the next request, and a broken one must never.

interface Raw {
  url: string;
  /** Connections accepted so far. */
  connections: number;
  /** Requests received, as text (heads, and bodies as they came). */
  received: string[];
  stop(): void;
}

/** A server that answers each request's data with what `answer` returns (raw bytes), or leaves it unanswered when it returns null. */
function raw(answer: (request: string, socket: Socket<{ buffer: string }>) => string | Uint8Array | null): Raw {
  const state = { connections: 0, received: [] as string[] };
  const server = Bun.listen<{ buffer: string }>({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open(socket) {
        state.connections++;
        socket.data = { buffer: '' };
      },
      data(socket, data) {
        socket.data.buffer += data.toString('latin1');
        // One request at a time: a head, and its body by Content-Length or to the last chunk.
        const end = socket.data.buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = socket.data.buffer.slice(0, end);
        const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        const chunked = /transfer-encoding: chunked/i.test(head);
        const body = socket.data.buffer.slice(end + 4);
        if (chunked ? !body.endsWith('0\r\n\r\n') : body.length < length) return;
        socket.data.buffer = '';
        state.received.push(head + (body ? `\n${body}` : ''));
        const reply = answer(head, socket);
        if (reply !== null) socket.write(reply);
      },
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    get connections() {
      return state.connections;
    },
    received: state.received,
    stop: () => server.stop(true),
  };
}

const upstreams = new Upstreams((name) => !name.startsWith('x-plat-'));
afterAll(() => upstreams.close());

/** The call's answer as a Response (what Bun's routes make of it), to read it with the usual methods. */
const get = (url: string, target = '/', method = 'GET') =>
  upstreams.request(url, { method, target, head: 'x-test: 1\r\n', body: null }).response.then(toResponse);

describe('the upstream client', () => {
  it('reads a Content-Length answer, and sends the next request on the same connection', async () => {
    const server = raw(
      () =>
        'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\nx-plat-error: forged\r\nconnection: keep-alive\r\n\r\nhello',
    );
    for (let i = 0; i < 3; i++) {
      const response = await get(server.url, `/n/${i}?q=1`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('text/plain');
      expect(response.headers.has('x-plat-error')).toBe(false);
      expect(response.headers.has('connection')).toBe(false);
      expect(await response.text()).toBe('hello');
    }
    expect(server.connections).toBe(1);
    expect(server.received[2]).toStartWith(`GET /n/2?q=1 HTTP/1.1\r\nhost: 127.0.0.1:${new URL(server.url).port}\r\nx-test: 1`);
    server.stop();
  });

  it('decodes a chunked answer that arrives in pieces, with extensions and trailers, and keeps the connection', async () => {
    const server = raw((_request, socket) => {
      socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhel');
      setTimeout(() => socket.write('lo\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n'), 20);
      return null;
    });
    const first = await get(server.url);
    expect(first.headers.has('transfer-encoding')).toBe(false);
    expect(await first.text()).toBe('hello world');
    expect(await (await get(server.url)).text()).toBe('hello world');
    expect(server.connections).toBe(1);
    server.stop();
  });

  it('reads a body that ends with the connection, and never reuses that connection', async () => {
    const server = raw((_request, socket) => {
      socket.write('HTTP/1.1 200 OK\r\n\r\nuntil the end');
      socket.end();
      return null;
    });
    expect(await (await get(server.url)).text()).toBe('until the end');
    expect(await (await get(server.url)).text()).toBe('until the end');
    expect(server.connections).toBe(2);
    server.stop();
  });

  it('knows the answers that have no body: HEAD, 204 and 304, and skips an interim 100', async () => {
    const server = raw((request) =>
      request.startsWith('HEAD')
        ? 'HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n'
        : request.startsWith('GET /204')
          ? 'HTTP/1.1 204 No Content\r\n\r\n'
          : 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 304 Not Modified\r\netag: "x"\r\n\r\n',
    );
    const head = await get(server.url, '/', 'HEAD');
    expect(head.headers.get('content-length')).toBe('1000');
    expect(await head.text()).toBe('');
    expect((await get(server.url, '/204')).status).toBe(204);
    const notModified = await get(server.url, '/304');
    expect(notModified.status).toBe(304);
    expect(notModified.headers.get('etag')).toBe('"x"');
    expect(server.connections).toBe(1);
    server.stop();
  });

  it('sends a body at hand with its length, and a stream chunked', async () => {
    const server = raw(() => 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    await upstreams.request(server.url, { method: 'POST', target: '/', head: '', body: new TextEncoder().encode('at hand') }).response;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('in '));
        controller.enqueue(new TextEncoder().encode('pieces'));
        controller.close();
      },
    });
    await upstreams.request(server.url, { method: 'POST', target: '/', head: '', body: stream }).response;
    expect(server.received[0]).toContain('\r\ncontent-length: 7');
    expect(server.received[0]).toEndWith('\nat hand');
    expect(server.received[1]).toContain('transfer-encoding: chunked');
    expect(server.received[1]).toEndWith('\n3\r\nin \r\n6\r\npieces\r\n0\r\n\r\n');
    server.stop();
  });

  it('streams a large answer through whole, at the pace it is read', async () => {
    const size = 8 * 1024 * 1024;
    const payload = new Uint8Array(size).map((_, i) => (i * 7) % 251);
    const server = raw((_request, socket) => {
      // Written as the socket drains, as a real server does.
      const all = Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${size}\r\n\r\n`), payload]);
      let at = 0;
      const pump = () => {
        while (at < all.length) {
          const written = socket.write(all.subarray(at, at + 65536));
          if (written <= 0) return setTimeout(pump, 1);
          at += written;
        }
      };
      pump();
      return null;
    });
    const response = await get(server.url);
    const body = new Uint8Array(await response.arrayBuffer());
    expect(body.byteLength).toBe(size);
    expect(Bun.hash(body)).toBe(Bun.hash(payload));
    server.stop();
  });

  it('sends an idempotent request again on a new connection when its kept one had closed, and never a POST', async () => {
    let served = 0;
    const server = raw((_request, socket) => {
      served++;
      // The first request is answered; the connection is then closed under the next one, unanswered.
      if (served === 2) {
        socket.end();
        return null;
      }
      return 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';
    });
    expect(await (await get(server.url)).text()).toBe('ok');
    expect(await (await get(server.url)).text()).toBe('ok');
    expect(server.connections).toBe(2);
    served = 3;
    await get(server.url); // to have a kept connection again
    served = 1;
    const failure = await upstreams
      .request(server.url, { method: 'POST', target: '/', head: '', body: new Uint8Array(1) })
      .response.catch((error) => error);
    expect(failure).toBeInstanceOf(UpstreamError);
    expect((failure as UpstreamError).reached).toBe(true);
    server.stop();
  });

  it('fails a call it could not connect for as never reached, and one cut short mid-answer as reached', async () => {
    const gone = raw(() => null);
    const url = gone.url;
    gone.stop();
    const refused = await get(url).catch((error) => error);
    expect(refused).toBeInstanceOf(UpstreamError);
    expect((refused as UpstreamError).reached).toBe(false);

    const cut = raw((_request, socket) => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this');
      socket.end();
      return null;
    });
    const response = await get(cut.url);
    expect(await response.text().catch((error) => `error: ${(error as Error).message}`)).toStartWith('error: ');
    cut.stop();
  });

  it('refuses an answer that is not HTTP, or whose headers never end, and keeps no connection of it', async () => {
    const garbage = raw(() => 'SSH-2.0-OpenSSH\r\n\r\n');
    expect(((await get(garbage.url).catch((error) => error)) as UpstreamError).message).toContain('other than HTTP/1.1');
    garbage.stop();
    const endless = raw(() => `HTTP/1.1 200 OK\r\nx-long: ${'a'.repeat(70 * 1024)}`);
    expect(((await get(endless.url).catch((error) => error)) as UpstreamError).message).toContain('larger than 64 KiB');
    expect(upstreams.idleCount(new URL(endless.url).host)).toBe(0);
    endless.stop();
  });

  it('ends a call that is aborted while it waits, and closes its connection', async () => {
    const silent = raw(() => null);
    const call = upstreams.request(silent.url, { method: 'GET', target: '/', head: '', body: null });
    const deadline = Date.now() + 5000;
    while (silent.received.length === 0 && Date.now() < deadline) await Bun.sleep(5);
    call.abort(new Error('timed out'));
    expect(((await call.response.catch((error) => error)) as Error).message).toBe('timed out');
    expect(upstreams.idleCount(new URL(silent.url).host)).toBe(0);
    silent.stop();
  });

  it('closes the connections idle longer than the sweep allows', async () => {
    const server = raw(() => 'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n');
    await get(server.url);
    const host = new URL(server.url).host;
    expect(upstreams.idleCount(host)).toBe(1);
    upstreams.sweep(performance.now() + 60_000);
    expect(upstreams.idleCount(host)).toBe(0);
    server.stop();
  });
});
