import bun from '../runtimes/bun/runtime.json' with { type: 'json' };
import deno from '../runtimes/deno/runtime.json' with { type: 'json' };
import node from '../runtimes/node/runtime.json' with { type: 'json' };
import pythonFlask from '../runtimes/python-flask/runtime.json' with { type: 'json' };

/** What the platform knows of a runtime (its runtime.json); the runtime's folder holds the rest. */
export interface RuntimeInfo {
  name: string;
  description: string;
  /** How dependencies are resolved: package.json (js) or requirements.txt (python). */
  language: 'js' | 'python';
  /** The entry file a new function gets. */
  defaultEntry: string;
  /** The official base image, the Dockerfile's default `BASE_IMAGE`. */
  baseImage: string;
  /** The local equivalent that scripts/base-images.sh builds when the official one cannot be pulled. */
  offlineBaseImage: string;
  /** Python runtimes: the interpreter version wheels are chosen for. */
  pythonVersion?: string;
  /** Static binaries from node_modules that the image build runs (copied into the context's plat/). */
  buildTools?: string[];
  /** Its bootstrap serves the function on the platform's socket too (lib/sockets.ts). */
  servesSocket?: boolean;
}

export const RUNTIMES: Record<string, RuntimeInfo> = Object.fromEntries(
  ([bun, deno, node, pythonFlask] as RuntimeInfo[]).map((runtime) => [runtime.name, runtime]),
);

export const RUNTIME_NAMES = Object.keys(RUNTIMES);
export const DEFAULT_RUNTIME = 'bun';
