/**
 * A function's lifecycle figures against a running stack (`npm start`), side by side in one run:
 * a warm request, a request to a paused instance (which the worker resumes first), a cold start, and
 * a rollback to a version whose image is local.
 *
 *   bun bench/lifecycle.ts [--rounds 7] [--requests 500]
 *
 * Uses API_URL and AUTH_TOKEN like the CLI; deploys a function named bench-lifecycle (pausing after
 * 5 s idle) and removes it.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { Api } from '../cli/api';
import { deploy } from '../cli/commands/deploy';
import { makeIdle } from './idle';
import { DEFAULT_API_URL, DEV_TOKEN } from '../lib/settings';

const apiUrl = process.env.API_URL ?? DEFAULT_API_URL;
const token = process.env.AUTH_TOKEN ?? DEV_TOKEN;
const option = (flag: string, fallback: number) => {
  const at = process.argv.indexOf(flag);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
};
const rounds = option('--rounds', 7);
const requests = option('--requests', 500);
const name = 'bench-lifecycle';
const api = new Api({ apiUrl, token });
const docker = new Docker();
const url = `${apiUrl}/function/${name}`;
const headers = { authorization: `Bearer ${token}` };

async function folder(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'plat-bench-'));
  await writeFile(join(dir, 'function.json'), JSON.stringify({ name, runtime: 'bun', scale: { pauseAfter: 5, stopAfter: 600 } }));
  await writeFile(join(dir, 'index.ts'), `export default { fetch() { return new Response(${JSON.stringify(text)}); } };\n`);
  return dir;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

async function timedRequest(): Promise<number> {
  const started = performance.now();
  const response = await fetch(url, { headers });
  await response.text();
  if (!response.ok) throw new Error(`the function answered ${response.status}`);
  return performance.now() - started;
}

const containers = () => docker.listContainers({ all: true, filters: { label: [`dev.plat.function=${name}`] } });
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
const ms = (n: number) => `${n.toFixed(2)} ms`.padStart(11);

await api.request(`/functions/${name}`, { method: 'DELETE' });
await deploy(api, await folder('one'), { log: () => {} });
await deploy(api, await folder('two'), { log: () => {} });
await timedRequest();

const warm: number[] = [];
for (let i = 0; i < requests; i++) warm.push(await timedRequest());

const resumed: number[] = [];
for (let round = 0; round < rounds; round++) {
  await until('the instance to be paused', async () => (await containers()).some((c) => c.State === 'paused'));
  resumed.push(await timedRequest());
}

// The engine's own unpause, the floor of a resume: the container paused and resumed by the API.
const enginePauses: number[] = [];
const [running] = (await containers()).filter((c) => c.State === 'running');
if (running) {
  const container = docker.getContainer(running.Id);
  for (let round = 0; round < rounds; round++) {
    await container.pause();
    const started = performance.now();
    await container.unpause();
    enginePauses.push(performance.now() - started);
  }
}

const cold: number[] = [];
for (let round = 0; round < rounds; round++) {
  await makeIdle(api, docker, name);
  cold.push(await timedRequest());
}

// Rollbacks back and forth between the two versions, both images local.
const rollback: number[] = [];
for (let round = 0; round < rounds; round++) {
  const started = performance.now();
  await api.json(`/functions/${name}/rollback`, { method: 'POST' });
  rollback.push(performance.now() - started);
}
await api.request(`/functions/${name}`, { method: 'DELETE' });

const warmP50 = median(warm);
console.log(`p50 (warm: ${requests} sequential requests; the rest: ${rounds} rounds)`);
console.log(`  warm request                 ${ms(warmP50)}`);
console.log(`  request to a paused instance ${ms(median(resumed))}   +${(median(resumed) - warmP50).toFixed(2)} ms over warm`);
if (enginePauses.length > 0) console.log(`    of which the engine's unpause ${ms(median(enginePauses))}   (the API call alone, from here)`);
console.log(`  cold start                   ${ms(median(cold))}   ${(median(cold) / median(resumed)).toFixed(0)}× a resume`);
console.log(`  rollback (image local)       ${ms(median(rollback))}`);
