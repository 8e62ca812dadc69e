/**
 * Cold starts against a running stack (`npm start`), each beside its reference in the same run:
 *
 *   1. One cold start: the first answer through the gateway to a function its idle rules scaled to
 *      zero (stopAfter 5 s), next to a bare container of the same image and settings (env, command,
 *      user, limits, the functions' bridge) created and started through the engine's API and polled
 *      to its first answer: the engine's own floor. Interleaved rounds, medians, and their ratio.
 *   2. A burst of first requests (1000 by default) at once to a function with `scale.concurrency`
 *      100 and no instance: how many instances started (they need 10, or `max` when lower), whether
 *      every request was answered, and their p99 next to one cold start.
 *
 *   bun bench/coldstart.ts [--rounds 5] [--burst 1000] [--max 10]
 *
 * Uses API_URL and AUTH_TOKEN like the CLI; deploys a function named bench-coldstart and removes it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { Api } from '../cli/api';
import { deploy } from '../cli/commands/deploy';
import { DEFAULT_API_URL, DEV_TOKEN } from '../lib/settings';
import type { FunctionState } from '../lib/types';
import { waitStopped } from './idle';

const apiUrl = process.env.API_URL ?? DEFAULT_API_URL;
const token = process.env.AUTH_TOKEN ?? DEV_TOKEN;
const option = (flag: string, fallback: number) => {
  const at = process.argv.indexOf(flag);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
};
// Bun's fetch holds to 256 connections at once unless told otherwise: a burst must not be queued here.
if (Number(process.env.BUN_CONFIG_MAX_HTTP_REQUESTS ?? 256) < option('--burst', 1000)) {
  const again = Bun.spawn([process.execPath, ...process.argv.slice(1)], {
    env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: String(Math.min(65_535, option('--burst', 1000))) },
    stdio: ['inherit', 'inherit', 'inherit'],
  });
  process.exit(await again.exited);
}
const rounds = option('--rounds', 5);
const burst = option('--burst', 1000);
const max = option('--max', 10);
const concurrency = 100;
/** The shortest scale.stopAfter: each cold start follows a real scale to zero. */
const IDLE_STOP_S = 5;
const name = 'bench-coldstart';
const api = new Api({ apiUrl, token });
const docker = new Docker();
const url = `${apiUrl}/function/${name}`;
const headers = { authorization: `Bearer ${token}` };

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.ceil((values.length * p) / 100) - 1] as number;
const ms = (n: number) => `${n.toFixed(0)} ms`.padStart(8);

async function timedRequest(): Promise<{ ms: number; status: number }> {
  const started = performance.now();
  const response = await fetch(url, { headers });
  await response.text();
  return { ms: performance.now() - started, status: response.status };
}

const containers = () => docker.listContainers({ all: true, filters: { label: [`dev.plat.function=${name}`] } });

/**
 * A container like the function's own (image, env, command, user, limits, network), created and
 * started through the engine's API and polled every 5 ms until it answers: what `docker run` costs
 * to a first answer, without the platform.
 */
async function bareStart(template: Docker.ContainerInspectInfo): Promise<number> {
  const started = performance.now();
  const container = await docker.createContainer({
    Image: template.Config.Image,
    Env: template.Config.Env,
    Cmd: template.Config.Cmd,
    Entrypoint: template.Config.Entrypoint as string[] | undefined,
    User: template.Config.User,
    WorkingDir: template.Config.WorkingDir,
    HostConfig: {
      NetworkMode: template.HostConfig.NetworkMode,
      Memory: template.HostConfig.Memory,
      NanoCpus: template.HostConfig.NanoCpus,
      ReadonlyRootfs: template.HostConfig.ReadonlyRootfs,
      Tmpfs: template.HostConfig.Tmpfs,
      CapDrop: template.HostConfig.CapDrop,
      SecurityOpt: template.HostConfig.SecurityOpt,
      PidsLimit: template.HostConfig.PidsLimit,
    },
  });
  try {
    await container.start();
    const networks = (await container.inspect()).NetworkSettings.Networks;
    const address = Object.values(networks)[0]?.IPAddress;
    if (!address) throw new Error('the bare container has no address');
    for (;;) {
      const answered = await fetch(`http://${address}:8080/`, { signal: AbortSignal.timeout(1000) }).then(
        (r) => r.text().then(() => true),
        () => false,
      );
      if (answered) return performance.now() - started;
      if (performance.now() - started > 30_000) throw new Error('the bare container did not answer within 30 s');
      await Bun.sleep(5);
    }
  } finally {
    await container.remove({ force: true });
  }
}

