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
