/**
 * How fast the platform recovers, against a running stack (`npm start`), each figure next to its
 * reference measured in the same run:
 * - the first request after a serving container is killed (`docker kill`) or removed
 *   (`docker rm -f`), GET and POST, next to a cold start of the same function (its container gone
 *   and forgotten before the request is sent);
 * - how long after a worker killed mid-build (SIGKILL; npm start's supervisor starts it again) the
 *   deploy completes, next to the same deploy with no kill.
 *
 *   bun bench/recovery.ts [--rounds 7]
 *
 * Uses API_URL, AUTH_TOKEN and PLAT_HOME like the CLI and the worker; deploys functions named
 * bench-recovery and bench-resume and removes them.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { Api } from '../cli/api';
import { deploy } from '../cli/commands/deploy';
import { makeIdle } from './idle';
import { packFolder } from '../cli/pack';
import { DEFAULT_API_URL, DEV_TOKEN, loadSettings } from '../lib/settings';
import type { FunctionState } from '../lib/types';

const apiUrl = process.env.API_URL ?? DEFAULT_API_URL;
const token = process.env.AUTH_TOKEN ?? DEV_TOKEN;
const flag = process.argv.indexOf('--rounds');
const rounds = flag > 0 ? Number(process.argv[flag + 1]) : 7;
const api = new Api({ apiUrl, token });
const docker = new Docker();
const settings = loadSettings();

async function folder(name: string, files: Record<string, string | Uint8Array>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'plat-bench-'));
  await writeFile(join(dir, 'function.json'), JSON.stringify({ name, runtime: 'bun' }));
  for (const [path, content] of Object.entries(files)) await writeFile(join(dir, path), content);
  return dir;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
const ms = (n: number) => `${Math.round(n)} ms`.padStart(8);

// --- the first request after a container dies, next to a cold start -------------------------------

const name = 'bench-recovery';
await api.request(`/functions/${name}`, { method: 'DELETE' });
await deploy(api, await folder(name, { 'index.ts': 'export default { async fetch(r: Request) { return new Response(r.method); } };\n' }), {
  log: () => {},
});

const state = async () => (await api.json<{ function: FunctionState }>(`/functions/${name}`)).function;
const serving = async () => {
  for (;;) {
    const { instances } = await state();
    if (instances[0]) return instances[0].containerId;
    await (await api.request(`/function/${name}`)).text();
  }
};
const request = async (method: string) => {
  const started = performance.now();
  const response = await api.request(`/function/${name}`, { method, body: method === 'POST' ? 'payload' : undefined });
  const text = await response.text();
  if (text !== method) throw new Error(`${method} answered ${response.status} ${text}`);
  return performance.now() - started;
};

const samples: Record<string, number[]> = {};
const add = (key: string, value: number) => {
  samples[key] = [...(samples[key] ?? []), value];
};
for (let round = 0; round < rounds; round++) {
  for (const method of ['GET', 'POST']) {
    // The reference: a cold start, the dead container already forgotten by the entity and the gateway.
    // The worker tells the gateways before the entity, so once the entity has forgotten it the gateway has too.
    await serving();
    await makeIdle(api, docker, name);
    add(`cold start (${method})`, await request(method));

    await docker.getContainer(await serving()).kill();
    add(`after docker kill (${method})`, await request(method));

    await docker.getContainer(await serving()).remove({ force: true });
    add(`after docker rm -f (${method})`, await request(method));
  }
}
await api.request(`/functions/${name}`, { method: 'DELETE' });

console.log(`first request, median of ${rounds} rounds        time   / cold start`);
for (const method of ['GET', 'POST']) {
  const cold = median(samples[`cold start (${method})`] ?? []);
  for (const key of [`cold start (${method})`, `after docker kill (${method})`, `after docker rm -f (${method})`]) {
    const value = median(samples[key] ?? []);
    console.log(`  ${key.padEnd(30)} ${ms(value)}   ${(value / cold).toFixed(2)}×`);
  }
}

// --- a deploy whose worker is killed mid-build -----------------------------------------------------

const resume = 'bench-resume';
const workerPidFile = join(settings.dataDir, 'run', 'worker.child.pid');
const workerLog = join(settings.dataDir, 'logs', 'worker.log');
const pollingLines = async () => (await readFile(workerLog, 'utf8')).split('worker polling').length - 1;

/** Deploys (no waiting), returns when the build step runs; `done` resolves with the time the deploy completed. */
async function startDeploy(): Promise<{ done: () => Promise<number> }> {
  const dir = await folder(resume, {
    'index.ts': `export default { fetch() { return new Response(${JSON.stringify(randomBytes(4).toString('hex'))}); } };\n`,
    // Incompressible bytes: a build long enough to kill the worker in it.
    'asset.bin': randomBytes(24 * 1024 * 1024),
  });
  const { archive } = await packFolder(dir);
  const form = new FormData();
  form.set('function', await Bun.file(join(dir, 'function.json')).text());
  form.set('archive', new Blob([archive as Uint8Array<ArrayBuffer>]));
  const response = await api.request('/functions', { method: 'POST', body: form });
  if (response.status !== 202) throw new Error(`deploy answered ${response.status} ${await response.text()}`);
  const location = response.headers.get('location') as string;
  type Status = { status: string; steps: Array<{ step: string; status: string }> };
  const status = async () => {
    const answer = await api.request(location);
    return answer.ok ? ((await answer.json()) as Status) : undefined;
  };
  await until('the build to start', async () => (await status())?.steps.some((s) => s.step === 'build' && s.status === 'running') === true);
  return {
    done: async () => {
      let last: Status | undefined;
      await until('the deploy to finish', async () => {
        last = await status();
        return last !== undefined && last.status !== 'RUNNING';
      });
      if (last?.status !== 'COMPLETED') throw new Error(`the deploy ended ${last?.status}`);
      return performance.now();
    },
  };
}

const resumeRounds = Math.max(1, Math.ceil(rounds / 3));
const undisturbed: number[] = [];
const afterReturn: number[] = [];
for (let round = 0; round < resumeRounds; round++) {
  const started = performance.now();
  const plain = await startDeploy();
  undisturbed.push((await plain.done()) - started);

  const killed = await startDeploy();
  const pid = Number((await readFile(workerPidFile, 'utf8')).trim());
  const before = await pollingLines();
  process.kill(pid, 'SIGKILL');
  await until('the worker to return', async () => (await pollingLines()) > before);
  const returned = performance.now();
  afterReturn.push((await killed.done()) - returned);
}
await api.request(`/functions/${resume}`, { method: 'DELETE' });

console.log(`\ndeploy with a 24 MiB asset, median of ${resumeRounds}`);
console.log(`  the whole deploy, no kill                       ${ms(median(undisturbed))}`);
console.log(`  worker killed mid-build: done after it returned ${ms(median(afterReturn))}`);
