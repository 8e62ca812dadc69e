import { randomBytes } from 'node:crypto';
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import type { RegistryApi } from '../../lib/registry-api';
import { type ErrorBody, PlatError } from '../../lib/errors';
import { describeProblems, parseFunctionConfig } from '../../lib/function-config';
import { functionNameProblem, newVersion, repositoryPath, SEARCH_ATTRIBUTES, VERSION_PATTERN, workflowIds } from '../../lib/names';
import { LIMITS, type Settings } from '../../lib/settings';
import type {
  DeployEvent,
  DeployInput,
  DeployResult,
  Deployment,
  FunctionState,
  FunctionSummary,
  RollbackOutcome,
  StepProgress,
  VersionSummary,
} from '../../lib/types';
import { pauseSchedules, syncSchedules } from '../../lib/schedules';
import { activateVersionUpdate, describeQuery, progressQuery, removeUpdate, WORKFLOW_TYPES } from '../../workflows/definitions';
import { ArchiveError, validateArchive } from '../../activities/archive';
import { toPlatError } from '../temporal-errors';
import { instanceUsage } from '../invoke/worker-link';
import { RegistryGate } from './registry-gate';
import { CONTROL_READ_MS, within } from '../temporal';

const PROGRESS_POLL_MS = 200;
const QUERY_WAIT_MS = 1000;
/** After this long with no step started, the deploy stream says that no worker seems to be there. */
const WORKER_HINT_MS = 10_000;

/**
 * The control plane as the gateway sees it: function state is read from and written to Temporal
 * (entity workflows, visibility), sources go to the registry. Holds no state of its own.
 */
export class FunctionsService {
  /** This gateway's requests on a container now (the invoke service's count), for describe. */
  requestsOn: (containerId: string) => number = () => 0;
  /** Called when a function's serving version may have changed (deploy finished, removal). */
  onChange: (name: string) => void = () => {};
  /** Told when a deploy this gateway started ends (for the deploy metrics). */
  onDeployEnd: (result: 'succeeded' | 'failed', seconds: number) => void = () => {};
  /** Holds uploads while the registry's garbage is collected. */
  readonly registryGate = new RegistryGate();

  constructor(
    private readonly temporal: Client,
    private readonly registry: RegistryApi,
    private readonly settings: Settings,
    /** Whether a secret exists (the store is the gateway's): a deploy naming a missing one is refused. */
    private readonly secretExists: (name: string) => Promise<boolean> = async () => false,
  ) {}

  /** The function's state, from its entity; `deadlineMs` bounds the wait for its answer. */
  async get(name: string, deadlineMs = CONTROL_READ_MS): Promise<FunctionState> {
    checkName(name);
    try {
      const state = await within(this.temporal, deadlineMs, () =>
        this.temporal.workflow.getHandle(workflowIds.entity(name)).query(describeQuery),
      );
      if (state.removed) throw new PlatError('FUNCTION_NOT_FOUND', `function ${name} not found`);
      return state;
    } catch (error) {
      throw toPlatError(error, 'INTERNAL', `function ${name} not found`);
    }
  }

  /** The state with what each instance uses now (memory, CPU), read from the engine by the worker on this host. */
  async withUsage<S extends Pick<FunctionState, 'instances'>>(state: S): Promise<S> {
    const instances = await Promise.all(
      state.instances.map(async (instance) => ({
        ...instance,
        usage: await instanceUsage(this.settings.eventsSocket, instance.containerId),
      })),
    );
    return { ...state, instances };
  }

