import { afterAll, beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { networkInterfaces } from 'node:os';
import { repositoryPath } from '../../lib/names';
import { callTag, expireCallBodies } from '../../lib/calls';
import { RegistryApi } from '../../lib/registry-api';
import { deleteSchedules, scheduleId } from '../../lib/schedules';
import { loadSettings } from '../../lib/settings';
import type { CallState } from '../../lib/types';
import { ScheduleNotFoundError } from '@temporalio/client';
import { callsCommand, schedulesCommand } from '../../cli/commands/calls';
import { invokeAsync } from '../../cli/commands/invoke';
import { containersOf, deployFolder, functionFolder, invoke } from '../support/functions';
import { extraGateway, INTEGRATION_TIMEOUT_MS, stack, type TestStack } from '../support/stack';
import { waitFor } from '../support/wait';

setDefaultTimeout(INTEGRATION_TIMEOUT_MS);

/**
 * Async calls through the real path: the gateway accepts, a call workflow invokes the function
 * through the gateway with its attempt number, bodies go through the registry, and the result is
 * POSTed to a callback server this test runs on loopback.
 */

/**
 * Counts its calls. `/flaky` answers 503 on a call's first attempt (x-plat-attempt), `/always-503`
 * on every one; `/echo` answers the body's size and SHA-256 with the attempt and call id.
 */
const handler = (broken: boolean) => `let calls = 0;
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === '/count') return Response.json({ calls });
    calls++;
    const attempt = request.headers.get('x-plat-attempt');
    const callId = request.headers.get('x-plat-call-id');
    if (url.pathname === '/flaky' && attempt === '1') return new Response('not yet', { status: 503 });
    if (url.pathname === '/always-503' && ${broken}) return new Response('down', { status: 503 });
    const body = new Uint8Array(await request.arrayBuffer());
    const sha = new Bun.CryptoHasher('sha256').update(body).digest('hex');
    return Response.json({ attempt, callId, size: body.byteLength, sha, method: request.method, path: url.pathname + url.search }, { headers: { 'x-answer': 'yes' } });
  },
};
`;

let s: TestStack;
let name: string;
const ASYNC_RULES = { async: { retries: 2, backoff: '100ms', maxBackoff: '200ms' } };
/** What the callback server received, by call id. */
const callbacks = new Map<string, { headers: Headers; body: string }>();
const callbackServer = Bun.serve({
  port: 0,
  hostname: '127.0.0.1',
  async fetch(request) {
    callbacks.set(request.headers.get('x-call-id') ?? '?', { headers: request.headers, body: await request.text() });
    return new Response('thanks');
  },
});
afterAll(() => callbackServer.stop(true));

beforeAll(async () => {
  s = await stack();
  name = s.name('async');
  await deployFolder(s, await functionFolder(name, { 'index.ts': handler(true) }, ASYNC_RULES));
}, INTEGRATION_TIMEOUT_MS);

function callAsync(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${s.apiUrl}/async-function/${name}${path}`, {
    method: 'POST',
    ...init,
    headers: { authorization: `Bearer ${s.token}`, ...(init.headers as Record<string, string>) },
  });
}

async function callState(callId: string): Promise<CallState> {
  const response = await fetch(`${s.apiUrl}/calls/${callId}`, { headers: { authorization: `Bearer ${s.token}` } });
  expect(response.status).toBe(200);
  return ((await response.json()) as { call: CallState }).call;
}

async function ended(callId: string): Promise<CallState> {
  let state: CallState | undefined;
  await waitFor(`call ${callId} to end`, 60_000, async () => {
    state = await callState(callId);
    return state.status === 'succeeded' || state.status === 'failed';
  });
  return state as CallState;
}

describe('async calls', () => {
  it('answers 202 with a call id at once, and POSTs the function’s answer to the callback URL', async () => {
    const callbackUrl = `http://127.0.0.1:${callbackServer.port}/done`;
    const accepted = await callAsync('/echo?x=1', { body: 'hello', headers: { 'x-callback-url': callbackUrl } });
    expect(accepted.status).toBe(202);
    const { callId } = (await accepted.json()) as { callId: string };
    expect(accepted.headers.get('x-call-id')).toBe(callId);
    expect(callId.startsWith(`${name}.`)).toBe(true);
    await waitFor('the callback', 60_000, () => callbacks.has(callId));
    const delivered = callbacks.get(callId) as { headers: Headers; body: string };
    expect(delivered.headers.get('x-call-status')).toBe('succeeded');
    expect(delivered.headers.get('x-function-status')).toBe('200');
    expect(delivered.headers.get('x-answer')).toBe('yes');
    expect(delivered.headers.get('authorization')).toBeNull();
    const answer = JSON.parse(delivered.body);
    expect(answer).toMatchObject({ attempt: '1', callId, size: 5, method: 'POST', path: '/echo?x=1' });
    const state = await ended(callId);
    expect(state).toMatchObject({ status: 'succeeded', trigger: 'api', callback: 'delivered' });
    expect(state.attempts).toHaveLength(1);
  });

  it('starts one call for one Idempotency-Key, however often it is sent', async () => {
    const before = ((await (await invoke(s, name, '/count')).json()) as { calls: number }).calls;
    const key = `order-${s.runId}`;
    const first = (await (await callAsync('/echo', { headers: { 'idempotency-key': key } })).json()) as { callId: string };
    await ended(first.callId);
    const second = await callAsync('/echo', { headers: { 'idempotency-key': key } });
    expect(second.status).toBe(202);
    expect(((await second.json()) as { callId: string }).callId).toBe(first.callId);
    const after = ((await (await invoke(s, name, '/count')).json()) as { calls: number }).calls;
    expect(after - before).toBe(1);
  });

  it('tries again after a 503, with the attempt number, and records every attempt', async () => {
    const { callId } = (await (await callAsync('/flaky')).json()) as { callId: string };
    const state = await ended(callId);
    expect(state.status).toBe('succeeded');
    expect(state.attempts.map((a) => a.status)).toEqual([503, 200]);
    expect(state.result?.status).toBe(200);
    // Counted at the gateway's /metrics, and the failed attempt is in the function's log.
    const metric = (line: string) => async () => {
      const text = await (await fetch(`${s.apiUrl}/metrics`, { headers: { authorization: `Bearer ${s.token}` } })).text();
      return text.split('\n').some((l) => l.startsWith(line));
    };
    await waitFor('the retry to be counted', 10_000, metric(`plat_call_attempts_total{function="${name}",outcome="retry"} `));
    await waitFor('the call to be counted', 10_000, metric(`plat_calls_total{function="${name}",result="succeeded"} `));
    await waitFor('the failed attempt in the log', 10_000, async () => {
      const log = await (
        await fetch(`${s.apiUrl}/functions/${name}/logs?tail=200`, { headers: { authorization: `Bearer ${s.token}` } })
      ).text();
      return log.includes(`async call ${callId}: attempt 1 failed (HTTP 503); it is tried again`);
    });
  });

  it('fails a call whose every attempt is refused, lists it as failed, and runs it again once the function is fixed', async () => {
    const callId = JSON.parse(await invokeAsync(s.api, name, 'always-503', {}, true)).callId as string;
    const state = await ended(callId);
    expect(state.status).toBe('failed');
    expect(state.attempts.map((a) => a.status)).toEqual([503, 503, 503]);
    const failed = JSON.parse(await callsCommand(s.api, name, undefined, { failed: true }, true)) as Array<{ callId: string }>;
    expect(failed.map((c) => c.callId)).toContain(callId);
    // A succeeded call can not be retried.
    const succeeded = (await (await callAsync('/echo')).json()) as { callId: string };
    await ended(succeeded.callId);
    expect(await callsCommand(s.api, 'retry', succeeded.callId, {}, true).catch((error: Error) => error.message)).toContain(
      'has not failed',
    );

    await deployFolder(s, await functionFolder(name, { 'index.ts': handler(false) }, ASYNC_RULES));
    await callsCommand(s.api, 'retry', callId, {}, true);
    await waitFor('the retried call to succeed', 60_000, async () => (await callState(callId)).status === 'succeeded');
    const again = await callState(callId);
    expect(again.attempts.map((a) => a.status)).toEqual([200]);
    const stillFailed = JSON.parse(await callsCommand(s.api, name, undefined, { failed: true }, true)) as Array<{ callId: string }>;
    expect(stillFailed.map((c) => c.callId)).not.toContain(callId);
  });

  it('carries a 10 MiB body through the registry, not the history', async () => {
    const body = crypto.getRandomValues(new Uint8Array(10 * 1024 * 1024));
    const sha = new Bun.CryptoHasher('sha256').update(body).digest('hex');
    const callbackUrl = `http://127.0.0.1:${callbackServer.port}/big`;
    const { callId } = (await (await callAsync('/echo', { body, headers: { 'x-callback-url': callbackUrl } })).json()) as {
      callId: string;
    };
    await waitFor('the callback', 120_000, () => callbacks.has(callId));
    expect(JSON.parse((callbacks.get(callId) as { body: string }).body)).toMatchObject({ size: body.byteLength, sha });
    const history = await s.temporal.workflow.getHandle(`call/${name}/${callId}`).fetchHistory();
    expect(JSON.stringify(history).length).toBeLessThan(200_000);
  });

  it('refuses what it cannot take, in the JSON error shape', async () => {
    expect((await fetch(`${s.apiUrl}/async-function/${name}`, { method: 'POST' })).status).toBe(401);
    expect((await fetch(`${s.apiUrl}/calls/${name}.${'0'.repeat(32)}`, { headers: { authorization: `Bearer ${s.token}` } })).status).toBe(
      404,
    );
    const bad = await fetch(`${s.apiUrl}/calls/nope`, { headers: { authorization: `Bearer ${s.token}` } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('BAD_REQUEST');
    const badCallback = await callAsync('/echo', { headers: { 'x-callback-url': 'file:///etc/passwd' } });
    expect(badCallback.status).toBe(400);
    expect((await callAsync('/echo', { headers: { 'idempotency-key': 'k'.repeat(300) } })).status).toBe(400);
    const missing = await fetch(`${s.apiUrl}/async-function/${s.name('nothing-here')}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.token}` },
    });
    expect(missing.status).toBe(404);
  });

  it('refuses a callback to this host or a link-local address, unless PLAT_CALLBACK_ALLOW_LOCAL allows it, and starts nothing', async () => {
    const strict = await extraGateway(s, { PLAT_CALLBACK_ALLOW_LOCAL: 'false' });
    try {
      const listed = async () => (await s.api.json<{ calls: unknown[] }>(`/functions/${name}/calls?limit=100`)).calls.length;
      const before = await listed();
      const own = Object.values(networkInterfaces())
        .flat()
        .find((a) => a && !a.internal && a.family === 'IPv4')?.address;
      const targets = [
        `http://127.0.0.1:${callbackServer.port}/done`,
        `http://localhost:${callbackServer.port}/done`,
        `http://[::ffff:127.0.0.1]:${callbackServer.port}/done`,
        'http://169.254.169.254/latest/meta-data/',
        ...(own ? [`http://${own}:${callbackServer.port}/done`] : []),
      ];
      for (const target of targets) {
        const refused = await fetch(`${strict.url}/async-function/${name}/echo`, {
          method: 'POST',
          headers: { authorization: `Bearer ${s.token}`, 'x-callback-url': target },
        });
        const { error } = (await refused.json()) as { error: { code: string; message: string } };
        expect([target, refused.status, error.code]).toEqual([target, 400, 'BAD_REQUEST']);
        expect(error.message).toContain('X-Callback-Url');
      }
      expect(await listed()).toBe(before);
    } finally {
      await strict.stop();
    }
  });

  it('lets the bodies of calls past their retention go, and keeps the others', async () => {
    const registry = new RegistryApi(loadSettings().registry);
    const repository = repositoryPath(name);
    const blob = await registry.uploadBlob(repository, new TextEncoder().encode('old body'));
    const old = callTag(`${name}.${'a'.repeat(32)}`, 'request', '2020-01-02T03:04:05.678Z');
    await registry.tagBlob(repository, old, { digest: blob.digest, size: 8 }, { 'dev.plat.call': 'old' });
    const recent = (await registry.tags(repository)).filter((tag) => tag.startsWith('call-') && tag !== old);
    expect(recent.length).toBeGreaterThan(0);
    // The collector reads every function's repository from the registry's catalog, page by page.
    expect(await registry.catalog()).toContain(repository);
    expect(await expireCallBodies(registry, 24 * 3_600_000, { repositories: [repository] })).toBe(1);
    const left = (await registry.tags(repository)).filter((tag) => tag.startsWith('call-'));
    expect(left.sort()).toEqual(recent.sort());
  });

  it('takes its calls’ bodies out of the registry with the function', async () => {
    const registry = new RegistryApi(loadSettings().registry);
    expect((await registry.tags(repositoryPath(name))).some((tag) => tag.startsWith('call-'))).toBe(true);
    await s.api.json(`/functions/${name}`, { method: 'DELETE' });
    expect((await registry.tags(repositoryPath(name))).filter((tag) => tag.startsWith('call-'))).toEqual([]);
  });
});

