import { randomBytes } from 'node:crypto';
import { ApplicationFailure, heartbeat } from '@temporalio/activity';
import type Docker from 'dockerode';
import { LABELS, repositoryPath } from '../lib/names';
import type { FunctionVersion, Instance } from '../lib/types';
import type { ActivityDeps } from './deps';
import { errorOf, followDocker, hasImage, removeImage } from './docker-helpers';
import { tail } from './dependencies';

export const CONTAINER_PORT = 8080;
/**
 * The network every function container joins: a bridge with inter-container traffic disabled, so
 * one function cannot reach another's container. The gateway reaches a container at its address
 * on this bridge, which only this host routes to. No port is published: a published port on
 * 127.0.0.1 goes through docker-proxy, a userland copy that cut the hop's throughput to a third
 * (bench/hop.ts) and costs a process per container. The container was reachable at its bridge
 * address with or without publishing, so nothing is exposed that was not before.
 */
export const FUNCTION_NETWORK = 'plat-functions';
const PORT_KEY = `${CONTAINER_PORT}/tcp`;
const HEALTH_PATH = '/_/health';
const HEALTH_POLL_MS = 15;

/** Where the gateway reaches a container: its address on the functions' bridge. */
function urlOf(networks: Record<string, { IPAddress?: string }> | undefined): string | undefined {
  const address = networks?.[FUNCTION_NETWORK]?.IPAddress;
  return address ? `http://${address}:${CONTAINER_PORT}` : undefined;
}