  /**
   * This platform's functions: the entities on its task queue. Another platform may share the
   * Temporal namespace under names of its own (a test run does); its functions are not listed
   * here, and its entities, whose workers may be gone for good, are never queried.
   */
  async list(): Promise<FunctionSummary[]> {
    const functions: FunctionSummary[] = [];
    try {
      const query = `WorkflowType = '${WORKFLOW_TYPES.entity}' AND ExecutionStatus = 'Running' AND TaskQueue = '${this.settings.taskQueue}'`;
      await within(this.temporal, CONTROL_READ_MS, async () => {
        for await (const execution of this.temporal.workflow.list({ query })) {
          const attrs = execution.typedSearchAttributes;
          const name = attrs.get(SEARCH_ATTRIBUTES.function);
          if (!name) continue;
          functions.push({
            name,
            version: attrs.get(SEARCH_ATTRIBUTES.version),
            runtime: attrs.get(SEARCH_ATTRIBUTES.runtime),
            updatedAt: execution.startTime.toISOString(),
          });
        }
      });
    } catch (error) {
      throw toPlatError(error, 'INTERNAL');
    }
    return functions.sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * Validates the upload, stores the source in the registry and starts the deploy workflow. A deploy
   * that cannot even start its workflow (Temporal away) takes the source it uploaded back out.
   */
  async deploy(configText: string, archive: Uint8Array): Promise<Deployment> {
    if (configText.length > LIMITS.functionJsonBytes) {
      throw new PlatError('INVALID_FUNCTION_CONFIG', `function.json is larger than ${LIMITS.functionJsonBytes / 1024} KiB`);
    }
    const parsed = parseFunctionConfig(configText);
    if (!parsed.ok) throw new PlatError('INVALID_FUNCTION_CONFIG', describeProblems(parsed.problems));
    const { config } = parsed;
    // Before anything is uploaded or built: a secret the function names must exist.
    for (const secret of config.secrets ?? []) {
      if (!(await this.secretExists(secret))) {
        throw new PlatError(
          'INVALID_FUNCTION_CONFIG',
          `function.json names secret "${secret}", which does not exist: plat secret create ${secret}`,
        );
      }
    }
    if (archive.byteLength === 0) throw new PlatError('INVALID_ARCHIVE', 'the archive is empty');
    if (archive.byteLength > LIMITS.archiveBytes) {
      throw new PlatError(
        'PAYLOAD_TOO_LARGE',
        `the archive is larger than ${LIMITS.archiveBytes / 1024 / 1024} MiB; list big files in .platignore`,
      );
    }
    const isGzip = archive[0] === 0x1f && archive[1] === 0x8b;
    const isZip = archive[0] === 0x50 && archive[1] === 0x4b;
    if (!isGzip && !isZip) throw new PlatError('INVALID_ARCHIVE', 'the archive must be a tar.gz or a zip');
    // Paths out of the folder, links, devices, damaged streams and bombs are refused here, before
    // anything is stored or a workflow starts (the worker checks again as it unpacks).
    try {
      await validateArchive(archive);
    } catch (error) {
      if (error instanceof ArchiveError) throw new PlatError('INVALID_ARCHIVE', error.message);
      throw error;
    }

    const repository = repositoryPath(config.name);
    const version = newVersion(new Date(), randomBytes(2).toString('hex'));
    await this.registryGate.open();
    let upload: { digest: string; created: boolean };
    try {
      upload = await this.registry.uploadBlob(repository, archive);
      await this.registry.tagSource(repository, version, { digest: upload.digest, size: archive.byteLength });
    } catch (error) {
      throw new PlatError('PLATFORM_UNAVAILABLE', `the registry did not take the source: ${(error as Error).message}`, { cause: error });
    }
    const sourceDigest = upload.digest;

    const workflowId = workflowIds.deploy(config.name, version);
    const input: DeployInput = { name: config.name, version, config, sourceDigest, sourceSize: archive.byteLength };
    try {
      const handle = await this.temporal.workflow.start(WORKFLOW_TYPES.deploy, {
        workflowId,
        taskQueue: this.settings.taskQueue,
        args: [input],
        typedSearchAttributes: [
          { key: SEARCH_ATTRIBUTES.function, value: config.name },
          { key: SEARCH_ATTRIBUTES.version, value: version },
          { key: SEARCH_ATTRIBUTES.runtime, value: config.runtime },
        ],
      });
      const started = performance.now();
      handle.result().then(
        () => {
          this.onDeployEnd('succeeded', (performance.now() - started) / 1000);
          this.onChange(config.name);
        },
        () => this.onDeployEnd('failed', (performance.now() - started) / 1000),
      );
    } catch (error) {
      // Only a source this upload created is ours to take back: the same bytes may be a deployed version's.
      await this.registry.untagSource(repository, version).catch(() => undefined);
      if (upload.created) await this.registry.delete(repository, 'blobs', sourceDigest).catch(() => undefined);
      throw toPlatError(error, 'DEPLOY_FAILED');
    }
    return { name: config.name, version, workflowId };
  }

  async deploymentStatus(name: string, version: string) {
    checkName(name);
    if (!VERSION_PATTERN.test(version)) throw new PlatError('BAD_REQUEST', `"${version}" is not a version id`);
    const handle = this.temporal.workflow.getHandle(workflowIds.deploy(name, version));
    try {
      return await within(this.temporal, CONTROL_READ_MS, async () => {
        const [description, steps] = await Promise.all([handle.describe(), handle.query(progressQuery)]);
        const status = description.status.name;
        let result: DeployResult | undefined;
        let error: ErrorBody['error'] | undefined;
        if (status === 'COMPLETED') result = await handle.result();
        else if (status !== 'RUNNING')
          error = await handle.result().then(
            () => undefined,
            (e) => toPlatError(e, 'DEPLOY_FAILED').toJSON().error,
          );
        return { name, version, workflowId: handle.workflowId, status, steps, result, error };
      });
    } catch (error) {
      throw toPlatError(error, 'INTERNAL', `no deployment ${version} of ${name}`);
    }
  }

  /**
   * The deploy as a stream of events: each step as it starts and ends (polled from the workflow's
   * progress query), then the result or the error.
   */
  async *follow(deployment: Deployment): AsyncGenerator<DeployEvent> {
    yield { type: 'accepted', ...deployment };
    const handle = this.temporal.workflow.getHandle(deployment.workflowId);
    let settled: { ok: true; result: DeployResult } | { ok: false; error: unknown } | undefined;
    const outcome = handle.result().then(
      (result: DeployResult) => {
        settled = { ok: true, result };
      },
      (error: unknown) => {
        settled = { ok: false, error };
      },
    );
    // A step is told again when its status changes, or when a running step says something new (it waits for the engine).
    const seen = new Map<string, string>();
    const changes = (steps: StepProgress[]): DeployEvent[] =>
      steps.flatMap((s) => {
        const key = s.status === 'running' ? `running ${s.detail ?? ''}` : s.status;
        if (s.status === 'pending' || seen.get(s.step) === key) return [];
        seen.set(s.step, key);
        return [{ type: 'step', step: s.step, status: s.status, detail: s.detail } as DeployEvent];
      });

    const started = Date.now();
    let hinted = false;
    while (!settled) {
      // A query waits for a worker to answer it: bounded, so a missing worker is noticed.
      const steps = await Promise.race([handle.query(progressQuery).catch(() => undefined), Bun.sleep(QUERY_WAIT_MS)]);
      if (steps) yield* changes(steps);
      if (!hinted && seen.size === 0 && Date.now() - started > WORKER_HINT_MS) {
        hinted = true;
        yield {
          type: 'notice',
          message: `no worker has picked up the deploy after ${WORKER_HINT_MS / 1000} s; is the worker running (task queue "${this.settings.taskQueue}")?`,
        };
      }
      await Promise.race([outcome, Bun.sleep(PROGRESS_POLL_MS)]);
    }
    const finalSteps = await handle.query(progressQuery).catch(() => undefined);
    if (finalSteps) yield* changes(finalSteps);
    const end = settled as { ok: true; result: DeployResult } | { ok: false; error: unknown };
    if (end.ok) yield { type: 'done', result: end.result };
    else yield { type: 'error', error: toPlatError(end.error, 'DEPLOY_FAILED').toJSON().error };
  }

  /** The function's kept versions, newest first. */
  async versions(name: string): Promise<VersionSummary[]> {
    const state = await this.get(name);
    return state.versions
      .map((v) => ({
        version: v.version,
        deployedAt: v.deployedAt,
        digest: v.digest,
        image: v.image,
        runtime: v.config.runtime,
        active: v.version === state.activeVersion,
      }))
      .reverse();
  }

  /** Makes a kept version active again (the previous one by default), once it has proved it starts. */
  async rollback(name: string, { version }: { version?: string }): Promise<RollbackOutcome & { name: string }> {
    checkName(name);
    if (version !== undefined && !VERSION_PATTERN.test(version)) {
      throw new PlatError('BAD_REQUEST', `"${version}" is not a version id (see plat versions ${name})`);
    }
    try {
      const outcome = await this.temporal.workflow
        .getHandle(workflowIds.entity(name))
        .executeUpdate(activateVersionUpdate, { args: [{ version }] });
      // The schedules are the active version's.
      const active = (await this.get(name)).versions.find((v) => v.version === outcome.activeVersion);
      if (active) await syncSchedules(this.temporal, active, this.settings.taskQueue);
      return { name, ...outcome };
    } catch (error) {
      throw toPlatError(error, 'INTERNAL', `function ${name} not found`);
    } finally {
      this.onChange(name);
    }
  }

  async remove(name: string): Promise<{ name: string; removedContainers: number }> {
    await this.get(name);
    try {
      // No scheduled call starts while the function goes; the removal deletes them.
      await pauseSchedules(this.temporal, name);
      const result = await this.temporal.workflow.getHandle(workflowIds.entity(name)).executeUpdate(removeUpdate);
      return { name, ...result };
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) throw new PlatError('FUNCTION_NOT_FOUND', `function ${name} not found`);
      // A second removal while one is under way is refused by the entity as a Conflict (409).
      throw toPlatError(error, 'INTERNAL', `function ${name} not found`);
    } finally {
      this.onChange(name);
    }
  }
}

function checkName(name: string): void {
  const problem = functionNameProblem(name);
  if (problem) throw new PlatError('BAD_REQUEST', problem);
}
