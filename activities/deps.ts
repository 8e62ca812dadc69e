import { fileURLToPath } from 'node:url';
import type { Client } from '@temporalio/client';
import type Docker from 'dockerode';
import type { Settings } from '../lib/settings';
import type { RegistryApi } from './registry-api';

/** What activities need from the outside world, injected so tests can pass their own. */
export interface ActivityDeps {
  docker: Docker;
  registry: RegistryApi;
  temporal: Client;
  settings: Settings;
}

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
export const RUNTIMES_DIR = fileURLToPath(new URL('../runtimes', import.meta.url));
/** The bun binary from node_modules: resolves JS dependencies on the worker host. */
export const BUN_BIN = fileURLToPath(new URL('../node_modules/.bin/bun', import.meta.url));
