import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogWriter } from '../../lib/logs';
import { afterAll, describe, expect, it } from 'bun:test';
import { gzipSync } from 'node:zlib';
import { Client, Connection } from '@temporalio/client';
import type { FunctionsService } from '../../gateway/functions/service';
import { Pool, type Route, type RouteTarget, shareCounts } from '../../gateway/invoke/pool';
import { InvokeService } from '../../gateway/invoke/service';
import { PlatError } from '../../lib/errors';
import { loadSettings } from '../../lib/settings';
import { SCALE_DEFAULTS } from '../../lib/function-config';
import type { FunctionState, FunctionVersion, Instance } from '../../lib/types';

// The proxy's own logic against a real HTTP server standing in for a function's container. The
// entity is a stub that counts lookups: a lookup is what a dropped route costs (a Temporal query,
// then a cold start). The whole path through Temporal and Docker is in tests/integration.

/** Lets every request waiting at /slow answer. */
const waiting: Array<() => void> = [];
const release = () => {
  for (const answer of waiting.splice(0)) answer();
};
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
        await new Promise<void>((resolve) => waiting.push(resolve));
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

/** A running instance of v1 at `url`. */
function instance(containerId: string, instanceId: string, url: string): Instance {
  const now = new Date().toISOString();
  return { containerId, instanceId, version: 'v1', url, startedAt: now, state: 'running', lastUsedAt: now };
}

function service(timeoutSeconds = 30, url = `http://127.0.0.1:${upstream.port}`, onLookup?: (count: number, state: FunctionState) => void) {
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
        config: {
          name: 'fn',
          runtime: 'bun',
          entry: 'index.ts',
          env: {},
          memory: 256,
          cpu: 1,
          timeout: timeoutSeconds,
          scale: SCALE_DEFAULTS,
        },
      },
    ],
    instances: [instance('c1', 'i1', url)],
    retiring: [],
  };
  const lookups = { count: 0 };
  const functions = {
    get: async () => {
      lookups.count++;
      onLookup?.(lookups.count, state);
      return state;
    },
  } as unknown as FunctionsService;
  // Never dialled: every instance here is live, so no cold start is needed.
  const temporal = new Client({ connection: Connection.lazy({ address: '127.0.0.1:1' }) });
  const settings = loadSettings({ PLAT_HOME: join(tmpdir(), 'plat-unit-invoke') });
  return {
    invoke: new InvokeService(temporal, functions, settings, undefined, new LogWriter(settings.dataDir, settings.logs)),
    lookups,
    state,
  };
}

/** A request as the gateway's server hands it over: a body of known size comes with its Content-Length. */
function request(path: string, init: RequestInit = {}): Request {
  const headers = new Headers({ authorization: 'Bearer secret', ...(init.headers as Record<string, string>) });
  if (typeof init.body === 'string') headers.set('content-length', String(Buffer.byteLength(init.body)));
  if (init.body instanceof Uint8Array) headers.set('content-length', String(init.body.byteLength));
  return new Request(`http://gateway:8080/function/fn${path}`, { ...init, headers });
}

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
    state.instances = [instance('c2', 'i2', `http://127.0.0.1:${upstream.port}`)];
    expect(await (await invoke.invoke('fn', request('/'))).text()).toBe('ok');
    expect(lookups.count).toBe(2);
  });
});

