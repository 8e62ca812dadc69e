import { readFile } from 'node:fs/promises';
import { type Api, CliError } from '../api';
import { table } from '../output';

export interface SecretOptions {
  fromFile?: string;
  value?: string;
}

/** The value: --value, the bytes of --from-file, or standard input (a terminal is not read). */
async function secretValue(options: SecretOptions): Promise<{ value?: string; valueBase64?: string }> {
  if (options.value !== undefined && options.fromFile !== undefined)
    throw new CliError('give the value with --value or --from-file, not both');
  if (options.value !== undefined) return { value: String(options.value) };
  if (options.fromFile !== undefined) {
    const bytes = await readFile(options.fromFile).catch((error: Error) => {
      throw new CliError(`cannot read ${options.fromFile}: ${error.message}`);
    });
    return { valueBase64: bytes.toString('base64') };
  }
  if (process.stdin.isTTY) throw new CliError('give the value with --value, --from-file PATH, or on standard input');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return { valueBase64: Buffer.concat(chunks).toString('base64') };
}

/** plat secret create|update|list|remove [NAME] */
export async function secretCommand(
  api: Api,
  action: string,
  name: string | undefined,
  options: SecretOptions,
  json: boolean,
): Promise<string> {
  const path = (n: string) => `/secrets/${encodeURIComponent(n)}`;
  const needName = () => {
    if (!name) throw new CliError(`which secret? plat secret ${action} NAME`);
    return name;
  };
  switch (action) {
    case 'create':
    case 'update': {
      const secret = needName();
      const body = JSON.stringify(await secretValue(options));
      const { secret: written } = await api.json<{ secret: { name: string; updatedAt: string } }>(path(secret), {
        method: action === 'create' ? 'POST' : 'PUT',
        headers: { 'content-type': 'application/json' },
        body,
      });
      if (json) return JSON.stringify(written);
      return `${action === 'create' ? 'Created' : 'Updated'} secret ${written.name}${action === 'update' ? ': instances read it when they next start' : ''}`;
    }
    case 'list': {
      const { secrets } = await api.json<{ secrets: Array<{ name: string; createdAt: string; updatedAt: string }> }>('/secrets');
      if (json) return JSON.stringify(secrets, null, 2);
      if (secrets.length === 0) return 'No secrets yet: `plat secret create NAME --from-file PATH`';
      return table([['NAME', 'CREATED', 'UPDATED'], ...secrets.map((s) => [s.name, s.createdAt, s.updatedAt])]);
    }
    case 'remove':
    case 'rm': {
      const secret = needName();
      await api.json(path(secret), { method: 'DELETE' });
      return json ? JSON.stringify({ removed: secret }) : `Removed secret ${secret}`;
    }
    default:
      throw new CliError(`unknown secret action "${action}": use create, list, update or remove`);
  }
}
