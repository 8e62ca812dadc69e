import { afterAll, beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { containersOf, deployFolder, functionFolder } from '../support/functions';
import { rawConnection } from '../support/raw-http';
import { extraGateway, INTEGRATION_TIMEOUT_MS, stack, type TestStack } from '../support/stack';
import { waitFor } from '../support/wait';

setDefaultTimeout(INTEGRATION_TIMEOUT_MS);

/**
 * A function that misbehaves on the wire on purpose: it takes its container's port before the runtime
 * does and answers HTTP of its own making. A function's answer reaches the gateway's clients (and any
 * cache between them and the gateway, shared by every function on its host), so what could forge a
 * header or a second answer must never reach them. Each invoke front (the native one, the Bun one, and
 * Bun's server alone) must refuse the same answers the same way: 502 in the platform's error shape,
 * with what was wrong, and the client's connection goes on with its next request answered as its own.
 */

const FORGED = 'x-forged';
/** What the function answers, by path: each a whole answer, written at once. */
const ANSWERS: Record<string, string> = {
  '/lf-in-value': `HTTP/1.1 200 OK\r\nx-a: 1\n${FORGED}: 1\r\ncontent-length: 2\r\n\r\nok`,
  '/cr-in-value': `HTTP/1.1 200 OK\r\nx-a: 1\r${FORGED}: 1\r\ncontent-length: 2\r\n\r\nok`,
  '/lf-in-reason': `HTTP/1.1 200 OK\n${FORGED}: 1\r\ncontent-length: 2\r\n\r\nok`,
  '/name-not-a-token': `HTTP/1.1 200 OK\r\n${FORGED} x: 1\r\ncontent-length: 2\r\n\r\nok`,
  '/two-lengths': 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 40\r\n\r\nok',
  '/signed-length': 'HTTP/1.1 200 OK\r\ncontent-length: +2\r\n\r\nok',
  '/gzip-then-chunked': 'HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
  '/chunked-and-length': 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 7\r\n\r\n2\r\nok\r\n0\r\n\r\n',
  '/lf-in-chunk-extension': `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2;a\n${FORGED}: 1\r\nok\r\n0\r\n\r\n`,
  '/lf-in-trailer': `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nx-t: 1\n${FORGED}: 1\r\n\r\n`,
  '/switching': 'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n',
  // Well formed, if unusual: answered.
  '/early-hints': 'HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
  '/chunked-with-trailer': 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2;ext=1\r\nok\r\n0\r\nx-t: 1\r\n\r\n',
  // Bytes past the body: read as the answer to the connection's next request, were it used again.
  '/past-the-body': `HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n${FORGED}: 1\r\ncontent-length: 6\r\n\r\nforged`,
};

/** What each refused answer's error says was wrong with it. */
const REFUSED: Record<string, string> = {
  '/lf-in-value': 'its answer has a malformed header line',
  '/cr-in-value': 'its answer has a malformed header line',
  '/lf-in-reason': 'its answer has a malformed status line',
  '/name-not-a-token': 'its answer has a malformed header line',
  '/two-lengths': 'its answer has conflicting Content-Length headers',
  '/signed-length': "its answer's Content-Length is not a number",
  '/gzip-then-chunked': 'its answer uses a transfer coding other than chunked',
  '/chunked-and-length': 'its answer has both Content-Length and Transfer-Encoding',
  '/lf-in-chunk-extension': 'its answer has a malformed chunk',
  '/lf-in-trailer': 'its answer has a malformed chunk',
  '/switching': 'it switched protocols (101), which the request did not ask for',
};

/**
 * The function: a raw server on the runtime's port, taken while the module loads (its import never
 * ends, so the runtime never listens). The platform's probes get what the runtime would answer.
 */
const HANDLER = `const ANSWERS = ${JSON.stringify(ANSWERS)};
const plain = (body) => 'HTTP/1.1 200 OK\\r\\ncontent-length: ' + body.length + '\\r\\n\\r\\n' + body;
Bun.listen({
  hostname: '0.0.0.0',
  port: Number(process.env.PORT ?? 8080),
  socket: {
    open(socket) {
      socket.data = { pending: '' };
    },
    data(socket, data) {
      socket.data.pending += Buffer.from(data).toString('latin1');
      for (;;) {
        const pending = socket.data.pending;
        const end = pending.indexOf('\\r\\n\\r\\n');
        if (end < 0) return;
        const head = pending.slice(0, end);
        const length = Number(/\\r\\ncontent-length: *(\\d+)/i.exec(head)?.[1] ?? 0);
        if (pending.length < end + 4 + length) return;
        socket.data.pending = pending.slice(end + 4 + length);
        const path = head.split(' ')[1];
        if (/\\r\\nx-plat-probe:/i.test(head)) socket.write(plain(path === '/_/state' ? '{"pending":0}' : 'ok'));
        else socket.write(ANSWERS[path] ?? plain('plain'));
      }
    },
  },
});
// As PID 1 without a handler it would ignore the stop's SIGTERM and wait out its 10 s grace.
process.on('SIGTERM', () => process.exit(0));
await new Promise(() => {});
export default { fetch: () => new Response('never') };
`;

let s: TestStack;
let name: string;
beforeAll(async () => {
  s = await stack();
  name = s.name('raw-answers');
  await deployFolder(s, await functionFolder(name, { 'index.ts': HANDLER }));
}, INTEGRATION_TIMEOUT_MS);

afterAll(async () => {
  await s.api.request(`/functions/${name}`, { method: 'DELETE' });
});

for (const [kind, setting] of [
  ['native', 'native'],
  ['Bun', 'on'],
  ["Bun's server", 'off'],
] as const) {
  describe(`the ${kind} invoke front and a function's malformed answers`, () => {
    let gateway: Awaited<ReturnType<typeof extraGateway>>;
    beforeAll(async () => {
      gateway = await extraGateway(s, { PLAT_INVOKE_FRONT: setting });
    });
    afterAll(async () => {
      await gateway?.stop();
    });

    it('refuses each answer that could forge a header or an answer, and answers the next request on the connection as its own', async () => {
      const connection = await rawConnection(gateway.url);
      try {
        // POST: a request that may have reached the function is not sent again, so each is one exchange.
        const request = (path: string) =>
          `POST /function/${name}${path} HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer ${s.token}\r\ncontent-length: 0\r\n\r\n`;
        for (const [path, reason] of Object.entries(REFUSED)) {
          const [refused] = await connection.exchange(request(path), 1, ['POST']);
          expect({ path, status: refused?.status, code: refused?.headers['x-plat-error'] }).toEqual({
            path,
            status: 502,
            code: 'UPSTREAM_UNAVAILABLE',
          });
          expect(JSON.parse(refused?.body ?? '').error.message).toContain(`(${reason})`);
          const [next] = await connection.exchange(request('/plain'), 1, ['POST']);
          expect({ path, status: next?.status, body: next?.body }).toEqual({ path, status: 200, body: 'plain' });
        }
        expect(connection.received().includes(FORGED)).toBe(false);
        // Each instance refused is stopped by its entity (it ran on, unlisted, and a first cold start
        // took it up again): the one that answered the last request serves on.
        await waitFor('the refused instances to stop', 30_000, async () => {
          const running = (await containersOf(s, name)).filter((c) => c.State === 'running');
          return running.length === 1;
        });
        // And the function's log says why each went.
        await waitFor('the reasons in the log', 15_000, async () => {
          const log = await (await s.api.request(`/functions/${name}/logs?tail=10000`)).text();
          return Object.values(REFUSED).every((reason) => log.includes(`instance stopped: it failed a request (${reason})`));
        });
      } finally {
        connection.close();
      }
    });

    it('answers interim answers, extensions and trailers with the data alone, and never uses a connection out of step again', async () => {
      const connection = await rawConnection(gateway.url);
      try {
        const request = (path: string) =>
          `POST /function/${name}${path} HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer ${s.token}\r\ncontent-length: 0\r\n\r\n`;
        for (const path of ['/early-hints', '/chunked-with-trailer', '/past-the-body']) {
          // One at a time: Bun's server closes a connection that sends a request ahead (oven-sh/bun#38128).
          const [answer] = await connection.exchange(request(path), 1, ['POST']);
          const [next] = await connection.exchange(request('/plain'), 1, ['POST']);
          expect({ path, status: answer?.status, body: answer?.body }).toEqual({ path, status: 200, body: 'ok' });
          expect({ path, status: next?.status, body: next?.body }).toEqual({ path, status: 200, body: 'plain' });
        }
        const received = connection.received();
        expect(received.includes(FORGED)).toBe(false);
        expect(received.includes('ext=1')).toBe(false);
        expect(received.includes('x-t:')).toBe(false);
        expect(received.includes('Early Hints')).toBe(false);
      } finally {
        connection.close();
      }
    });
  });
}
