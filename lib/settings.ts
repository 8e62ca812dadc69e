import { homedir } from 'node:os';
import { join } from 'node:path';

/** Settings of the gateway and worker processes, from the environment (see README). */
export interface Settings {
  temporalAddress: string;
  temporalNamespace: string;
  taskQueue: string;
  /** host:port of the registry as Docker sees it, e.g. localhost:5001 */
  registry: string;
  dataDir: string;
  port: number;
  /** Undefined when AUTH_TOKEN is unset; the local stack sets a default. */
  authToken?: string;
}

export function loadSettings(env: Record<string, string | undefined> = process.env): Settings {
  return {
    temporalAddress: env.TEMPORAL_ADDRESS || '127.0.0.1:7233',
    temporalNamespace: env.TEMPORAL_NAMESPACE || 'default',
    taskQueue: env.PLAT_TASK_QUEUE || 'plat',
    registry: env.REGISTRY || 'localhost:5001',
    dataDir: env.PLAT_HOME || join(homedir(), '.plat'),
    port: Number(env.PORT || 8080),
    authToken: env.AUTH_TOKEN || undefined,
  };
}

/** The registry's HTTP base URL: registries on loopback speak plain HTTP. */
export function registryUrl(registry: string): string {
  return `http://${registry}`;
}
