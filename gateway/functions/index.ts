import type { TokenCheck } from '../auth';
import { Elysia, t } from 'elysia';
import { PlatError } from '../../lib/errors';
import { ADMIN_ERRORS, errorAnswers, errors, jsonBody, NameParam, ndjsonAnswer } from '../model';
import { ndjsonResponse } from '../ndjson';
import * as model from './model';
import type { FunctionsService } from './service';

/** Reads the deploy upload: multipart with `function` (function.json text) and `archive` (tar.gz or zip). */
async function readUpload(request: Request): Promise<{ configText: string; archive: Uint8Array }> {
  if (!(request.headers.get('content-type') ?? '').startsWith('multipart/form-data')) {
    throw new PlatError('BAD_REQUEST', 'send multipart/form-data with fields "function" (function.json) and "archive" (tar.gz or zip)');
  }
  let form: FormData;
  try {
    form = await request.formData();
  } catch {
    throw new PlatError('BAD_REQUEST', 'the multipart body could not be read');
  }
  const config = form.get('function');
  const archive = form.get('archive');
  const configText = typeof config === 'string' ? config : config instanceof Blob ? await config.text() : undefined;
  if (configText === undefined) throw new PlatError('BAD_REQUEST', 'the "function" field (the contents of function.json) is missing');
  if (!(archive instanceof Blob))
    throw new PlatError('BAD_REQUEST', 'the "archive" field (the function folder as tar.gz or zip) is missing');
  return { configText, archive: new Uint8Array(await archive.arrayBuffer()) };
}

/** The optional JSON body of a rollback: `{ "version": "v…" }`, or nothing for the previous version. */
async function readRollback(request: Request): Promise<{ version?: string }> {
  const text = await request.text();
  if (!text.trim()) return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new PlatError('BAD_REQUEST', 'the body must be JSON such as { "version": "v20261130-120000-abcd" }, or empty');
  }
  const version = (body as { version?: unknown } | null)?.version;
  if (typeof body !== 'object' || body === null || Array.isArray(body) || (version !== undefined && typeof version !== 'string')) {
    throw new PlatError('BAD_REQUEST', 'the body must be { "version": "…" } with a version id, or empty');
  }
  return { version: version as string | undefined };
}

/** Control routes: deploy, list, describe, versions, rollback, deployment status, remove. */
export function functionsRoutes(service: FunctionsService, checkToken: TokenCheck) {
  return new Elysia({ name: 'functions', prefix: '/functions' })
    .onTransform(checkToken)
    .post(
      '',
      async ({ request, query, set }) => {
        const { configText, archive } = await readUpload(request);
        const deployment = await service.deploy(configText, archive);
        if (query.wait === 'true' || query.wait === '1') return ndjsonResponse(service.follow(deployment));
        set.status = 202;
        set.headers.location = `/functions/${deployment.name}/deployments/${deployment.version}`;
        return { deployment: { ...deployment, status: 'started' } };
      },
      {
        parse: 'none',
        query: model.DeployQuery,
        detail: {
          summary: 'Deploy a function: package, build, push and register it in a Temporal workflow',
          requestBody: { required: true, content: { 'multipart/form-data': { schema: model.DeployUpload } } },
          responses: {
            202: { description: 'The deploy started', content: { 'application/json': { schema: model.Accepted } } },
            200: ndjsonAnswer('With ?wait=true: the deploy, step by step, until it ends', model.DeployEvent),
            ...errorAnswers(401, 409, 500, 503),
          },
        },
      },
    )
    .get('', async () => ({ functions: await service.list() }), {
      response: { 200: t.Object({ functions: t.Array(model.FunctionSummary) }), ...errors(...ADMIN_ERRORS) },
      detail: { summary: 'List the functions' },
    })
    .get(
      '/:name',
      async ({ params, query }) => {
        const { keys, ...state } = await service.get(params.name);
        // Keys are listed by id and time only: never their hashes.
        const shown = {
          ...state,
          instances: state.instances.map((i) => ({ ...i, inFlight: service.requestsOn(i.containerId) })),
          keys: (keys ?? []).map(({ id, createdAt }) => ({ id, createdAt })),
        };
        if (query.usage === 'true' || query.usage === '1') return { function: await service.withUsage(shown) };
        return { function: shown };
      },
      {
        params: NameParam,
        query: model.DescribeQuery,
        response: { 200: t.Object({ function: model.FunctionState }), ...errors(...ADMIN_ERRORS, 404) },
        detail: { summary: 'Describe a function: its versions, instances and keys (by id)' },
      },
    )
    .get('/:name/versions', async ({ params }) => ({ versions: await service.versions(params.name) }), {
      params: NameParam,
      response: { 200: t.Object({ versions: t.Array(model.VersionSummary) }), ...errors(...ADMIN_ERRORS, 404) },
      detail: { summary: "A function's kept versions, newest first" },
    })
    .post(
      '/:name/rollback',
      async ({ params, request }) => ({ rollback: await service.rollback(params.name, await readRollback(request)) }),
      {
        parse: 'none',
        params: NameParam,
        response: { 200: model.Rollback, ...errors(...ADMIN_ERRORS, 404, 409) },
        detail: { summary: 'Serve another kept version (the previous one by default)', requestBody: jsonBody(model.RollbackBody, false) },
      },
    )
    .get('/:name/deployments/:version', ({ params }) => service.deploymentStatus(params.name, params.version), {
      params: model.VersionParams,
      response: { 200: model.DeploymentStatus, ...errors(...ADMIN_ERRORS, 404) },
      detail: { summary: "A deploy's status, steps and result" },
    })
    .delete('/:name', async ({ params }) => ({ removed: await service.remove(params.name) }), {
      params: NameParam,
      response: { 200: model.Removed, ...errors(...ADMIN_ERRORS, 404) },
      detail: { summary: 'Remove a function: its instances, images and entity' },
    });
}
