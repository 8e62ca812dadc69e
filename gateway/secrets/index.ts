import { Elysia } from 'elysia';
import { PlatError } from '../../lib/errors';
import { SECRET_MAX_BYTES, type SecretStore } from '../../lib/secrets';
import type { TokenCheck } from '../auth';
import { ADMIN_ERRORS, errors, jsonBody } from '../model';
import * as model from './model';

/** The body of a create or update: `{ "value": "…" }`, or `{ "valueBase64": "…" }` for bytes that are not text. */
async function readValue(request: Request): Promise<Uint8Array> {
  let body: unknown;
  try {
    body = JSON.parse(await request.text());
  } catch {
    throw new PlatError('BAD_REQUEST', 'the body must be JSON: { "value": "…" } or { "valueBase64": "…" }');
  }
  const { value, valueBase64 } = (typeof body === 'object' && body !== null ? body : {}) as { value?: unknown; valueBase64?: unknown };
  let bytes: Uint8Array;
  if (typeof value === 'string' && valueBase64 === undefined) bytes = new TextEncoder().encode(value);
  else if (typeof valueBase64 === 'string' && value === undefined && /^[A-Za-z0-9+/]*={0,2}$/.test(valueBase64)) {
    bytes = Buffer.from(valueBase64, 'base64');
  } else throw new PlatError('BAD_REQUEST', 'the body must be JSON with one of "value" (text) or "valueBase64" (bytes)');
  if (bytes.byteLength === 0) throw new PlatError('BAD_REQUEST', 'a secret cannot be empty');
  if (bytes.byteLength > SECRET_MAX_BYTES) throw new PlatError('PAYLOAD_TOO_LARGE', `a secret may hold ${SECRET_MAX_BYTES / 1024} KiB`);
  return bytes;
}

/** `/secrets`: create, list (names and times, never values), update, remove. Admin only. Values are never answered. */
export function secretsRoutes(store: SecretStore, checkToken: TokenCheck) {
  return new Elysia({ name: 'secrets', prefix: '/secrets' })
    .onTransform(checkToken)
    .get('', async () => ({ secrets: await store.list() }), {
      response: { 200: model.Listed, ...errors(...ADMIN_ERRORS) },
      detail: { summary: 'The secrets, by name and time: never their values' },
    })
    .post(
      '/:name',
      async ({ params, request, set }) => {
        const written = await store.write(params.name, await readValue(request), 'create');
        if (!written) throw new PlatError('CONFLICT', `secret ${params.name} exists; change it with plat secret update ${params.name}`);
        set.status = 201;
        return { secret: written };
      },
      {
        parse: 'none',
        params: model.SecretParams,
        response: { 201: model.Written, ...errors(...ADMIN_ERRORS, 409) },
        detail: { summary: 'Create a secret', requestBody: jsonBody(model.SecretValue) },
      },
    )
    .put(
      '/:name',
      async ({ params, request }) => {
        const written = await store.write(params.name, await readValue(request), 'update');
        if (!written) throw new PlatError('NOT_FOUND', `no secret ${params.name}; create it with plat secret create ${params.name}`);
        return { secret: written };
      },
      {
        parse: 'none',
        params: model.SecretParams,
        response: { 200: model.Written, ...errors(...ADMIN_ERRORS, 404) },
        detail: { summary: "Change a secret's value: instances read it on their next start", requestBody: jsonBody(model.SecretValue) },
      },
    )
    .delete(
      '/:name',
      async ({ params }) => {
        if (!(await store.remove(params.name))) throw new PlatError('NOT_FOUND', `no secret ${params.name}`);
        return { removed: { name: params.name } };
      },
      {
        params: model.SecretParams,
        response: { 200: model.Removed, ...errors(...ADMIN_ERRORS, 404) },
        detail: { summary: 'Remove a secret' },
      },
    );
}
