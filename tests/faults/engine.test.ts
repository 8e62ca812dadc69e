import { afterAll, beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { lines } from '../../lib/ndjson';
import { type DeployEvent, WAITING_FOR_ENGINE } from '../../lib/types';
import { part } from '../support/faults';
import { answering, containersOf, deployForm, deployText, functionFolder, invoke } from '../support/functions';
import { INTEGRATION_TIMEOUT_MS, stack, type TestStack } from '../support/stack';
import { waitFor } from '../support/wait';

setDefaultTimeout(INTEGRATION_TIMEOUT_MS);

let s: TestStack;
beforeAll(async () => {
  s = await stack();
}, INTEGRATION_TIMEOUT_MS);
// Whatever happens in a test, the engine runs again afterwards.
afterAll(() => part('start', 'dockerd'), INTEGRATION_TIMEOUT_MS);

describe('the Docker engine stopped, then started again', () => {
  it('holds a deploy until the engine is back, and then every function answers its own requests', async () => {
    const names = [s.name('first'), s.name('second')];
    for (const name of names) {
      await deployText(s, name, `${name} answers`);
      expect(await (await invoke(s, name)).text()).toBe(`${name} answers`);
    }
    const late = s.name('late');
    const events: DeployEvent[] = [];
    let deploy: Promise<void> | undefined;

    await part('stop', 'dockerd');
    try {
      const response = await fetch(`${s.apiUrl}/functions?wait=true`, {
        method: 'POST',
        headers: { authorization: `Bearer ${s.token}` },
        body: await deployForm(await functionFolder(late, { 'index.ts': answering(`${late} answers`) })),
      });
      expect(response.status).toBe(200);
      deploy = (async () => {
        for await (const line of lines(response.body as ReadableStream<Uint8Array>)) if (line) events.push(JSON.parse(line));
      })();
      await waitFor('the deploy to wait for the engine', 60_000, () =>
        events.some((e) => e.type === 'step' && e.detail === WAITING_FOR_ENGINE),
      );
      expect(events.filter((e) => e.type === 'done' || e.type === 'error')).toEqual([]);
    } finally {
      await part('start', 'dockerd');
    }
    await deploy;
    expect(events.at(-1)).toMatchObject({ type: 'done', result: { name: late, activated: true } });

    for (let round = 0; round < 3; round++) {
      for (const name of [...names, late]) expect(await (await invoke(s, name)).text()).toBe(`${name} answers`);
    }
    // The containers the restart stopped are cleared away.
    await waitFor('the stopped containers to be removed', 30_000, async () => {
      for (const name of names) if ((await containersOf(s, name)).some((c) => c.State !== 'running')) return false;
      return true;
    });
  });
});
