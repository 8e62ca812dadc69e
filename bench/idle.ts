import type Docker from 'dockerode';
import type { Api } from '../cli/api';
import type { FunctionState } from '../lib/types';

/**
 * Makes a function idle before a cold start is measured: every deploy leaves its new version's
 * container running (the proof that it starts), so the containers are removed and the entity is
 * waited for until it lists none.
 */
export async function makeIdle(api: Api, docker: Docker, name: string): Promise<void> {
  const containers = await docker.listContainers({ all: true, filters: { label: [`dev.plat.function=${name}`] } });
  for (const c of containers) await docker.getContainer(c.Id).remove({ force: true });
  const deadline = Date.now() + 60_000;
  while ((await api.json<{ function: FunctionState }>(`/functions/${name}`)).function.instances.length > 0) {
    if (Date.now() > deadline) throw new Error(`${name} still lists instances a minute after its containers were removed`);
    await Bun.sleep(10);
  }
}

/**
 * Waits until the function's idle rules have stopped every instance (`scale.stopAfter`), as a
 * function scales to zero in use: its entity lists none, and no container of it is left.
 */
export async function waitStopped(api: Api, docker: Docker, name: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { function: state } = await api.json<{ function: FunctionState }>(`/functions/${name}`);
    const containers = await docker.listContainers({ all: true, filters: { label: [`dev.plat.function=${name}`] } });
    if (state.instances.length === 0 && containers.length === 0) return;
    if (Date.now() > deadline) throw new Error(`${name} still runs instances ${timeoutMs / 1000} s after its last request`);
    await Bun.sleep(50);
  }
}