function labelFilter(labels: Record<string, string>): string[] {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`);
}

/** Hardened settings every function container runs with (see DESIGN.md, "Runtimes"). */
export function containerSpec(name: string, version: FunctionVersion): Docker.ContainerCreateOptions {
  const { config } = version;
  return {
    name: `plat-${name}-${version.version}-${randomBytes(3).toString('hex')}`,
    Image: version.image,
    Env: [...Object.entries(config.env).map(([k, v]) => `${k}=${v}`), `PORT=${CONTAINER_PORT}`],
    Labels: { [LABELS.managed]: 'true', [LABELS.function]: name, [LABELS.version]: version.version },
    ExposedPorts: { [PORT_KEY]: {} },
    User: '10001:10001',
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
      NetworkMode: FUNCTION_NETWORK,
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '2' } },
    },
  };
}

export function createContainerActivities({ docker, registry }: ActivityDeps) {
  async function removeContainer({ containerId }: { containerId: string }): Promise<void> {
    try {
      await docker.getContainer(containerId).remove({ force: true });
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode !== 404) throw error;
    }
  }

  /** Every container of the function, whatever its version or state. */
  function containersOf(name: string): Promise<Docker.ContainerInfo[]> {
    return docker.listContainers({ all: true, filters: { label: labelFilter({ [LABELS.function]: name }) } });
  }

  let networkReady = false;
  async function ensureFunctionNetwork(): Promise<void> {
    if (networkReady) return;
    const exists = await docker
      .getNetwork(FUNCTION_NETWORK)
      .inspect()
      .then(
        () => true,
        () => false,
      );
    if (!exists) {
      await docker
        .createNetwork({
          Name: FUNCTION_NETWORK,
          Driver: 'bridge',
          CheckDuplicate: true,
          Options: { 'com.docker.network.bridge.enable_icc': 'false' },
          Labels: { [LABELS.managed]: 'true' },
        })
        .catch((error: { statusCode?: number }) => {
          if (error.statusCode !== 409) throw error; // created meanwhile by another start
        });
    }
    networkReady = true;
  }

  return {
    removeContainer,

    /**
     * A running container of this version, if one is up already (e.g. after a gateway restart).
     * Containers of the function that have stopped (an engine restart, a crash) are removed here,
     * so they do not pile up.
     */
    async findInstance({ name, version }: { name: string; version: string }): Promise<Instance | null> {
      const found = await containersOf(name);
      const stopped = found.filter((c) => c.State !== 'running' && c.State !== 'created' && c.State !== 'restarting');
      await Promise.all(stopped.map((c) => removeContainer({ containerId: c.Id })));
      for (const c of found) {
        if (c.State !== 'running' || c.Labels[LABELS.version] !== version) continue;
        const url = urlOf(c.NetworkSettings?.Networks);
        if (url) return { containerId: c.Id, version, url, startedAt: new Date(c.Created * 1000).toISOString() };
      }
      return null;
    },

    /** Makes sure the engine has the image; pulls it by digest from the registry when it does not. */
    async ensureImage({ image }: { image: string }): Promise<void> {
      if (await hasImage(docker, image)) return;
      const messages = await followDocker(docker, await docker.pull(image));
      const error = errorOf(messages);
      if (error) throw new Error(`pulling ${image} failed: ${error}`);
    },

    async createContainer({ name, version }: { name: string; version: FunctionVersion }): Promise<string> {
      await ensureFunctionNetwork();
      const container = await docker.createContainer(containerSpec(name, version));
      return container.id;
    },

    async startContainer({ containerId }: { containerId: string }): Promise<string> {
      const container = docker.getContainer(containerId);
      await container.start().catch((error: { statusCode?: number }) => {
        if (error.statusCode !== 304) throw error; // 304: already started (a retried attempt)
      });
      const url = urlOf((await container.inspect()).NetworkSettings.Networks);
      if (!url) throw new Error(`container ${containerId.slice(0, 12)} has no address on the ${FUNCTION_NETWORK} network`);
      return url;
    },

    /**
     * Polls the runtime's health route until it answers 200. A container that exits first fails the
     * cold start at once with the end of its log (e.g. the user's module throwing at import time).
     */
    async waitHealthy({ url, containerId, timeoutMs }: { url: string; containerId: string; timeoutMs: number }): Promise<void> {
      const container = docker.getContainer(containerId);
      const deadline = Date.now() + timeoutMs;
      let lastCheck = 0;
      while (Date.now() < deadline) {
        try {
          const response = await fetch(`${url}${HEALTH_PATH}`, { signal: AbortSignal.timeout(1000) });
          if (response.ok) return;
        } catch {
          // not listening yet
        }
        if (Date.now() - lastCheck > 250) {
          lastCheck = Date.now();
          heartbeat();
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

    /**
     * Stops a function's containers of other versions than `keepVersion` the polite way (SIGTERM,
     * so the bootstrap finishes the requests it holds, SIGKILL after the stop timeout), then
     * removes them. Used when a new version has taken over; removal uses removeContainers.
     */
    async retireContainers({ name, keepVersion }: { name: string; keepVersion: string }): Promise<number> {
      const found = await containersOf(name);
      const retired = found.filter((c) => c.Labels[LABELS.version] !== keepVersion);
      await Promise.all(
        retired.map(async (c) => {
          await docker
            .getContainer(c.Id)
            .stop()
            .catch((error: { statusCode?: number }) => {
              if (error.statusCode !== 304 && error.statusCode !== 404) throw error; // 304: already stopped
            });
          await removeContainer({ containerId: c.Id });
        }),
      );
      return retired.length;
    },

    /** Removes a function's containers, all of them or all but one version's. */
    async removeContainers({ name, exceptVersion }: { name: string; exceptVersion?: string }): Promise<number> {
      const found = await containersOf(name);
      const doomed = found.filter((c) => c.Labels[LABELS.version] !== exceptVersion);
      await Promise.all(doomed.map((c) => removeContainer({ containerId: c.Id })));
      return doomed.length;
    },

    /** Removes a function's images from the engine and its manifests and sources from the registry. */
    async removeFunctionArtifacts({
      name,
      images,
      sourceDigests,
    }: {
      name: string;
      images: string[];
      sourceDigests: string[];
    }): Promise<void> {
      const local = await docker.listImages({ filters: { label: labelFilter({ [LABELS.function]: name }) } });
      for (const image of local) await removeImage(docker, image.Id, { force: true });
      const repository = repositoryPath(name);
      for (const image of images) await registry.delete(repository, 'manifests', image.slice(image.indexOf('@') + 1));
      for (const digest of new Set(sourceDigests)) await registry.delete(repository, 'blobs', digest);
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
