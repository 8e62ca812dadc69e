import { beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { randomBytes } from 'node:crypto';
import type { LogRecord } from '../../lib/logs';
import { SEARCH_ATTRIBUTES, workflowIds } from '../../lib/names';
import { WORKFLOW_TYPES } from '../../workflows/definitions';
import { containersOf, deployFolder, functionFolder, invoke, makeIdle, plat } from '../support/functions';
import { extraGateway, INTEGRATION_TIMEOUT_MS, logText, stack, type TestStack } from '../support/stack';
import { waitFor } from '../support/wait';

setDefaultTimeout(INTEGRATION_TIMEOUT_MS);

/** A function that logs on purpose: lines to stdout and stderr, long ones, concurrent ones, a last line without a newline. */
const LOGGING = `
export default {
  async fetch(request) {
    const url = new URL(request.url);
    const tag = url.searchParams.get('tag') ?? '';
    switch (url.pathname) {
      case '/log':
        console.log('hello ' + tag);
        console.error('to stderr ' + tag + '\\nsecond line ' + tag);
        return new Response('logged ' + tag);
      case '/long':
        console.log('x'.repeat(40000) + tag);
        return new Response('long');
      case '/slow':
        console.log('start ' + tag);
        await new Promise((resolve) => setTimeout(resolve, 300));
        console.log('end ' + tag);
        return new Response('slow ' + tag);
      case '/hang':
        await new Promise((resolve) => setTimeout(resolve, 5000));
        return new Response('late');
      case '/exit':
        process.stdout.write('last words ' + tag);
        setTimeout(() => process.exit(3), 100);
        return new Response('exiting');
      case '/oom': {
        const hoard = [];
        for (;;) hoard.push(new Uint8Array(4 * 1024 * 1024).fill(1));
      }
      default:
        return new Response('ok');
    }
  },
};
`;

let s: TestStack;
let name: string;
let version: string;
beforeAll(async () => {
  s = await stack();
  name = s.name('logs');
  const dir = await functionFolder(name, { 'index.ts': LOGGING }, { timeout: 1 });
  ({ version } = await deployFolder(s, dir));
}, INTEGRATION_TIMEOUT_MS);

/** The function's log as `GET /functions/:name/logs` gives it (no follow). */
async function readLog(fn: string, query = 'tail=10000'): Promise<LogRecord[]> {
  const response = await s.api.request(`/functions/${fn}/logs?${query}`);
  expect(response.status).toBe(200);
  const text = await response.text();
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as LogRecord);
}

async function waitForLine(fn: string, test: (r: LogRecord) => boolean, what: string, query?: string): Promise<LogRecord> {
  let found: LogRecord | undefined;
  await waitFor(what, 15_000, async () => {
    found = (await readLog(fn, query)).find(test);
    return found !== undefined;
  });
  return found as LogRecord;
}

const tag = () => randomBytes(4).toString('hex');

