import { afterAll, beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { FUNCTION_NETWORK } from '../../activities/containers';
import { readdir, readlink, rm } from 'node:fs/promises';
import type { LogRecord } from '../../lib/logs';
import { LABELS } from '../../lib/names';
import { SOCKET_IN_CONTAINER, sealedPathOf } from '../../lib/sockets';
import type { FunctionState } from '../../lib/types';
import { containersOf, deployFolder, functionFolder } from '../support/functions';
import { rawConnection } from '../support/raw-http';
import { extraGateway, INTEGRATION_TIMEOUT_MS, stack, type TestStack } from '../support/stack';
import { waitFor } from '../support/wait';

setDefaultTimeout(INTEGRATION_TIMEOUT_MS);

/**
 * The native invoke front (gateway/native, PLAT_INVOKE_FRONT=native) serving warm requests itself:
 * who may call, timeouts, clients that leave, streamed and large answers, and places on instances
 * shared with the gateway's pools (scale-out and the queue). front.test.ts checks that it answers
 * on the wire as the Bun front does.
 */

const HANDLER = `let holding = 0;
let most = 0;
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === '/slow') {
      await new Promise((resolve) => setTimeout(resolve, Number(url.searchParams.get('ms') ?? 3000)));
      return new Response('late');
    }
    if (url.pathname === '/stream') {
      const encoder = new TextEncoder();
      return new Response(new ReadableStream({
        async start(controller) {
          for (const part of ['one ', 'two ', 'three']) {
            controller.enqueue(encoder.encode(part));
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
          controller.close();
        },
      }));
    }
    if (url.pathname === '/big') return new Response('x'.repeat(3 * 1024 * 1024));
    if (url.pathname === '/hold') {
      holding++;
      most = Math.max(most, holding);
      await new Promise((resolve) => setTimeout(resolve, 500));
      holding--;
      return Response.json({ instance: process.env.PLAT_INSTANCE_ID, most });
    }
    return Response.json({ path: url.pathname, body: await request.text(), forwardedFor: request.headers.get('x-forwarded-for') });
  },
};
`;

let s: TestStack;
let gateway: Awaited<ReturnType<typeof extraGateway>>;
let name: string;
/** A function with a long timeout, for requests held on purpose. */
let slow: string;
const deployed: string[] = [];

async function deploy(suffix: string, config: Record<string, unknown> = {}): Promise<string> {
  const fn = s.name(suffix);
  await deployFolder(s, await functionFolder(fn, { 'index.ts': HANDLER }, config));
  deployed.push(fn);
  return fn;
}

const admin = () => ({ authorization: `Bearer ${s.token}` });
const call = (fn: string, path = '', init: RequestInit = {}) =>
  fetch(`${gateway.url}/function/${fn}${path}`, { ...init, headers: { ...admin(), ...(init.headers as Record<string, string>) } });

/** Requests a gateway has on the function's first instance now (what `plat describe` shows). */
async function inFlight(url: string, fn: string): Promise<number> {
  const described = (await (await fetch(`${url}/functions/${fn}`, { headers: admin() })).json()) as { function: FunctionState };
  return described.function.instances[0]?.inFlight ?? 0;
}

/** The native gateway's `plat_invoke_native_total` for a function: the invocations it served itself. */
async function servedNatively(fn: string): Promise<number> {
  const metrics = await (await fetch(`${gateway.url}/metrics`, { headers: admin() })).text();
  const match = new RegExp(`^plat_invoke_native_total\\{function="${fn}"\\} (\\d+)$`, 'm').exec(metrics);
  return match ? Number(match[1]) : 0;
}

beforeAll(async () => {
  s = await stack();
  gateway = await extraGateway(s, { PLAT_INVOKE_FRONT: 'native' });
  name = await deploy('native', { timeout: 1 });
  slow = await deploy('native-slow', { timeout: 60 });
  // The first request reads the function's pool (through the gateway); the native front has it from then on.
  expect((await call(name)).status).toBe(200);
  expect((await call(slow)).status).toBe(200);
}, INTEGRATION_TIMEOUT_MS);

afterAll(async () => {
  await gateway?.stop();
  for (const fn of deployed) await s.api.request(`/functions/${fn}`, { method: 'DELETE' });
});

describe('the native invoke front', () => {
  it('serves warm requests itself: counted, recorded, the body and the client address passed on', async () => {
    const before = await servedNatively(name);
    const answers = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const response = await call(name, `/n${i}?q=1`, { method: 'POST', body: `body ${i}`, headers: { 'x-request-id': `native-${i}` } });
        expect(response.headers.get('x-request-id')).toBe(`native-${i}`);
        return (await response.json()) as { path: string; body: string; forwardedFor: string };
      }),
    );
    expect(answers.map((a) => a.body)).toEqual(Array.from({ length: 20 }, (_, i) => `body ${i}`));
    expect(answers.every((a) => a.forwardedFor === '127.0.0.1')).toBe(true);
    // Drained every few milliseconds into the gateway's own metrics and records.
    await waitFor('the invocations counted', 5_000, async () => (await servedNatively(name)) >= before + 20);
    await waitFor('their records in the gateway log', 5_000, async () => {
      const records = (await gateway.log()).split('\n').filter((line) => line.includes('"requestId":"native-7"'));
      if (records.length === 0) return false;
      expect(JSON.parse(records[0] as string)).toMatchObject({
        function: name,
        method: 'POST',
        path: '/n7',
        status: 200,
        start: 'warm',
        bytesIn: 6,
      });
      return true;
    });
  });

  it('answers 504 in the JSON error shape when the function passes its timeout, and logs it', async () => {
    const before = await servedNatively(name);
    const response = await call(name, '/slow?ms=3000', { headers: { 'x-request-id': 'native-late' } });
    expect(response.status).toBe(504);
    expect(response.headers.get('x-plat-error')).toBe('UPSTREAM_TIMEOUT');
    expect(response.headers.get('x-request-id')).toBe('native-late');
    expect(await response.json()).toEqual({
      error: { code: 'UPSTREAM_TIMEOUT', message: `function ${name} did not answer within its timeout of 1 s` },
    });
    await waitFor('the timeout in the function log', 15_000, async () => {
      const log = await (await s.api.request(`/functions/${name}/logs?tail=1000`)).text();
      return log
        .split('\n')
        .filter(Boolean)
        .some((line) => {
          const record = JSON.parse(line) as LogRecord;
          return record.stream === 'plat' && record.requestId === 'native-late' && record.text.includes('request timed out');
        });
    });
    expect(await servedNatively(name)).toBeGreaterThan(before);
  });

  it('ends a warm request at once when its client goes away (499), freeing its place', async () => {
    const connection = await rawConnection(gateway.url);
    try {
      connection.send(`GET /function/${slow}/slow?ms=20000 HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer ${s.token}\r\n\r\n`);
      await waitFor('the request at the function', 30_000, async () => (await inFlight(gateway.url, slow)) === 1);
      connection.close();
      await waitFor('the request to end', 10_000, async () => (await inFlight(gateway.url, slow)) === 0);
      await waitFor('the 499 counted', 5_000, async () => {
        const metrics = await (await fetch(`${gateway.url}/metrics`, { headers: admin() })).text();
        return new RegExp(`^plat_function_invocations_total\\{function="${slow}",code="499"\\} 1$`, 'm').test(metrics);
      });
    } finally {
      connection.close();
    }
  });

  it('answers the requests under way before its gateway stops', async () => {
    const other = await extraGateway(s, { PLAT_INVOKE_FRONT: 'native' });
    try {
      expect((await fetch(`${other.url}/function/${slow}`, { headers: admin() })).status).toBe(200);
      const pending = fetch(`${other.url}/function/${slow}/slow?ms=1500`, { headers: admin() });
      await waitFor('the request at the function', 10_000, async () => (await inFlight(other.url, slow)) === 1);
      const stopping = other.stop();
      const response = await pending;
      expect(response.status).toBe(200);
      expect(await response.text()).toBe('late');
      await stopping;
    } finally {
      await other.stop();
    }
  });

  it('lets an invoke key call, and stops it as soon as it is revoked', async () => {
    const { key } = await s.api.json<{ key: { id: string; key: string } }>(`/functions/${name}/keys`, { method: 'POST' });
    const withKey = () => fetch(`${gateway.url}/function/${name}`, { headers: { authorization: `Bearer ${key.key}` } });
    const before = await servedNatively(name);
    for (let i = 0; i < 5; i++) expect((await withKey()).status).toBe(200);
    await waitFor('keyed requests served natively', 5_000, async () => (await servedNatively(name)) >= before + 4);
    const wrong = await fetch(`${gateway.url}/function/${name}`, { headers: { authorization: `Bearer ${key.key}x` } });
    expect(wrong.status).toBe(401);
    // Revoked through this gateway: it reads the function's access again at once.
    expect((await fetch(`${gateway.url}/functions/${name}/keys/${key.id}`, { method: 'DELETE', headers: admin() })).status).toBe(200);
    const revoked = await withKey();
    expect(revoked.status).toBe(401);
    expect(((await revoked.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED');
  });

  it('streams an answer as it comes, and relays a large one whole', async () => {
    const streamed = await call(name, '/stream');
    expect(streamed.headers.get('transfer-encoding')).toBe('chunked');
    const reader = (streamed.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    // The first part arrives before the function has written the rest (200 ms later).
    expect(new TextDecoder().decode(first.value)).toBe('one ');
    let rest = '';
    for (let part = await reader.read(); !part.done; part = await reader.read()) rest += new TextDecoder().decode(part.value);
    expect(rest).toBe('two three');
    const big = await call(name, '/big');
    expect(big.headers.get('content-length')).toBe(String(3 * 1024 * 1024));
    expect((await big.text()).length).toBe(3 * 1024 * 1024);
    expect((await call(name, '/after')).status).toBe(200);
  });
});

describe('the native invoke front and a container removed while it serves', () => {
  it.each(['GET', 'POST'])('sends the next %s to a new container, which answers it', async (method) => {
    const fn = await deploy(`native-removed-${method.toLowerCase()}`);
    const body = method === 'POST' ? 'payload' : undefined;
    expect((await call(fn, '/r', { method, body })).status).toBe(200);
    for (let round = 0; round < 3; round++) {
      const [container] = (await containersOf(s, fn)).filter((c) => c.State === 'running');
      await s.docker.getContainer(container?.Id ?? '').remove({ force: true });
      // No wait: the request right after the removal is answered by a new container.
      const response = await call(fn, '/r', { method, body });
      expect(response.status).toBe(200);
      expect(((await response.json()) as { body: string }).body).toBe(body ?? '');
      const running = (await containersOf(s, fn)).filter((c) => c.State === 'running').map((c) => c.Id);
      expect(running).not.toContain(container?.Id);
    }
  });
});

describe("the native invoke front's port", () => {
  it('keeps a backlog of new connections a burst fits in (std listened with 128: past it, clients waited a second to connect)', async () => {
    const port = new URL(gateway.url).port;
    // For a listening socket, ss's Send-Q is its backlog; the kernel holds it to net.core.somaxconn.
    const listed = Bun.spawnSync(['ss', '-Hltn', `sport = :${port}`])
      .stdout.toString()
      .trim()
      .split(/\s+/);
    const cap = Number((await Bun.file('/proc/sys/net/core/somaxconn').text()).trim());
    expect(Number(listed[2])).toBe(Math.min(4096, cap));
  });
});

describe('the native invoke front and a container that stops taking connections', () => {
  it('ends the request waiting on it within seconds, not at its timeout, and a new instance answers it', async () => {
    const fn = await deploy('native-cut', { timeout: 60 });
    expect((await call(fn)).status).toBe(200);
    const [container] = (await containersOf(s, fn)).filter((c) => c.State === 'running');
    const pending = call(fn, '/slow?ms=2000');
    await waitFor('the request at the function', 10_000, async () => (await inFlight(gateway.url, fn)) === 1);
    // Alive, but unreachable: no engine event tells of it. Only a probe does, before the 60 s timeout (504).
    // The front reaches it on its socket: that goes too, as its bridge address does.
    await s.docker.getNetwork(FUNCTION_NETWORK).disconnect({ Container: container?.Id, Force: true });
    await rm(sealedPathOf(s, container?.Labels[LABELS.instance] as string));
    const response = await pending;
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('late');
    // Found unresponsive, the cut instance is stopped by its entity.
    await waitFor(
      'the cut instance to stop',
      20_000,
      async () => !(await containersOf(s, fn)).some((c) => c.Id === container?.Id && c.State === 'running'),
    );
  });
});

describe('the native invoke front placing requests with the gateway', () => {
  const hold = (fn: string) => call(fn, '/hold');

  it('runs 3 instances for 12 concurrent requests on concurrency 1, max 3, never two at once on one', async () => {
    const fn = await deploy('native-scale', { scale: { concurrency: 1, max: 3, pauseAfter: 0, stopAfter: 0 } });
    expect((await hold(fn)).status).toBe(200);
    const answers = await Promise.all(
      Array.from({ length: 12 }, async () => {
        const response = await hold(fn);
        expect(response.status).toBe(200);
        return (await response.json()) as { instance: string; most: number };
      }),
    );
    expect(new Set(answers.map((a) => a.instance)).size).toBe(3);
    expect(Math.max(...answers.map((a) => a.most))).toBe(1);
    expect((await containersOf(s, fn)).filter((c) => c.State === 'running')).toHaveLength(3);
  });

  it('answers the fourth concurrent request 429 with max 1 and queue 2', async () => {
    const fn = await deploy('native-queue', { scale: { concurrency: 1, max: 1, queue: 2, pauseAfter: 0, stopAfter: 0 } });
    expect((await hold(fn)).status).toBe(200);
    const responses = await Promise.all(Array.from({ length: 4 }, () => hold(fn)));
    const statuses = responses.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 200, 200, 429]);
    const tooMany = responses.find((r) => r.status === 429) as Response;
    expect(tooMany.headers.get('retry-after')).toBe('1');
    await Promise.all(responses.map((r) => r.text()));
  });
});

