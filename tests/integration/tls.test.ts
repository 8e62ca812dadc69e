import { afterAll, beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deployFolder, functionFolder, plat } from '../support/functions';
import { rawConnection } from '../support/raw-http';
import { extraGateway, INTEGRATION_TIMEOUT_MS, stack, type TestStack } from '../support/stack';

setDefaultTimeout(INTEGRATION_TIMEOUT_MS);

/** openssl, quietly; fails the test with its output. */
async function openssl(cwd: string, ...args: string[]): Promise<void> {
  const child = Bun.spawn(['openssl', ...args], { cwd, stdout: 'pipe', stderr: 'pipe' });
  const [err, code] = await Promise.all([new Response(child.stderr).text(), child.exited]);
  if (code !== 0) throw new Error(`openssl ${args[0]} failed: ${err}`);
}

let s: TestStack;
let dir: string;
let gateway: Awaited<ReturnType<typeof extraGateway>>;
let name: string;
beforeAll(async () => {
  s = await stack();
  name = s.name('tls');
  // It says which scheme the gateway tells it its client used.
  await deployFolder(
    s,
    await functionFolder(name, {
      'index.ts': "export default { fetch: (request) => new Response('over ' + request.headers.get('x-forwarded-proto')) };\n",
    }),
  );
  // A CA of the test's own, and a certificate it signs for 127.0.0.1 and localhost.
  dir = await mkdtemp(join(tmpdir(), 'plat-tls-'));
  await writeFile(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  // P-256 keys, unencrypted: one for the CA (self-signed) and one for the server (a request the CA signs).
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await openssl(dir, 'req', '-x509', ...newKey, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=plat test CA');
  await openssl(dir, 'req', ...newKey, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  await openssl(
    dir,
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.pem',
    '-days',
    '1',
    '-extfile',
    'san.ext',
  );
  gateway = await extraGateway(s, { TLS_CERT_FILE: join(dir, 'server.pem'), TLS_KEY_FILE: join(dir, 'server.key') }, 'https');
}, INTEGRATION_TIMEOUT_MS);

afterAll(async () => {
  await gateway?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the gateway over HTTPS', () => {
  it('serves the API and the functions to a client that trusts its CA', async () => {
    const listed = await plat(s, '.', '--api-url', gateway.url, '--ca-file', join(dir, 'ca.pem'), 'list', '--json');
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout).map((f: { name: string }) => f.name)).toContain(name);
    const invoked = await plat(s, '.', '--api-url', gateway.url, '--ca-file', join(dir, 'ca.pem'), 'invoke', name);
    expect(invoked.stdout).toBe('over https');
    const response = await fetch(`${gateway.url}/function/${name}`, {
      headers: { authorization: `Bearer ${s.token}` },
      tls: { ca: await Bun.file(join(dir, 'ca.pem')).text() },
    });
    expect(await response.text()).toBe('over https');
  });

  it('answers requests sent ahead on one connection, in order (the invoke front ends TLS)', async () => {
    const connection = await rawConnection(gateway.url, undefined, await Bun.file(join(dir, 'ca.pem')).text());
    try {
      const request = (id: string) =>
        `GET /function/${name} HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer ${s.token}\r\nx-request-id: ${id}\r\n\r\n`;
      const health = 'GET /healthz HTTP/1.1\r\nhost: gateway\r\n\r\n';
      const [first, second] = await connection.exchange(request('tls-1') + request('tls-2'), 2, ['GET', 'GET']);
      expect([first?.body, first?.headers['x-request-id']]).toEqual(['over https', 'tls-1']);
      expect([second?.body, second?.headers['x-request-id']]).toEqual(['over https', 'tls-2']);
      // The API, through the front's tunnel to Bun's server, on the same connection.
      const [healthz] = await connection.exchange(health, 1, ['GET']);
      expect(healthz?.status).toBe(200);
      expect(JSON.parse(healthz?.body ?? '')).toEqual({ status: 'ok' });
    } finally {
      connection.close();
    }
  });

  it('tells a client that does not trust it what to do, and does not speak plain HTTP', async () => {
    const refused = await plat(s, '.', '--api-url', gateway.url, 'list');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('--ca-file');
    const plain = await fetch(`http://127.0.0.1:${gateway.port}/healthz`).then(
      (r) => r.status,
      () => 'refused',
    );
    expect(plain).not.toBe(200);
  });
});