describe('a route that outlived its container', () => {
  // One address, where instance i2 now answers: requests for i1 are refused as a runtime refuses them.
  const address = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(request) {
      if (request.headers.get('x-plat-instance') !== 'i2') {
        return Response.json({ error: { code: 'MISDIRECTED_REQUEST' } }, { status: 421, headers: { 'x-plat-refused': 'instance' } });
      }
      return new Response(`i2 got ${request.method} ${await request.text()}`);
    },
  });
  afterAll(() => address.stop(true));

  const url = `http://127.0.0.1:${address.port}`;
  const replacement = instance('c2', 'i2', url);

  it('never delivers a request to the instance that took over its address, and sends it to its own function’s new instance', async () => {
    // The first lookup finds i1 (stale); once it is refused, the entity lists its replacement.
    const { invoke, lookups } = service(30, url, (count, state) => {
      if (count > 1) state.instances = [replacement];
    });
    const response = await invoke.invoke('fn', request('/', { method: 'POST', body: 'payload' }));
    expect(await response.text()).toBe('i2 got POST payload');
    expect(lookups.count).toBe(2);
  });

  it('answers 502, never twice, when a large body was already on its way to the wrong instance', async () => {
    const { invoke } = service(30, url);
    const body = new Uint8Array(2 * 1024 * 1024);
    const failure = await invoke.invoke('fn', request('/', { method: 'POST', body })).catch((error) => error);
    expect((failure as PlatError).code).toBe('UPSTREAM_UNAVAILABLE');
  });
});

describe('a container the worker reports dead', () => {
  it('ends the requests waiting on it at once, and sends again one that was sent after it died', async () => {
    const { invoke, state } = service();
    const arrivals = slowArrivals;
    const pending = invoke.invoke('fn', request('/slow', { method: 'POST', body: 'late' }));
    const deadline = Date.now() + 5000;
    while (slowArrivals === arrivals && Date.now() < deadline) await Bun.sleep(5);
    state.instances = [instance('c2', 'i2', `http://127.0.0.1:${upstream.port}`)];
    // The engine says c1 died before this request was sent (that it arrived here is the stand-in's doing): it never reached the function.
    invoke.onEvent({ type: 'instance-gone', name: 'fn', containerId: 'c1', reason: 'removed', at: Date.now() - 60_000 });
    while (slowArrivals === arrivals + 1 && Date.now() < deadline) await Bun.sleep(5);
    expect(slowArrivals).toBe(arrivals + 2);
    release();
    const response = await pending;
    expect(await response.text()).toBe('late');
  });

  it('answers 502 for a POST that may have reached it before it died', async () => {
    const { invoke } = service();
    const arrivals = slowArrivals;
    const pending = invoke.invoke('fn', request('/slow', { method: 'POST', body: 'maybe processed' })).catch((error) => error);
    const deadline = Date.now() + 5000;
    while (slowArrivals === arrivals && Date.now() < deadline) await Bun.sleep(5);
    invoke.onEvent({ type: 'instance-gone', name: 'fn', containerId: 'c1', reason: 'exited with code 137', at: Date.now() });
    release();
    expect(((await pending) as PlatError).code).toBe('UPSTREAM_UNAVAILABLE');
  });
});

