import { beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { deployFailure, deployFolder, fixtureFolder, invoke, linesByRequest, sourceInRegistry } from '../support/functions';
import { INTEGRATION_TIMEOUT_MS, stack, type TestStack } from '../support/stack';

setDefaultTimeout(INTEGRATION_TIMEOUT_MS);

const JS_RUNTIMES = ['bun', 'deno', 'node'] as const;

let s: TestStack;
beforeAll(async () => {
  s = await stack();
}, INTEGRATION_TIMEOUT_MS);

describe.each(JS_RUNTIMES)('the fetch contract on %s', (runtime) => {
  let name: string;
  beforeAll(async () => {
    name = s.name(`contract-${runtime}`);
    await deployFolder(s, await fixtureFolder('contract', name, { runtime }));
  }, INTEGRATION_TIMEOUT_MS);

  it('passes the method, path, query string and request headers', async () => {
    const response = await invoke(s, name, '/echo/deeper?a=1&b=two%20words', { method: 'PATCH', headers: { 'x-custom': 'kept' } });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      method: 'PATCH',
      path: '/echo/deeper',
      query: { a: '1', b: 'two words' },
      headers: { 'x-custom': 'kept', 'content-type': '' },
    });
  });

  it('reads a JSON body', async () => {
    const response = await invoke(s, name, '/json', {
      method: 'POST',
      body: JSON.stringify({ numbers: [1, 2, 39] }),
      headers: { 'content-type': 'application/json' },
    });
    expect(await response.json()).toEqual({ sum: 42 });
  });

  it('reads a text body', async () => {
    const response = await invoke(s, name, '/text', { method: 'PUT', body: 'grüße, plat' });
    expect(response.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(await response.text()).toBe('GRÜSSE, PLAT');
  });

  it('round-trips a binary body byte for byte', async () => {
    const payload = crypto.getRandomValues(new Uint8Array(200_000));
    const response = await invoke(s, name, '/binary', { method: 'POST', body: payload });
    expect(response.headers.get('x-length')).toBe(String(payload.byteLength));
    expect(new Uint8Array(await response.arrayBuffer())).toEqual(payload);
  });

  it('takes a large upload (32 MiB)', async () => {
    const payload = new Uint8Array(32 * 1024 * 1024).map((_, i) => (i * 7) % 256);
    const expected = new Bun.CryptoHasher('sha256').update(payload).digest('hex');
    const response = await invoke(s, name, '/digest', { method: 'POST', body: payload });
    expect(await response.json()).toEqual({ length: payload.byteLength, sha256: expected });
  });

  it.each([201, 404, 418, 503])('keeps status %p and its headers', async (status) => {
    const response = await invoke(s, name, `/status/${status}`);
    expect(response.status).toBe(status);
    expect(response.headers.get('x-status')).toBe(String(status));
    expect(response.headers.get('x-plat-error')).toBeNull();
    expect(await response.text()).toBe(`status ${status}`);
  });

  it('keeps several set-cookie headers and a 204 without a body', async () => {
    const response = await invoke(s, name, '/headers');
    expect(response.status).toBe(204);
    expect(response.headers.getSetCookie()).toEqual(['a=1; Path=/', 'b=2; Path=/']);
    expect(response.headers.get('x-one')).toBe('1');
    expect(response.headers.get('cache-control')).toBe('no-store');
  });

  it('streams a response: the first chunk arrives before the second is written', async () => {
    const response = await invoke(s, name, '/stream');
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    const first = await reader.read();
    expect(decoder.decode(first.value)).toBe('first;');
    expect(await (await invoke(s, name, '/release')).text()).toBe('released');
    let rest = '';
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += decoder.decode(chunk.value);
    expect(rest).toBe('second');
  });

  it("ties what the handler logs to its request's id, for two requests at once", async () => {
    const lines = await linesByRequest(s, name, 3);
    for (const tag of ['a', 'b']) {
      expect(lines[tag]?.map((l) => [l.stream, l.text])).toEqual([
        ['stdout', `first ${tag}`],
        ['stderr', `second ${tag}`],
        ['stderr', `third ${tag}`],
      ]);
    }
  });

  it('answers 500 for an uncaught exception and keeps serving', async () => {
    const failed = await invoke(s, name, '/throw');
    expect(failed.status).toBe(500);
    expect(await failed.text()).toContain('thrown by the function');
    const after = await invoke(s, name, '/echo');
    expect(after.status).toBe(200);
  });
});

