import { beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { packFolder } from '../../cli/pack';
import { Header } from 'tar';
import {
  answering,
  containersOf,
  deployForm,
  deployFolder,
  deployText,
  functionFolder,
  invoke,
  makeIdle,
  plat,
  sourceInRegistry,
} from '../support/functions';
import { INTEGRATION_TIMEOUT_MS, stack, type TestStack } from '../support/stack';
import { waitFor } from '../support/wait';
import { repositoryPath } from '../../lib/names';
import { loadSettings } from '../../lib/settings';
import type { FunctionState, FunctionVersion, Instance } from '../../lib/types';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createActivities } from '../../activities';
import { RegistryApi } from '../../lib/registry-api';
import { instanceGoneSignal } from '../../workflows/definitions';

setDefaultTimeout(INTEGRATION_TIMEOUT_MS);

let s: TestStack;
beforeAll(async () => {
  s = await stack();
}, INTEGRATION_TIMEOUT_MS);

describe('gateway errors', () => {
  it('answers 404 JSON for a function that does not exist', async () => {
    const response = await invoke(s, s.name('nothing-here'));
    expect(response.status).toBe(404);
    expect(response.headers.get('content-type')).toContain('application/json');
    expect(await response.json()).toEqual({
      error: { code: 'FUNCTION_NOT_FOUND', message: `function ${s.name('nothing-here')} not found` },
    });
  });

  const protectedRoutes: Array<[string, string]> = [
    ['GET', '/functions'],
    ['POST', '/functions'],
    ['GET', '/functions/some-fn'],
    ['DELETE', '/functions/some-fn'],
    ['GET', '/functions/some-fn/deployments/v20260101-000000-abcd'],
    ['GET', '/function/some-fn'],
    ['POST', '/function/some-fn/deep/path?q=1'],
  ];
  const badCredentials: Array<[string, Record<string, string>]> = [
    ['no token', {}],
    ['a wrong token', { authorization: 'Bearer not-the-token' }],
    ['a malformed header', { authorization: 'Basic Zm9vOmJhcg==' }],
  ];

  for (const [method, path] of protectedRoutes) {
    for (const [label, headers] of badCredentials) {
      it(`refuses ${method} ${path} with ${label}: 401`, async () => {
        const response = await fetch(`${s.apiUrl}${path}`, { method, headers });
        expect(response.status).toBe(401);
        expect(response.headers.get('www-authenticate')).toBe('Bearer');
        expect((await response.json()).error.code).toBe('UNAUTHORIZED');
      });
    }
  }

  it('answers oversized headers and bodies in the JSON error shape, before any route', async () => {
    const big = await fetch(`${s.apiUrl}/functions`, { headers: { authorization: `Bearer ${'t'.repeat(1024 * 1024)}` } });
    expect(big.status).toBe(431);
    expect(((await big.json()) as { error: { code: string } }).error.code).toBe('HEADERS_TOO_LARGE');
    const many = await fetch(`${s.apiUrl}/function/some-fn`, { headers: { 'x-filler': 'f'.repeat(70 * 1024) } });
    expect(many.status).toBe(431);
    // A body announced larger than the limit is refused on its headers, before a byte of it is read.
    const { connect } = await import('node:net');
    const port = Number(new URL(s.apiUrl).port);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.write(
          `POST /function/some-fn HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.token}\r\nContent-Length: ${100 * 1024 * 1024}\r\n\r\n`,
        );
      });
      let text = '';
      socket.on('data', (chunk) => {
        text += chunk.toString();
        if (text.includes('}}')) {
          socket.destroy();
          resolve(text);
        }
      });
      socket.on('error', reject);
      setTimeout(() => {
        socket.destroy();
        resolve(text);
      }, 5000);
    });
    expect(answer).toStartWith('HTTP/1.1 413');
    expect(answer).toContain('"code":"PAYLOAD_TOO_LARGE"');
  });

  it('serves /healthz without a token', async () => {
    const response = await fetch(`${s.apiUrl}/healthz`);
    expect(response.status).toBe(200);
  });

  it('refuses an invalid function.json, listing every problem', async () => {
    const form = new FormData();
    form.set('function', JSON.stringify({ name: 'Bad Name', runtime: 'cobol', memory: 1 }));
    form.set('archive', new Blob([new Uint8Array([0x1f, 0x8b, 0, 0])]));
    const response = await fetch(`${s.apiUrl}/functions`, { method: 'POST', body: form, headers: { authorization: `Bearer ${s.token}` } });
    expect(response.status).toBe(400);
    const { error } = await response.json();
    expect(error.code).toBe('INVALID_FUNCTION_CONFIG');
    expect(error.message).toContain('3 problems');
    expect(error.message).toContain('runtime "cobol" is not supported');
  });

  it('fails a deploy whose archive is not an archive, without building', async () => {
    const form = new FormData();
    form.set('function', JSON.stringify({ name: s.name('junk') }));
    form.set('archive', new Blob(['this is not a tarball']));
    const response = await fetch(`${s.apiUrl}/functions`, { method: 'POST', body: form, headers: { authorization: `Bearer ${s.token}` } });
    expect(response.status).toBe(400);
    expect((await response.json()).error.code).toBe('INVALID_ARCHIVE');
  });
});

