import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { waitFor } from './wait';

/** The infrastructure's folder (scripts/lib.sh): where `npm test` keeps dockerd's pid. */
const INFRA_HOME = process.env.PLAT_HOME || join(process.env.HOME || '/root', '.plat');
/** Where dockerd writes its goroutines when sent SIGUSR1. */
const DOCKER_EXEC_ROOT = '/var/run/docker';

/**
 * Whether the engine answers a container list within `ms`. A hung engine takes every test after it
 * down with it; the clean-up checks before it lists anything, so a run says so instead of hanging.
 */
export async function engineAnswers(docker: Docker, ms = 15_000): Promise<boolean> {
  const listed = docker.listContainers({ all: true }).then(
    () => true,
    () => true, // an engine that refuses answers: not hung
  );
  return Promise.race([listed, Bun.sleep(ms).then(() => false)]);
}

/**
 * What a hung engine is waiting on: dockerd writes its goroutines to a file when sent SIGUSR1; this
 * returns that file's path and the goroutines blocked for minutes, grouped by the engine's own
 * frame they wait in (the lock or call that holds the rest up), for the run's output.
 */
export async function engineReport(): Promise<string> {
  const pid = Number((await readFile(join(INFRA_HOME, 'run', 'dockerd.pid'), 'utf8').catch(() => '')).trim());
  if (!pid) return 'the engine did not answer; no dockerd pid file, so no goroutine dump';
  // (SIGUSR1 ends most other processes: never send it to a pid the file names after dockerd is gone)
  const command = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
  if (command !== 'dockerd') return `the engine did not answer; pid ${pid} of the pid file is not dockerd (${command || 'gone'})`;
  const before = new Set(await stackFiles());
  try {
    process.kill(pid, 'SIGUSR1');
  } catch (error) {
    return `the engine did not answer; SIGUSR1 to dockerd ${pid} failed (${(error as Error).message})`;
  }
  let dump: string | undefined;
  await waitFor(
    "dockerd's goroutine dump",
    10_000,
    async () => {
      dump = (await stackFiles()).find((f) => !before.has(f));
      return dump !== undefined;
    },
    200,
  ).catch(() => undefined);
  if (!dump) return `the engine did not answer; dockerd ${pid} wrote no goroutine dump within 10 s`;
  const path = join(DOCKER_EXEC_ROOT, dump);
  return `the engine did not answer; dockerd's goroutines: ${path}\n${summarize(await readFile(path, 'utf8'))}`;
}

async function stackFiles(): Promise<string[]> {
  return (await readdir(DOCKER_EXEC_ROOT).catch(() => [] as string[])).filter((f) => f.startsWith('goroutine-stacks-'));
}

/** Goroutines waiting a minute or more, counted by state and by their first frame in the engine's code. */
export function summarize(dump: string): string {
  const groups = new Map<string, number>();
  for (const block of dump.split(/\n\s*\n/)) {
    const header = /^goroutine \d+ \[([^,\]]+), (\d+) minutes?/.exec(block.trim());
    if (!header) continue;
    const frame = block
      .split('\n')
      .find((line) => /github\.com\/docker\/docker\/(daemon|container|layer|image|builder|libcontainerd|api)/.test(line));
    const key = `${header[1]} in ${frame?.trim().replace(/\([^()]*\)$/, '') ?? '(no engine frame)'}`;
    groups.set(key, (groups.get(key) ?? 0) + 1);
  }
  if (groups.size === 0) return '  (no goroutine has waited a minute)';
  return [...groups]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 20)
    .map(([key, count]) => `  ${count} × ${key}`)
    .join('\n');
}
