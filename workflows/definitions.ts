/**
 * The names clients use to reach the workflows: workflow types, queries, updates and signals.
 * Free of workflow code, so the gateway and activities import it without the workflow sandbox.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { FunctionState, FunctionVersion, Instance, StepProgress } from '../lib/types';

export const WORKFLOW_TYPES = {
  deploy: 'deployFunction',
  entity: 'functionEntity',
  coldStart: 'coldStart',
} as const;

export interface FunctionEntityInput {
  name: string;
  /** Carried over by continue-as-new. */
  state?: FunctionState;
}

export const describeQuery = defineQuery<FunctionState>('describe');
export const registerVersionUpdate = defineUpdate<void, [FunctionVersion]>('registerVersion');
export const removeUpdate = defineUpdate<{ removedContainers: number }, []>('remove');
export const instanceStartedSignal = defineSignal<[Instance]>('instanceStarted');
export const instanceGoneSignal = defineSignal<[string]>('instanceGone');

export const progressQuery = defineQuery<StepProgress[]>('progress');