describe('bad input', () => {
  const auth = () => ({ authorization: `Bearer ${s.token}` });

  it('refuses an archive with a file that is also a folder at once, before anything is stored or started', async () => {
    const name = s.name('clash');
    // Packed by hand: no tool that packs a folder writes `lib` as a file and as a folder.
    const tar = Buffer.concat([
      tarEntry('index.ts', answering('never')),
      tarEntry('lib/x.ts', 'export {};\n'),
      tarEntry('lib', 'a file'),
      Buffer.alloc(1024),
    ]);
    const form = new FormData();
    form.set('function', JSON.stringify({ name }));
    form.set('archive', new Blob([Bun.gzipSync(tar) as Uint8Array<ArrayBuffer>]));
    const response = await fetch(`${s.apiUrl}/functions`, { method: 'POST', body: form, headers: auth() });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      error: { code: 'INVALID_ARCHIVE', message: 'archive entry "lib" is a file, but "lib/x.ts" puts it in a folder of that name' },
    });
    // No deploy was started for it (the worker, which checks again as it unpacks, never saw it).
    const started = await s.temporal.workflow.count(`PlatFunction = '${name}'`);
    expect(started.count).toBe(0);
  });

  it.each([
    ['an env too large to start a process with', { FOO: 'x'.repeat(40 * 1024) }, 'names and values together may take 32 KiB'],
    ['a function.json too large to travel in Temporal', { FOO: 'x'.repeat(3 * 1024 * 1024) }, 'function.json is larger than 64 KiB'],
  ])('refuses %s with 400, leaving nothing behind', async (_label, env, message) => {
    const name = s.name('bigenv');
    const dir = await functionFolder(name, { 'index.ts': answering('never') }, { env });
    const response = await fetch(`${s.apiUrl}/functions`, { method: 'POST', body: await deployForm(dir), headers: auth() });
    expect(response.status).toBe(400);
    const { error } = await response.json();
    expect(error.code).toBe('INVALID_FUNCTION_CONFIG');
    expect(error.message).toContain(message);
    expect(await sourceInRegistry(name, dir)).toBe(false);
  });

  it('refuses a deployment status with an invalid function name', async () => {
    const response = await fetch(`${s.apiUrl}/functions/Not_A_Name/deployments/v20260101-000000-abcd`, { headers: auth() });
    expect(response.status).toBe(400);
    expect((await response.json()).error.code).toBe('BAD_REQUEST');
  });
});

