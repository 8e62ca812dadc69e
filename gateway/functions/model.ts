import { t } from 'elysia';
import { DEPLOY_STEPS } from '../../lib/types';
import { VERSION_PATTERN } from '../../lib/names';
import { ErrorBody, FunctionName, pathParam } from '../model';

/** Request and answer shapes of the `/functions` routes (see lib/types.ts for what each field means). */

const Time = t.String({ description: 'ISO 8601' });
const Version = t.String({ description: 'A version id, e.g. v20261130-120000-abcd' });

/** function.json as the gateway completed it with defaults: documented by its main fields, open to new ones. */
export const FunctionConfig = t.Object(
  {
    name: t.String(),
    runtime: t.String(),
    entry: t.String(),
    env: t.Record(t.String(), t.String()),
    memory: t.Number({ description: 'MiB' }),
    cpu: t.Number({ description: 'cores' }),
    timeout: t.Number({ description: 'seconds per request' }),
    scale: t.Object(
      {
        min: t.Number(),
        pauseAfter: t.Number(),
        stopAfter: t.Number(),
        concurrency: t.Optional(t.Number()),
        max: t.Optional(t.Number()),
        queue: t.Optional(t.Number()),
      },
      { additionalProperties: true },
    ),
    access: t.Optional(t.Union([t.Literal('key'), t.Literal('public')])),
    secrets: t.Optional(t.Array(t.String())),
    network: t.Optional(t.Literal('none')),
  },
  { additionalProperties: true },
);

export const FunctionVersion = t.Object({
  version: Version,
  image: t.String(),
  digest: t.String(),
  config: FunctionConfig,
  sourceDigest: t.String(),
  deployedAt: Time,
});

export const Instance = t.Object({
  containerId: t.String(),
  instanceId: t.String(),
  version: Version,
  url: t.String(),
  socket: t.Optional(t.String({ description: "The instance's Unix socket on the gateway's host, where its requests go when it has one" })),
  startedAt: Time,
  state: t.Union([t.Literal('running'), t.Literal('paused')]),
  lastUsedAt: Time,
  usage: t.Optional(t.Object({ memoryBytes: t.Number(), memoryLimitBytes: t.Number(), cpuPercent: t.Number() })),
  inFlight: t.Optional(t.Number({ description: "The answering gateway's requests on it now (each gateway counts its own)" })),
});

export const FunctionState = t.Object({
  name: t.String(),
  createdAt: Time,
  activeVersion: t.Optional(Version),
  activatedAt: t.Optional(Time),
  previousVersion: t.Optional(Version),
  versions: t.Array(FunctionVersion),
  versionsKept: t.Optional(t.Number()),
  instances: t.Array(Instance),
  retiring: t.Array(t.Object({ containerIds: t.Array(t.String()), at: Time })),
  keys: t.Array(t.Object({ id: t.String(), createdAt: Time }), { description: 'Invoke keys by id; never the keys' }),
  removed: t.Optional(t.Boolean()),
});

export const FunctionSummary = t.Object({
  name: t.String(),
  version: t.Optional(Version),
  runtime: t.Optional(t.String()),
  updatedAt: t.Optional(Time),
});

export const VersionSummary = t.Object({
  version: Version,
  deployedAt: Time,
  digest: t.String(),
  image: t.String(),
  runtime: t.String(),
  active: t.Boolean(),
});

const StepName = t.UnionEnum([...DEPLOY_STEPS]);
const StepStatus = t.UnionEnum(['pending', 'running', 'done', 'failed']);

export const DeployResult = t.Object({
  name: t.String(),
  version: Version,
  image: t.String(),
  digest: t.String(),
  activated: t.Boolean({ description: 'False when a deploy that started later is active already' }),
  activeVersion: Version,
});

export const DeploymentStatus = t.Object({
  name: t.String(),
  version: Version,
  workflowId: t.String(),
  status: t.String({ description: "The deploy workflow's status: RUNNING, COMPLETED, FAILED, TERMINATED…" }),
  steps: t.Array(
    t.Object({
      step: StepName,
      status: StepStatus,
      detail: t.Optional(t.String()),
      startedAt: t.Optional(Time),
      finishedAt: t.Optional(Time),
    }),
  ),
  result: t.Optional(DeployResult),
  error: t.Optional(ErrorBody.properties.error),
});

/** One line of a deploy followed with `?wait=true`. */
export const DeployEvent = t.Union([
  t.Object({ type: t.Literal('accepted'), name: t.String(), version: Version, workflowId: t.String() }),
  t.Object({ type: t.Literal('step'), step: StepName, status: StepStatus, detail: t.Optional(t.String()) }),
  t.Object({ type: t.Literal('notice'), message: t.String() }),
  t.Object({ type: t.Literal('done'), result: DeployResult }),
  t.Object({ type: t.Literal('error'), error: ErrorBody.properties.error }),
]);

export const DeployUpload = t.Object({
  function: t.String({ description: 'The contents of function.json' }),
  archive: t.String({ format: 'binary', description: 'The function folder as tar.gz or zip' }),
});

export const DeployQuery = t.Object({
  wait: t.Optional(t.String({ description: '`true`: answer 200 with the deploy followed as JSON lines until it ends' })),
});

export const Accepted = t.Object({
  deployment: t.Object({ name: t.String(), version: Version, workflowId: t.String(), status: t.Literal('started') }),
});

export const DescribeQuery = t.Object({
  usage: t.Optional(t.String({ description: "`true`: each instance's memory and CPU, read from the engine now" })),
});

export const RollbackBody = t.Object({
  version: t.Optional(t.String({ description: 'The version to serve; without it, the previous one' })),
});

export const Rollback = t.Object({
  rollback: t.Object({ name: t.String(), activeVersion: Version, previousVersion: t.Optional(Version) }),
});

export const Removed = t.Object({ removed: t.Object({ name: t.String(), removedContainers: t.Number() }) });

export const VersionParams = t.Object({
  name: FunctionName,
  version: pathParam(VERSION_PATTERN, 'version', (v) => `"${String(v)}" is not a version id (see plat versions)`, 'A version id'),
});
