import { beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repositoryPath } from '../../lib/names';
import { WORKFLOW_TYPES } from '../../workflows/definitions';
import { loadSettings } from '../../lib/settings';
import type { FunctionState, VersionSummary } from '../../lib/types';
import {
  answering,
  containersOf,
  deployFailure,
  deployFolder,
  deployText,
  fixtureFolder,
  functionFolder,
  invoke,
  makeIdle,
  plat,
} from '../support/functions';
import { INTEGRATION_TIMEOUT_MS, stack, type TestStack } from '../support/stack';
import { waitFor } from '../support/wait';

setDefaultTimeout(INTEGRATION_TIMEOUT_MS);

let s: TestStack;
let home: string;
beforeAll(async () => {
  s = await stack();
  home = await mkdtemp(join(tmpdir(), 'plat-home-'));
}, INTEGRATION_TIMEOUT_MS);

const text = async (name: string, path = '') => (await invoke(s, name, path)).text();
const describeFn = async (name: string) => (await s.api.json<{ function: FunctionState }>(`/functions/${name}`)).function;

/** The function's one container's state in the engine: running, paused, or gone. */
async function containerState(name: string): Promise<{ id?: string; state: 'running' | 'paused' | 'gone' }> {
  const [container] = (await containersOf(s, name)).filter((c) => c.State === 'running' || c.State === 'paused');
  if (!container) return { state: 'gone' };
  return { id: container.Id, state: container.State === 'paused' ? 'paused' : 'running' };
}

describe('versions and rollback', () => {
  it('lists versions and rolls back to the previous one, then to a named one', async () => {
    const name = s.name('rollback');
    const deployed = [];
    for (const word of ['one', 'two', 'three']) deployed.push(await deployText(s, name, word));
    const listed = await plat(s, home, 'versions', name, '--json');
    expect(listed.code).toBe(0);
    const versions = JSON.parse(listed.stdout) as VersionSummary[];
    expect(versions.map((v) => [v.version, v.active, v.digest])).toEqual(deployed.reverse().map((d, i) => [d.version, i === 0, d.digest]));
    expect(versions.every((v) => typeof v.deployedAt === 'string')).toBe(true);

    const back = await plat(s, home, 'rollback', name);
    expect(back.code).toBe(0);
    expect(back.stdout).toContain(`Rolled back ${name} to ${deployed[1]?.version}`);
    expect(await text(name)).toBe('two');

    const named = await plat(s, home, 'rollback', name, deployed[2]?.version as string, '--json');
    expect(JSON.parse(named.stdout)).toMatchObject({ name, activeVersion: deployed[2]?.version, previousVersion: deployed[1]?.version });
    expect(await text(name)).toBe('one');

    const unknown = await plat(s, home, 'rollback', name, 'v20200101-000000-dead');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('has no version v20200101-000000-dead');
  });

  it('loses no request under steady load while it rolls back', async () => {
    const name = s.name('rollback-load');
    await deployText(s, name, 'first');
    await deployText(s, name, 'second');
    expect(await text(name)).toBe('second');

    // Requests with a body, one after another, all through the rollback and the replaced version's
    // retirement: a body is not sent twice, so no retry can hide a failure.
    const answers: string[] = [];
    let running = true;
    const traffic = (async () => {
      while (running) {
        const response = await invoke(s, name, '/', { method: 'POST', body: 'payload' });
        answers.push(`${response.status} ${await response.text()}`);
      }
    })();
    await waitFor('some requests before the rollback', 30_000, () => answers.length >= 20);
    const { rollback } = await s.api.json<{ rollback: { activeVersion: string } }>(`/functions/${name}/rollback`, { method: 'POST' });
    await waitFor('the replaced version to be retired', 30_000, async () =>
      (await containersOf(s, name)).every((c) => c.Labels['dev.plat.version'] === rollback.activeVersion),
    );
    running = false;
    await traffic;
    expect(answers.filter((a) => a !== '200 first' && a !== '200 second')).toEqual([]);
    expect(answers.at(-1)).toBe('200 first');
  });

  it('serves any kept version at its preview URL, active or not', async () => {
    const name = s.name('preview');
    const first = await deployText(s, name, 'the first version');
    const second = await deployText(s, name, 'the second version');
    expect(await text(name)).toBe('the second version');
    expect(await text(`${name}@${first.version}`, '/any/path')).toBe('the first version');
    expect(await text(`${name}@${second.version}`)).toBe('the second version');
    // The preview runs beside the active version, which keeps serving.
    expect(await text(name)).toBe('the second version');
    expect((await describeFn(name)).instances.map((i) => i.version).sort()).toEqual([first.version, second.version].sort());

    const missing = await invoke(s, `${name}@v20200101-000000-dead`);
    expect(missing.status).toBe(404);
    expect((await missing.json()).error.code).toBe('VERSION_NOT_FOUND');
    const malformed = await invoke(s, `${name}@latest`);
    expect(malformed.status).toBe(400);
    expect((await malformed.json()).error.code).toBe('BAD_REQUEST');
  });
});