/** One tar entry (header and body, padded): appended to an archive to make it clash. */
function tarEntry(path: string, body: string): Buffer {
  const data = Buffer.from(body);
  const header = Buffer.alloc(512);
  new Header({ path, mode: 0o644, size: data.length, type: 'File', mtime: new Date(0) }).encode(header, 0);
  return Buffer.concat([header, data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

describe('deploying without waiting', () => {
  it('answers 202 with the deployment, whose status can be followed to the end', async () => {
    const name = s.name('async');
    const dir = await functionFolder(name, { 'index.ts': answering('deployed in the background') });
    const { archive } = await packFolder(dir);
    const form = new FormData();
    form.set('function', await Bun.file(`${dir}/function.json`).text());
    form.set('archive', new Blob([archive as Uint8Array<ArrayBuffer>]));
    const response = await fetch(`${s.apiUrl}/functions`, { method: 'POST', body: form, headers: { authorization: `Bearer ${s.token}` } });
    expect(response.status).toBe(202);
    const { deployment } = await response.json();
    expect(deployment).toMatchObject({ name, status: 'started', workflowId: `deploy/${name}/${deployment.version}` });
    const location = response.headers.get('location');
    expect(location).toBe(`/functions/${name}/deployments/${deployment.version}`);

    let status: { status: string; steps: Array<{ step: string; status: string }>; result?: { version: string } } | undefined;
    await waitFor(
      'the deploy to complete',
      120_000,
      async () => {
        status = await s.api.json(location as string);
        return status?.status !== 'RUNNING';
      },
      200,
    );
    expect(status?.status).toBe('COMPLETED');
    expect(status?.steps.map((step) => `${step.step}:${step.status}`)).toEqual([
      'package:done',
      'build:done',
      'push:done',
      'register:done',
    ]);
    expect(status?.result?.version).toBe(deployment.version);
    expect(await (await invoke(s, name)).text()).toBe('deployed in the background');
  });
});

describe('serving functions', () => {
  it('passes a throwing function’s 500 through and keeps serving it and others', async () => {
    const thrower = s.name('thrower');
    const steady = s.name('steady');
    await deployFolder(
      s,
      await functionFolder(thrower, {
        'index.ts': `export default { fetch(req: Request) { if (new URL(req.url).pathname === '/ok') return new Response('fine'); throw new Error('boom in user code'); } };\n`,
      }),
    );
    await deployText(s, steady, 'steady answer');

    const failed = await invoke(s, thrower);
    expect(failed.status).toBe(500);
    expect(failed.headers.get('x-plat-error')).toBeNull();
    expect(await failed.text()).toContain('boom in user code');

    expect(await (await invoke(s, thrower, '/ok')).text()).toBe('fine');
    const other = await invoke(s, steady);
    expect(other.status).toBe(200);
    expect(await other.text()).toBe('steady answer');
  });

  it('keeps status, headers and a streamed body intact both ways', async () => {
    const name = s.name('echo');
    await deployFolder(
      s,
      await functionFolder(name, {
        'index.ts': `export default { async fetch(req: Request) {
  const body = new Uint8Array(await req.arrayBuffer());
  return new Response(body, { status: 201, headers: { 'x-echo-method': req.method, 'x-echo-header': req.headers.get('x-test') ?? '', 'x-saw-auth': String(req.headers.has('authorization')), 'content-type': 'application/octet-stream' } });
} };\n`,
      }),
    );
    const payload = new Uint8Array(3 * 1024 * 1024).map((_, i) => i % 251);
    const response = await invoke(s, name, '/upload?x=1', { method: 'PUT', body: payload, headers: { 'x-test': 'kept' } });
    expect(response.status).toBe(201);
    expect(response.headers.get('x-echo-method')).toBe('PUT');
    expect(response.headers.get('x-echo-header')).toBe('kept');
    expect(response.headers.get('x-saw-auth')).toBe('false');
    expect(new Uint8Array(await response.arrayBuffer())).toEqual(payload);
  });

  it("keeps the platform's headers and routes the platform's own", async () => {
    const name = s.name('spoof');
    await deployFolder(
      s,
      await functionFolder(name, {
        'index.ts': `export default { fetch(req: Request) {
  const seen = [...req.headers.keys()].filter((k) => k.startsWith('x-plat-') && k !== 'x-plat-instance');
  return new Response('mine at ' + new URL(req.url).pathname + ' saw ' + JSON.stringify(seen), {
    status: 503,
    headers: { 'x-plat-error': 'PLATFORM_UNAVAILABLE', 'x-plat-refused': 'instance', 'x-kept': 'yes' },
  });
} };\n`,
      }),
    );
    // The bootstrap's routes are not reachable through the gateway: /_/health is the function's path.
    const response = await invoke(s, name, '/_/health', { headers: { 'x-plat-probe': '1', 'x-plat-error': 'x' } });
    expect(response.status).toBe(503);
    expect(await response.text()).toBe('mine at /_/health saw []');
    // A function cannot pass its answer off as the platform's error.
    expect(response.headers.get('x-plat-error')).toBeNull();
    expect(response.headers.get('x-plat-refused')).toBeNull();
    expect(response.headers.get('x-kept')).toBe('yes');
    const cli = await plat(s, '.', 'invoke', name, '/x');
    expect(cli.stdout).toContain('mine at /x');
    expect(cli.code).toBe(1);
  });

  /** A function that says whether it can open a connection to `?target=host:port`: deployed once, for the isolation tests. */
  let probe: string | undefined;
  async function probeFunction(): Promise<string> {
    if (probe) return probe;
    const name = s.name('probe');
    await deployFolder(
      s,
      await functionFolder(name, {
        'index.ts': `export default { async fetch(req: Request) {
  const target = new URL(req.url).searchParams.get('target');
  try {
    await fetch('http://' + target + '/', { signal: AbortSignal.timeout(2000) });
    return new Response('reachable');
  } catch {
    return new Response('unreachable');
  }
} };\n`,
      }),
    );
    probe = name;
    return name;
  }
  /** A function's container's address on the functions' bridge. */
  async function bridgeAddress(name: string): Promise<string | undefined> {
    const [container] = await containersOf(s, name);
    return (await s.docker.getContainer(container?.Id as string).inspect()).NetworkSettings.Networks['plat-functions']?.IPAddress;
  }

  it('keeps a function from reaching a server the host binds on 0.0.0.0', async () => {
    const probe = await probeFunction();
    const server = Bun.serve({ hostname: '0.0.0.0', port: 0, fetch: () => new Response('the host answers') });
    try {
      // The server does answer on every address of the host, the bridge's included...
      const network = await s.docker.getNetwork('plat-functions').inspect();
      const hostAddress = network.IPAM?.Config?.[0]?.Gateway as string;
      expect(await (await fetch(`http://${hostAddress}:${server.port}/`)).text()).toBe('the host answers');
      // ...and the function reaches its own address (so what follows is the rules' doing), not the host's.
      expect(await (await invoke(s, probe, `/?target=${await bridgeAddress(probe)}:8080`)).text()).toBe('reachable');
      expect(await (await invoke(s, probe, `/?target=${hostAddress}:${server.port}`)).text()).toBe('unreachable');
    } finally {
      server.stop(true);
    }
  });

  it('puts a function with "network": "none" on a bridge that forwards nothing out, and still serves it', async () => {
    const name = s.name('offline');
    await deployFolder(s, await functionFolder(name, { 'index.ts': answering('offline but served') }, { network: 'none' }));
    expect(await (await invoke(s, name)).text()).toBe('offline but served');
    const [container] = await containersOf(s, name);
    const info = await s.docker.getContainer(container?.Id as string).inspect();
    expect(Object.keys(info.NetworkSettings.Networks)).toEqual(['plat-functions-internal']);
    // The engine forwards nothing out of an internal network: no route beyond its bridge.
    expect((await s.docker.getNetwork('plat-functions-internal').inspect()).Internal).toBe(true);
  });

  it('keeps a function from reaching another function’s container', async () => {
    const probe = await probeFunction();
    const target = s.name('target');
    await deployText(s, target, 'target');
    expect(await (await invoke(s, target)).text()).toBe('target');
    expect((await invoke(s, probe, '/?target=127.0.0.1:8080')).status).toBe(200);
    // The probe reaches its own address (so a failure below is the network's doing), not the target's.
    expect(await (await invoke(s, probe, `/?target=${await bridgeAddress(probe)}:8080`)).text()).toBe('reachable');
    expect(await (await invoke(s, probe, `/?target=${await bridgeAddress(target)}:8080`)).text()).toBe('unreachable');
  });

  it('starts exactly one container for many concurrent first requests', async () => {
    const name = s.name('burst');
    await deployText(s, name, 'burst');
    await makeIdle(s, name);
    const answers = await Promise.all(Array.from({ length: 12 }, () => invoke(s, name).then((r) => r.text())));
    expect(answers).toEqual(Array(12).fill('burst'));
    expect(await containersOf(s, name)).toHaveLength(1);
  });

  it('serves the new code right after a redeploy, and stops the old version', async () => {
    const name = s.name('redeploy');
    const first = await deployText(s, name, 'first version');
    expect(await (await invoke(s, name)).text()).toBe('first version');

    const second = await deployText(s, name, 'second version');
    expect(second.version).not.toBe(first.version);
    expect(await (await invoke(s, name)).text()).toBe('second version');
    // The replaced version's container is stopped once gateways have had the time to move on.
    await waitFor('the first version to be retired', 30_000, async () =>
      (await containersOf(s, name)).every((c) => c.Labels['dev.plat.version'] === second.version),
    );
    expect((await containersOf(s, name)).map((c) => c.Labels['dev.plat.version'])).toEqual([second.version]);
  });

  it('redeploys a serving function without failing a request or making one wait for a cold start', async () => {
    const name = s.name('nodowntime');
    await deployText(s, name, 'before');
    expect(await (await invoke(s, name)).text()).toBe('before');

    // Requests with a body, one after another, all through the redeploy and the old version's
    // retirement: a body cannot be replayed, so no retry can hide a failure.
    const answers: string[] = [];
    let slowest = 0;
    let running = true;
    const traffic = (async () => {
      while (running) {
        const started = performance.now();
        const response = await invoke(s, name, '/', { method: 'POST', body: 'payload' });
        answers.push(`${response.status} ${await response.text()}`);
        slowest = Math.max(slowest, performance.now() - started);
      }
    })();
    const after = await deployText(s, name, 'after');
    const { function: state } = await s.api.json<{ function: FunctionState }>(`/functions/${name}`);
    expect(state.instances.map((i) => i.version)).toEqual([after.version]);
    await waitFor('the old version to be retired', 30_000, async () =>
      (await containersOf(s, name)).every((c) => c.Labels['dev.plat.version'] === after.version),
    );
    running = false;
    await traffic;

    expect(answers.filter((a) => a !== '200 before' && a !== '200 after')).toEqual([]);
    expect(answers.at(-1)).toBe('200 after');
    // The switch happened on a running container: no request waited for a cold start.
    expect(answers.length).toBeGreaterThan(10);
    expect(slowest).toBeLessThan(5000);
  });

  it('keeps the serving version when the new one cannot start, and leaves no trace of it', async () => {
    const name = s.name('nostart');
    await deployText(s, name, 'still serving');
    expect(await (await invoke(s, name)).text()).toBe('still serving');

    const broken = await functionFolder(name, {
      'index.ts': 'throw new Error("SECRET_KEY is not set");\nexport default { fetch() { return new Response("never"); } };\n',
    });
    const failure = await deployFolder(s, broken).then(
      () => undefined,
      (error: Error & { code?: string }) => error,
    );
    expect(failure?.code).toBe('START_FAILED');
    expect(failure?.message).toContain('SECRET_KEY is not set');

    expect(await (await invoke(s, name)).text()).toBe('still serving');
    const { function: state } = await s.api.json<{ function: FunctionState }>(`/functions/${name}`);
    expect(state.versions).toHaveLength(1);
    const containers = await containersOf(s, name);
    expect(containers.map((c) => c.Labels['dev.plat.version'])).toEqual([state.activeVersion as string]);
    const tags = await fetch(`http://${loadSettings().registry}/v2/${repositoryPath(name)}/tags/list`).then((r) => r.json());
    // The serving version's image and source; nothing of the one that could not start.
    expect(tags.tags.sort()).toEqual([`source-${state.activeVersion}`, state.activeVersion as string]);
    expect(await sourceInRegistry(name, broken)).toBe(false);
  });

  it('removes a function: 404 afterwards, its containers and images gone', async () => {
    const name = s.name('doomed');
    await deployText(s, name, 'soon gone');
    expect((await invoke(s, name)).status).toBe(200);
    expect(await containersOf(s, name)).toHaveLength(1);

    const removed = await s.api.json<{ removed: { removedContainers: number } }>(`/functions/${name}`, { method: 'DELETE' });
    expect(removed.removed.removedContainers).toBe(1);

    const after = await invoke(s, name);
    expect(after.status).toBe(404);
    expect((await after.json()).error.code).toBe('FUNCTION_NOT_FOUND');
    expect(await containersOf(s, name)).toHaveLength(0);
    expect(await s.docker.listImages({ filters: { label: [`dev.plat.function=${name}`] } })).toHaveLength(0);
    const describe = await s.api.request(`/functions/${name}`);
    expect(describe.status).toBe(404);
  });

  it('fails a deploy with a syntax error, quoting it, while the previous version keeps serving', async () => {
    const name = s.name('syntax');
    const good = await functionFolder(name, { 'index.ts': answering('good version') });
    await deployFolder(s, good);
    expect(await (await invoke(s, name)).text()).toBe('good version');
    expect(await sourceInRegistry(name, good)).toBe(true);

    const broken = await functionFolder(name, { 'index.ts': 'export default { fetch() { return new Response("x" } };\n' });
    const failure = await deployFolder(s, broken).then(
      () => undefined,
      (error: Error & { code?: string }) => error,
    );
    expect(failure?.code).toBe('BUILD_FAILED');
    expect(failure?.message).toContain('index.ts:1');
    expect(failure?.message).toMatch(/Expected "\)" but found "}"/);

    expect(await (await invoke(s, name)).text()).toBe('good version');
    const { function: state } = await s.api.json<{ function: { versions: unknown[] } }>(`/functions/${name}`);
    expect(state.versions).toHaveLength(1);
    expect(await sourceInRegistry(name, broken)).toBe(false);
  });

  it('adopts a running container that the function entity lost track of, instead of starting another', async () => {
    const name = s.name('adopt');
    await deployText(s, name, 'adopted');
    expect(await (await invoke(s, name)).text()).toBe('adopted');
    const [container] = await containersOf(s, name);
    const instances = async () =>
      (await s.api.json<{ function: FunctionState }>(`/functions/${name}`)).function.instances.map((i) => i.containerId);
    expect(await instances()).toEqual([container?.Id as string]);

    await s.temporal.workflow.getHandle(`function/${name}`).signal(instanceGoneSignal, container?.Id as string);
    await waitFor('the entity to forget the instance', 10_000, async () => (await instances()).length === 0);
    // The gateway drops its route on its next revalidation; the request after that cold-starts,
    // which finds the running container and reports it again.
    await waitFor(
      'the instance to be listed again',
      20_000,
      async () => {
        expect(await (await invoke(s, name)).text()).toBe('adopted');
        return (await instances()).length > 0;
      },
      250,
    );
    expect(await instances()).toEqual([container?.Id as string]);
    expect((await containersOf(s, name)).map((c) => c.Id)).toEqual([container?.Id as string]);
  });

  it('keeps the container a start made when the start runs again (a worker crash), instead of adopting and then removing it', async () => {
    const name = s.name('relaunch');
    await deployText(s, name, 'relaunched');
    expect(await (await invoke(s, name)).text()).toBe('relaunched');
    const { function: state } = await s.api.json<{ function: FunctionState }>(`/functions/${name}`);
    const instance = state.instances[0] as Instance;
    const version = state.versions.find((v) => v.version === instance.version) as FunctionVersion;
    // The cold start's launch run again with the same instance id, as Temporal does when the worker
    // that ran it died before it reported: the container it made is running already.
    const activities = createActivities({
      docker: s.docker,
      registry: new RegistryApi(loadSettings().registry),
      temporal: s.temporal,
      settings: { ...loadSettings(), taskQueue: s.taskQueue },
      events: { publish: () => {} },
    });
    const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
    const again = (await env.run(activities.launchInstance, {
      name,
      version,
      instanceId: instance.instanceId,
      adopt: true,
      timeoutMs: 30_000,
    })) as Instance;
    expect(again.containerId).toBe(instance.containerId);
    const containers = await containersOf(s, name);
    expect(containers.map((c) => [c.Id, c.State])).toEqual([[instance.containerId, 'running']]);
    expect(await (await invoke(s, name)).text()).toBe('relaunched');
  });

  it('starts the function again after its container dies, and clears the dead one away', async () => {
    const name = s.name('phoenix');
    await deployText(s, name, 'alive');
    expect(await (await invoke(s, name)).text()).toBe('alive');
    const [container] = await containersOf(s, name);
    await s.docker.getContainer(container?.Id as string).kill();
    await waitFor('the container to stop', 10_000, async () => (await containersOf(s, name))[0]?.State === 'exited');

    expect(await (await invoke(s, name)).text()).toBe('alive');
    const running = (await containersOf(s, name)).filter((c) => c.State === 'running');
    expect(running).toHaveLength(1);
    expect(running[0]?.Id).not.toBe(container?.Id);
    // The worker removes the dead container once its grace period (2 s in tests) is over.
    await waitFor('the dead container to be removed', 20_000, async () => (await containersOf(s, name)).length === 1);
    expect((await containersOf(s, name)).map((c) => c.Id)).toEqual([running[0]?.Id as string]);
  });
});
