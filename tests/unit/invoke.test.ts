import { afterAll, describe, expect, it } from 'bun:test';
import { gzipSync } from 'node:zlib';
import { Client, Connection } from '@temporalio/client';
import type { FunctionsService } from '../../gateway/functions/service';
import { InvokeService } from '../../gateway/invoke/service';
import { PlatError } from '../../lib/errors';
import { loadSettings } from '../../lib/settings';
import type { FunctionState } from '../../lib/types';

// The proxy's own logic against a real HTTP server standing in for a function's container. The
// entity is a stub that counts lookups: a lookup is what a dropped route costs (a Temporal query,
// then a cold start). The whole path through Temporal and Docker is in tests/integration.

let release: () => void = () => {};
let slowArrivals = 0;
const upstream = Bun.serve({
  port: 0,
  hostname: '127.0.0.1',
  async fetch(request) {
    const url = new URL(request.url);
    switch (url.pathname) {
      case '/echo':
        return Response.json({
          method: request.method,
          path: url.pathname + url.search,
          body: await request.text(),
          authorization: request.headers.get('authorization'),
          forwardedFor: request.headers.get('x-forwarded-for'),
        });
      case '/gzip':
        return new Response(gzipSync('compressed answer'), { headers: { 'content-encoding': 'gzip', 'content-type': 'text/plain' } });
      case '/slow':
        slowArrivals++;
        await new Promise<void>((resolve) => {
          release = resolve;
        });
        return new Response('late');
      case '/stream-past-timeout': {
        const stream = new ReadableStream({
          async start(controller) {
            controller.enqueue(new TextEncoder().encode('first '));
            await Bun.sleep(1500);
            controller.enqueue(new TextEncoder().encode('second'));
            controller.close();
          },
        });
        return new Response(stream);
      }
      default:
        return new Response('ok');
    }
  },
});
afterAll(() => upstream.stop(true));

function service(timeoutSeconds = 30, url = `http://127.0.0.1:${upstream.port}`) {
  const state: FunctionState = {
    name: 'fn',
    createdAt: new Date().toISOString(),
    activeVersion: 'v1',
    versions: [
      {
        version: 'v1',
        image: 'unused',
        digest: 'sha256:0',
        sourceDigest: 'sha256:0',
        deployedAt: new Date().toISOString(),
        config: { name: 'fn', runtime: 'bun', entry: 'index.ts', env: {}, memory: 256, cpu: 1, timeout: timeoutSeconds },
      },
    ],
    instances: [{ containerId: 'c1', version: 'v1', url, startedAt: new Date().toISOString() }],
  };
  const lookups = { count: 0 };
  const functions = {
    get: async () => {
      lookups.count++;
      return state;
    },
  } as unknown as FunctionsService;
  // Never dialled: every instance here is live, so no cold start is needed.
  const temporal = new Client({ connection: Connection.lazy({ address: '127.0.0.1:1' }) });
  return { invoke: new InvokeService(temporal, functions, loadSettings({})), lookups, state };
}

const request = (path: string, init: RequestInit = {}) =>
  new Request(`http://gateway:8080/function/fn${path}`, { ...init, headers: { authorization: 'Bearer secret', ...init.headers } });

describe('the invoke proxy', () => {
  it('forwards method, path, query and body, without the platform token, and looks the route up once', async () => {
    const { invoke, lookups } = service();
    const response = await invoke.invoke('fn', request('/echo?a=1', { method: 'POST', body: 'hi' }), '10.0.0.9');
    expect(await response.json()).toEqual({ method: 'POST', path: '/echo?a=1', body: 'hi', authorization: null, forwardedFor: '10.0.0.9' });
    await (await invoke.invoke('fn', request('/'))).text();
    expect(lookups.count).toBe(1);
  });

  it('passes a compressed answer through as it is', async () => {
    const { invoke } = service();
    const response = await invoke.invoke('fn', request('/gzip', { headers: { 'accept-encoding': 'gzip' } }));
    expect(response.headers.get('content-encoding')).toBe('gzip');
    const bytes = new Uint8Array(await response.arrayBuffer());
    expect(new TextDecoder().decode(Bun.gunzipSync(bytes))).toBe('compressed answer');
  });

  it('answers 504 when the function does not start answering within its timeout, and keeps the route', async () => {
    const { invoke, lookups } = service(1);
    const failure = await invoke.invoke('fn', request('/slow')).catch((error) => error);
    release();
    expect(failure).toBeInstanceOf(PlatError);
    expect((failure as PlatError).code).toBe('UPSTREAM_TIMEOUT');
    expect(await (await invoke.invoke('fn', request('/'))).text()).toBe('ok');
    expect(lookups.count).toBe(1);
  });

  it('lets a body that started in time stream past the timeout', async () => {
    const { invoke } = service(1);
    const response = await invoke.invoke('fn', request('/stream-past-timeout'));
    expect(await response.text()).toBe('first second');
  });

  it('keeps the route when the client goes away mid-request', async () => {
    const { invoke, lookups } = service();
    const client = new AbortController();
    const arrivals = slowArrivals;
    const pending = invoke.invoke('fn', request('/slow', { signal: client.signal })).catch((error) => error);
    // Aborts once the request has reached the function.
    const deadline = Date.now() + 5000;
    while (slowArrivals === arrivals && Date.now() < deadline) await Bun.sleep(5);
    expect(slowArrivals).toBe(arrivals + 1);
    client.abort();
    expect(((await pending) as PlatError).code).toBe('CLIENT_CLOSED_REQUEST');
    release();
    expect(await (await invoke.invoke('fn', request('/'))).text()).toBe('ok');
    expect(lookups.count).toBe(1);
  });
});

describe('a container that dies while a request waits on it', () => {
  it('fails the request within seconds, not at the function timeout, and drops the route', async () => {
    // Accepts connections and never answers, like a container whose network vanished; then stops
    // accepting, as a dead container's address does.
    let received = 0;
    const silent = Bun.listen({
      hostname: '127.0.0.1',
      port: 0,
      socket: {
        data() {
          received++;
        },
      },
    });
    const { invoke, lookups, state } = service(30, `http://127.0.0.1:${silent.port}`);
    const started = Date.now();
    const pending = invoke.invoke('fn', request('/', { method: 'POST', body: 'not replayable' })).catch((error) => error);
    const deadline = Date.now() + 5000;
    while (received === 0 && Date.now() < deadline) await Bun.sleep(5);
    silent.stop(false);
    const failure = (await pending) as PlatError;
    expect(failure.code).toBe('UPSTREAM_UNAVAILABLE');
    expect(Date.now() - started).toBeLessThan(10_000);
    // The route was dropped: the next request looks the function up again and finds its new instance.
    state.instances = [{ containerId: 'c2', version: 'v1', url: `http://127.0.0.1:${upstream.port}`, startedAt: new Date().toISOString() }];
    expect(await (await invoke.invoke('fn', request('/'))).text()).toBe('ok');
    expect(lookups.count).toBe(2);
  });
});