describe('every deploy proves its version starts', () => {
  it('fails a version that throws at import even when the function is idle', async () => {
    const name = s.name('idle-throw');
    await deployText(s, name, 'still here');
    await makeIdle(s, name);

    const broken = await functionFolder(name, {
      'index.ts': 'throw new Error("DATABASE_URL is not set");\nexport default { fetch() { return new Response("never"); } };\n',
    });
    const failure = await deployFailure(s, broken);
    expect(failure.code).toBe('START_FAILED');
    expect(failure.message).toContain('DATABASE_URL is not set');
    expect((await describeFn(name)).versions).toHaveLength(1);
    expect(await text(name)).toBe('still here');
  });

  it('leaves the container it started serving', async () => {
    const name = s.name('proved');
    await deployText(s, name, 'ready');
    const [container] = await containersOf(s, name);
    expect(container?.State).toBe('running');
    expect(await text(name)).toBe('ready');
    expect((await containersOf(s, name)).map((c) => c.Id)).toEqual([container?.Id as string]);
  });
});

describe('a cold start', () => {
  it('answers as soon as its container does, even while the entity is busy with a deploy; a start the deploy overtook is drained, then stopped', async () => {
    const name = s.name('early');
    const first = await deployText(s, name, 'v1');
    await makeIdle(s, name);
    // The next version takes 4 s to start: the deploy holds the entity while it proves the start.
    const slow = `await new Promise((resolve) => setTimeout(resolve, 4000));\n${answering('v2')}`;
    let deployed = false;
    const deploying = deployFolder(s, await functionFolder(name, { 'index.ts': slow })).finally(() => {
      deployed = true;
    });
    await waitFor('the deploy to start its new version', 120_000, async () =>
      (await containersOf(s, name)).some((c) => c.Labels['dev.plat.version'] !== first.version),
    );
    // A cold start of the active version: its instance reports to the entity only after the deploy, which
    // then refuses it (replaced), yet the request is answered at once by the container it started.
    const response = await invoke(s, name);
    expect(deployed).toBe(false);
    expect(await response.text()).toBe('v1');
    const early = (await containersOf(s, name)).find((c) => c.Labels['dev.plat.version'] === first.version && c.State === 'running');
    expect(early).toBeDefined();
    await deploying;
    expect(await text(name)).toBe('v2');
    // Refused, it is drained like a replaced container, then stopped: nothing of v1 is left running.
    await waitFor('the refused start to be stopped', 30_000, async () =>
      (await containersOf(s, name)).every((c) => c.Labels['dev.plat.version'] !== first.version),
    );
    expect((await describeFn(name)).instances.map((i) => i.version)).not.toContain(first.version);
  });
});

