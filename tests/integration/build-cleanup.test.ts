import { afterAll, beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createActivities } from '../../activities';
import { packFolder } from '../../cli/pack';
import { validateFunctionConfig } from '../../lib/function-config';
import { repositoryPath } from '../../lib/names';
import { RegistryApi } from '../../lib/registry-api';
import { RUNTIMES } from '../../lib/runtimes';
import { loadSettings } from '../../lib/settings';
import { answering, fixtureFolder, functionFolder } from '../support/functions';
import { INTEGRATION_TIMEOUT_MS, stack, type TestStack } from '../support/stack';

setDefaultTimeout(INTEGRATION_TIMEOUT_MS);

// A failed build must remove what it made and nothing else. The engine refuses to remove an image
// that others are built on, so the danger is a base image no function image sits on yet: each test
// here builds on a fresh child of the runtime's base (the PLAT_BASE_IMAGE_<RUNTIME> setting), which
// no image sits on, with the real package and build activities against the real engine and registry.

let s: TestStack;
let dataDir: string;
const registry = new RegistryApi(loadSettings().registry);
const made: { images: string[]; blobs: Array<[string, string]> } = { images: [], blobs: [] };

beforeAll(async () => {
  s = await stack();
  dataDir = await mkdtemp(join(tmpdir(), 'plat-build-cleanup-'));
}, INTEGRATION_TIMEOUT_MS);

afterAll(async () => {
  for (const image of made.images.reverse())
    await s.docker
      .getImage(image)
      .remove({ force: true })
      .catch(() => undefined);
  for (const [repository, digest] of made.blobs) await registry.delete(repository, 'blobs', digest).catch(() => undefined);
  await rm(dataDir, { recursive: true, force: true });
});

/** A new image on top of the runtime's base: nothing is built on it yet. */
async function childlessBase(runtime: string): Promise<string> {
  const tag = `plat-test-base/${runtime}:${s.runId}`;
  const parents = [RUNTIMES[runtime]?.baseImage, RUNTIMES[runtime]?.offlineBaseImage] as string[];
  let parent: string | undefined;
  for (const image of parents) {
    if (
      await s.docker
        .getImage(image)
        .inspect()
        .then(
          () => true,
          () => false,
        )
    )
      parent = parent ?? image;
  }
  if (!parent) throw new Error(`no ${runtime} base image on the engine (${parents.join(', ')}); npm test builds it`);
  const context = await mkdtemp(join(tmpdir(), 'plat-base-'));
  await writeFile(join(context, 'Dockerfile'), `FROM ${parent}\nLABEL dev.plat.test-run=${s.runId}\n`);
  const stream = await s.docker.buildImage({ context, src: ['Dockerfile'] }, { t: tag });
  await new Promise((resolve, reject) => s.docker.modem.followProgress(stream, (error) => (error ? reject(error) : resolve(undefined))));
  await rm(context, { recursive: true, force: true });
  made.images.push(tag);
  return tag;
}

/** Packages and builds a function folder the way a deploy's first two steps do. */
async function packageAndBuild(activities: ReturnType<typeof createActivities>, dir: string, name: string, version: string) {
  const config = validateFunctionConfig(JSON.parse(await Bun.file(join(dir, 'function.json')).text()));
  if (!config.ok) throw new Error(config.problems.join('; '));
  const { archive } = await packFolder(dir);
  const repository = repositoryPath(name);
  const { digest } = await registry.uploadBlob(repository, archive);
  made.blobs.push([repository, digest]);
  const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
  const packaged = await env.run(activities.packageSource, { name, version, config: config.config, sourceDigest: digest });
  return env.run(activities.buildImage, {
    name,
    version,
    config: config.config,
    contextDir: (packaged as { contextDir: string }).contextDir,
  }) as Promise<{
    tag: string;
  }>;
}

describe.each(Object.keys(RUNTIMES))('a build on %s that fails', (runtime) => {
  it('removes only what it made: the base image it builds on stays, and the next build on it works', async () => {
    const base = await childlessBase(runtime);
    const baseId = (await s.docker.getImage(base).inspect()).Id;
    const settings = { ...loadSettings(), dataDir, taskQueue: s.taskQueue, baseImages: { [runtime]: base } };
    const activities = createActivities({ docker: s.docker, registry, temporal: s.temporal, settings, events: { publish: () => {} } });
    const name = s.name(`bc-${runtime}`);
    const python = runtime === 'python-flask';
    const folder = async (source: string) => {
      if (!python) return functionFolder(name, { 'index.ts': source }, { runtime });
      const dir = await fixtureFolder('flask', name, { runtime, entry: 'app.py' });
      await writeFile(join(dir, 'app.py'), source);
      return dir;
    };
    const broken = python ? 'def broken(:\n' : 'export default { fetch() { return new Response("x" } };\n';
    const failure = await packageAndBuild(activities, await folder(broken), name, 'v20260101-000000-0001').catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect((failure as ApplicationFailure).type).toBe('BuildFailed');

    expect((await s.docker.getImage(base).inspect()).Id).toBe(baseId);
    // Nothing of the failed build is left: no image has the base as its parent.
    const children = (await s.docker.listImages({ all: true })).filter((image) => image.ParentId === baseId);
    expect(children).toEqual([]);

    const good = python ? 'from flask import Flask\napp = Flask(__name__)\n' : answering('built');
    const built = await packageAndBuild(activities, await folder(good), name, 'v20260101-000000-0002');
    made.images.push(built.tag);
    expect((await s.docker.getImage(built.tag).inspect()).Id).toBeTruthy();
  });
});
