import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { waitFor } from './wait';

// HTTP/1.1 on the wire, written and read by hand: for tests of what a gateway does with exactly the
// bytes a client sends (pipelining, HEAD, odd heads), which fetch would not send.

export interface Exchange {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The answers in `bytes`, in order, as far as they are complete (Content-Length or chunked framing). */
function answers(bytes: Buffer, heads: string[] = []): Exchange[] {
  const found: Exchange[] = [];
  let at = 0;
  while (at < bytes.length) {
    const end = bytes.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const [statusLine, ...lines] = bytes.toString('latin1', at, end).split('\r\n');
    const headers = Object.fromEntries(
      lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
    );
    let bodyStart = end + 4;
    let body = '';
    if (headers['transfer-encoding'] === 'chunked') {
      for (;;) {
        const lineEnd = bytes.indexOf('\r\n', bodyStart);
        if (lineEnd < 0) return found;
        const size = Number.parseInt(bytes.toString('latin1', bodyStart, lineEnd), 16);
        if (bytes.length < lineEnd + 2 + size + 2) return found;
        body += bytes.toString('utf8', lineEnd + 2, lineEnd + 2 + size);
        bodyStart = lineEnd + 2 + size + 2;
        if (size === 0) break;
      }
    } else if (heads.shift() !== 'HEAD') {
      const length = Number(headers['content-length'] ?? 0);
      if (bytes.length < bodyStart + length) return found;
      body = bytes.toString('utf8', bodyStart, bodyStart + length);
      bodyStart += length;
    }
    found.push({ status: Number(statusLine?.split(' ')[1]), headers, body });
    at = bodyStart;
  }
  return found;
}

/**
 * A raw connection to the gateway, from `localAddress` (over TLS, trusting `ca`, for an https URL);
 * `exchange` writes bytes and reads until `count` answers are in.
 */
export async function rawConnection(url: string, localAddress?: string, ca?: string) {
  const { protocol, hostname, port } = new URL(url);
  const socket: Socket =
    protocol === 'https:'
      ? tlsConnect({ host: hostname, port: Number(port), ca, localAddress })
      : connect({ host: hostname, port: Number(port), localAddress });
  await new Promise<void>((resolve, reject) => {
    socket.once(protocol === 'https:' ? 'secureConnect' : 'connect', resolve);
    socket.once('error', reject);
  });
  let received = Buffer.alloc(0);
  let closed = false;
  socket.on('data', (data: Buffer) => {
    received = Buffer.concat([received, data]);
  });
  socket.on('close', () => {
    closed = true;
  });
  const methods: string[] = [];
  return {
    async exchange(bytes: string, count: number, sent: string[]): Promise<Exchange[]> {
      const before = answers(received, [...methods]).length;
      methods.push(...sent);
      socket.write(bytes);
      let got: Exchange[] = [];
      await waitFor(`${count} answer(s) on the connection`, 30_000, async () => {
        got = answers(received, [...methods]);
        if (closed && got.length < before + count) throw new Error(`the gateway closed the connection: ${received.toString()}`);
        return got.length >= before + count;
      });
      return got.slice(before);
    },
    send: (bytes: string) => socket.write(bytes),
    /** Whether the gateway closed the connection. */
    closed: () => closed,
    /** Every byte received so far, as latin1. */
    received: () => received.toString('latin1'),
    close: () => socket.destroy(),
  };
}
