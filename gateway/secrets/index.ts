import { Elysia } from 'elysia';
import { PlatError } from '../lib/errors';
import { secretNameProblem } from '../lib/names';
import { SECRET_MAX_BYTES, type SecretStore } from '../lib/secrets';
import type { TokenCheck } from './auth';

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

function checkName(name: string): void {
  const problem = secretNameProblem(name);
  if (problem) throw new PlatError('BAD_REQUEST', problem);
}

/** `/secrets`: create, list (names and times, never values), update, remove. Admin only. Values are never answered. */
export function secretsRoutes(store: SecretStore, checkToken: TokenCheck) {
  return new Elysia({ name: 'secrets', prefix: '/secrets' })
    .onBeforeHandle(checkToken)
    .get('/', async () => ({ secrets: await store.list() }))
    .post(
      '/:name',
      async ({ params, request, set }) => {
        checkName(params.name);
        const written = await store.write(params.name, await readValue(request), 'create');
        if (!written) throw new PlatError('CONFLICT', `secret ${params.name} exists; change it with plat secret update ${params.name}`);
        set.status = 201;
        return { secret: written };
      },
      { parse: 'none' },
    )
    .put(
      '/:name',
      async ({ params, request }) => {
        checkName(params.name);
        const written = await store.write(params.name, await readValue(request), 'update');
        if (!written) throw new PlatError('NOT_FOUND', `no secret ${params.name}; create it with plat secret create ${params.name}`);
        return { secret: written };
      },
      { parse: 'none' },
    )
    .delete('/:name', async ({ params }) => {
      checkName(params.name);
      if (!(await store.remove(params.name))) throw new PlatError('NOT_FOUND', `no secret ${params.name}`);
      return { removed: { name: params.name } };
    });
}