describe('a pool of instances', () => {
  const route = (containerId: string): RouteTarget => ({
    key: 'fn',
    name: 'fn',
    version: 'v1',
    preview: false,
    containerId,
    instanceId: containerId,
    url: 'http://unused',
    timeoutMs: 1000,
  });
  const version = { version: 'v1' } as FunctionVersion;

  it('places a request on the instance with the fewest requests, never past its concurrency', () => {
    const pool = new Pool('fn', 'fn', version, false, 1000, { concurrency: 2, max: 2, queue: 0 });
    pool.add(route('a'));
    pool.add(route('b'));
    const placed = [pool.acquire(), pool.acquire(), pool.acquire(), pool.acquire()].map((r) => r?.containerId);
    expect(placed.sort()).toEqual(['a', 'a', 'b', 'b']);
    expect(pool.acquire()).toBeUndefined();
  });

  it('shares its counts with the native front: a place taken there is not given here, and waiting requests are seen there', () => {
    const shared = new Int32Array(1 << 16);
    shareCounts(shared);
    try {
      const pool = new Pool('fn', 'fn', version, false, 1000, { concurrency: 1, max: 2, queue: 1 });
      pool.add(route('a'));
      pool.add(route('b'));
      const [a] = pool.instances as [Route];
      // The native front's thread takes a's place.
      Atomics.add(shared, a.slot, 1);
      expect(pool.acquire()?.containerId).toBe('b');
      expect(pool.acquire()).toBeUndefined();
      const waiter = pool.wait();
      expect(shared[pool.slot]).toBe(1);
      waiter.cancel();
      expect(shared[pool.slot]).toBe(0);
      expect(a.active).toBe(1);
    } finally {
      shareCounts(new Int32Array(1 << 16));
    }
  });

  it('hands a freed place to the request that waited longest', async () => {
    const pool = new Pool('fn', 'fn', version, false, 1000, { concurrency: 1, max: 1, queue: 5 });
    pool.add(route('a'));
    const first = pool.acquire() as Route;
    const [one, two] = [pool.wait(), pool.wait()];
    pool.release(first);
    expect(((await one.promise) as Route).containerId).toBe('a');
    expect(pool.waiting).toBe(1);
    two.cancel();
    expect(pool.waiting).toBe(0);
  });

  it('wants an instance while waiting requests outnumber what starting instances will take, up to max', () => {
    const pool = new Pool('fn', 'fn', version, false, 1000, { concurrency: 10, max: 3, queue: 5 });
    pool.wait();
    expect(pool.wantsInstance()).toBe(true);
    pool.starting = 1;
    for (let i = 1; i < 10; i++) pool.wait();
    expect(pool.wantsInstance()).toBe(false); // 10 waiting: the start under way takes them all
    pool.wait();
    expect(pool.wantsInstance()).toBe(true);
    pool.starting = 3;
    for (let i = 0; i < 30; i++) pool.wait();
    expect(pool.wantsInstance()).toBe(false); // at max
  });

  it('is full when, at max, its queue past the starting instances is', () => {
    const pool = new Pool('fn', 'fn', version, false, 1000, { concurrency: 1, max: 1, queue: 2 });
    pool.add(route('a'));
    pool.acquire();
    expect(pool.full()).toBe(false);
    pool.wait();
    pool.wait();
    expect(pool.full()).toBe(true);
  });
});