describe.each(JS_RUNTIMES)('a Hono app with package.json dependencies on %s', (runtime) => {
  it('installs hono at package time and serves the app', async () => {
    const name = s.name(`hono-${runtime}`);
    await deployFolder(s, await fixtureFolder('hono', name, { runtime }));
    expect(await (await invoke(s, name)).text()).toBe('hono says hi');
    expect(await (await invoke(s, name, '/users/7')).json()).toEqual({ id: '7', framework: 'hono' });
  });
});

describe('builds that reuse work', () => {
  it('keeps the dependency layer on a code-only redeploy', async () => {
    const name = s.name('layers');
    const dir = await fixtureFolder('hono', name, { runtime: 'bun' });
    const first = await deployFolder(s, dir);
    await writeFile(join(dir, 'index.ts'), "import { Hono } from 'hono';\nexport default new Hono().get('/', (c) => c.text('changed'));\n");
    const second = await deployFolder(s, dir);
    expect(await (await invoke(s, name)).text()).toBe('changed');

    const layers = async (image: string) => (await s.docker.getImage(image).inspect()).RootFS.Layers ?? [];
    const [before, after] = await Promise.all([layers(first.image), layers(second.image)]);
    // Layers, last first: RUN (check), COPY app/, COPY deps/, COPY plat/, then the base image.
    expect(after.length).toBe(before.length);
    expect(after.at(-3)).toBe(before.at(-3) as string);
    expect(after.at(-2)).not.toBe(before.at(-2) as string);
  });
});

describe('the python-flask runtime', () => {
  it('installs pinned Flask and Werkzeug from requirements.txt and serves the app', async () => {
    const name = s.name('flask');
    await deployFolder(s, await fixtureFolder('flask', name, { runtime: 'python-flask', entry: 'app.py' }));
    expect(await (await invoke(s, name, '/?name=%3Cplat%3E')).text()).toBe('hello &lt;plat&gt;');
    const sum = await invoke(s, name, '/sum', {
      method: 'POST',
      body: JSON.stringify({ numbers: [20, 22] }),
      headers: { 'content-type': 'application/json' },
    });
    expect(await sum.json()).toEqual({ sum: 42 });
    expect((await invoke(s, name, '/boom')).status).toBe(500);
    expect((await invoke(s, name)).status).toBe(200);

    // print and logging alike are tied to the request's id, with two requests at once.
    const lines = await linesByRequest(s, name, 4);
    for (const tag of ['a', 'b']) {
      expect(lines[tag]?.slice(0, 3).map((l) => [l.stream, l.text])).toEqual([
        ['stdout', `first ${tag}`],
        ['stderr', `second ${tag}`],
        ['stderr', `third ${tag}`],
      ]);
      // Flask's own handler: "[time] WARNING in app: logged by a".
      expect(lines[tag]?.[3]?.text).toEndWith(`WARNING in app: logged by ${tag}`);
    }
  });

  it('fails the deploy with pip’s own message when a requirement cannot be installed', async () => {
    const name = s.name('flask-bad');
    const dir = await fixtureFolder('flask', name, { runtime: 'python-flask' });
    await writeFile(join(dir, 'requirements.txt'), 'Flask==3.0.3\nplat-no-such-package-anywhere==1.0\n');
    const failure = await deployFailure(s, dir);
    expect(failure.code).toBe('DEPENDENCY_INSTALL_FAILED');
    expect(failure.message).toContain('No matching distribution found for plat-no-such-package-anywhere==1.0');
    // A failed deploy leaves nothing behind, its uploaded source included.
    expect(await sourceInRegistry(name, dir)).toBe(false);
  });

  it.each([
    ['-r /etc/passwd', '-r'],
    ['--index-url http://127.0.0.1:1/simple', '--index-url'],
    ['pkg @ file:///etc/passwd', 'paths, URLs'],
    ['/etc/passwd', 'paths, URLs'],
  ])('fails the deploy on the line %p, naming it and quoting no host file', async (line, what) => {
    const name = s.name('flask-hostile');
    const dir = await fixtureFolder('flask', name, { runtime: 'python-flask' });
    await writeFile(join(dir, 'requirements.txt'), `Flask==3.0.3\n${line}\n`);
    const failure = await deployFailure(s, dir);
    expect(failure.code).toBe('DEPENDENCY_INSTALL_FAILED');
    expect(failure.message).toContain('requirements.txt line 2');
    expect(failure.message).toContain(what);
    expect(failure.message).not.toContain('root:x:0:0');
    expect(await sourceInRegistry(name, dir)).toBe(false);
  });
});

