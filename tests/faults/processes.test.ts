import { beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { answering, containersOf, deployFolder, deployForm, deployText, functionFolder, invoke } from '../support/functions';
import { extraGateway, INTEGRATION_TIMEOUT_MS, logText, type Part, partPid, stack, type TestStack } from '../support/stack';
import { waitFor } from '../support/wait';

setDefaultTimeout(INTEGRATION_TIMEOUT_MS);

let s: TestStack;
beforeAll(async () => {
  s = await stack();
}, INTEGRATION_TIMEOUT_MS);

const count = (text: string, needle: string) => text.split(needle).length - 1;

/** Kills a part of this run's stack with SIGKILL and returns once its supervisor has started it again. */
async function killAndAwaitReturn(part: Part, ready: () => Promise<boolean>): Promise<{ killedAt: number; returnedAt: number }> {
  const pid = await partPid(s, part);
  process.kill(pid, 'SIGKILL');
  const killedAt = Date.now();
  await waitFor(`the ${part} to be restarted`, 30_000, async () => (await partPid(s, part).catch(() => pid)) !== pid, 20);
  await waitFor(`the restarted ${part} to be ready`, 60_000, ready, 20);
  return { killedAt, returnedAt: Date.now() };
}

describe('a worker killed mid-deploy', () => {
  it('is restarted, and the deploy resumes and completes within 30 s of its return', async () => {
    const name = s.name('resume');
    const dir = await functionFolder(name, { 'index.ts': answering('resumed after the kill') });
    // Incompressible bytes make the build step last long enough to be caught in it.
    await writeFile(join(dir, 'asset.bin'), randomBytes(24 * 1024 * 1024));
    const response = await fetch(`${s.apiUrl}/functions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.token}` },
      body: await deployForm(dir),
    });
    expect(response.status).toBe(202);
    const location = response.headers.get('location') as string;
    type Status = { status: string; steps: Array<{ step: string; status: string }>; error?: { message: string } };
    const status = async () => {
      const answer = await s.api.request(location);
      return answer.ok ? ((await answer.json()) as Status) : undefined;
    };
    await waitFor(
      'the build step to start',
      120_000,
      async () => (await status())?.steps.some((x) => x.step === 'build' && x.status === 'running') === true,
      20,
    );

    const pollingBefore = count(await logText(s.dataDir, 'worker'), 'worker polling');
    const { returnedAt } = await killAndAwaitReturn(
      'worker',
      async () => count(await logText(s.dataDir, 'worker'), 'worker polling') > pollingBefore,
    );
    expect(await logText(s.dataDir, 'worker')).toContain('[supervise]');

    let final: Status | undefined;
    await waitFor(
      'the deploy to finish',
      120_000,
      async () => {
        final = await status();
        return final !== undefined && final.status !== 'RUNNING';
      },
      100,
    );
    const resumedIn = Date.now() - returnedAt;
    expect(final?.status).toBe('COMPLETED');
    expect(resumedIn).toBeLessThan(30_000);
    expect(await (await invoke(s, name)).text()).toBe('resumed after the kill');
  });
});

describe('a gateway killed under load', () => {
  it('is restarted within seconds, and serves the same instance again: no wrong answer, no second container', async () => {
    const name = s.name('steady');
    await deployText(s, name, 'steady answer');
    expect(await (await invoke(s, name)).text()).toBe('steady answer');
    const [container] = await containersOf(s, name);

    const outcomes: Array<{ at: number; ok: boolean; body?: string }> = [];
    let stop = false;
    const deadline = Date.now() + 90_000;
    const client = async () => {
      for (let i = 0; i < 5000 && !stop && Date.now() < deadline; i++) {
        try {
          const response = await invoke(s, name);
          outcomes.push({ at: Date.now(), ok: response.ok, body: await response.text() });
        } catch {
          outcomes.push({ at: Date.now(), ok: false });
          await Bun.sleep(20); // a refused connection returns at once: do not spin
        }
      }
    };
    const load = Promise.all([client(), client(), client(), client()]);
    await waitFor('some load before the kill', 30_000, () => outcomes.filter((o) => o.ok).length >= 200);

    const healthy = async () => (await fetch(`${s.apiUrl}/healthz`).catch(() => undefined))?.ok === true;
    const { killedAt, returnedAt } = await killAndAwaitReturn('gateway', healthy);
    await waitFor('load after the restart', 30_000, () => outcomes.filter((o) => o.ok && o.at > returnedAt).length >= 200);
    stop = true;
    await load;

    expect(await logText(s.dataDir, 'gateway')).toContain('[supervise]');
    expect(returnedAt - killedAt).toBeLessThan(5000);
    // Every answer is the function's own; requests fail only while no gateway listens.
    expect(outcomes.filter((o) => o.ok && o.body !== 'steady answer')).toEqual([]);
    expect(outcomes.filter((o) => !o.ok && (o.at < killedAt || o.at > returnedAt + 1000))).toEqual([]);
    // The restarted gateway found the running instance through the entity: no cold start, no second container.
    expect((await containersOf(s, name)).map((c) => c.Id)).toEqual([container?.Id as string]);
  });
});

describe('a worker that stops answering', () => {
  it('leaves a request that waits for an instance at 503 after PLAT_COLD_START_WAIT, not for ever; the start goes on once the worker is back', async () => {
    const name = s.name('frozen');
    await deployFolder(
      s,
      await functionFolder(name, { 'index.ts': answering('after the freeze') }, { scale: { pauseAfter: 5, stopAfter: 5 } }),
    );
    const gateway = await extraGateway(s, { PLAT_COLD_START_WAIT: '2s' });
    const worker = await partPid(s, 'worker');
    let frozen = false;
    try {
      // Bounded, so that the worker is let go on even if the gateway never answers.
      const call = () =>
        fetch(`${gateway.url}/function/${name}`, { headers: { authorization: `Bearer ${s.token}` }, signal: AbortSignal.timeout(30_000) });
      expect(await (await call()).text()).toBe('after the freeze');
      // The idle rules stop it; this gateway keeps the function's pool, so its next request starts
      // an instance at once, without reading the entity (which the frozen worker could not answer).
      await waitFor('the idle rules to stop the instance', 60_000, async () => (await containersOf(s, name)).length === 0, 100);
      process.kill(worker, 'SIGSTOP');
      frozen = true;
      const answer = await call();
      expect(answer.status).toBe(503);
      const { error } = (await answer.json()) as { error: { code: string; message: string } };
      expect(error.code).toBe('COLD_START_FAILED');
      expect(error.message).toContain('no instance yet after 2 s');
      expect(error.message).toContain('is the worker running?');
    } finally {
      if (frozen) process.kill(worker, 'SIGCONT');
      await gateway.stop();
    }
    // The start the request asked for goes on when the worker does; the function answers again.
    await waitFor('the function to answer again', 60_000, async () => (await (await invoke(s, name)).text()) === 'after the freeze', 200);
  });
});
