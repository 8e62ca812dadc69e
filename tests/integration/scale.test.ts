import { afterAll, beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { containersOf, deployFolder, functionFolder, invoke } from '../support/functions';
import { extraGateway, INTEGRATION_TIMEOUT_MS, stack, type TestStack } from '../support/stack';

setDefaultTimeout(INTEGRATION_TIMEOUT_MS);

/**
 * Scaling out on concurrency through the real path: the gateway's pools, the cold-start workflow
 * per instance count, the entity's hold on scale.max, and the engine's containers.
 */

/** Takes 500 ms a request and answers which instance it is and the most requests it held at once. */
const SLOW = `let holding = 0;
let most = 0;
export default {
  async fetch() {
    holding++;
    most = Math.max(most, holding);
    await new Promise((resolve) => setTimeout(resolve, 500));
    holding--;
    return Response.json({ instance: process.env.PLAT_INSTANCE_ID, most });
  },
};
`;

let s: TestStack;
beforeAll(async () => {
  s = await stack();
}, INTEGRATION_TIMEOUT_MS);

async function deploySlow(suffix: string, scale: Record<string, number>): Promise<string> {
  const name = s.name(suffix);
  await deployFolder(s, await functionFolder(name, { 'index.ts': SLOW }, { scale: { ...scale, pauseAfter: 0, stopAfter: 0 } }));
  return name;
}

/** The most containers of a function seen at once while `work` runs (the engine polled every 50 ms). */
async function mostContainers<T>(name: string, work: Promise<T>): Promise<{ result: T; most: number }> {
  let most = 0;
  let done = false;
  const watching = (async () => {
    while (!done) {
      const running = (await containersOf(s, name)).filter((c) => c.State === 'running' || c.State === 'created');
      most = Math.max(most, running.length);
      await Bun.sleep(50);
    }
  })();
  const result = await work.finally(() => {
    done = true;
  });
  await watching;
  return { result, most };
}

describe('a function with concurrency 1 and max 3', () => {
  it('runs 3 instances for 12 concurrent requests, one request each at a time, in about 4 rounds', async () => {
    const name = await deploySlow('scale3', { concurrency: 1, max: 3 });
    const started = performance.now();
    const { result: answers, most } = await mostContainers(
      name,
      Promise.all(
        Array.from({ length: 12 }, async () => {
          const response = await invoke(s, name);
          expect(response.status).toBe(200);
          return (await response.json()) as { instance: string; most: number };
        }),
      ),
    );
    const seconds = (performance.now() - started) / 1000;
    console.log(`12 requests of 500 ms on concurrency 1, max 3: ${seconds.toFixed(2)} s`);
    expect(new Set(answers.map((a) => a.instance)).size).toBe(3);
    expect(Math.max(...answers.map((a) => a.most))).toBe(1);
    expect(most).toBe(3);
    // 12 rounds of 500 ms one after another take 6 s and a cold start; 3 instances take about 4 rounds and their starts.
    expect(seconds).toBeLessThan(6);
    const described = await s.api.json<{ function: { instances: Array<{ inFlight: number }> } }>(`/functions/${name}`);
    expect(described.function.instances).toHaveLength(3);
    expect(described.function.instances.every((i) => i.inFlight === 0)).toBe(true);
  });
});

describe('a function with max 1 and queue 2', () => {
  it('answers the fourth concurrent request 429 with Retry-After and the JSON error', async () => {
    const name = await deploySlow('queue2', { concurrency: 1, max: 1, queue: 2 });
    // Warm first, so the four below meet a running instance.
    expect((await invoke(s, name)).status).toBe(200);
    const responses = await Promise.all(Array.from({ length: 4 }, () => invoke(s, name)));
    const refused = responses.filter((r) => r.status === 429);
    expect(refused).toHaveLength(1);
    const [tooMany] = refused as [Response];
    expect(tooMany.headers.get('retry-after')).toBe('1');
    expect(((await tooMany.json()) as { error: { code: string } }).error.code).toBe('TOO_MANY_REQUESTS');
    expect(responses.filter((r) => r.status === 200)).toHaveLength(3);
    await Promise.all(responses.filter((r) => !r.bodyUsed).map((r) => r.text()));
  });
});

describe('two gateways on one function', () => {
  let other: Awaited<ReturnType<typeof extraGateway>>;
  beforeAll(async () => {
    other = await extraGateway(s, {});
  });
  afterAll(async () => {
    await other?.stop();
  });

  it('share its instances and never run more than max between them', async () => {
    const name = await deploySlow('shared', { concurrency: 1, max: 2, queue: 20 });
    const through = (url: string) => fetch(`${url}/function/${name}`, { headers: { authorization: `Bearer ${s.token}` } });
    const { result: responses, most } = await mostContainers(
      name,
      Promise.all(Array.from({ length: 8 }, (_, i) => through(i % 2 === 0 ? s.apiUrl : other.url))),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(8).fill(200));
    const instances = new Set(await Promise.all(responses.map(async (r) => ((await r.json()) as { instance: string }).instance)));
    expect(instances.size).toBe(2);
    expect(most).toBeLessThanOrEqual(2);
  });
});
