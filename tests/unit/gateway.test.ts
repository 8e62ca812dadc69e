import { describe, expect, it } from 'bun:test';
import { Client, Connection } from '@temporalio/client';
import { RegistryApi } from '../../lib/registry-api';
import { createTokenCheck } from '../../gateway/auth';
import { parseHead } from '../../gateway/invoke/front';
import { createApp } from '../../gateway/app';
import { isForwardedAnswerHeader, readRequestHeaders } from '../../gateway/invoke/headers';
import { functionPath } from '../../gateway/invoke/service';
import { connectTemporal } from '../../gateway/temporal';
import { isTemporalUnreachable, toPlatError } from '../../gateway/temporal-errors';
import { PlatError } from '../../lib/errors';
import { loadSettings } from '../../lib/settings';
import { freePort } from '../support/wait';

describe('token check', () => {
  const check = createTokenCheck('s3cret');
  const withHeader = (value?: string) => ({ request: new Request('http://x/', { headers: value ? { authorization: value } : {} }) });
  it('accepts the token', () => {
    expect(() => check(withHeader('Bearer s3cret'))).not.toThrow();
  });
  it.each([undefined, 'Bearer', 'Bearer s3cre', 'Bearer s3cret2', 'Basic s3cret', 's3cret'])('refuses %p', (header) => {
    expect(() => check(withHeader(header))).toThrow(PlatError);
  });
  it('answers alike when a token comes again (its answer is kept)', () => {
    for (let i = 0; i < 3; i++) {
      expect(() => check(withHeader('Bearer s3cret'))).not.toThrow();
      expect(() => check(withHeader('Bearer s3cret2'))).toThrow(PlatError);
    }
  });
});

describe('proxy headers', () => {
  it('drops hop-by-hop headers, the platform token and x-plat-*, adds forwarding headers and the request id, keeps the rest', () => {
    const incoming = new Headers({
      authorization: 'Bearer t',
      connection: 'keep-alive',
      'x-custom': '1',
      host: 'gw:8080',
      'accept-encoding': 'gzip',
      'x-forwarded-for': '192.0.2.1',
      'x-plat-instance': 'forged',
      'content-length': '12',
    });
    const heads = readRequestHeaders(incoming, '10.1.2.3', 'http');
    const out = Object.fromEntries(
      heads.lines
        .split('\r\n')
        .filter(Boolean)
        .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)]),
    );
    expect(Object.keys(out).sort()).toEqual([
      'accept-encoding',
      'x-custom',
      'x-forwarded-for',
      'x-forwarded-host',
      'x-forwarded-proto',
      'x-request-id',
    ]);
    expect(out['x-forwarded-for']).toBe('192.0.2.1, 10.1.2.3');
    expect(out['x-forwarded-host']).toBe('gw:8080');
    expect(out['x-forwarded-proto']).toBe('http');
    expect(out['x-request-id']).toBe(heads.requestId);
    expect(heads.token).toBe('t');
    expect(heads.contentLength).toBe(12);
    expect(heads.bytes).toBe([...incoming].reduce((n, [k, v]) => n + k.length + v.length + 4, 0));
  });
  it('keeps a well-formed request id, and replaces one that is not', () => {
    expect(readRequestHeaders(new Headers({ 'x-request-id': 'abc-1' }), undefined, 'https').requestId).toBe('abc-1');
    expect(readRequestHeaders(new Headers({ 'x-request-id': 'bad id\u0001' }), undefined, 'https').requestId).toMatch(/^[0-9a-f-]{36}$/);
  });
  it('passes none of the answer’s hop-by-hop headers or x-plat-* on, and keeps its encoding', () => {
    const names = ['content-encoding', 'content-length', 'x-a', 'transfer-encoding', 'connection', 'x-plat-error', 'keep-alive'];
    expect(names.filter((name) => isForwardedAnswerHeader(name, 200))).toEqual(['content-encoding', 'content-length', 'x-a']);
    expect(isForwardedAnswerHeader('x-plat-refused', 200)).toBe(false);
  });
});

describe('the path a function sees', () => {
  it.each([
    ['http://gw:8080/function/f', '/'],
    ['http://gw:8080/function/f/', '/'],
    ['http://gw:8080/function/f?x=1&y=%20', '/?x=1&y=%20'],
    ['http://gw:8080/function/f/a/b%2Fc?q=1', '/a/b%2Fc?q=1'],
    ['https://gw/function/my-fn/deep/path/', '/deep/path/'],
    ['http://gw:8080/function/f/function/g?x', '/function/g?x'],
  ])('%s → %s', (url, path) => {
    expect(functionPath(url)).toBe(path);
  });
});