describe('scale to zero', () => {
  const scaled = (name: string, scale: Record<string, number>) => functionFolder(name, { 'index.ts': answering('scaled') }, { scale });

  it('pauses an idle instance, and the next request resumes it', async () => {
    const name = s.name('pause');
    await deployFolder(s, await scaled(name, { pauseAfter: 5, stopAfter: 600 }));
    expect(await text(name)).toBe('scaled');
    const lastRequest = Date.now();
    const { id } = await containerState(name);
    await waitFor('the instance to be paused', 20_000, async () => (await containerState(name)).state === 'paused', 100);
    // Within 5 s of its deadline (the gateways report use every 2 s).
    expect(Date.now() - lastRequest).toBeLessThan(5_000 + 5_000 + 2_000);
    expect((await describeFn(name)).instances.map((i) => i.state)).toEqual(['paused']);

    expect(await text(name)).toBe('scaled');
    // The answer can come before the engine has finished its own bookkeeping of the resume.
    await waitFor('the engine to report it running', 10_000, async () => (await containerState(name)).state === 'running');
    expect((await containerState(name)).id).toBe(id);
    await waitFor('the entity to see it running', 10_000, async () => (await describeFn(name)).instances[0]?.state === 'running');
  });

  it('stops an instance idle for stopAfter, and the next request cold-starts another', async () => {
    const name = s.name('stop');
    await deployFolder(s, await scaled(name, { pauseAfter: 5, stopAfter: 8 }));
    expect(await text(name)).toBe('scaled');
    const id = (await containerState(name)).id as string;
    await waitFor('the instance to be paused', 20_000, async () => (await containerState(name)).state === 'paused', 100);
    await waitFor('the instance to be stopped', 30_000, async () => (await containerState(name)).state === 'gone', 100);
    expect((await describeFn(name)).instances).toEqual([]);
    // Paused when its stop came, it still got SIGTERM and exited on its own (0), not by the engine's
    // SIGKILL after the stop timeout (137).
    let exits: string[] = [];
    await waitFor('the exit in the function log', 10_000, async () => {
      const lines = (await (await s.api.request(`/functions/${name}/logs`)).text()).split('\n').filter(Boolean);
      exits = lines
        .map((line) => JSON.parse(line) as { stream: string; text: string; instance?: string })
        .filter((r) => r.stream === 'plat' && r.instance === id.slice(0, 12) && r.text.startsWith('instance exited'))
        .map((r) => r.text);
      return exits.length > 0;
    });
    expect(exits).toEqual(['instance exited with code 0']);
    expect(await text(name)).toBe('scaled');
    const after = await containerState(name);
    expect(after.state).toBe('running');
    expect(after.id).not.toBe(id);
  });

  it('never pauses the instances that scale.min keeps', async () => {
    const name = s.name('min');
    await deployFolder(s, await scaled(name, { min: 1, pauseAfter: 5, stopAfter: 8 }));
    expect(await text(name)).toBe('scaled');
    const { id } = await containerState(name);
    // Watched past both deadlines (and 5 s of leeway): it runs throughout.
    const until = Date.now() + 14_000;
    while (Date.now() < until) {
      expect(await containerState(name)).toEqual({ id, state: 'running' });
      await Bun.sleep(250);
    }
  });

  it('keeps an instance running until its ctx.waitUntil work is done, then pauses it', async () => {
    const name = s.name('wait-until');
    await deployFolder(
      s,
      await functionFolder(
        name,
        {
          'index.ts': `let finishedAt = 0;
export default {
  fetch(request: Request, env: Record<string, string>, ctx: { waitUntil(p: Promise<unknown>): void }) {
    if (new URL(request.url).pathname === '/finished') return Response.json({ finishedAt });
    ctx.waitUntil(new Promise((resolve) => setTimeout(() => { finishedAt = Date.now(); resolve(null); }, 8000)));
    return new Response(env.GREETING);
  },
};
`,
        },
        { env: { GREETING: 'answered first' }, scale: { pauseAfter: 5, stopAfter: 600 } },
      ),
    );
    const started = Date.now();
    expect(await text(name)).toBe('answered first');
    await waitFor('the instance to be paused', 40_000, async () => (await containerState(name)).state === 'paused', 100);
    const pausedAt = Date.now();
    // The request resumes it; the work had finished before it was paused.
    const { finishedAt } = await (await invoke(s, name, '/finished')).json();
    expect(finishedAt).toBeGreaterThan(0);
    expect(finishedAt).toBeLessThanOrEqual(pausedAt);
    expect(pausedAt - started).toBeGreaterThan(8000);
  });
});

