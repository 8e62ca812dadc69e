import type { FunctionConfig } from './function-config';

/** One built, pushed version of a function. */
export interface FunctionVersion {
  version: string;
  /** The image by digest, e.g. localhost:5001/plat/fn-hello@sha256:… */
  image: string;
  digest: string;
  config: FunctionConfig;
  sourceDigest: string;
  deployedAt: string;
}

/** A running container serving a function. */
export interface Instance {
  containerId: string;
  version: string;
  /** Where the gateway proxies to: the container on the functions' bridge, e.g. http://172.19.0.2:8080 */
  url: string;
  startedAt: string;
}

/** What the function entity workflow holds and answers to `describe`. */
export interface FunctionState {
  name: string;
  createdAt: string;
  activeVersion?: string;
  versions: FunctionVersion[];
  instances: Instance[];
  /** Set by removal, just before the entity workflow completes. */
  removed?: boolean;
}

export const DEPLOY_STEPS = ['validate', 'package', 'build', 'push', 'register'] as const;
export type DeployStep = (typeof DEPLOY_STEPS)[number];

export interface StepProgress {
  step: DeployStep;
  status: 'pending' | 'running' | 'done' | 'failed';
  detail?: string;
  startedAt?: string;
  finishedAt?: string;
}

export interface DeployInput {
  name: string;
  version: string;
  config: FunctionConfig;
  sourceDigest: string;
  sourceSize: number;
}

export interface DeployResult {
  name: string;
  version: string;
  image: string;
  digest: string;
}

export interface ColdStartInput {
  name: string;
  version: FunctionVersion;
}

/** Events the gateway streams while a deploy runs (`POST /functions?wait=true`), one JSON per line. */
export type DeployEvent =
  | { type: 'accepted'; name: string; version: string; workflowId: string }
  | { type: 'step'; step: DeployStep; status: StepProgress['status']; detail?: string }
  | { type: 'notice'; message: string }
  | { type: 'done'; result: DeployResult }
  | { type: 'error'; error: { code: string; message: string } };
