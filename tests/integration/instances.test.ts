import { beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { existsSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { LABELS } from '../../lib/names';
import { RUNTIMES } from '../../lib/runtimes';
import { sealedPathOf, socketPathOf, socketsRunDir } from '../../lib/sockets';
import type { FunctionState } from '../../lib/types';
import {
  answering,
  containersOf,
  deployFailure,
  deployFolder,
  deployText,
  fixtureFolder,
  functionFolder,
  invoke,
} from '../support/functions';
import { extraGateway, INTEGRATION_TIMEOUT_MS, stack, type TestStack } from '../support/stack';
import { waitFor } from '../support/wait';

setDefaultTimeout(INTEGRATION_TIMEOUT_MS);

let s: TestStack;
/** A bun function that takes over addresses: its container is removed before each crossing, so its next start reuses one. */
let other: string;
beforeAll(async () => {
  s = await stack();
  other = s.name('other');
  await deployText(s, other, 'the other function');
}, INTEGRATION_TIMEOUT_MS);

/** A function folder for the runtime: it answers `text` at every path, or (broken) fails to build. */
async function folderFor(runtime: string, name: string, text: string, broken = false): Promise<string> {
  if (runtime === 'python-flask') {
    const dir = await fixtureFolder('flask', name, { runtime, entry: 'app.py' });
    const source = broken
      ? 'def broken(:\n'
      : `from flask import Flask\napp = Flask(__name__)\n\n@app.get("/", defaults={"path": ""})\n@app.get("/<path:path>")\ndef index(path):\n    return ${JSON.stringify(text)}\n`;
    await writeFile(join(dir, 'app.py'), source);
    return dir;
  }
  const source = broken ? 'export default { fetch() { return new Response("x" } };\n' : answering(text);
  return functionFolder(name, { 'index.ts': source }, { runtime });
}

async function running(name: string) {
  const [container] = (await containersOf(s, name)).filter((c) => c.State === 'running');
  if (!container) throw new Error(`${name} has no running container`);
  const address = container.NetworkSettings?.Networks?.['plat-functions']?.IPAddress as string;
  return { id: container.Id, instanceId: container.Labels[LABELS.instance] as string, url: `http://${address}:8080` };
}

describe.each(Object.keys(RUNTIMES))('instances of a %s function', (runtime) => {
  let name: string;
  beforeAll(async () => {
    name = s.name(`own-${runtime}`);
    await deployFolder(s, await folderFor(runtime, name, `answered by ${runtime}`));
  }, INTEGRATION_TIMEOUT_MS);

  it('refuse a request meant for another instance, and serve one that names them or none', async () => {
    expect(await (await invoke(s, name)).text()).toBe(`answered by ${runtime}`);
    const { url, instanceId } = await running(name);
    const refused = await fetch(`${url}/`, { headers: { 'x-plat-instance': 'some-other-instance' } });
    expect(refused.status).toBe(421);
    expect(refused.headers.get('x-plat-refused')).toBe('instance');
    expect((await refused.json()).error.code).toBe('MISDIRECTED_REQUEST');
    // The health route is checked too: a start cannot mistake another container for its own.
    expect((await fetch(`${url}/_/health`, { headers: { 'x-plat-instance': 'some-other-instance', 'x-plat-probe': '1' } })).status).toBe(
      421,
    );
    expect(await (await fetch(`${url}/`, { headers: { 'x-plat-instance': instanceId } })).text()).toBe(`answered by ${runtime}`);
    expect(await (await fetch(`${url}/`)).text()).toBe(`answered by ${runtime}`);
  });

  it('serve their function on their own socket (Deno on TCP alone): no instance check, no platform routes there, gone with the container', async () => {
    expect(await (await invoke(s, name)).text()).toBe(`answered by ${runtime}`);
    const { id, instanceId } = await running(name);
    const socket = socketPathOf(s, instanceId) as string;
    const described = (await (await s.api.request(`/functions/${name}`)).json()) as { function: FunctionState };
    const listed = described.function.instances.find((instance) => instance.containerId === id);
    if (runtime === 'deno') {
      // Deno serves no socket (its bootstrap says why): no folder, reached over TCP alone, with the check above.
      expect(listed?.socket).toBeUndefined();
      expect(existsSync(dirname(socket))).toBe(false);
      return;
    }
    expect(listed?.socket).toBe(sealedPathOf(s, instanceId));
    // The folder is the container's alone: its user's, closed to everyone else on the host.
    const folder = statSync(dirname(socket));
    expect([folder.uid, folder.mode & 0o777]).toEqual([0, 0o700]);
    expect(await (await fetch('http://fn/', { unix: listed?.socket })).text()).toBe(`answered by ${runtime}`);
    // The path names the instance: a request there is the function's whatever it says, the health route too.
    const other = { 'x-plat-instance': 'some-other-instance', 'x-plat-probe': '1' };
    expect(await (await fetch('http://fn/_/health', { unix: listed?.socket, headers: other })).text()).toBe(`answered by ${runtime}`);
    await s.docker.getContainer(id).remove({ force: true });
    await waitFor(
      'the socket folder and link to go with its container',
      10_000,
      async () => !existsSync(dirname(socket)) && !existsSync(sealedPathOf(s, instanceId)),
    );
    expect(await (await invoke(s, name)).text()).toBe(`answered by ${runtime}`);
  });

  it('answer only their own function after a container is killed and another function takes its address', async () => {
    expect(await (await invoke(s, name)).text()).toBe(`answered by ${runtime}`);
    // The other function has no container, so its next start takes the first free address: this one's, once it dies.
    for (const c of await containersOf(s, other)) await s.docker.getContainer(c.Id).remove({ force: true });
    const killed = await running(name);
    await s.docker.getContainer(killed.id).kill();
    await waitFor('the container to stop', 10_000, async () => (await s.docker.getContainer(killed.id).inspect()).State.Running === false);

    expect(await (await invoke(s, other)).text()).toBe('the other function');
    for (let i = 0; i < 5; i++) {
      expect(await (await invoke(s, name)).text()).toBe(`answered by ${runtime}`);
      expect(await (await invoke(s, other)).text()).toBe('the other function');
    }
    expect((await running(name)).id).not.toBe(killed.id);
  });

  it('still deploy after a build that failed on a syntax error', async () => {
    const broken = s.name(`syntax-${runtime}`);
    const failure = await deployFailure(s, await folderFor(runtime, broken, '', true));
    expect(failure.code).toBe('BUILD_FAILED');
    const fresh = s.name(`after-${runtime}`);
    await deployFolder(s, await folderFor(runtime, fresh, 'built after a failure'));
    expect(await (await invoke(s, fresh)).text()).toBe('built after a failure');
  });
});

/** A function that goes after its socket folder once started: to put a symlink in its socket's place, or to fill it. */
const SWAPPER = `import { rmSync, symlinkSync, writeFileSync } from 'node:fs';
const SOCKET = '/run/plat/http.sock';
const attempt = (change) => { try { change(); return 'done'; } catch (error) { return error.code; } };
export default {
  fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === '/swap') return new Response(attempt(() => { rmSync(SOCKET); symlinkSync('/var/run/docker.sock', SOCKET); }));
    if (path === '/fill') return new Response(attempt(() => writeFileSync('/run/plat/fill', 'x'.repeat(1 << 20))));
    return new Response('its own answer');
  },
};
`;

describe('a function that goes after its socket', () => {
  it('can change nothing in its folder once started, so its requests reach it alone', async () => {
    const name = s.name('socket-swap');
    await deployFolder(s, await functionFolder(name, { 'index.ts': SWAPPER }));
    // Were the symlink made, the gateway (root) would send the function's requests to the engine.
    expect(await (await invoke(s, name, '/swap')).text()).toBe('EACCES');
    expect(await (await invoke(s, name, '/fill')).text()).toBe('EACCES');
    expect(await (await invoke(s, name, '/')).text()).toBe('its own answer');
    const { instanceId } = await running(name);
    const described = (await (await s.api.request(`/functions/${name}`)).json()) as { function: FunctionState };
    expect(described.function.instances[0]?.socket).toBe(sealedPathOf(s, instanceId));
  });
});

describe("a gateway that does not see the instances' sockets", () => {
  it('reaches them over TCP, and keeps the instance it found', async () => {
    const name = s.name('unseen');
    await deployText(s, name, 'answered over TCP');
    expect(await (await invoke(s, name)).text()).toBe('answered over TCP');
    const { id } = await running(name);
    // The same gateway in a mount namespace of its own, an empty folder over the sockets' run folder:
    // as a gateway in a container, or on a host, that does not share the worker's files.
    const hidden = [
      'unshare',
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      `mount -t tmpfs none ${socketsRunDir()} && exec "$0" "$@"`,
    ];
    const gateway = await extraGateway(s, {}, 'http', hidden);
    try {
      for (let i = 0; i < 5; i++) {
        const response = await fetch(`${gateway.url}/function/${name}`, { headers: { authorization: `Bearer ${s.token}` } });
        expect(`${response.status} ${await response.text()}`).toBe('200 answered over TCP');
      }
      expect((await containersOf(s, name)).map((c) => c.Id)).toEqual([id]);
      expect(await gateway.log()).toContain('such instances are reached over TCP');
    } finally {
      await gateway.stop();
    }
  });
});

describe('a container removed while it serves', () => {
  it.each(['GET', 'POST'])('is replaced on the next %s, which succeeds', async (method) => {
    const name = s.name(`removed-${method.toLowerCase()}`);
    await deployFolder(
      s,
      await functionFolder(name, {
        'index.ts': 'export default { async fetch(req: Request) { return new Response(req.method + " " + (await req.text())); } };\n',
      }),
    );
    const body = method === 'POST' ? 'payload' : undefined;
    expect(await (await invoke(s, name, '/', { method, body })).text()).toBe(`${method} ${body ?? ''}`);
    for (let round = 0; round < 3; round++) {
      const { id } = await running(name);
      await s.docker.getContainer(id).remove({ force: true });
      // No wait: the request right after the removal must be answered by a new container.
      const response = await invoke(s, name, '/', { method, body });
      expect(`${response.status} ${await response.text()}`).toBe(`200 ${method} ${body ?? ''}`);
      expect((await running(name)).id).not.toBe(id);
    }
  });
});
