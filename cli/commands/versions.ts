import type { RollbackOutcome, VersionSummary } from '../../lib/types';
import type { Api } from '../api';
import { style, table } from '../output';

/** plat versions NAME: the kept versions, newest first, the active one marked. */
export async function versions(api: Api, name: string, json: boolean): Promise<string> {
  const { versions: list } = await api.json<{ versions: VersionSummary[] }>(`/functions/${encodeURIComponent(name)}/versions`);
  if (json) return JSON.stringify(list, null, 2);
  if (list.length === 0) return `${name} has no versions yet`;
  return table([
    ['VERSION', 'DEPLOYED', 'DIGEST', ''],
    ...list.map((v) => [v.version, v.deployedAt, v.digest.slice(0, 19), v.active ? style.green('active') : '']),
  ]);
}

/** plat rollback NAME [VERSION]: makes a kept version active again, the previous one by default. */
export async function rollback(api: Api, name: string, version: string | undefined, json: boolean): Promise<string> {
  const started = Date.now();
  const { rollback: outcome } = await api.json<{ rollback: RollbackOutcome & { name: string } }>(
    `/functions/${encodeURIComponent(name)}/rollback`,
    { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(version ? { version } : {}) },
  );
  if (json) return JSON.stringify(outcome);
  return `${style.green('Rolled back')} ${name} to ${outcome.activeVersion} in ${((Date.now() - started) / 1000).toFixed(1)}s${outcome.previousVersion ? style.dim(` (was ${outcome.previousVersion})`) : ''}`;
}