describe('plat logs', () => {
  it("finds a handler's lines with their request id, by plat logs and by --request", async () => {
    const t = tag();
    const response = await invoke(s, name, `/log?tag=${t}`);
    expect(await response.text()).toBe(`logged ${t}`);
    const requestId = response.headers.get('x-request-id') as string;
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);

    const hello = await waitForLine(name, (r) => r.text === `hello ${t}`, 'the line in the log');
    expect(hello).toMatchObject({ stream: 'stdout', version, requestId });
    expect(hello.instance).toMatch(/^[0-9a-f]{12}$/);
    expect(Date.now() - Date.parse(hello.time)).toBeLessThan(60_000);

    // The CLI, as a user runs it: --json gives NDJSON, --request only that request's lines.
    await waitFor('both stderr lines', 10_000, async () => (await readLog(name)).some((r) => r.text === `second line ${t}`));
    const { stdout, code } = await plat(s, '.', 'logs', name, '--request', requestId, '--json');
    expect(code).toBe(0);
    const mine = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as LogRecord);
    // In order within a stream; stdout and stderr are two pipes, which the engine stamps apart.
    expect(mine.filter((r) => r.stream === 'stdout').map((r) => r.text)).toEqual([`hello ${t}`]);
    expect(mine.filter((r) => r.stream === 'stderr').map((r) => r.text)).toEqual([`to stderr ${t}`, `second line ${t}`]);
    expect(mine).toHaveLength(3);
    expect(mine.every((r) => r.requestId === requestId)).toBe(true);
    const text = await plat(s, '.', 'logs', name, '--tail', '50');
    expect(text.stdout).toContain(`hello ${t}`);
    expect(text.stdout).toContain(version);
  });

  it('tells two concurrent requests apart by their ids', async () => {
    const a = `req-a-${tag()}`;
    const b = `req-b-${tag()}`;
    const [ra, rb] = await Promise.all([
      invoke(s, name, '/slow?tag=A', { headers: { 'x-request-id': a } }),
      invoke(s, name, '/slow?tag=B', { headers: { 'x-request-id': b } }),
    ]);
    expect([await ra.text(), await rb.text()]).toEqual(['slow A', 'slow B']);
    expect(ra.headers.get('x-request-id')).toBe(a);
    await waitForLine(name, (r) => r.requestId === b && r.text === 'end B', 'the end of request B');
    await waitForLine(name, (r) => r.requestId === a && r.text === 'end A', 'the end of request A');
    expect((await readLog(name, `request=${a}`)).map((r) => r.text)).toEqual(['start A', 'end A']);
    expect((await readLog(name, `request=${b}`)).map((r) => r.text)).toEqual(['start B', 'end B']);
  });

  it('replaces a malformed x-request-id with one of its own', async () => {
    const response = await invoke(s, name, '/', { headers: { 'x-request-id': 'not a good id' } });
    await response.text();
    expect(response.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('puts a line cut by the engine back together', async () => {
    const t = tag();
    await (await invoke(s, name, `/long?tag=${t}`)).text();
    const long = await waitForLine(name, (r) => r.text.endsWith(t) && r.text.startsWith('xxx'), 'the long line');
    expect(long.text.length).toBe(40000 + t.length);
  });

  it('streams a new line to a follower within 2 s of the request', async () => {
    const t = tag();
    const response = await s.api.request(`/functions/${name}/logs?follow=true&tail=0`);
    expect(response.status).toBe(200);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const answered = await invoke(s, name, `/log?tag=${t}`);
    await answered.text();
    const at = Date.now();
    let seen: LogRecord | undefined;
    let buffered = '';
    const decoder = new TextDecoder();
    const deadline = at + 10_000;
    try {
      while (!seen && Date.now() < deadline) {
        const next = await Promise.race([reader.read(), Bun.sleep(deadline - Date.now()).then(() => undefined)]);
        if (!next || next.done) break;
        buffered += decoder.decode(next.value, { stream: true });
        const complete = buffered.split('\n');
        buffered = complete.pop() ?? '';
        seen = complete
          .filter(Boolean)
          .map((line) => JSON.parse(line) as LogRecord)
          .find((r) => r.text === `hello ${t}`);
      }
    } finally {
      // Not awaited: a cancel waits for the stream's next chunk, which a quiet follower sends every 30 s.
      void reader.cancel().catch(() => undefined);
    }
    const elapsed = Date.now() - at;
    expect(seen?.requestId).toBe(answered.headers.get('x-request-id') as string);
    expect(elapsed).toBeLessThan(2000);
  });

  it("keeps a container's lines after it is removed, with the platform's events about it", async () => {
    const t = tag();
    await (await invoke(s, name, `/log?tag=${t}`)).text();
    await waitForLine(name, (r) => r.text === `hello ${t}`, 'the line');
    const [container] = (await containersOf(s, name)).filter((c) => c.State === 'running');
    if (!container) throw new Error('no running container');
    await s.docker.getContainer(container.Id).remove({ force: true });
    const short = container.Id.slice(0, 12);
    await waitForLine(name, (r) => r.stream === 'plat' && r.instance === short && /exited with code/.test(r.text), 'the exit event');
    const log = await readLog(name);
    expect(log.some((r) => r.text === `hello ${t}` && r.instance === short)).toBe(true);
    expect(log.some((r) => r.stream === 'plat' && r.text.includes(`version ${version} deployed`))).toBe(true);
    expect(log.some((r) => r.stream === 'plat' && r.instance === short && /instance started: answered \d+ ms/.test(r.text))).toBe(true);
  });

  it('keeps a last line written without a newline, and the exit code', async () => {
    const t = tag();
    await (await invoke(s, name, `/exit?tag=${t}`)).text();
    const last = await waitForLine(name, (r) => r.text === `last words ${t}`, 'the last line');
    await waitForLine(
      name,
      (r) => r.stream === 'plat' && r.instance === last.instance && r.text.includes('exited with code 3'),
      'the exit',
    );
  });

  it('says when a request timed out, with its id', async () => {
    const response = await invoke(s, name, '/hang');
    expect(response.status).toBe(504);
    const requestId = response.headers.get('x-request-id') as string;
    expect(requestId).toBeTruthy();
    const event = await waitForLine(name, (r) => r.requestId === requestId && r.stream === 'plat', 'the timeout event');
    expect(event.text).toContain('timed out');
  });

  it('answers bad queries with 400, an unknown function with 404, and no token with 401', async () => {
    for (const query of ['since=yesterday', 'tail=-1', 'version=latest', 'request=a%20b']) {
      const response = await s.api.request(`/functions/${name}/logs?${query}`);
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe('BAD_REQUEST');
    }
    expect((await s.api.request(`/functions/${s.name('nothing')}/logs`)).status).toBe(404);
    expect((await s.api.request('/functions/Bad_Name/logs')).status).toBe(400);
    expect((await fetch(`${s.apiUrl}/functions/${name}/logs`)).status).toBe(401);
  });
});

describe('an instance killed for memory', () => {
  it('shows a plat event naming the limit', async () => {
    const fn = s.name('oom');
    await deployFolder(s, await functionFolder(fn, { 'index.ts': LOGGING }, { memory: 32 }));
    const response = await invoke(s, fn, '/oom');
    expect(response.status).toBeGreaterThanOrEqual(500);
    const event = await waitForLine(fn, (r) => r.stream === 'plat' && r.text.includes('killed for memory'), 'the OOM event');
    expect(event.text).toContain('32 MiB');
    expect(event.text).toContain('"memory"');
  });
});

describe('invocation records and metrics', () => {
  it('writes one record per request: no query string, no token', async () => {
    const requestId = `rec-${tag()}`;
    await (await invoke(s, name, '/?secret=hunter2', { headers: { 'x-request-id': requestId } })).text();
    let record: Record<string, unknown> | undefined;
    await waitFor('the invocation record', 10_000, async () => {
      const line = (await logText(s.dataDir, 'gateway')).split('\n').find((l) => l.includes(`"requestId":"${requestId}"`));
      record = line ? (JSON.parse(line) as Record<string, unknown>) : undefined;
      return record !== undefined;
    });
    expect(record).toMatchObject({ function: name, version, method: 'GET', path: '/', status: 200, requestId });
    expect(['warm', 'cold', 'resumed']).toContain(record?.start as string);
    expect(typeof record?.durationMs).toBe('number');
    const gatewayLog = await logText(s.dataDir, 'gateway');
    expect(gatewayLog).not.toContain('hunter2');
    expect(gatewayLog).not.toContain(s.token);
  });

  it('writes the records of the last requests when the gateway stops', async () => {
    const gateway = await extraGateway(s, {});
    const requestId = `last-${tag()}`;
    try {
      const response = await fetch(`${gateway.url}/function/${name}`, {
        headers: { authorization: `Bearer ${s.token}`, 'x-request-id': requestId },
      });
      expect(response.status).toBe(200);
      await response.text();
    } finally {
      // At once: well inside the 100 ms between two writes of the records.
      await gateway.stop();
    }
    expect(await gateway.log()).toContain(`"requestId":"${requestId}"`);
  });

  it('counts invocations at /metrics, behind the token, in a form promtool accepts', async () => {
    const count = async () => {
      const text = await (await s.api.request('/metrics')).text();
      const match = new RegExp(`^plat_function_invocations_total\\{function="${name}",code="200"\\} (\\d+)$`, 'm').exec(text);
      return Number(match?.[1] ?? 0);
    };
    const coldStarts = async () => {
      const text = await (await s.api.request('/metrics')).text();
      return Number(new RegExp(`^plat_function_cold_starts_total\\{function="${name}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
    };
    await makeIdle(s, name);
    const coldBefore = await coldStarts();
    const before = await count();
    for (let i = 0; i < 5; i++) await (await invoke(s, name, '/')).text();
    // A start is counted when its workflow's result reaches the gateway; the waiting request may be
    // served a moment before, when the gateway reads the new instance from the entity first.
    await waitFor('the cold start to be counted', 10_000, async () => (await coldStarts()) >= coldBefore + 1);
    expect(await coldStarts()).toBe(coldBefore + 1);
    await (await invoke(s, name, '/hang')).text();
    expect(await count()).toBe(before + 5);
    const text = await (await s.api.request('/metrics')).text();
    expect(text).toMatch(new RegExp(`plat_function_invocations_total\\{function="${name}",code="504"\\} [1-9]`));
    expect(text).toMatch(new RegExp(`plat_function_duration_seconds_count\\{function="${name}"\\} [1-9]`));
    expect(text).toMatch(new RegExp(`plat_function_instances\\{function="${name}",state="running"\\} \\d`));
    expect(text).toContain('process_cpu_seconds_total');

    const refused = await fetch(`${s.apiUrl}/metrics`);
    expect(refused.status).toBe(401);
    expect(await refused.text()).not.toContain('plat_function');

    await promtoolAccepts(text);
    const worker = await fetch(`http://${s.workerMetrics}/metrics`);
    expect(worker.status).toBe(200);
    const workerText = await worker.text();
    expect(workerText).toMatch(/temporal_/);
    await promtoolAccepts(workerText);
  });

  it("lists and counts this platform's functions only: an entity of another task queue, whose worker is gone, is not listed, and the scrape does not wait for it", async () => {
    // What a killed run on a shared Temporal leaves: a function entity that no worker serves. Its
    // queries could only time out, one scrape after another.
    const elsewhere = s.name('elsewhere');
    const orphan = await s.temporal.workflow.start(WORKFLOW_TYPES.entity, {
      workflowId: workflowIds.entity(elsewhere),
      taskQueue: s.orphanTaskQueue,
      args: [{ name: elsewhere }],
      typedSearchAttributes: [{ key: SEARCH_ATTRIBUTES.function, value: elsewhere }],
    });
    try {
      await waitFor('visibility to list the orphan entity', 30_000, async () => {
        const query = `WorkflowId = '${workflowIds.entity(elsewhere)}' AND ExecutionStatus = 'Running'`;
        for await (const _ of s.temporal.workflow.list({ query })) return true;
        return false;
      });
      const { functions } = await s.api.json<{ functions: Array<{ name: string }> }>('/functions');
      expect(functions.map((f) => f.name)).toContain(name);
      expect(functions.map((f) => f.name)).not.toContain(elsewhere);
      const text = await (await s.api.request('/metrics')).text();
      expect(text).toContain(`plat_function_instances{function="${name}",state="running"}`);
      expect(text).not.toContain(elsewhere);
    } finally {
      await orphan.terminate('test over'); // (and deleted with the run's workflows)
    }
  });

  it('shows what each instance uses when describe is asked for it', async () => {
    await (await invoke(s, name, '/')).text();
    const { function: fn } = await s.api.json<{
      function: { instances: Array<{ usage?: { memoryBytes: number; memoryLimitBytes: number; cpuPercent: number } }> };
    }>(`/functions/${name}?usage=true`);
    const usage = fn.instances[0]?.usage;
    expect(usage?.memoryBytes).toBeGreaterThan(1024 * 1024);
    expect(usage?.memoryLimitBytes).toBe(256 * 1024 * 1024);
    expect(usage?.cpuPercent).toBeGreaterThanOrEqual(0);
    const { stdout } = await plat(s, '.', 'describe', name, '--usage');
    expect(stdout).toMatch(/MiB of 256 MiB, [\d.]+% CPU/);
  });
});

/** `promtool check metrics` reads the exposition on stdin and prints any problem it finds. */
async function promtoolAccepts(text: string): Promise<void> {
  const promtool = process.env.PROMTOOL;
  if (!promtool) throw new Error('PROMTOOL is not set: run the suite with `npm test`, which installs promtool');
  const child = Bun.spawn([promtool, 'check', 'metrics'], { stdin: new Blob([text]), stdout: 'pipe', stderr: 'pipe' });
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  expect(`${out}${err}`.trim()).toBe('');
  expect(code).toBe(0);
}
