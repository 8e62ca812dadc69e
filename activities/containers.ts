import { ApplicationFailure, Context } from '@temporalio/activity';
import type Docker from 'dockerode';
import { chmod, chown, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { platformRecord } from '../lib/logs';
import { deleteSchedules } from '../lib/schedules';
import { SECRETS_MOUNT, secretsDirOf } from '../lib/secrets';
import { makeSocketFolder, SOCKET_ENV, SOCKET_IN_CONTAINER, SOCKET_MOUNT, sealSocket, socketPathOf, socketsReady } from '../lib/sockets';
import { containerName, INSTANCE_ENV, INSTANCE_HEADER, LABELS, PROBE_HEADER, repositoryPath } from '../lib/names';
import { RUNTIMES } from '../lib/runtimes';
import type { FunctionVersion, Instance } from '../lib/types';
import type { ActivityDeps } from './deps';
import { isolateHostFromBridge } from './host-isolation';
import { WORKFLOW_TYPES } from '../workflows/definitions';
import { beat, errorOf, followDocker, hasImage, heartbeating, removeImage, statusOf } from './docker-helpers';
import { tail } from './dependencies';

export const CONTAINER_PORT = 8080;
/** The user every function runs as (not root; no capabilities). */
export const FUNCTION_UID = 10001;
/**
 * The network every function container joins: a bridge with inter-container traffic disabled, so
 * one function cannot reach another's container. The gateway reaches a container at its address
 * on this bridge, which only this host routes to. No port is published: a published port on
 * 127.0.0.1 goes through docker-proxy, a userland copy that cut the hop's throughput to a third
 * (bench/hop.ts) and costs a process per container. The container was reachable at its bridge
 * address with or without publishing, so nothing is exposed that was not before.
 */
export const FUNCTION_NETWORK = 'plat-functions';
/**
 * The bridge of functions with `"network": "none"`: an internal one, whose containers the host (the
 * gateway) reaches but which forwards nothing out, so such a function has no outbound access.
 */
export const INTERNAL_NETWORK = 'plat-functions-internal';
const NETWORKS = [FUNCTION_NETWORK, INTERNAL_NETWORK] as const;

function networkOf(config: FunctionVersion['config']): (typeof NETWORKS)[number] {
  return config.network === 'none' ? INTERNAL_NETWORK : FUNCTION_NETWORK;
}
const PORT_KEY = `${CONTAINER_PORT}/tcp`;
const HEALTH_PATH = '/_/health';
/** The runtime's own state: `{ pending }`, the work it goes on with after answering (ctx.waitUntil). */
const STATE_PATH = '/_/state';
const HEALTH_POLL_MS = 5;

/** Where the gateway reaches a container: its address on the functions' bridge. */
function urlOf(networks: Record<string, { IPAddress?: string }> | undefined): string | undefined {
  const address = networks?.[FUNCTION_NETWORK]?.IPAddress || networks?.[INTERNAL_NETWORK]?.IPAddress;
  return address ? `http://${address}:${CONTAINER_PORT}` : undefined;
}

function labelFilter(labels: Record<string, string>): string[] {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`);
}

/** Hardened settings every function container runs with (see DESIGN.md, "Runtimes"). */
export function containerSpec(
  name: string,
  version: FunctionVersion,
  instanceId: string,
  queue: string,
  /** A host folder on a tmpfs holding the function's secrets, mounted read-only at SECRETS_MOUNT. */
  secretsDir?: string,
  /** The instance's socket folder (lib/sockets.ts), mounted at SOCKET_MOUNT. */
  socketDir?: string,
): Docker.ContainerCreateOptions {
  const { config } = version;
  const binds = [...(secretsDir ? [`${secretsDir}:${SECRETS_MOUNT}:ro`] : []), ...(socketDir ? [`${socketDir}:${SOCKET_MOUNT}`] : [])];
  return {
    name: containerName(name, version.version, instanceId),
    Image: version.image,
    Env: [
      ...Object.entries(config.env).map(([k, v]) => `${k}=${v}`),
      `PORT=${CONTAINER_PORT}`,
      `${INSTANCE_ENV}=${instanceId}`,
      // The handler's `env` argument holds exactly these; ctx.waitUntil work is bounded by the timeout.
      `PLAT_ENV_KEYS=${Object.keys(config.env).join(',')}`,
      `PLAT_TIMEOUT_MS=${config.timeout * 1000}`,
      ...(socketDir ? [`${SOCKET_ENV}=${SOCKET_IN_CONTAINER}`] : []),
    ],
    Labels: {
      [LABELS.managed]: 'true',
      [LABELS.function]: name,
      [LABELS.version]: version.version,
      [LABELS.instance]: instanceId,
      [LABELS.queue]: queue,
    },
    ExposedPorts: { [PORT_KEY]: {} },
    User: `${FUNCTION_UID}:${FUNCTION_UID}`,
    StopTimeout: 10,
    HostConfig: {
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges:true'],
      ReadonlyRootfs: true,
      Tmpfs: { '/tmp': 'rw,nosuid,nodev,size=64m' },
      Memory: config.memory * 1024 * 1024,
      MemorySwap: config.memory * 1024 * 1024,
      NanoCpus: Math.round(config.cpu * 1e9),
      PidsLimit: 256,
      RestartPolicy: { Name: 'no' },
      NetworkMode: networkOf(config),
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '2' } },
      ...(binds.length ? { Binds: binds } : {}),
    },
  };
}

export function createContainerActivities({ docker, registry, settings, logs, secrets, temporal, events }: ActivityDeps) {
  /**
   * The instance's socket folder (lib/sockets.ts), made for its container alone: the function's user's
   * until its start is over, then sealed (`socketOf`). None when its runtime serves no socket, sockets
   * cannot be had here, or its path would not fit a socket address. It goes when the container does (worker/engine-watch.ts).
   */
  async function socketFolder(version: FunctionVersion, instanceId: string): Promise<string | undefined> {
    if (!RUNTIMES[version.config.runtime]?.servesSocket || !socketPathOf(settings, instanceId) || !(await socketsReady())) return undefined;
    return makeSocketFolder(settings, instanceId, FUNCTION_UID);
  }

  /** `{ socket }` when the instance's runtime serves its socket: its folder sealed first (see lib/sockets.ts). */
  async function socketOf(instanceId: string): Promise<Pick<Instance, 'socket'>> {
    const socket = await sealSocket(settings, instanceId);
    return socket ? { socket } : {};
  }

  /** Resumes a paused container; one that is not paused (any more) is fine as it is. */
  async function unpause(containerId: string): Promise<void> {
    await docker
      .getContainer(containerId)
      .unpause()
      .catch((error: unknown) => {
        if (statusOf(error) !== 409 && !/is not paused/.test((error as Error).message)) throw error;
      });
  }

  /**
   * Resumes a paused container before it is stopped or removed (best effort: the stop or removal
   * goes on whatever this answers), so its runtime gets SIGTERM like any other. Left to itself, the
   * engine signals the frozen process and then resumes it: on this engine (20.10, cgroup v1's
   * freezer) that is the path a CI run's removals were on when the engine stopped answering (every
   * container it left half-removed was an idle, so paused, function's), and a stop racing a pause
   * there was seen to take over a minute.
   */
  async function thaw(containerId: string): Promise<void> {
    await unpause(containerId).catch(() => undefined);
  }

  async function removeContainer({ containerId }: { containerId: string }): Promise<void> {
    await thaw(containerId);
    await removeThawed(containerId);
  }

  async function removeThawed(containerId: string): Promise<void> {
    try {
      await docker.getContainer(containerId).remove({ force: true });
    } catch (error) {
      if (statusOf(error) !== 404) throw error;
    }
  }

  /** Every container of the function on this platform (task queue), whatever its version or state. */
  function containersOf(name: string): Promise<Docker.ContainerInfo[]> {
    return docker.listContainers({
      all: true,
      filters: { label: labelFilter({ [LABELS.function]: name, [LABELS.queue]: settings.taskQueue }) },
    });
  }

  /** Stops a container the polite way (SIGTERM, so the runtime finishes what it holds; SIGKILL after the stop timeout), then removes it. */
  async function stopAndRemove(containerId: string): Promise<void> {
    await thaw(containerId);
    await docker
      .getContainer(containerId)
      .stop()
      .catch((error: unknown) => {
        const status = statusOf(error);
        if (status !== 304 && status !== 404) throw error; // 304: already stopped
      });
    await removeThawed(containerId);
  }

  /** The platform's line for an instance that answers its health route: how long it took from its creation. */
  async function logStarted(containerId: string): Promise<void> {
    if (!logs) return;
    const info = await docker
      .getContainer(containerId)
      .inspect()
      .catch(() => undefined);
    const name = info?.Config.Labels?.[LABELS.function];
    if (!info || !name) return;
    const ms = Date.now() - Date.parse(info.Created);
    const version = info.Config.Labels?.[LABELS.version];
    logs.append(
      name,
      platformRecord(`instance started: answered ${ms} ms after its container was created (cold start)`, { containerId, version }),
    );
  }

  /**
   * Writes the function's secrets for one instance into a folder of their own on a tmpfs of the
   * host (never on disk, never in the image): one file each, readable by the function's user only,
   * mounted read-only. The values are read from the store here, in the activity, so they never
   * travel through Temporal. The folder goes when the container does (worker/engine-watch.ts).
   */
  async function materializeSecrets(instanceId: string, names: string[] | undefined): Promise<string | undefined> {
    if (!names?.length) return undefined;
    if (!secrets) throw new Error('this worker has no secret store');
    const dir = secretsDirOf(settings, instanceId);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    for (const secret of names) {
      const value = await secrets.read(secret);
      if (!value) {
        await rm(dir, { recursive: true, force: true });
        throw ApplicationFailure.create({
          type: 'SecretMissing',
          message: `the function mounts secret "${secret}", which no longer exists: plat secret create ${secret}`,
          nonRetryable: true,
        });
      }
      const file = join(dir, secret);
      await rm(file, { force: true });
      await writeFile(file, value, { mode: 0o400 });
      await chown(file, FUNCTION_UID, FUNCTION_UID);
    }
    await chown(dir, FUNCTION_UID, FUNCTION_UID);
    await chmod(dir, 0o500);
    return dir;
  }

  let networksReady = false;
  /** Makes sure both bridges exist (the functions' and the internal one), each kept from reaching the host. */
  async function ensureFunctionNetwork(): Promise<void> {
    if (networksReady) return;
    for (const name of NETWORKS) {
      const inspect = () =>
        docker
          .getNetwork(name)
          .inspect()
          .then(
            (info: { Id: string; Options?: Record<string, string> }) => info,
            (error: unknown) => {
              if (statusOf(error) !== 404) throw error;
              return undefined;
            },
          );
      let network = await inspect();
      if (network === undefined) {
        await docker
          .createNetwork({
            Name: name,
            Driver: 'bridge',
            CheckDuplicate: true,
            Internal: name === INTERNAL_NETWORK,
            Options: { 'com.docker.network.bridge.enable_icc': 'false' },
            Labels: { [LABELS.managed]: 'true' },
          })
          .catch((error: unknown) => {
            if (statusOf(error) !== 409) throw error; // created meanwhile by another start
          });
        network = await inspect();
      }
      // The bridge's interface on the host: named after the network's id unless its options name it.
      if (network) {
        const bridge = network.Options?.['com.docker.network.bridge.name'] ?? `br-${network.Id.slice(0, 12)}`;
        const warning = await isolateHostFromBridge(bridge);
        if (warning) console.warn(warning);
      }
    }
    networksReady = true;
  }

  const activities = {
    removeContainer,

    /**
     * A running container of this version that a cold start can use instead of starting another:
     * one whose report the entity lost, or one that survived a gateway restart.
     */
    async findInstance({
      name,
      version,
      avoid = [],
      except,
    }: {
      name: string;
      version: string;
      avoid?: string[];
      /** The start's own instance, whose container an earlier attempt of it made: started through its health check, never adopted as it is. */
      except?: string;
    }): Promise<Instance | null> {
      for (const c of await containersOf(name)) {
        const instanceId = c.Labels[LABELS.instance];
        if ((c.State !== 'running' && c.State !== 'paused') || c.Labels[LABELS.version] !== version || !instanceId) continue;
        if (instanceId === except) continue;
        if (avoid.includes(c.Id)) continue;
        const url = urlOf(c.NetworkSettings?.Networks);
        if (!url) continue;
        if (c.State === 'paused') await unpause(c.Id);
        const now = new Date().toISOString();
        return {
          containerId: c.Id,
          instanceId,
          version,
          url,
          ...(await socketOf(instanceId)),
          startedAt: new Date(c.Created * 1000).toISOString(),
          state: 'running',
          lastUsedAt: now,
        };
      }
      return null;
    },

    /**
     * Pauses an idle instance (`docker pause`: memory kept, no CPU), unless the function still has
     * work after its answer (ctx.waitUntil), which the runtime tells on its state route.
     */
    async pauseInstance({
      containerId,
      instanceId,
      url,
    }: {
      containerId: string;
      instanceId: string;
      url: string;
    }): Promise<'paused' | 'busy' | 'gone'> {
      const pending = await fetch(`${url}${STATE_PATH}`, {
        headers: { [INSTANCE_HEADER]: instanceId, [PROBE_HEADER]: '1' },
        signal: AbortSignal.timeout(2000),
      })
        .then(async (response) => (response.ok ? (((await response.json()) as { pending?: number }).pending ?? 0) : 0))
        .catch(() => 0);
      if (pending > 0) return 'busy';
      try {
        await docker.getContainer(containerId).pause();
        return 'paused';
      } catch (error) {
        const status = statusOf(error);
        if (status === 404 || status === 409) return 'gone'; // removed, or not running any more
        throw error;
      }
    },

    /** Removes the function's local images of versions not in `keep` (images in use by a container stay: 409). */
    async pruneImages({ name, keep }: { name: string; keep: string[] }): Promise<number> {
      const images = await docker.listImages({ filters: { label: labelFilter({ [LABELS.function]: name }) } });
      const unused = images.filter((image) => !keep.includes(image.Labels?.[LABELS.version] ?? ''));
      for (const image of unused) await removeImage(docker, image.Id);
      return unused.length;
    },

    /** Deletes versions that fell out of the kept count: their manifests and sources in the registry, their local images. */
    async discardVersions({
      name,
      versions,
      keepSources,
    }: {
      name: string;
      versions: Array<{ version: string; image: string; sourceDigest: string }>;
      keepSources: string[];
    }): Promise<void> {
      const repository = repositoryPath(name);
      for (const { version, image, sourceDigest } of versions) {
        await registry.delete(repository, 'manifests', image.slice(image.indexOf('@') + 1));
        await registry.untagSource(repository, version);
        if (!keepSources.includes(sourceDigest)) await registry.delete(repository, 'blobs', sourceDigest);
        const local = await docker.listImages({ filters: { label: labelFilter({ [LABELS.function]: name, [LABELS.version]: version }) } });
        for (const found of local) await removeImage(docker, found.Id, { force: true });
      }
    },

    /** Makes sure the engine has the image; pulls it by digest from the registry when it does not. */
    async ensureImage({ image }: { image: string }): Promise<void> {
      if (await hasImage(docker, image)) return;
      const messages = await heartbeating(async () => followDocker(docker, await docker.pull(image)));
      const error = errorOf(messages);
      if (error) throw new Error(`pulling ${image} failed: ${error}`);
    },

    /**
     * Creates the instance's container. Its name follows from the instance id, which the workflow
     * chose: an attempt that is retried (its activity timed out, its worker died) finds the
     * container an earlier attempt made instead of leaving it behind.
     */
    async createContainer({ name, version, instanceId }: { name: string; version: FunctionVersion; instanceId: string }): Promise<string> {
      await ensureFunctionNetwork();
      const secretsDir = await materializeSecrets(instanceId, version.config.secrets);
      const spec = containerSpec(name, version, instanceId, settings.taskQueue, secretsDir, await socketFolder(version, instanceId));
      try {
        return (await docker.createContainer(spec)).id;
      } catch (error) {
        if (statusOf(error) !== 409) throw error;
      }
      const existing = await docker.getContainer(spec.name as string).inspect();
      if (existing.Config.Labels?.[LABELS.instance] === instanceId) return existing.Id;
      throw new Error(`a container named ${spec.name} exists that is not instance ${instanceId}`);
    },

    async startContainer({ containerId }: { containerId: string }): Promise<string> {
      const container = docker.getContainer(containerId);
      await container.start().catch((error: unknown) => {
        if (statusOf(error) !== 304) throw error; // 304: already started (a retried attempt)
      });
      const url = urlOf((await container.inspect()).NetworkSettings.Networks);
      if (!url) throw new Error(`container ${containerId.slice(0, 12)} has no address on the ${NETWORKS.join(' or ')} network`);
      return url;
    },

    /**
     * Polls the runtime's health route until it answers 200, naming the instance as every request
     * does. A container that exits first fails the start at once with the end of its log (e.g. the
     * user's module throwing at import time).
     */
    async waitHealthy({
      url,
      containerId,
      instanceId,
      timeoutMs,
    }: {
      url: string;
      containerId: string;
      instanceId: string;
      timeoutMs: number;
    }): Promise<void> {
      const container = docker.getContainer(containerId);
      const deadline = Date.now() + timeoutMs;
      let lastCheck = 0;
      while (Date.now() < deadline) {
        try {
          const response = await fetch(`${url}${HEALTH_PATH}`, {
            headers: { [INSTANCE_HEADER]: instanceId, [PROBE_HEADER]: '1' },
            signal: AbortSignal.timeout(1000),
          });
          if (response.ok) {
            void logStarted(containerId);
            return;
          }
        } catch {
          // not listening yet
        }
        if (Date.now() - lastCheck > 250) {
          lastCheck = Date.now();
          beat();
          const { State } = await container.inspect();
          if (!State.Running) {
            const logs = demuxLogs(await container.logs({ stdout: true, stderr: true, tail: 30 }));
            throw ApplicationFailure.create({
              type: 'HealthCheckFailed',
              message: `the function exited with code ${State.ExitCode} before answering:\n${tail(logs, 20)}`,
              nonRetryable: true,
            });
          }
        }
        await new Promise((resolve) => setTimeout(resolve, HEALTH_POLL_MS));
      }
      throw ApplicationFailure.create({
        type: 'HealthCheckFailed',
        message: `the function did not answer ${HEALTH_PATH} within ${timeoutMs / 1000} s`,
        nonRetryable: true,
      });
    },

    /** Stops and removes exactly these containers: the ones a switch replaced, once their drain is over. */
    async retireContainers({ containerIds, name, reason }: { containerIds: string[]; name?: string; reason?: string }): Promise<void> {
      if (name && reason)
        for (const containerId of containerIds) logs?.append(name, platformRecord(`instance stopped: ${reason}`, { containerId }));
      // The gateways on this host route no new request to them from now (a stop takes a moment).
      if (name) for (const containerId of containerIds) events.publish({ type: 'instance-retired', name, containerId });
      await Promise.all(containerIds.map(stopAndRemove));
    },

    /** Removes every container of a function (its removal). */
    async removeContainers({ name }: { name: string }): Promise<number> {
      const found = await containersOf(name);
      await Promise.all(
        found.map(async (c) => {
          if (c.State === 'paused') await thaw(c.Id);
          await removeThawed(c.Id);
        }),
      );
      return found.length;
    },

    /** Removes a function's schedules, its images from the engine, and its manifests, sources and calls' bodies from the registry. */
    async removeFunctionArtifacts({
      name,
      images,
      sourceDigests,
      versions = [],
    }: {
      name: string;
      images: string[];
      sourceDigests: string[];
      versions?: string[];
    }): Promise<void> {
      await deleteSchedules(temporal, name);
      const local = await docker.listImages({ filters: { label: labelFilter({ [LABELS.function]: name }) } });
      for (const image of local) await removeImage(docker, image.Id, { force: true });
      const repository = repositoryPath(name);
      for (const image of images) await registry.delete(repository, 'manifests', image.slice(image.indexOf('@') + 1));
      for (const version of versions) await registry.untagSource(repository, version);
      for (const digest of new Set(sourceDigests)) await registry.delete(repository, 'blobs', digest);
      // Its async calls' bodies (activities/calls.ts): their blobs go with the next collection.
      for (const tag of await registry.tags(repository)) if (tag.startsWith('call-')) await registry.untag(repository, tag);
    },
  };

  /** A cold start's instance, told to the gateways on this host the moment it answers (see `instance-ready`). */
  function announced(instance: Instance): Instance {
    const { workflowType, workflowExecution } = Context.current().info;
    if (workflowType === WORKFLOW_TYPES.coldStart && workflowExecution)
      events.publish({ type: 'instance-ready', start: workflowExecution.workflowId, instance });
    return instance;
  }

  return {
    ...activities,

    /**
     * A whole start in one step: a running container of the version that the entity does not list
     * (with `adopt`, for a version's first instance), or a new container (its image pulled if
     * missing), its start and its first health answer; a container that never answers is removed.
     * The cold-start workflow runs it as a local activity, so a start costs Temporal one step where
     * it cost five. Every part is safe to run again with the same instance id.
     */
    async launchInstance({
      name,
      version,
      instanceId,
      adopt,
      avoid,
      timeoutMs,
    }: {
      name: string;
      version: FunctionVersion;
      instanceId: string;
      adopt: boolean;
      /** Containers not to take over (see ColdStartInput). */
      avoid?: string[];
      timeoutMs: number;
    }): Promise<Instance> {
      // The look for a container to adopt and the new container's creation go at once: adopting is
      // rare, and a container made for nothing is removed. The image is pulled only when the engine
      // lacks it (the create answers 404), not looked up before every start.
      const [found, created] = await Promise.allSettled([
        // (not its own container: an attempt run again after a worker crash would adopt it unchecked,
        // and then remove it as the container made for nothing, since the create gives back the same one)
        adopt ? activities.findInstance({ name, version: version.version, avoid, except: instanceId }) : null,
        activities.createContainer({ name, version, instanceId }).catch(async (error: unknown) => {
          if (statusOf(error) !== 404) throw error;
          await activities.ensureImage({ image: version.image });
          return activities.createContainer({ name, version, instanceId });
        }),
      ]);
      if (found.status === 'rejected') throw found.reason;
      if (found.value) {
        if (created.status === 'fulfilled') await removeThawed(created.value); // (never started)
        return announced(found.value);
      }
      if (created.status === 'rejected') throw created.reason;
      const containerId = created.value;
      try {
        const url = await activities.startContainer({ containerId });
        await activities.waitHealthy({ url, containerId, instanceId, timeoutMs });
        const startedAt = new Date().toISOString();
        const socket = await socketOf(instanceId);
        return announced({
          containerId,
          instanceId,
          version: version.version,
          url,
          ...socket,
          startedAt,
          state: 'running',
          lastUsedAt: startedAt,
        });
      } catch (error) {
        await removeThawed(containerId); // (never paused: never listed)
        throw error;
      }
    },
  };
}

/** Docker frames stdout and stderr of a container without a TTY: 8-byte headers, the size at offset 4. */
export function demuxLogs(raw: Buffer): string {
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= raw.length) {
    const size = raw.readUInt32BE(offset + 4);
    parts.push(raw.subarray(offset + 8, offset + 8 + size));
    offset += 8 + size;
  }
  return Buffer.concat(parts).toString('utf8');
}
