import { beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { temporal as proto } from '@temporalio/proto';
import { deployFailure, deployFolder, fixtureFolder, functionFolder, invoke, makeIdle, plat } from '../support/functions';
import { INTEGRATION_TIMEOUT_MS, stack, type TestStack } from '../support/stack';

setDefaultTimeout(INTEGRATION_TIMEOUT_MS);

/** A bun function that answers with a secret's file, and its mode. */
const READER = `import { readFileSync, statSync } from 'node:fs';
export default { fetch(req: Request) {
  const file = '/var/plat/secrets/' + new URL(req.url).searchParams.get('name');
  return Response.json({ value: readFileSync(file, 'utf8'), mode: (statSync(file).mode & 0o777).toString(8), uid: statSync(file).uid });
} };\n`;

let s: TestStack;
let secret: string;
let value: string;
let fn: string;
beforeAll(async () => {
  s = await stack();
  secret = `db-password-${s.runId}`;
  value = `s3cr3t-${randomBytes(12).toString('hex')}`;
  const file = join(await mkdtemp(join(tmpdir(), 'plat-secret-')), 'value.txt');
  await writeFile(file, value);
  const created = await plat(s, '.', 'secret', 'create', secret, '--from-file', file);
  expect(created.code).toBe(0);
  fn = s.name('secret-reader');
  await deployFolder(s, await functionFolder(fn, { 'index.ts': READER }, { secrets: [secret] }));
}, INTEGRATION_TIMEOUT_MS);

/** Every payload of a workflow's history, as the server keeps it (protobuf bytes). */
async function rawHistory(workflowId: string): Promise<Buffer> {
  const history = await s.temporal.workflow.getHandle(workflowId).fetchHistory();
  return Buffer.from(proto.api.history.v1.History.encode(history).finish());
}

describe('secrets', () => {
  it("are read by a bun function from their file, readable by the function's user only", async () => {
    const answer = (await (await invoke(s, fn, `/?name=${secret}`)).json()) as { value: string; mode: string; uid: number };
    expect(answer).toEqual({ value, mode: '400', uid: 10001 });
  });

  it('are read by a Flask function too', async () => {
    const flask = s.name('secret-flask');
    const dir = await fixtureFolder('flask', flask, { runtime: 'python-flask', entry: 'app.py', secrets: [secret] });
    await writeFile(
      join(dir, 'app.py'),
      `from flask import Flask\napp = Flask(__name__)\n\n@app.get("/")\ndef index():\n    with open("/var/plat/secrets/${secret}") as f:\n        return f.read()\n`,
    );
    await deployFolder(s, dir);
    expect(await (await invoke(s, flask)).text()).toBe(value);
  });

  it("appear nowhere: not in Temporal's history, describe, the logs, the store's files or the list", async () => {
    const { function: state } = await s.api.json<{ function: { activeVersion: string } }>(`/functions/${fn}`);
    const ids = [`function/${fn}`, `deploy/${fn}/${state.activeVersion}`];
    for (const id of ids) {
      const history = await rawHistory(id);
      expect(history.length).toBeGreaterThan(100);
      expect(history.includes(Buffer.from(secret))).toBe(true); // the name travels, so the search would find the value
      expect(history.includes(Buffer.from(value))).toBe(false);
    }
    expect((await plat(s, '.', 'describe', fn, '--json')).stdout).not.toContain(value);
    expect(await (await s.api.request(`/functions/${fn}/logs?tail=1000`)).text()).not.toContain(value);
    const listed = await plat(s, '.', 'secret', 'list', '--json');
    expect(JSON.parse(listed.stdout)).toContainEqual({ name: secret, createdAt: expect.any(String), updatedAt: expect.any(String) });
    expect(listed.stdout).not.toContain(value);
    // Encrypted at rest, with a key of the platform's own that only its owner may read.
    for (const file of await readdir(join(s.dataDir, 'secrets'))) {
      expect(await readFile(join(s.dataDir, 'secrets', file), 'utf8')).not.toContain(value);
    }
    expect((await stat(join(s.dataDir, 'secrets.key'))).mode & 0o777).toBe(0o600);
  });

  it('reach instances that start after an update', async () => {
    const next = `rotated-${randomBytes(8).toString('hex')}`;
    const updated = await s.api.request(`/secrets/${secret}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ value: next }),
    });
    expect(updated.status).toBe(200);
    await makeIdle(s, fn);
    expect(((await (await invoke(s, fn, `/?name=${secret}`)).json()) as { value: string }).value).toBe(next);
  });

  it('refuse a deploy that names a missing secret before anything is built', async () => {
    const missing = `missing-${s.runId}`;
    const failure = await deployFailure(s, await functionFolder(s.name('no-secret'), { 'index.ts': READER }, { secrets: [missing] }));
    expect(failure.code).toBe('INVALID_FUNCTION_CONFIG');
    expect(failure.message).toContain(missing);
  });

  it('answer bad input with 4xx and the JSON error shape', async () => {
    const send = (method: string, name: string, body?: string) =>
      s.api.request(`/secrets/${name}`, { method, headers: { 'content-type': 'application/json' }, body });
    expect((await send('POST', secret, JSON.stringify({ value: 'again' }))).status).toBe(409);
    expect((await send('PUT', `nothing-${s.runId}`, JSON.stringify({ value: 'x' }))).status).toBe(404);
    expect((await send('POST', 'Bad Name', JSON.stringify({ value: 'x' }))).status).toBe(400);
    expect((await send('POST', `x-${s.runId}`, 'not json')).status).toBe(400);
    expect((await send('POST', `x-${s.runId}`, JSON.stringify({ value: '' }))).status).toBe(400);
    expect((await send('POST', `x-${s.runId}`, JSON.stringify({ value: 'x'.repeat(70_000) }))).status).toBe(413);
    expect((await fetch(`${s.apiUrl}/secrets`)).status).toBe(401);
  });
});
