import { t } from 'elysia';
import { SECRET_NAME_PATTERN, secretNameProblem } from '../../lib/names';
import { pathParam } from '../model';

/** Request and answer shapes of the `/secrets` routes: names and times go out, values only come in. */

export const SecretParams = t.Object({
  name: pathParam(
    SECRET_NAME_PATTERN,
    'name',
    secretNameProblem,
    '1-63 lowercase letters, digits, dots, dashes and underscores, starting with a letter or digit',
  ),
});

export const SecretValue = t.Union(
  [
    t.Object({ value: t.String({ minLength: 1, description: 'The value as text' }) }),
    t.Object({ valueBase64: t.String({ minLength: 1, contentEncoding: 'base64', description: 'The value as bytes, in base64' }) }),
  ],
  { description: 'One of the two fields; at most 64 KiB' },
);

const SecretInfo = t.Object({ name: t.String(), createdAt: t.String(), updatedAt: t.String() });

export const Written = t.Object({ secret: SecretInfo });

export const Listed = t.Object({ secrets: t.Array(SecretInfo) });

export const Removed = t.Object({ removed: t.Object({ name: t.String() }) });