/**
 * Connections the gateway holds to a container: host-side TCP ones to its address, open or closed
 * only by the other side (from /proc/net/tcp), and the ones its runtime accepted on its socket and
 * holds open (an accepted socket is listed in the connecting side's namespace, the host's, with the
 * socket's path in the container; it is the container's when its process holds it).
 */
async function connectionsTo(ip: string, port: number, pid: number): Promise<number> {
  const remote = `${ip
    .split('.')
    .reverse()
    .map((octet) => Number(octet).toString(16).padStart(2, '0'))
    .join('')}:${port.toString(16).padStart(4, '0')}`.toUpperCase();
  const rows = async (file: string) =>
    (await Bun.file(file).text())
      .split('\n')
      .slice(1)
      .map((line) => line.trim().split(/\s+/));
  // 01 ESTABLISHED, 08 CLOSE_WAIT: a socket this side has not closed.
  const tcp = (await rows('/proc/net/tcp')).filter((f) => f[2] === remote && (f[3] === '01' || f[3] === '08')).length;
  // 03: connected.
  const accepted = new Set((await rows('/proc/net/unix')).filter((f) => f[7] === SOCKET_IN_CONTAINER && f[5] === '03').map((f) => f[6]));
  const held = await Promise.all((await readdir(`/proc/${pid}/fd`)).map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')));
  const unix = held.filter((link) => accepted.has(/^socket:\[(\d+)\]$/.exec(link)?.[1] ?? '')).length;
  return tcp + unix;
}

describe('the native invoke front and the container connections a burst leaves', () => {
  it('closes those left idle while a trickle of requests reuses one', async () => {
    const fn = await deploy('native-sweep', { scale: { pauseAfter: 0, stopAfter: 0 } });
    expect((await call(fn)).status).toBe(200);
    const [container] = (await containersOf(s, fn)).filter((c) => c.State === 'running');
    const inspected = await s.docker.getContainer(container?.Id ?? '').inspect();
    const ip = inspected.NetworkSettings.Networks[FUNCTION_NETWORK]?.IPAddress ?? '';
    const pid = inspected.State.Pid;
    // Eight at once: eight connections to the container, kept for the requests to come.
    const burst = await Promise.all(Array.from({ length: 8 }, () => call(fn, '/hold')));
    expect(burst.map((r) => r.status)).toEqual(Array(8).fill(200));
    await Promise.all(burst.map((r) => r.text()));
    expect(await connectionsTo(ip, 8080, pid)).toBeGreaterThanOrEqual(8);
    // One request at a time takes the newest kept connection each time; the seven others are closed
    // within seconds (the runtime would keep its side open for 255 s). At most one more is left: the
    // gateway's own, from the first request.
    await waitFor(
      'the idle connections closed',
      20_000,
      async () => {
        expect((await call(fn)).status).toBe(200);
        return (await connectionsTo(ip, 8080, pid)) <= 2;
      },
      300,
    );
  });
});
