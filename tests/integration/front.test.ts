import { afterAll, beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { deployFolder, functionFolder } from '../support/functions';
import { rawConnection } from '../support/raw-http';
import { extraGateway, INTEGRATION_TIMEOUT_MS, stack, type TestStack } from '../support/stack';
import { waitFor } from '../support/wait';
import type { FunctionState } from '../../lib/types';

// The invoke fronts as a client sees them on the wire: requests written by hand on one connection,
// some the front serves itself and some it passes on. Each test runs against the Bun front
// (gateway/invoke/front.ts, PLAT_INVOKE_FRONT=on) and the native one (gateway/native,
// PLAT_INVOKE_FRONT=native), which must answer alike.

setDefaultTimeout(INTEGRATION_TIMEOUT_MS);

const ECHO = `export default {
  async fetch(request) {
    const url = new URL(request.url);
    return Response.json({
      method: request.method,
      path: url.pathname + url.search,
      body: await request.text(),
      forwardedFor: request.headers.get('x-forwarded-for'),
      requestId: request.headers.get('x-request-id'),
      authorization: request.headers.get('authorization'),
      forwarding: ['x-forwarded-host', 'x-forwarded-proto', 'forwarded', 'x-real-ip'].map((name) => request.headers.get(name)),
    });
  },
};
`;

/**
 * On one connection: HEAD to a missing function, HEAD and GET to the echo. Each answer to HEAD is its
 * head alone (a body there would be read as the next answer), with the length GET's body has.
 */
async function headThenGet(url: string): Promise<void> {
  const connection = await rawConnection(url);
  try {
    const request = (method: string) =>
      `${method} /function/${name}/same HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer ${s.token}\r\nx-request-id: same\r\n\r\n`;
    const missing = `HEAD /function/${s.name('front-none')} HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer ${s.token}\r\n\r\n`;
    // An error's answer to HEAD is its head alone too: a body there would be read as the next answer.
    // One at a time: Bun's server closes a connection that sends a request ahead of an answer still
    // being made (oven-sh/bun#38128); the front answers those too (see the test above).
    const [notFound] = await connection.exchange(missing, 1, ['HEAD']);
    const [head] = await connection.exchange(request('HEAD'), 1, ['HEAD']);
    const [get] = await connection.exchange(request('GET'), 1, ['GET']);
    expect(notFound?.status).toBe(404);
    expect(notFound?.headers['x-plat-error']).toBe('FUNCTION_NOT_FOUND');
    expect(notFound?.body).toBe('');
    expect(head?.status).toBe(200);
    expect(head?.body).toBe('');
    expect(get?.status).toBe(200);
    expect(JSON.parse(get?.body ?? '')).toMatchObject({ method: 'GET', path: '/same' });
    // The echo names the method it got: HEAD's body would say "HEAD" where GET's says "GET".
    expect(head?.headers['content-length']).toBe(String(Buffer.byteLength((get?.body ?? '').replace('"GET"', '"HEAD"'))));
  } finally {
    connection.close();
  }
}

let s: TestStack;
let name: string;
beforeAll(async () => {
  s = await stack();
  name = s.name('front');
  await deployFolder(s, await functionFolder(name, { 'index.ts': ECHO }));
}, INTEGRATION_TIMEOUT_MS);

afterAll(async () => {
  await s.api.request(`/functions/${name}`, { method: 'DELETE' });
});

/** A gateway to test through: its URL, and its own API (in-flight counts and metrics are each gateway's). */
interface Front {
  url: string;
  json<T>(path: string): Promise<T>;
  text(path: string): Promise<string>;
}

function frontOf(url: string): Front {
  const get = (path: string) => fetch(`${url}${path}`, { headers: { authorization: `Bearer ${s.token}` } });
  return { url, json: async (path) => (await get(path)).json(), text: async (path) => (await get(path)).text() };
}

for (const kind of ['bun', 'native'] as const)
  describe(`the ${kind} invoke front`, () => {
    let front: Front;
    let gateway: Awaited<ReturnType<typeof extraGateway>> | undefined;
    beforeAll(async () => {
      gateway = await extraGateway(s, { PLAT_INVOKE_FRONT: kind === 'bun' ? 'on' : 'native' });
      front = frontOf(gateway.url);
    });
    afterAll(async () => {
      await gateway?.stop();
    });

    it('answers requests sent ahead on one connection in order, each with its own request id, and drops the token', async () => {
      const connection = await rawConnection(front.url);
      try {
        const request = (path: string, id: string, body = '') =>
          `POST /function/${name}${path} HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer ${s.token}\r\nx-request-id: ${id}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
        const [first, second, third] = await connection.exchange(
          request('/one?a=1', 'front-1', 'first body') + request('/two', 'front-2') + request('', 'front-3', 'ü'),
          3,
          ['POST', 'POST', 'POST'],
        );
        expect(first?.status).toBe(200);
        expect(first?.headers['x-request-id']).toBe('front-1');
        expect(JSON.parse(first?.body ?? '')).toMatchObject({
          method: 'POST',
          path: '/one?a=1',
          body: 'first body',
          requestId: 'front-1',
          authorization: null,
        });
        expect(second?.headers['x-request-id']).toBe('front-2');
        expect(JSON.parse(second?.body ?? '')).toMatchObject({ path: '/two', body: '', requestId: 'front-2' });
        expect(JSON.parse(third?.body ?? '')).toMatchObject({ path: '/', body: 'ü', requestId: 'front-3' });
      } finally {
        connection.close();
      }
    });

    it('answers HEAD with the head alone, with the length of the body GET gets, errors included', async () => {
      await headThenGet(front.url);
    });

    if (kind === 'bun')
      it("answers HEAD alike from Bun's server, when the front is off", async () => {
        const gateway = await extraGateway(s, { PLAT_INVOKE_FRONT: 'off' });
        try {
          await headThenGet(gateway.url);
        } finally {
          await gateway.stop();
        }
      });

    it("answers its own errors in the platform's shape, and the connection goes on", async () => {
      const connection = await rawConnection(front.url);
      try {
        const [unauthorized, missing, fine] = await connection.exchange(
          `GET /function/${name} HTTP/1.1\r\nhost: gateway\r\n\r\n` +
            `GET /function/${s.name('front-none')} HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer ${s.token}\r\n\r\n` +
            `GET /function/${name} HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer ${s.token}\r\n\r\n`,
          3,
          ['GET', 'GET', 'GET'],
        );
        expect(unauthorized?.status).toBe(401);
        expect(unauthorized?.headers['x-plat-error']).toBe('UNAUTHORIZED');
        expect(JSON.parse(unauthorized?.body ?? '').error.code).toBe('UNAUTHORIZED');
        expect(missing?.status).toBe(404);
        expect(JSON.parse(missing?.body ?? '').error.code).toBe('FUNCTION_NOT_FOUND');
        expect(fine?.status).toBe(200);
      } finally {
        connection.close();
      }
    });

    it("passes what it does not serve itself (a chunked body, the API) to Bun's server with the client's own address", async () => {
      // From 127.0.0.2: an address that only the client has, to tell it from the front's own (127.0.0.1).
      const connection = await rawConnection(front.url, '127.0.0.2');
      try {
        const auth = `authorization: Bearer ${s.token}\r\n`;
        const [served] = await connection.exchange(`GET /function/${name}/x HTTP/1.1\r\nhost: gateway\r\n${auth}\r\n`, 1, ['GET']);
        expect(JSON.parse(served?.body ?? '').forwardedFor).toBe('127.0.0.2');

        const [chunked] = await connection.exchange(
          `POST /function/${name}/y HTTP/1.1\r\nhost: gateway\r\n${auth}transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n`,
          1,
          ['POST'],
        );
        expect(chunked?.status).toBe(200);
        expect(JSON.parse(chunked?.body ?? '')).toMatchObject({ path: '/y', body: 'hello world', forwardedFor: '127.0.0.2' });

        const [health, after] = await connection.exchange(
          `GET /healthz HTTP/1.1\r\nhost: gateway\r\n\r\nGET /function/${name}/z HTTP/1.1\r\nhost: gateway\r\n${auth}\r\n`,
          2,
          ['GET', 'GET'],
        );
        expect(health?.status).toBe(200);
        expect(JSON.parse(health?.body ?? '')).toEqual({ status: 'ok' });
        expect(JSON.parse(after?.body ?? '')).toMatchObject({ path: '/z', forwardedFor: '127.0.0.2' });
      } finally {
        connection.close();
      }
    });

    it('ends a request at once when its client goes away (499), without waiting for the function', async () => {
      const slow = s.name(`front-slow-${kind}`);
      await deployFolder(
        s,
        await functionFolder(slow, {
          'index.ts': 'export default { async fetch() { await Bun.sleep(20_000); return new Response("late"); } };\n',
        }),
      );
      const connection = await rawConnection(front.url);
      try {
        const inFlight = async () =>
          (await front.json<{ function: FunctionState }>(`/functions/${slow}`)).function.instances[0]?.inFlight ?? 0;
        connection.send(`GET /function/${slow} HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer ${s.token}\r\n\r\n`);
        await waitFor('the request at the function', 60_000, async () => (await inFlight()) === 1);
        connection.close();
        // Its function would answer after 20 s: the place is free long before.
        await waitFor('the request to end', 10_000, async () => (await inFlight()) === 0);
        const metrics = await front.text('/metrics');
        expect(metrics).toMatch(new RegExp(`^plat_function_invocations_total\\{function="${slow}",code="499"\\} 1$`, 'm'));
      } finally {
        connection.close();
        await s.api.request(`/functions/${slow}`, { method: 'DELETE' });
      }
    });

    it("gives the function the gateway's forwarding headers, not those the client made up", async () => {
      const connection = await rawConnection(front.url);
      try {
        const [served] = await connection.exchange(
          `GET /function/${name} HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer ${s.token}\r\n` +
            'x-forwarded-host: elsewhere\r\nx-forwarded-proto: https\r\nforwarded: for=192.0.2.1\r\nx-real-ip: 192.0.2.1\r\n' +
            'x-forwarded-for: 192.0.2.2\r\n\r\n',
          1,
          ['GET'],
        );
        expect(JSON.parse(served?.body ?? '')).toMatchObject({
          forwarding: ['gateway', 'http', null, null],
          // The client's chain is kept, with its own address last.
          forwardedFor: '192.0.2.2, 127.0.0.1',
        });
      } finally {
        connection.close();
      }
    });

    if (kind === 'native')
      it('has the Bun front behind it refuse a request it cannot read, and close, rather than tunnel a shared connection', async () => {
        // The native front sends on only what the Bun front reads alike: this comes straight to the Bun
        // front, on loopback, as the native front's connections do. Tunnelled to Bun's server, such a
        // connection would carry later clients' requests there too.
        const port = /before the Bun front on 127\.0\.0\.1:(\d+)/.exec((await gateway?.log()) ?? '')?.[1];
        expect(port).toBeDefined();
        const connection = await rawConnection(`http://127.0.0.1:${port}`);
        try {
          const [refused] = await connection.exchange('GET /healthz HTTP/1.1\r\nhost: gateway\r\n\r\n', 1, ['GET']);
          expect(refused?.status).toBe(400);
          expect(refused?.headers['x-plat-error']).toBe('BAD_REQUEST');
          expect(refused?.headers.connection).toBe('close');
          await waitFor('the connection to close', 10_000, () => connection.closed());
        } finally {
          connection.close();
        }
      });

    it("leaves a request it cannot read plainly to Bun's server, which refuses it", async () => {
      const connection = await rawConnection(front.url);
      try {
        const [refused] = await connection.exchange(`GET /function/${name} HTTP/1.1\r\nbad header line\r\n\r\n`, 1, ['GET']);
        expect(refused?.status).toBe(400);
      } finally {
        connection.close();
      }
    });
  });