const dir = await mkdtemp(join(tmpdir(), 'plat-bench-'));
await writeFile(
  join(dir, 'function.json'),
  // Scaled to zero the way it is in use: the idle rules stop an instance 5 s after its last request.
  JSON.stringify({ name, runtime: 'bun', scale: { concurrency, max, queue: 0, pauseAfter: 0, stopAfter: IDLE_STOP_S } }),
);
await writeFile(join(dir, 'index.ts'), 'export default { fetch() { return new Response("hello"); } };\n');
await api.request(`/functions/${name}`, { method: 'DELETE' });
await deploy(api, dir, { log: () => {} });
await rm(dir, { recursive: true, force: true });

try {
  await timedRequest();
  const [running] = await containers();
  if (!running) throw new Error('no container after the first request');
  const template = await docker.getContainer(running.Id).inspect();

  const bare: number[] = [];
  const cold: number[] = [];
  const coldStart = async () => {
    const first = await timedRequest();
    if (first.status !== 200) throw new Error(`a cold start answered ${first.status}`);
    cold.push(first.ms);
  };
  for (let round = 0; round < rounds; round++) {
    await waitStopped(api, docker, name);
    // Each goes first (after seconds of an idle machine) in every other round.
    if (round % 2 === 0) {
      bare.push(await bareStart(template));
      await coldStart();
    } else {
      await coldStart();
      bare.push(await bareStart(template));
    }
  }
  if (process.env.BENCH_VERBOSE) console.log({ bare: bare.map(Math.round), cold: cold.map(Math.round) });
  console.log(`one cold start, first answer (${rounds} interleaved rounds, medians)`);
  console.log(`  bare container, engine API  ${ms(median(bare))}`);
  console.log(`  through the gateway         ${ms(median(cold))}   ${(median(cold) / median(bare)).toFixed(2)}× the bare container`);

  await waitStopped(api, docker, name);
  const started = performance.now();
  const results = await Promise.all(Array.from({ length: burst }, () => timedRequest().catch(() => ({ ms: Number.NaN, status: 0 }))));
  const wall = performance.now() - started;
  // The starts a burst asks for can end after its last answer (the first instance may serve them all),
  // and the idle rules stop instances 5 s after their last request: every instance the entity listed
  // is counted, until no new one has come for 3 s.
  const seen = new Set<string>();
  let newestAt = performance.now();
  for (const deadline = performance.now() + 60_000; performance.now() < deadline; ) {
    const { function: state } = await api.json<{ function: FunctionState }>(`/functions/${name}`);
    for (const instance of state.instances) {
      if (seen.has(instance.containerId)) continue;
      seen.add(instance.containerId);
      newestAt = performance.now();
    }
    if (performance.now() - newestAt > 3000) break;
    await Bun.sleep(100);
  }
  const instances = seen.size;
  const answered = results.filter((r) => r.status === 200).length;
  const needed = Math.min(max, Math.ceil(burst / concurrency));
  const times = results.filter((r) => r.status === 200).map((r) => r.ms);
  const p99 = percentile(times, 99);
  console.log(`\n${burst} concurrent first requests, concurrency ${concurrency}, max ${max}`);
  console.log(`  answered                    ${answered} of ${burst} (${results.length - answered} failed), all within ${ms(wall)}`);
  console.log(`  instances started           ${instances} (needed ${needed})`);
  console.log(`  p50, p90                    ${ms(percentile(times, 50))} ${ms(percentile(times, 90))}`);
  console.log(`  p99                         ${ms(p99)}   ${(p99 / median(cold)).toFixed(2)}× one cold start`);
} finally {
  await api.request(`/functions/${name}`, { method: 'DELETE' });
}
