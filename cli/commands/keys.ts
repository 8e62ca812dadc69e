import { type Api, CliError } from '../api';
import { style, table } from '../output';

/** plat keys create|list|revoke NAME [ID] */
export async function keysCommand(api: Api, action: string, name: string, id: string | undefined, json: boolean): Promise<string> {
  const path = `/functions/${encodeURIComponent(name)}/keys`;
  switch (action) {
    case 'create': {
      const { key } = await api.json<{ key: { id: string; key: string; createdAt: string } }>(path, { method: 'POST' });
      if (json) return JSON.stringify({ id: key.id, key: key.key });
      return [
        `Created key ${style.bold(key.id)} for ${name}. It is shown this once; keep it now:`,
        '',
        `  ${key.key}`,
        '',
        `  curl -H "Authorization: Bearer ${key.key}" ${api.url(`/function/${name}`)}`,
      ].join('\n');
    }
    case 'list': {
      const { keys } = await api.json<{ keys: Array<{ id: string; createdAt: string }> }>(path);
      if (json) return JSON.stringify(keys, null, 2);
      if (keys.length === 0) return `${name} has no invoke keys: \`plat keys create ${name}\``;
      return table([['ID', 'CREATED'], ...keys.map((k) => [k.id, k.createdAt])]);
    }
    case 'revoke': {
      if (!id) throw new CliError(`which key? plat keys revoke ${name} ID (see plat keys list ${name})`);
      const { revoked } = await api.json<{ revoked: { id: string } }>(`${path}/${encodeURIComponent(id)}`, { method: 'DELETE' });
      if (json) return JSON.stringify(revoked);
      return `Revoked key ${revoked.id} of ${name}: every gateway refuses it within seconds`;
    }
    default:
      throw new CliError(`unknown keys action "${action}": use create, list or revoke`);
  }
}
