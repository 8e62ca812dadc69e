import bun from '../runtimes/bun/runtime.json' with { type: 'json' };

/** What the platform knows of a runtime; the runtime's folder under runtimes/ holds the rest. */
export interface RuntimeInfo {
  name: string;
  description: string;
  /** The official base image, the Dockerfile's default `BASE_IMAGE`. */
  baseImage: string;
  /** The local equivalent that scripts/base-images.sh builds when the official one cannot be pulled. */
  offlineBaseImage: string;
  /** The entry file a new function gets. */
  defaultEntry: string;
}

export const RUNTIMES: Record<string, RuntimeInfo> = {
  bun: { ...bun, defaultEntry: 'index.ts' },
};

export const RUNTIME_NAMES = Object.keys(RUNTIMES);
export const DEFAULT_RUNTIME = 'bun';