describe.each(['bun', 'deno', 'node'])('a Workers-style Hono app on %s', (runtime) => {
  it('reads c.env and finishes c.executionCtx.waitUntil work after its answer', async () => {
    const name = s.name(`workers-${runtime}`);
    await deployFolder(s, await fixtureFolder('workers', name, { runtime, env: { GREETING: `hello from ${runtime}` } }));
    expect(await (await invoke(s, name)).json()).toEqual({ greeting: `hello from ${runtime}` });
    await waitFor(
      'the work after the answer to finish',
      10_000,
      async () => (await (await invoke(s, name, '/finished')).json()).finished === 1,
    );
  });
});

describe('disk reclaimed', () => {
  it('keeps the local images of the active and the previous version only', async () => {
    const name = s.name('images');
    const deployed = [];
    for (const word of ['one', 'two', 'three']) deployed.push(await deployText(s, name, word));
    const local = async () =>
      (await s.docker.listImages({ filters: { label: [`dev.plat.function=${name}`] } })).map((i) => i.Labels?.['dev.plat.version']).sort();
    // Once the first version's last container has drained away, its image goes.
    await waitFor('the oldest image to be removed', 30_000, async () => (await local()).length === 2);
    expect(await local()).toEqual([deployed[1]?.version, deployed[2]?.version].sort());
  });

  it('stores less in the registry after a removal, and nothing of the function can be downloaded any more, whatever deploy of a worker gone hangs', async () => {
    const name = s.name('reclaim');
    // A deploy that looks running but whose worker is gone for good (a killed test run leaves such):
    // no worker polls its task queue, so it must hold back neither the collection nor other deploys.
    const hung = await s.temporal.workflow.start(WORKFLOW_TYPES.deploy, {
      workflowId: `deploy/${name}-hung/v0`,
      taskQueue: s.orphanTaskQueue,
      args: [],
    });
    const dir = await functionFolder(name, { 'index.ts': answering('soon gone') });
    // Incompressible, so the function's own layer and source weigh what they say.
    await Bun.write(join(dir, 'asset.bin'), crypto.getRandomValues(new Uint8Array(4 * 1024 * 1024)));
    const { digest, version } = await deployFolder(s, dir);
    const registry = `http://${loadSettings().registry}/v2/${repositoryPath(name)}`;
    const manifest = await (await fetch(`${registry}/manifests/${digest}`, { headers: { accept: DOCKER_MANIFEST } })).json();
    const layers: string[] = manifest.layers.map((l: { digest: string }) => l.digest);
    const sourceTagged = await fetch(`${registry}/manifests/source-${version}`, { method: 'HEAD', headers: { accept: OCI_MANIFEST } });
    expect(sourceTagged.status).toBe(200);
    const before = await registryBytes();

    await s.api.json(`/functions/${name}`, { method: 'DELETE' });
    // The removal has the scheduled collection run at once; the function's own layers (the last
    // ones: the base image's are shared) and its source go with it.
    const gone = async (blob: string) => (await fetch(`${registry}/blobs/${blob}`, { method: 'HEAD' })).status === 404;
    await waitFor(
      'the registry to collect the removed function',
      120_000,
      async () => (await gone(layers.at(-2) as string)) && (await gone(layers.at(-1) as string)),
      500,
    );
    expect(await registryBytes()).toBeLessThan(before - 4 * 1024 * 1024);
    expect((await fetch(`${registry}/manifests/source-${version}`, { method: 'HEAD', headers: { accept: OCI_MANIFEST } })).status).toBe(
      404,
    );
    await hung.terminate('test over'); // (and deleted with the run's workflows)
  });
});

const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** What the local registry stores, in bytes (npm test's registry: $PLAT_HOME/registry). */
async function registryBytes(): Promise<number> {
  const root = join(process.env.PLAT_HOME || join(process.env.HOME || '/root', '.plat'), 'registry');
  const du = Bun.spawn(['du', '-sb', root], { stdout: 'pipe' });
  return Number((await new Response(du.stdout).text()).split('\t')[0]);
}
