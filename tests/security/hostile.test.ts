import { beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync, createGzip } from 'node:zlib';
import { zipSync } from 'fflate';
import { Header } from 'tar';
import { LABELS, repositoryPath } from '../../lib/names';
import { loadSettings, registryUrl } from '../../lib/settings';
import { INTEGRATION_TIMEOUT_MS, logText, stack, type TestStack } from '../support/stack';

setDefaultTimeout(INTEGRATION_TIMEOUT_MS);

/**
 * A hostile-input suite: generated malformed deploys and requests against the real gateway. Every
 * answer must be a 4xx in the JSON error shape, no process may crash, and nothing of theirs may be
 * left behind. A seeded generator, so a failure can be replayed (HOSTILE_SEED).
 */

let seed = Number(process.env.HOSTILE_SEED ?? 20261202);
function random(): number {
  // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;

/** A tar archive by hand: each entry a header (any type, any path) and its data, then the end blocks. */
function tar(entries: Array<{ path: string; type?: string; data?: string; linkpath?: string; size?: number }>): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const data = Buffer.from(entry.data ?? '');
    const header = new Header({
      path: entry.path,
      type: (entry.type ?? 'File') as never,
      size: entry.size ?? data.length,
      mode: 0o644,
      mtime: new Date(0),
      linkpath: entry.linkpath,
    });
    const block = Buffer.alloc(512);
    header.encode(block, 0);
    blocks.push(block);
    if (data.length) blocks.push(Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** 1 GiB of zeros behind a tar header that says so, gzipped (about 1 MiB). */
async function gzipBomb(): Promise<Buffer> {
  const header = Buffer.alloc(512);
  new Header({ path: 'index.ts', type: 'File', size: 1024 ** 3, mode: 0o644, mtime: new Date(0) }).encode(header, 0);
  const gzip = createGzip({ level: 9 });
  const out: Buffer[] = [];
  gzip.on('data', (chunk: Buffer) => out.push(chunk));
  const done = new Promise((resolve) => gzip.on('end', resolve));
  gzip.write(header);
  const zeros = Buffer.alloc(8 * 1024 * 1024);
  for (let written = 0; written < 1024 ** 3; written += zeros.length) {
    if (!gzip.write(zeros)) await new Promise((resolve) => gzip.once('drain', resolve));
  }
  gzip.end();
  await done;
  return Buffer.concat(out);
}

const INDEX = 'export default { fetch() { return new Response("x"); } };\n';

async function archives(): Promise<Array<[string, Uint8Array]>> {
  const good = tar([{ path: 'index.ts', data: INDEX }]);
  const gz = gzipSync(good);
  return [
    ['a ../ path', gzipSync(tar([{ path: '../escape.ts', data: INDEX }]))],
    ['a deep ../ path', gzipSync(tar([{ path: 'a/../../escape.ts', data: INDEX }]))],
    ['an absolute path', gzipSync(tar([{ path: '/etc/cron.d/evil', data: INDEX }]))],
    [
      'a symlink out of the tree',
      gzipSync(
        tar([
          { path: 'index.ts', data: INDEX },
          { path: 'passwd', type: 'SymbolicLink', linkpath: '/etc/passwd' },
        ]),
      ),
    ],
    ['a relative symlink out', gzipSync(tar([{ path: 'up', type: 'SymbolicLink', linkpath: '../../..' }]))],
    [
      'a hard link out of the tree',
      gzipSync(
        tar([
          { path: 'index.ts', data: INDEX },
          { path: 'shadow', type: 'Link', linkpath: '/etc/shadow' },
        ]),
      ),
    ],
    ['a character device', gzipSync(tar([{ path: 'null', type: 'CharacterDevice' }]))],
    ['a block device', gzipSync(tar([{ path: 'sda', type: 'BlockDevice' }]))],
    ['a fifo', gzipSync(tar([{ path: 'pipe', type: 'FIFO' }]))],
    ['a backslash path', gzipSync(tar([{ path: '..\\evil.ts', data: INDEX }]))],
    [
      'a file that is also a folder',
      gzipSync(
        tar([
          { path: 'a', data: 'x' },
          { path: 'a/b', data: 'y' },
        ]),
      ),
    ],
    ['a truncated gzip', gz.subarray(0, Math.floor(gz.length / 2))],
    ['a gzip of garbage', gzipSync(Buffer.from('this is not a tar archive at all, just text'.repeat(20)))],
    ['gzip magic and garbage', Buffer.concat([Buffer.from([0x1f, 0x8b]), Buffer.from('garbage'.repeat(50))])],
    ['a truncated zip', zipSync({ 'index.ts': new TextEncoder().encode(INDEX) }).subarray(0, 40)],
    ['a zip with ../', zipSync({ '../escape.ts': new TextEncoder().encode(INDEX) })],
    ['a zip with an absolute path', zipSync({ '/abs.ts': new TextEncoder().encode(INDEX) })],
    ['zip magic and garbage', Buffer.concat([Buffer.from('PK'), Buffer.from('garbage'.repeat(50))])],
    ['an empty archive', new Uint8Array(0)],
    ['neither tar.gz nor zip', new TextEncoder().encode('hello')],
    ['a compression bomb (1 GiB of zeros)', await gzipBomb()],
    ['too many files', gzipSync(tar(Array.from({ length: 10_050 }, (_, i) => ({ path: `f${i}`, data: 'x' }))))],
  ];
}

/** function.json values that are wrong in one field each, plus random mixes. */
function badConfigs(name: string, count: number): Array<[string, string]> {
  const wrong: Record<string, unknown[]> = {
    name: ['', 'A', 'Upper', '-dash', 'dash-', 'a'.repeat(49), 'sp ace', '../x', 'x/y', 7, null, {}, [], 'é'],
    runtime: ['cobol', '', 7, null, ['bun'], 'BUN', 'python'],
    entry: ['../index.ts', '/etc/passwd', '', 7, '.hidden/../../x', 'a\\b', '~/x'],
    env: [[], 'x', { '1A': 'x' }, { PORT: '1' }, { HOME: '/' }, { A: 1 }, { A: null }, { 'A-B': 'x' }, { A: 'x'.repeat(40_000) }],
    memory: [0, 31, 8193, -1, 'x', null, 1e12, 1.5e10, Number.NaN],
    cpu: [0, 0.01, 9, -1, 'x', null],
    timeout: [0, 901, -5, 'x', null, 1e9],
    scale: [
      'x',
      [],
      { min: -1 },
      { min: 11 },
      { pauseAfter: 1 },
      { stopAfter: 2 },
      { pauseAfter: 60, stopAfter: 30 },
      { min: 'x' },
      { extra: 1 },
    ],
    access: ['everyone', '', 7, null],
    secrets: ['x', [7], ['Bad Name'], ['a', 'a'], Array.from({ length: 21 }, (_, i) => `s${i}`)],
    unknown: [1, 'x'],
  };
  const configs: Array<[string, string]> = [];
  for (const [field, values] of Object.entries(wrong)) {
    for (const value of values) {
      const config: Record<string, unknown> = { name, runtime: 'bun', entry: 'index.ts' };
      config[field] = value;
      configs.push([`${field}=${JSON.stringify(value)?.slice(0, 30)}`, JSON.stringify(config)]);
    }
  }
  configs.push(
    ['not JSON', '{ name: '],
    ['an array', '[]'],
    ['a string', '"x"'],
    ['null', 'null'],
    ['over 64 KiB', JSON.stringify({ name, pad: 'x'.repeat(70_000) })],
  );
  while (configs.length < count) {
    const config: Record<string, unknown> = { name, runtime: 'bun', entry: 'index.ts' };
    const fields = Object.keys(wrong);
    for (let i = 0; i < 1 + Math.floor(random() * 3); i++) {
      const field = pick(fields);
      config[field] = pick(wrong[field] as unknown[]);
    }
    configs.push([`mix ${JSON.stringify(config).slice(0, 60)}`, JSON.stringify(config)]);
  }
  return configs;
}

let s: TestStack;
let tried = 0;
const problems: string[] = [];

/** Sends one input; any answer that is not a 4xx in the JSON error shape is a problem. */
async function expect4xx(label: string, url: string, init: RequestInit): Promise<void> {
  tried++;
  let response: Response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    problems.push(`${label}: no answer (${(error as Error).message})`);
    return;
  }
  const text = await response.text();
  let code: unknown;
  try {
    code = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown } }).error?.code;
  } catch {
    code = undefined;
  }
  if (response.status < 400 || response.status >= 500 || typeof code !== 'string') {
    problems.push(`${label}: HTTP ${response.status} ${text.slice(0, 120)}`);
  }
}

