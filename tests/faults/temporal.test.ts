import { afterAll, beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { deployForm, deployText, functionFolder, answering, invoke, sourceInRegistry } from '../support/functions';
import { part, timed } from '../support/faults';
import { INTEGRATION_TIMEOUT_MS, stack, type TestStack } from '../support/stack';

setDefaultTimeout(INTEGRATION_TIMEOUT_MS);

let s: TestStack;
beforeAll(async () => {
  s = await stack();
}, INTEGRATION_TIMEOUT_MS);
// Whatever happens in a test, Temporal runs again afterwards.
afterAll(() => part('start', 'temporal'), INTEGRATION_TIMEOUT_MS);

/** What the platform answered, and in how many ms. */
async function answer(request: () => Promise<Response>): Promise<{ status: number; code?: string; ms: number }> {
  const [response, ms] = await timed(request);
  const text = await response.text();
  const code = response.headers.get('content-type')?.includes('json') ? JSON.parse(text).error?.code : undefined;
  return { status: response.status, code, ms };
}

describe('Temporal stopped, then started again', () => {
  it('keeps warm functions answering, answers 503 within 2 s for the rest, and cold-starts again once it is back', async () => {
    const warm = s.name('warm');
    const idle = s.name('idle');
    await deployText(s, warm, 'warm answer');
    await deployText(s, idle, 'idle answer');
    expect(await (await invoke(s, warm)).text()).toBe('warm answer');
    const undeployed = await functionFolder(s.name('late'), { 'index.ts': answering('never deployed') });
    const auth = { authorization: `Bearer ${s.token}` };

    await part('stop', 'temporal');
    try {
      // The data plane needs no Temporal.
      for (let i = 0; i < 20; i++) expect(await (await invoke(s, warm)).text()).toBe('warm answer');

      const unavailable = { status: 503, code: 'PLATFORM_UNAVAILABLE' };
      const coldStart = await answer(() => invoke(s, idle));
      const list = await answer(() => fetch(`${s.apiUrl}/functions`, { headers: auth }));
      const describe = await answer(() => fetch(`${s.apiUrl}/functions/${warm}`, { headers: auth }));
      const deploy = await answer(async () =>
        fetch(`${s.apiUrl}/functions`, { method: 'POST', headers: auth, body: await deployForm(undeployed) }),
      );
      for (const outcome of [coldStart, list, describe, deploy]) {
        expect(outcome).toMatchObject(unavailable);
        expect(outcome.ms).toBeLessThan(2000);
      }
      // A deploy that could not start its workflow leaves no source behind.
      expect(await sourceInRegistry(s.name('late'), undeployed)).toBe(false);
    } finally {
      await part('start', 'temporal');
    }

    // The first cold start once Temporal answers again works.
    const first = await invoke(s, idle);
    expect(`${first.status} ${await first.text()}`).toBe('200 idle answer');
    expect(await (await invoke(s, warm)).text()).toBe('warm answer');
  });
});