describe('schedules', () => {
  let scheduled: string;
  afterAll(async () => {
    // Whatever happened above: no schedule of this run outlives it.
    if (scheduled) await deleteSchedules(s.temporal, scheduled);
  });

  it('fire through the async call path, whether the function runs or is scaled to zero, and go with the function', async () => {
    scheduled = s.name('cron');
    await deployFolder(
      s,
      await functionFolder(
        scheduled,
        { 'index.ts': handler(false) },
        { schedules: [{ every: '2s', path: '/tick', method: 'POST', body: '{"tick":true}' }] },
      ),
    );
    const [shown] = JSON.parse(await schedulesCommand(s.api, scheduled, true)) as Array<{
      every: string;
      nextRuns: string[];
      paused: boolean;
    }>;
    expect(shown).toMatchObject({ every: '2s', paused: false });
    expect(shown?.nextRuns.length).toBeGreaterThan(0);

    // Scaled to zero: its containers gone, as the idle rules leave it.
    for (const container of await containersOf(s, scheduled)) await s.docker.getContainer(container.Id).remove({ force: true });
    const zeroAt = Date.now();
    type Listed = { callId: string; trigger: string; status: string; startedAt: string };
    const firedSince = async () =>
      (JSON.parse(await callsCommand(s.api, scheduled, undefined, {}, true)) as Listed[]).filter(
        (c) => c.trigger === 'schedule' && Date.parse(c.startedAt) >= zeroAt,
      );
    await waitFor('two scheduled runs since it was scaled to zero', 6_000, async () => (await firedSince()).length >= 2, 250);
    // Each ran to its end, through a cold start.
    const runs = (await firedSince()).slice(-2);
    await waitFor('the runs to succeed', 30_000, async () => {
      const states = await Promise.all(runs.map((run) => callState(run.callId)));
      return states.every((state) => state.status === 'succeeded');
    });
    const run = runs[0];
    const state = await callState((run as Listed).callId);
    expect(state).toMatchObject({ trigger: 'schedule', status: 'succeeded' });
    expect(JSON.parse(String(state.result?.status))).toBe(200);

    await s.api.json(`/functions/${scheduled}`, { method: 'DELETE' });
    const gone = await s.temporal.schedule
      .getHandle(scheduleId(scheduled, 0))
      .describe()
      .then(
        () => false,
        (error: unknown) => error instanceof ScheduleNotFoundError,
      );
    expect(gone).toBe(true);
  });
});