describe('createApp without a live stack', () => {
  // A lazy connection is never dialled: these requests end before the gateway needs Temporal.
  const temporal = new Client({ connection: Connection.lazy({ address: '127.0.0.1:1' }) });
  const { app } = createApp({ temporal, registry: new RegistryApi('127.0.0.1:1'), settings: { ...loadSettings({}), authToken: 'tok' } });

  it('answers /healthz without a token', async () => {
    const response = await app.handle(new Request('http://localhost/healthz'));
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('answers unknown routes with a JSON 404', async () => {
    const response = await app.handle(new Request('http://localhost/nope'));
    expect(response.status).toBe(404);
    expect((await response.json()).error.code).toBe('NOT_FOUND');
  });

  it('refuses a deploy that is not multipart, naming the fields', async () => {
    const response = await app.handle(
      new Request('http://localhost/functions', { method: 'POST', body: '{}', headers: { authorization: 'Bearer tok' } }),
    );
    expect(response.status).toBe(400);
    expect((await response.json()).error.message).toContain('"function"');
  });
});

describe('the OpenAPI document', () => {
  const temporal = new Client({ connection: Connection.lazy({ address: '127.0.0.1:1' }) });
  const { app } = createApp({ temporal, registry: new RegistryApi('127.0.0.1:1'), settings: { ...loadSettings({}), authToken: 'tok' } });
  type Operation = {
    parameters?: Array<{ in: string; schema: { pattern?: string } }>;
    responses?: Record<string, unknown>;
    requestBody?: unknown;
  };
  const documentOf = async () =>
    (await (await app.handle(new Request('http://localhost/openapi.json'))).json()) as { paths: Record<string, Record<string, Operation>> };

  it('describes every route of the gateway, with answers and patterns for its path parameters', async () => {
    const { paths } = await documentOf();
    const documented = new Set(Object.entries(paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`)));
    const routes = app.routes
      .filter((r) => r.path !== '/openapi.json' && r.method !== 'ALL')
      .map((r) => `${r.method} ${r.path.replace(/:([^/]+)/g, '{$1}')}`);
    expect(routes.length).toBeGreaterThan(15);
    for (const route of routes) expect(documented).toContain(route);
    expect(documented).toContain('POST /function/{name}/{path}');
    for (const [path, ops] of Object.entries(paths)) {
      for (const [method, op] of Object.entries(ops)) {
        expect(Object.keys(op.responses ?? {}).length, `${method} ${path}`).toBeGreaterThan(0);
        for (const p of op.parameters ?? []) if (p.in === 'path' && !path.endsWith('{path}')) expect(p.schema.pattern, path).toBeString();
      }
    }
    expect(paths['/secrets/{name}']?.post?.requestBody).toBeDefined();
    expect(paths['/functions']?.post?.requestBody).toBeDefined();
  });

  it('checks the token before the parameters, and says what is wrong with a parameter in its own words', async () => {
    const ask = (path: string, token?: string) =>
      app.handle(new Request(`http://localhost${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} }));
    expect((await ask('/functions/Bad_Name')).status).toBe(401);
    const bad = await ask('/functions/Bad_Name', 'tok');
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.message).toContain('name "Bad_Name" is not valid');
    const version = await ask('/functions/ok/deployments/nope', 'tok');
    expect((await version.json()).error.message).toContain('"nope" is not a version id');
  });
});

describe('Temporal out of reach', () => {
  it('answers 503 PLATFORM_UNAVAILABLE within 2 s, judged from the gRPC status', async () => {
    const settings = { ...loadSettings({}), temporalAddress: `127.0.0.1:${await freePort()}`, authToken: 'tok' };
    const { client, connection } = connectTemporal(settings);
    const { app } = createApp({ temporal: client, registry: new RegistryApi('127.0.0.1:1'), settings });
    for (const path of ['/functions', '/functions/some-fn']) {
      const started = Date.now();
      const response = await app.handle(new Request(`http://localhost${path}`, { headers: { authorization: 'Bearer tok' } }));
      expect(Date.now() - started).toBeLessThan(2000);
      expect(response.status).toBe(503);
      expect((await response.json()).error.code).toBe('PLATFORM_UNAVAILABLE');
    }
    await connection.close();
  });

  it('is not inferred from a message that merely mentions it', () => {
    expect(isTemporalUnreachable(new Error('14 UNAVAILABLE: connect ECONNREFUSED'))).toBe(false);
    expect(toPlatError(new Error('deadline exceeded'), 'INTERNAL').code).toBe('INTERNAL');
  });
});

describe('settings', () => {
  it('takes a task queue of letters, digits, dots, dashes and underscores, and refuses one a visibility query could not hold', () => {
    expect(loadSettings({}).taskQueue).toBe('plat');
    expect(loadSettings({ PLAT_TASK_QUEUE: 'plat-test_1.a' }).taskQueue).toBe('plat-test_1.a');
    for (const bad of ["x' OR '1'='1", 'with space', 'a'.repeat(201)]) {
      expect(() => loadSettings({ PLAT_TASK_QUEUE: bad })).toThrow('PLAT_TASK_QUEUE may hold letters, digits');
    }
  });

  it('serves the port with the native front when it is built, the Bun one with PLAT_INVOKE_FRONT=on, neither with off, and refuses anything else', () => {
    const front = (value?: string) => {
      const { invokeFront, nativeFront } = loadSettings(value === undefined ? {} : { PLAT_INVOKE_FRONT: value });
      return { invokeFront, nativeFront };
    };
    expect(front()).toEqual({ invokeFront: true, nativeFront: 'auto' });
    expect(front('native')).toEqual({ invokeFront: true, nativeFront: 'required' });
    expect(front('on')).toEqual({ invokeFront: true, nativeFront: 'off' });
    expect(front('off')).toEqual({ invokeFront: false, nativeFront: 'off' });
    expect(() => loadSettings({ PLAT_INVOKE_FRONT: 'no' })).toThrow('PLAT_INVOKE_FRONT must be native, on or off, not "no"');
  });
});

describe("the invoke front's reading of a head", () => {
  const head = (requestLine: string, ...lines: string[]) => [requestLine, ...lines].join('\r\n');

  it('reads a plain request to a function: the name decoded as Bun does, the path the function sees, the headers in lower case', () => {
    expect(parseHead(head('POST /function/fn%40v1/a/b?q=1 HTTP/1.1', 'Host: x', 'Content-Length: 3', 'X-Thing:  spaced  '))).toEqual({
      method: 'POST',
      name: 'fn@v1',
      path: '/a/b?q=1',
      headers: [
        ['host', 'x'],
        ['content-length', '3'],
        ['x-thing', 'spaced'],
      ],
      contentLength: 3,
    });
    expect(parseHead(head('GET /function/fn?q=1 HTTP/1.1'))?.path).toBe('/?q=1');
    expect(parseHead(head('GET /function/fn HTTP/1.1', 'connection: Keep-Alive'))?.path).toBe('/');
  });

  it("leaves to Bun's server whatever is not plainly a keep-alive HTTP/1.1 request to a function", () => {
    const refused = [
      head('GET /function/fn HTTP/1.0'),
      head('GET /healthz HTTP/1.1'),
      head('GET /function/ HTTP/1.1'),
      head('GET /function/fn/../secrets HTTP/1.1'),
      head('GET /function/fn/%2e%2e/x HTTP/1.1'),
      head('GET /function/%E0%A4%A HTTP/1.1'),
      head('GET http://host/function/fn HTTP/1.1'),
      head('TRACE /function/fn HTTP/1.1'),
      head('GET  /function/fn HTTP/1.1'),
      head('POST /function/fn HTTP/1.1', 'transfer-encoding: chunked'),
      head('POST /function/fn HTTP/1.1', 'content-length: 1', 'content-length: 1'),
      head('POST /function/fn HTTP/1.1', 'content-length: -1'),
      head('POST /function/fn HTTP/1.1', `content-length: ${2 * 1024 * 1024}`),
      head('POST /function/fn HTTP/1.1', 'expect: 100-continue'),
      head('GET /function/fn HTTP/1.1', 'upgrade: websocket'),
      head('GET /function/fn HTTP/1.1', 'connection: close'),
      head('GET /function/fn HTTP/1.1', 'bad header line'),
      head('GET /function/fn HTTP/1.1', 'bad name: x'),
      head('GET /function/fn HTTP/1.1', ' folded: x'),
      head('GET /function/fn HTTP/1.1', 'x-a: one\ntwo'),
    ];
    for (const text of refused) expect([text, parseHead(text)]).toEqual([text, undefined]);
  });
});
