import type { TokenCheck } from '../auth';
import { createHash, randomBytes } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { Elysia } from 'elysia';
import { PlatError } from '../../lib/errors';
import { workflowIds } from '../../lib/names';
import type { InvokeKey } from '../../lib/types';
import { addKeyUpdate, revokeKeyUpdate } from '../../workflows/definitions';
import type { FunctionsService } from '../functions/service';
import { ADMIN_ERRORS, errors, NameParam } from '../model';
import { toPlatError } from '../temporal-errors';
import * as model from './model';

/** What an invoke key looks like: a prefix that says what it is, then 256 random bits. */
const KEY_PREFIX = 'plat_';

export function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** A new key: shown once to its creator; the entity keeps only its hash. */
export function newKey(): { key: string; record: InvokeKey } {
  const key = `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
  return { key, record: { id: randomBytes(4).toString('hex'), hash: hashKey(key), createdAt: new Date().toISOString() } };
}

/** Invoke keys of a function: created (the key returned once), listed (ids and times only), revoked. */
export class KeysService {
  /** Told when a function's keys change, so this gateway's access cache re-reads them before the change is answered. */
  onChange: (name: string) => Promise<void> = async () => {};

  constructor(
    private readonly temporal: Client,
    private readonly functions: FunctionsService,
  ) {}

  async create(name: string): Promise<{ id: string; key: string; createdAt: string }> {
    await this.functions.get(name);
    const { key, record } = newKey();
    try {
      await this.temporal.workflow
        .getHandle(workflowIds.entity(name))
        .executeUpdate(addKeyUpdate, { args: [record], updateId: `key/${record.id}` });
    } catch (error) {
      throw toPlatError(error, 'INTERNAL', `function ${name} not found`);
    }
    await this.onChange(name);
    return { id: record.id, key, createdAt: record.createdAt };
  }

  async list(name: string): Promise<Array<{ id: string; createdAt: string }>> {
    const state = await this.functions.get(name);
    return (state.keys ?? []).map(({ id, createdAt }) => ({ id, createdAt }));
  }

  async revoke(name: string, id: string): Promise<{ id: string }> {
    if (!model.KEY_ID.test(id)) throw new PlatError('BAD_REQUEST', `"${id}" is not a key id (8 hex digits; see plat keys list ${name})`);
    await this.functions.get(name);
    let revoked: boolean;
    try {
      revoked = await this.temporal.workflow.getHandle(workflowIds.entity(name)).executeUpdate(revokeKeyUpdate, { args: [{ id }] });
    } catch (error) {
      throw toPlatError(error, 'INTERNAL', `function ${name} not found`);
    }
    await this.onChange(name);
    if (!revoked) throw new PlatError('NOT_FOUND', `function ${name} has no key ${id}; see plat keys list ${name}`);
    return { id };
  }
}

/** `/functions/:name/keys`: admin only, like the rest of the management API. */
export function keysRoutes(keys: KeysService, checkToken: TokenCheck) {
  return new Elysia({ name: 'keys', prefix: '/functions/:name/keys' })
    .onTransform(checkToken)
    .post(
      '',
      async ({ params, set }) => {
        set.status = 201;
        return { key: await keys.create(params.name) };
      },
      {
        params: NameParam,
        response: { 201: model.Created, ...errors(...ADMIN_ERRORS, 404) },
        detail: { summary: 'Create an invoke key for the function: the key is in this answer only' },
      },
    )
    .get('', async ({ params }) => ({ keys: await keys.list(params.name) }), {
      params: NameParam,
      response: { 200: model.Listed, ...errors(...ADMIN_ERRORS, 404) },
      detail: { summary: "The function's invoke keys, by id" },
    })
    .delete('/:id', async ({ params }) => ({ revoked: await keys.revoke(params.name, params.id) }), {
      params: model.KeyParams,
      response: { 200: model.Revoked, ...errors(...ADMIN_ERRORS, 404) },
      detail: { summary: 'Revoke an invoke key: every gateway refuses it within 5 s' },
    });
}