describe('scaling out on concurrency', () => {
  // A function that takes 100 ms a request and tells which instance answered; it counts the most
  // requests each instance held at once.
  const holding = new Map<string, number>();
  const most = new Map<string, number>();
  const slow = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(request) {
      const id = request.headers.get('x-plat-instance') ?? '?';
      holding.set(id, (holding.get(id) ?? 0) + 1);
      most.set(id, Math.max(most.get(id) ?? 0, holding.get(id) ?? 0));
      await Bun.sleep(100);
      holding.set(id, (holding.get(id) ?? 1) - 1);
      return new Response(id);
    },
  });
  afterAll(() => slow.stop(true));

  /**
   * An invoke service whose cold starts are instant (or wait for `gate`) and counted, for a function
   * with the given scale rules, and the gateway's settings from `env`.
   */
  function scaled(scale: Partial<typeof SCALE_DEFAULTS>, { env = {}, gate }: { env?: Record<string, string>; gate?: Promise<void> } = {}) {
    const { state, lookups } = service(30, `http://127.0.0.1:${slow.port}`);
    state.instances = [];
    const v1 = state.versions[0] as FunctionVersion;
    v1.config.scale = { ...SCALE_DEFAULTS, ...scale };
    const starts: number[] = [];
    class Instant extends InvokeService {
      protected override async coldStart(_name: string, _version: FunctionVersion, _preview: boolean, slot: number) {
        const n = starts.push(slot);
        await gate;
        const started = instance(`c${n}`, `i${n}`, `http://127.0.0.1:${slow.port}`);
        state.instances.push(started);
        return started;
      }
    }
    const temporal = new Client({ connection: Connection.lazy({ address: '127.0.0.1:1' }) });
    const settings = loadSettings({ PLAT_HOME: join(tmpdir(), 'plat-unit-invoke'), ...env });
    const reads = { count: 0 };
    const functions = {
      get: async () => {
        reads.count++;
        return { ...state, instances: [...state.instances] };
      },
    } as unknown as FunctionsService;
    const invoke = new Instant(temporal, functions, settings, undefined, new LogWriter(settings.dataDir, settings.logs));
    return { invoke, starts, lookups, reads, state };
  }

  it('keeps a pool whose last instance the platform stopped: the next request starts one at once, without reading the entity', async () => {
    const { invoke, starts, reads, state } = scaled({ concurrency: 1, max: 3 });
    expect(await (await invoke.invoke('fn', request('/'))).text()).toBe('i1');
    expect(reads.count).toBe(1);
    // The idle rules stop it: the worker says so before the stop, and again once it is gone.
    state.instances = [];
    invoke.onEvent({ type: 'instance-retired', name: 'fn', containerId: 'c1' });
    invoke.onEvent({ type: 'instance-gone', name: 'fn', containerId: 'c1', reason: 'exited with code 143', at: Date.now() });
    expect(await (await invoke.invoke('fn', request('/'))).text()).toBe('i2');
    expect(starts).toHaveLength(2);
    expect(reads.count).toBe(1);
  });

  it('starts again when the start it joined ends with a container already gone', async () => {
    const { invoke, starts } = scaled({ concurrency: 1, max: 3 });
    // The first start's instance (c1) died before its start ended, as when a request joins a cold
    // start still reporting an instance that was routed to on instance-ready and then removed.
    invoke.onEvent({ type: 'instance-gone', name: 'fn', containerId: 'c1', reason: 'removed', at: Date.now() });
    expect(await (await invoke.invoke('fn', request('/', { method: 'POST', body: 'x' }))).text()).toBe('i2');
    expect(starts).toHaveLength(2);
  });

  it('answers 503 when no instance came within PLAT_COLD_START_WAIT, and the start it asked for goes on to serve the next request', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const { invoke, starts } = scaled({ concurrency: 1, max: 3 }, { env: { PLAT_COLD_START_WAIT: '200ms' }, gate });
    const refused = await invoke.invoke('fn', request('/')).then(
      (r) => r.status,
      (error: PlatError) => `${error.code}: ${error.message}`,
    );
    expect(refused).toStartWith('COLD_START_FAILED: function fn has no instance yet after 0.2 s');
    expect(starts).toEqual([1]);
    release();
    expect(await (await invoke.invoke('fn', request('/'))).text()).toBe('i1');
    expect(starts).toEqual([1]);
  });

  it('reads the entity again when a container dies unasked', async () => {
    const { invoke, reads, state } = scaled({ concurrency: 1, max: 3 });
    expect(await (await invoke.invoke('fn', request('/'))).text()).toBe('i1');
    state.instances = [];
    invoke.onEvent({ type: 'instance-gone', name: 'fn', containerId: 'c1', reason: 'exited with code 1', at: Date.now() });
    expect(await (await invoke.invoke('fn', request('/'))).text()).toBe('i2');
    expect(reads.count).toBe(2);
  });

  it('starts instances up to max, one start per count, and spreads the requests over them', async () => {
    most.clear();
    const { invoke, starts } = scaled({ concurrency: 1, max: 3 });
    const answers = await Promise.all(Array.from({ length: 12 }, () => invoke.invoke('fn', request('/')).then((r) => r.text())));
    expect(starts.sort()).toEqual([1, 2, 3]);
    expect(new Set(answers)).toEqual(new Set(['i1', 'i2', 'i3']));
    for (const [, held] of most) expect(held).toBe(1);
  });

  it('answers 429 with the JSON error past max and queue', async () => {
    const { invoke } = scaled({ concurrency: 1, max: 1, queue: 2 });
    const results = await Promise.all(
      Array.from({ length: 4 }, () =>
        invoke.invoke('fn', request('/')).then(
          (r) => r.status,
          (error: PlatError) => error.code,
        ),
      ),
    );
    expect(results.filter((r) => r === 'TOO_MANY_REQUESTS')).toHaveLength(1);
    expect(results.filter((r) => r === 200)).toHaveLength(3);
  });
});
