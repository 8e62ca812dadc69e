import { fileURLToPath } from 'node:url';
import type { Client } from '@temporalio/client';
import type Docker from 'dockerode';
import type { EventPublisher } from '../lib/events';
import type { LogWriter } from '../lib/logs';
import type { SecretStore } from '../lib/secrets';
import type { RegistryApi } from '../lib/registry-api';
import type { Settings } from '../lib/settings';

/** What activities need from the outside world, injected so tests can pass their own. */
export interface ActivityDeps {
  docker: Docker;
  registry: RegistryApi;
  temporal: Client;
  settings: Settings;
  /** This host's gateways: told at once when a version switches. */
  events: EventPublisher;
  /** Functions' logs, where activities write the platform's events (a deploy, a start, a stop). */
  logs?: LogWriter;
  /** Where secrets' values are read when a container that mounts them is created. */
  secrets?: SecretStore;
}

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
export const RUNTIMES_DIR = fileURLToPath(new URL('../runtimes', import.meta.url));
/** The bun binary from node_modules: resolves JS dependencies on the worker host. */
export const BUN_BIN = fileURLToPath(new URL('../node_modules/.bin/bun', import.meta.url));
