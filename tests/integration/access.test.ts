import { beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { answering, deployFolder, deployText, functionFolder, plat } from '../support/functions';
import { INTEGRATION_TIMEOUT_MS, stack, type TestStack } from '../support/stack';
import { waitFor } from '../support/wait';

setDefaultTimeout(INTEGRATION_TIMEOUT_MS);

let s: TestStack;
let keyed: string;
let other: string;
let open: string;
beforeAll(async () => {
  s = await stack();
  keyed = s.name('keyed');
  other = s.name('other-keyed');
  open = s.name('public');
  await deployText(s, keyed, 'keyed answers');
  await deployText(s, other, 'other answers');
  await deployFolder(s, await functionFolder(open, { 'index.ts': answering('anyone may call') }, { access: 'public' }));
}, INTEGRATION_TIMEOUT_MS);

const call = (name: string, token?: string, path = '') =>
  fetch(`${s.apiUrl}/function/${name}${path}`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });

async function errorCode(response: Response): Promise<string> {
  return ((await response.json()) as { error: { code: string } }).error.code;
}

describe('access to a function', () => {
  it('lets anyone call a public function, with no Authorization header at all', async () => {
    const response = await call(open);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('anyone may call');
    // The management API stays admin-only.
    expect((await fetch(`${s.apiUrl}/functions/${open}`)).status).toBe(401);
  });

  it('asks for a key or the admin token otherwise, in the JSON error shape', async () => {
    const response = await call(keyed);
    expect(response.status).toBe(401);
    expect(await errorCode(response)).toBe('UNAUTHORIZED');
    expect((await call(keyed, 'plat_not-a-key')).status).toBe(401);
    expect(await (await call(keyed, s.token)).text()).toBe('keyed answers');
    // A function that does not exist is a 401 too for a caller without the admin token: names do not leak.
    expect((await call(s.name('nothing-here'), 'plat_not-a-key')).status).toBe(401);
  });

  it('takes a key for its own function only, and never for the management API', async () => {
    const created = await plat(s, '.', 'keys', 'create', keyed, '--json');
    expect(created.code).toBe(0);
    const { id, key } = JSON.parse(created.stdout) as { id: string; key: string };
    expect(id).toMatch(/^[0-9a-f]{8}$/);
    expect(key).toStartWith('plat_');

    expect(await (await call(keyed, key, '/any/path')).text()).toBe('keyed answers');
    expect((await call(other, key)).status).toBe(401);
    expect((await fetch(`${s.apiUrl}/functions`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(401);
    expect((await fetch(`${s.apiUrl}/functions/${keyed}/keys`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(401);

    // Listed by id and time; the key (and its hash) appear nowhere.
    const listed = await plat(s, '.', 'keys', 'list', keyed, '--json');
    expect(JSON.parse(listed.stdout)).toEqual([{ id, createdAt: expect.any(String) }]);
    const described = await plat(s, '.', 'describe', keyed, '--json');
    expect(described.stdout).not.toContain(key);
    expect(described.stdout).not.toContain(new Bun.CryptoHasher('sha256').update(key).digest('hex'));
  });

  it('refuses a revoked key in every gateway within 5 s', async () => {
    const { key } = await s.api.json<{ key: { id: string; key: string } }>(`/functions/${other}/keys`, { method: 'POST' });
    expect(await (await call(other, key.key)).text()).toBe('other answers');
    // Revoked behind this gateway's back (straight on the entity, as another gateway would): only the periodic re-read can tell.
    const { revokeKeyUpdate } = await import('../../workflows/definitions');
    const revokedAt = Date.now();
    expect(await s.temporal.workflow.getHandle(`function/${other}`).executeUpdate(revokeKeyUpdate, { args: [{ id: key.id }] })).toBe(true);
    await waitFor('the revoked key to be refused', 5000, async () => (await call(other, key.key)).status === 401);
    expect(Date.now() - revokedAt).toBeLessThan(5000);
    expect(await (await call(other, s.token)).text()).toBe('other answers');
  });

  it('revokes through the CLI, and answers unknown keys and bad ids clearly', async () => {
    const { key } = await s.api.json<{ key: { id: string; key: string } }>(`/functions/${keyed}/keys`, { method: 'POST' });
    const revoked = await plat(s, '.', 'keys', 'revoke', keyed, key.id);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toContain(`Revoked key ${key.id}`);
    expect((await call(keyed, key.key)).status).toBe(401);
    const again = await s.api.request(`/functions/${keyed}/keys/${key.id}`, { method: 'DELETE' });
    expect(again.status).toBe(404);
    const bad = await s.api.request(`/functions/${keyed}/keys/NOT-AN-ID`, { method: 'DELETE' });
    expect(bad.status).toBe(400);
    expect((await s.api.request(`/functions/${s.name('nothing-here')}/keys`, { method: 'POST' })).status).toBe(404);
  });

  it('refuses an access mode it does not know', async () => {
    const dir = await functionFolder(s.name('bad-access'), { 'index.ts': answering('x') }, { access: 'everyone' });
    const failure = await deployFolder(s, dir).catch((error: Error & { code?: string }) => error);
    expect((failure as Error & { code?: string }).code).toBe('INVALID_FUNCTION_CONFIG');
    expect((failure as Error).message).toContain('access must be "key"');
  });
});