describe('package.json dependencies that could reach the host', () => {
  it.each(['file:/etc', 'link:../x', 'workspace:*', 'git+https://github.com/a/b.git', 'http://127.0.0.1:5001/v2/'])(
    'fail the deploy on %p, naming the entry',
    async (spec) => {
      const name = s.name('js-hostile');
      const dir = await fixtureFolder('hono', name, { runtime: 'bun' });
      await writeFile(join(dir, 'package.json'), JSON.stringify({ dependencies: { hono: '^4.6.0', s: spec } }));
      const failure = await deployFailure(s, dir);
      expect(failure.code).toBe('DEPENDENCY_INSTALL_FAILED');
      expect(failure.message).toContain('dependencies.s');
      expect(await sourceInRegistry(name, dir)).toBe(false);
    },
  );
});

describe('lockfiles that point the installer elsewhere', () => {
  const lock = (resolved: string) =>
    JSON.stringify({
      name: 'f',
      lockfileVersion: 3,
      requires: true,
      packages: {
        '': { dependencies: { hono: '^4.6.0' } },
        'node_modules/hono': { version: '4.6.0', resolved, integrity: 'sha512-AAAA' },
      },
    });
  it.each([
    ['package-lock.json', lock('http://127.0.0.1:5001/v2/plat/fn-x/blobs/sha256:00'), 'node_modules/hono'],
    ['package-lock.json', lock('file:/etc'), 'node_modules/hono'],
    ['bun.lock', '{ "lockfileVersion": 1, "packages": { "hono": ["hono@file:/etc", "", {}, ""] } }', 'hono'],
    ['bun.lockb', 'binary', 'bun.lock'],
  ])('fail the deploy on a %s entry, before anything is fetched', async (file, text, named) => {
    const name = s.name('js-lock');
    const dir = await fixtureFolder('hono', name, { runtime: 'bun' });
    await writeFile(join(dir, file), text);
    const failure = await deployFailure(s, dir);
    expect(failure.code).toBe('DEPENDENCY_INSTALL_FAILED');
    expect(failure.message).toContain(file);
    expect(failure.message).toContain(named);
    expect(await sourceInRegistry(name, dir)).toBe(false);
  });
});

describe('JS dependencies that cannot be resolved', () => {
  it('fail the deploy with the installer’s message', async () => {
    const name = s.name('js-bad');
    const dir = await fixtureFolder('hono', name, { runtime: 'node' });
    await writeFile(join(dir, 'package.json'), JSON.stringify({ dependencies: { 'plat-no-such-package-anywhere': '1.0.0' } }));
    const failure = await deployFailure(s, dir);
    expect(failure.code).toBe('DEPENDENCY_INSTALL_FAILED');
    expect(failure.message).toContain('plat-no-such-package-anywhere');
  });
});