function upload(s: TestStack, config: string, archive: Uint8Array): RequestInit {
  const form = new FormData();
  form.set('function', config);
  form.set('archive', new Blob([archive as Uint8Array<ArrayBuffer>]));
  return { method: 'POST', headers: { authorization: `Bearer ${s.token}` }, body: form };
}

beforeAll(async () => {
  s = await stack();
}, INTEGRATION_TIMEOUT_MS);

describe('hostile input', () => {
  it('gets a 4xx in the JSON error shape for every malformed deploy', async () => {
    const name = s.name('hostile');
    const good = JSON.stringify({ name, runtime: 'bun', entry: 'index.ts' });
    const goodArchive = gzipSync(tar([{ path: 'index.ts', data: INDEX }]));
    for (const [label, archive] of await archives())
      await expect4xx(`archive: ${label}`, `${s.apiUrl}/functions`, upload(s, good, archive));
    for (const [label, config] of badConfigs(name, 700)) {
      await expect4xx(`function.json: ${label}`, `${s.apiUrl}/functions`, upload(s, config, goodArchive));
    }
    const auth = { authorization: `Bearer ${s.token}` };
    const bodies: Array<[string, RequestInit]> = [
      ['no body', { method: 'POST', headers: auth }],
      ['JSON', { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"name":"x"}' }],
      ['text', { method: 'POST', headers: { ...auth, 'content-type': 'text/plain' }, body: 'hello' }],
      [
        'a broken multipart',
        { method: 'POST', headers: { ...auth, 'content-type': 'multipart/form-data; boundary=x' }, body: '--x\r\nbroken' },
      ],
      ['multipart without a boundary', { method: 'POST', headers: { ...auth, 'content-type': 'multipart/form-data' }, body: 'x' }],
    ];
    const onlyConfig = new FormData();
    onlyConfig.set('function', good);
    const onlyArchive = new FormData();
    onlyArchive.set('archive', new Blob([goodArchive]));
    const configAsFile = new FormData();
    configAsFile.set('function', new Blob(['{']));
    configAsFile.set('archive', new Blob([goodArchive]));
    bodies.push(
      ['no archive field', { method: 'POST', headers: auth, body: onlyConfig }],
      ['no function field', { method: 'POST', headers: auth, body: onlyArchive }],
      ['function.json as a broken file', { method: 'POST', headers: auth, body: configAsFile }],
    );
    for (const [label, init] of bodies) await expect4xx(`body: ${label}`, `${s.apiUrl}/functions`, init);
    expect(problems).toEqual([]);
  });

  it('gets a 4xx in the JSON error shape for bad tokens, headers and paths', async () => {
    const routes: Array<[string, string]> = [
      ['GET', '/functions'],
      ['POST', '/functions'],
      ['GET', '/functions/some-fn'],
      ['DELETE', '/functions/some-fn'],
      ['GET', '/functions/some-fn/logs'],
      ['GET', '/functions/some-fn/versions'],
      ['POST', '/functions/some-fn/rollback'],
      ['POST', '/functions/some-fn/keys'],
      ['GET', '/secrets'],
      ['GET', '/metrics'],
      ['GET', '/function/some-fn'],
      ['POST', '/function/some-fn/deep?q=1'],
    ];
    const tokens: Array<[string, Record<string, string>]> = [
      ['no token', {}],
      ['a wrong token', { authorization: 'Bearer not-the-token' }],
      ['Basic', { authorization: 'Basic Zm9vOmJhcg==' }],
      ['Digest', { authorization: 'Digest username="x"' }],
      ['Bearer and nothing', { authorization: 'Bearer' }],
      ['Bearer and spaces', { authorization: 'Bearer    ' }],
      ['a forged JWT', { authorization: 'Bearer eyJhbGciOiJub25lIn0.eyJwbGF0IjoiYWRtaW4ifQ.' }],
      ['a 1 MiB token', { authorization: `Bearer ${'x'.repeat(1024 * 1024)}` }],
      ['a token with a newline escape', { authorization: 'Bearer a%0d%0ab' }],
    ];
    for (const [method, path] of routes) {
      for (const [label, headers] of tokens) await expect4xx(`${method} ${path} with ${label}`, `${s.apiUrl}${path}`, { method, headers });
    }
    const auth = { authorization: `Bearer ${s.token}` };
    await expect4xx('64 KiB of headers', `${s.apiUrl}/functions`, { headers: { ...auth, 'x-filler': 'f'.repeat(70 * 1024) } });
    const names = [
      '..',
      '%2e%2e',
      '.',
      'a%2Fb',
      '%2F',
      'A',
      'a'.repeat(60),
      'a@',
      'a@v1',
      'a@v20991231-000000-ffff',
      '%00',
      'é',
      'a b',
      '-a',
      '@',
      'a@@b',
    ];
    const paths = ['', '/', '/../../etc/passwd', '/%2e%2e/%2e%2e/functions', '//x', '/_/health'];
    for (const name of names) {
      for (const path of paths) {
        const url = `${s.apiUrl}/function/${name}${path}`;
        // The client resolves dot segments (%2e%2e included) before it sends: a URL that resolves
        // out of /function/ is another route, which the admin token may use.
        if (!new URL(url).pathname.startsWith('/function/')) continue;
        for (const method of ['GET', 'POST']) await expect4xx(`${method} /function/${name}${path}`, url, { method, headers: auth });
      }
    }
    for (let i = 0; i < 150; i++) {
      const name = Array.from({ length: 1 + Math.floor(random() * 70) }, () => pick([..."abcXYZ019-_.@%~!$&'()*+,;=:"])).join('');
      await expect4xx(`GET /function/${name}`, `${s.apiUrl}/function/${encodeURIComponent(name)}`, { headers: auth });
    }
    expect(problems).toEqual([]);
  });

  it('crashes no process and leaves nothing behind', async () => {
    console.log(`hostile inputs tried: ${tried}`);
    expect(tried).toBeGreaterThanOrEqual(1000);
    expect((await fetch(`${s.apiUrl}/healthz`)).status).toBe(200);
    expect(await logText(s.dataDir, 'gateway')).not.toContain('[supervise]');
    expect(await logText(s.dataDir, 'worker')).not.toContain('[supervise]');
    const name = s.name('hostile');
    expect(await s.docker.listContainers({ all: true, filters: { label: [`${LABELS.function}=${name}`] } })).toEqual([]);
    expect(await s.docker.listImages({ filters: { label: [`${LABELS.function}=${name}`] } })).toEqual([]);
    // No tag (source or image) in the function's repository of the registry.
    const tags = await fetch(`${registryUrl(loadSettings().registry)}/v2/${repositoryPath(name)}/tags/list`);
    const listed = tags.ok ? (((await tags.json()) as { tags?: string[] | null }).tags ?? []) : [];
    expect(listed).toEqual([]);
    const builds = await readdir(join(s.dataDir, 'builds')).catch(() => [] as string[]);
    expect(builds.filter((b) => b.includes(name))).toEqual([]);
  });
});
