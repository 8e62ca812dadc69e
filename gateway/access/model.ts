import { t } from 'elysia';
import { FunctionName, pathParam } from '../model';

/** What a key id looks like. */
export const KEY_ID = /^[0-9a-f]{8}$/;

/** Request and answer shapes of the `/functions/:name/keys` routes. */

const KeyInfo = { id: t.String({ description: '8 hex digits' }), createdAt: t.String({ description: 'ISO 8601' }) };

export const KeyParams = t.Object({
  name: FunctionName,
  id: pathParam(KEY_ID, 'id', (id) => `"${String(id)}" is not a key id (8 hex digits; see plat keys list)`, '8 hex digits'),
});

export const Created = t.Object({
  key: t.Object({ ...KeyInfo, key: t.String({ description: 'The key itself: shown this once, kept nowhere' }) }),
});

export const Listed = t.Object({ keys: t.Array(t.Object(KeyInfo), { description: 'Ids and times only, never the keys' }) });

export const Revoked = t.Object({ revoked: t.Object({ id: t.String() }) });
