/**
 * Per-runtime figures against a running stack (`npm start`): image size, first deploy, code-only
 * redeploy, and cold start (first request to its answer). Each runtime's own template is deployed
 * as a fresh function, then removed; JS templates get one dependency (hono), python-flask's
 * template has Flask. The first deploy starts from an empty resolved-dependency cache
 * ($PLAT_HOME/cache/deps; the package managers' download caches stay), the redeploy changes code only.
 *
 *   bun bench/runtimes.ts [bun deno node python-flask]
 *
 * Uses API_URL, AUTH_TOKEN and PLAT_HOME like the CLI and the worker.
 */
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { Api } from '../cli/api';
import { deploy } from '../cli/commands/deploy';
import { init } from '../cli/commands/init';
import { makeIdle } from './idle';
import { RUNTIME_NAMES, RUNTIMES } from '../lib/runtimes';
import { DEFAULT_API_URL, DEV_TOKEN, loadSettings } from '../lib/settings';

const api = new Api({ apiUrl: process.env.API_URL ?? DEFAULT_API_URL, token: process.env.AUTH_TOKEN ?? DEV_TOKEN });
const docker = new Docker();
const runtimes = process.argv.slice(2).length > 0 ? process.argv.slice(2) : RUNTIME_NAMES;

async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const result = await work();
  return [result, performance.now() - start];
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const rows: string[][] = [['runtime', 'image size', 'first deploy', 'code-only redeploy', 'cold start', 'warm request']];

for (const runtime of runtimes) {
  const name = `bench-${runtime}`;
  const home = await mkdtemp(join(tmpdir(), 'plat-bench-'));
  const dir = join(home, name);
  await api.request(`/functions/${name}`, { method: 'DELETE' });
  await init(name, { runtime, dir });
  if (RUNTIMES[runtime]?.language === 'js') {
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name, private: true, dependencies: { hono: '4.6.14' } }));
  }
  await rm(join(loadSettings().dataDir, 'cache', 'deps'), { recursive: true, force: true });
  const quiet = { log: () => {} };

  const [first, firstMs] = await timed(() => deploy(api, dir, quiet));
  const entry = join(dir, RUNTIMES[runtime]?.defaultEntry ?? 'index.ts');
  await appendFile(entry, runtime === 'python-flask' ? '\n# changed\n' : '\n// changed\n');
  const [second, secondMs] = await timed(() => deploy(api, dir, quiet));
  if (second.version === first.version) throw new Error('the redeploy made no new version');

  await makeIdle(api, docker, name);
  const [cold, coldMs] = await timed(() => api.request(`/function/${name}`));
  if (cold.status !== 200) throw new Error(`${runtime}: cold request answered ${cold.status}: ${await cold.text()}`);
  await cold.arrayBuffer();
  const [, warmMs] = await timed(async () => (await api.request(`/function/${name}`)).arrayBuffer());

  const { Size } = await docker.getImage(second.image).inspect();
  rows.push([runtime, `${(Size / 1e6).toFixed(0)} MB`, seconds(firstMs), seconds(secondMs), seconds(coldMs), `${warmMs.toFixed(1)} ms`]);
  await api.request(`/functions/${name}`, { method: 'DELETE' });
  await rm(home, { recursive: true, force: true });
}

const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => r[i]?.length ?? 0))) ?? [];
for (const row of rows) console.log(row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  '));
