import { PLAT_ROOT } from './stack';

/**
 * Stops or starts a shared part of the infrastructure (scripts/part.sh): the fault tests take
 * Temporal or the Docker engine away and must always bring it back, so they call `start` in a
 * finally. It acts on the infrastructure `npm test` started, not on this run's worker and gateway.
 */
export async function part(action: 'stop' | 'start', name: 'temporal' | 'dockerd'): Promise<void> {
  const child = Bun.spawn(['bash', `${PLAT_ROOT}/scripts/part.sh`, action, name], { cwd: PLAT_ROOT, stdout: 'pipe', stderr: 'pipe' });
  const [code, out, err] = await Promise.all([child.exited, new Response(child.stdout).text(), new Response(child.stderr).text()]);
  if (code !== 0) throw new Error(`scripts/part.sh ${action} ${name} failed:\n${out}${err}`);
}

/** Runs `work` and returns its result with how long it took, in ms. */
export async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const result = await work();
  return [result, performance.now() - started];
}
