/**
 * Measures the figures of the platform's main path against a running stack (`npm start`):
 * deploy time (first, then a code-only redeploy), cold first request, and warm latency through the
 * gateway next to the same requests sent straight to the container.
 *
 *   bun bench/deploy-invoke.ts [--requests 2000]
 *
 * Uses API_URL and AUTH_TOKEN like the CLI; deploys a function named bench-hello and removes it.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { Api } from '../cli/api';
import { deploy } from '../cli/commands/deploy';
import { makeIdle } from './idle';
import { DEFAULT_API_URL, DEV_TOKEN } from '../lib/settings';
import type { FunctionState } from '../lib/types';

const apiUrl = process.env.API_URL ?? DEFAULT_API_URL;
const token = process.env.AUTH_TOKEN ?? DEV_TOKEN;
const flag = process.argv.indexOf('--requests');
const requests = flag > 0 ? Number(process.argv[flag + 1]) : 2000;
const name = 'bench-hello';
const api = new Api({ apiUrl, token });
const docker = new Docker();

async function folder(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'plat-bench-'));
  await writeFile(join(dir, 'function.json'), JSON.stringify({ name, runtime: 'bun' }));
  await writeFile(join(dir, 'index.ts'), `export default { fetch() { return new Response(${JSON.stringify(text)}); } };\n`);
  return dir;
}

async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const result = await work();
  return [result, performance.now() - start];
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/** Sequential requests (one connection at a time, as -c1 would): latency, not throughput. */
async function latency(url: string, headers: Record<string, string>): Promise<number[]> {
  for (let i = 0; i < 200; i++) await (await fetch(url, { headers })).arrayBuffer();
  const samples: number[] = [];
  for (let i = 0; i < requests; i++) {
    const start = performance.now();
    const response = await fetch(url, { headers });
    await response.arrayBuffer();
    samples.push(performance.now() - start);
  }
  return samples.sort((a, b) => a - b);
}

const ms = (n: number) => `${n.toFixed(2)} ms`;
const us = (n: number) => `${Math.round(n * 1000)} µs`;

await api.request(`/functions/${name}`, { method: 'DELETE' });
const [, deploy1] = await timed(async () => deploy(api, await folder('v1'), { log: () => {} }));
const [, deploy2] = await timed(async () => deploy(api, await folder('v2'), { log: () => {} }));

await makeIdle(api, docker, name);
const [cold, coldMs] = await timed(async () => (await api.request(`/function/${name}`)).text());
if (cold !== 'v2') throw new Error(`unexpected answer ${cold}`);

const { function: state } = await api.json<{ function: FunctionState }>(`/functions/${name}`);
const direct = state.instances[0]?.url;
if (!direct) throw new Error('no instance after the cold start');

const viaGateway = await latency(`${apiUrl}/function/${name}`, { authorization: `Bearer ${token}` });
const straight = await latency(`${direct}/`, {});

const [, removeMs] = await timed(() => api.request(`/functions/${name}`, { method: 'DELETE' }));
const left = await docker.listContainers({ all: true, filters: { label: [`dev.plat.function=${name}`] } });

console.log(`deploy (first, new function)      ${ms(deploy1)}`);
console.log(`deploy (code-only redeploy)       ${ms(deploy2)}`);
console.log(`cold first request               ${ms(coldMs)}`);
console.log(`warm, ${requests} sequential requests:   p50        p90        p99`);
console.log(
  `  through the gateway             ${us(percentile(viaGateway, 50)).padEnd(10)} ${us(percentile(viaGateway, 90)).padEnd(10)} ${us(percentile(viaGateway, 99))}`,
);
console.log(
  `  straight to the container       ${us(percentile(straight, 50)).padEnd(10)} ${us(percentile(straight, 90)).padEnd(10)} ${us(percentile(straight, 99))}`,
);
console.log(`remove                            ${ms(removeMs)} (${left.length} containers left)`);
