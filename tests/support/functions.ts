import { expect } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { cp, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryApi } from '../../lib/registry-api';
import { deploy } from '../../cli/commands/deploy';
import { packFolder } from '../../cli/pack';
import { repositoryPath } from '../../lib/names';
import { loadSettings } from '../../lib/settings';
import type { DeployResult } from '../../lib/types';
import type { TestStack } from './stack';
import { waitFor } from './wait';

/** The function folders of this test process, under one temp directory that goes when the process ends. */
const FOLDERS = mkdtempSync(join(tmpdir(), 'plat-fns-'));
process.on('exit', () => rmSync(FOLDERS, { recursive: true, force: true }));

/** A function folder in a temp directory: function.json for `name` plus the given files. */
export async function functionFolder(name: string, files: Record<string, string>, config: Record<string, unknown> = {}): Promise<string> {
  const dir = await mkdtemp(join(FOLDERS, `${name}-`));
  await writeFile(join(dir, 'function.json'), JSON.stringify({ name, runtime: 'bun', entry: 'index.ts', ...config }, null, 2));
  for (const [path, text] of Object.entries(files)) await writeFile(join(dir, path), text);
  return dir;
}

/** A handler answering `text` on every request. */
export function answering(text: string): string {
  return `export default { fetch() { return new Response(${JSON.stringify(text)}); } };\n`;
}

export function deployFolder(s: TestStack, dir: string): Promise<DeployResult> {
  return deploy(s.api, dir, { log: () => {} });
}

export async function deployText(s: TestStack, name: string, text: string): Promise<DeployResult> {
  return deployFolder(s, await functionFolder(name, { 'index.ts': answering(text) }));
}

export function invoke(s: TestStack, name: string, path = '', init: RequestInit = {}): Promise<Response> {
  return fetch(`${s.apiUrl}/function/${name}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${s.token}`, ...(init.headers as Record<string, string>) },
  });
}

export async function containersOf(s: TestStack, name: string) {
  return s.docker.listContainers({ all: true, filters: { label: [`dev.plat.function=${name}`] } });
}

const FIXTURES = new URL('../fixtures/', import.meta.url).pathname;

/** A copy of a fixture folder under tests/fixtures, with a function.json for `name`. */
export async function fixtureFolder(fixture: string, name: string, config: Record<string, unknown> = {}): Promise<string> {
  const dir = await mkdtemp(join(FOLDERS, `${name}-`));
  await cp(join(FIXTURES, fixture), dir, { recursive: true });
  await writeFile(join(dir, 'function.json'), JSON.stringify({ name, ...config }, null, 2));
  return dir;
}

/** The error a deploy fails with (the test fails if it succeeds). */
export async function deployFailure(s: TestStack, dir: string): Promise<Error & { code?: string }> {
  return deployFolder(s, dir).then(
    (result) => {
      throw new Error(`the deploy was expected to fail but made ${result.version}`);
    },
    (error: Error & { code?: string }) => error,
  );
}

/** Whether the registry still holds the source that deploying `dir` uploads (packing is deterministic). */
export async function sourceInRegistry(name: string, dir: string): Promise<boolean> {
  const { archive } = await packFolder(dir);
  return new RegistryApi(loadSettings().registry).hasBlob(repositoryPath(name), RegistryApi.digestOf(archive));
}

/** The deploy upload of a folder, as `plat deploy` sends it. */
export async function deployForm(dir: string): Promise<FormData> {
  const { archive } = await packFolder(dir);
  const form = new FormData();
  form.set('function', await Bun.file(join(dir, 'function.json')).text());
  form.set('archive', new Blob([archive as Uint8Array<ArrayBuffer>]));
  return form;
}

const PLAT = new URL('../../cli/plat', import.meta.url).pathname;

/** Runs the `plat` CLI as a user would, against this run's gateway. */
export async function plat(s: TestStack, cwd: string, ...args: string[]) {
  const child = Bun.spawn([PLAT, ...args], { cwd, env: { ...process.env, ...s.env, NO_COLOR: '1' }, stdout: 'pipe', stderr: 'pipe' });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { stdout, stderr, code };
}

/** Makes a function idle: its containers removed, and its entity aware of it (the next request cold-starts). */
export async function makeIdle(s: TestStack, name: string): Promise<void> {
  for (const c of await containersOf(s, name)) await s.docker.getContainer(c.Id).remove({ force: true });
  await waitFor(`${name} to have no instance`, 30_000, async () => {
    const { function: state } = await s.api.json<{ function: { instances: unknown[] } }>(`/functions/${name}`);
    return state.instances.length === 0;
  });
}

/**
 * Sends two requests at once to `/log/<tag>` with ids of their own, and returns each id's lines in
 * the function's log (`GET /functions/:name/logs?request=`) once `count` of them are there.
 */
export async function linesByRequest(
  s: TestStack,
  name: string,
  count: number,
): Promise<Record<string, Array<{ stream: string; text: string }>>> {
  const run = Math.random().toString(16).slice(2, 10);
  const ids = { a: `a-${run}`, b: `b-${run}` };
  const answers = await Promise.all(
    Object.entries(ids).map(([tag, id]) => invoke(s, name, `/log/${tag}`, { headers: { 'x-request-id': id } })),
  );
  for (const answer of answers) expect(await answer.text()).toBe('logged');
  const found: Record<string, Array<{ stream: string; text: string }>> = {};
  await waitFor(`${count} lines of each request in the log`, 15_000, async () => {
    for (const [tag, id] of Object.entries(ids)) {
      const text = await (await s.api.request(`/functions/${name}/logs?request=${id}`)).text();
      found[tag] = text
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as { stream: string; text: string });
    }
    return Object.values(found).every((lines) => lines.length >= count);
  });
  return found;
}
