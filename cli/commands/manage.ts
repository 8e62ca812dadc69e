import { scaleOf } from '../../lib/function-config';
import type { FunctionState, FunctionSummary } from '../../lib/types';
import type { Api } from '../api';
import { style, table } from '../output';

/** plat list */
export async function list(api: Api, json: boolean): Promise<string> {
  const { functions } = await api.json<{ functions: FunctionSummary[] }>('/functions');
  if (json) return JSON.stringify(functions, null, 2);
  if (functions.length === 0) return 'No functions yet: `plat init NAME && cd NAME && plat deploy`';
  return table([['NAME', 'VERSION', 'RUNTIME'], ...functions.map((f) => [f.name, f.version ?? '-', f.runtime ?? '-'])]);
}

/** plat describe NAME */
export async function describe(api: Api, name: string, json: boolean, usage = false): Promise<string> {
  const { function: fn } = await api.json<{ function: FunctionState }>(
    `/functions/${encodeURIComponent(name)}${usage ? '?usage=true' : ''}`,
  );
  if (json) return JSON.stringify(fn, null, 2);
  const active = fn.versions.find((v) => v.version === fn.activeVersion);
  const scale = active ? scaleOf(active.config) : undefined;
  const lines = [
    `${style.bold(fn.name)}`,
    `  runtime    ${active?.config.runtime ?? '-'}`,
    `  version    ${fn.activeVersion ?? '(none)'}`,
    `  image      ${active?.image ?? '-'}`,
    `  limits     ${active ? `${active.config.memory} MiB, ${active.config.cpu} CPU, ${active.config.timeout} s per request` : '-'}`,
    `  endpoint   ${api.url(`/function/${fn.name}`)}`,
    `  scale      ${scale ? `${scale.min} to ${scale.max} instances of ${scale.concurrency} requests each, ${scale.queue} more queued; paused after ${idle(scale.pauseAfter)}, stopped after ${idle(scale.stopAfter)} without requests` : '-'}`,
    `  instances  ${fn.instances.length === 0 ? 'none (the next request starts one)' : ''}`,
    ...fn.instances.map(
      (i) =>
        `    ${i.containerId.slice(0, 12)}  ${i.version}${i.version === fn.activeVersion ? '' : style.dim(' (preview)')}  ${i.state === 'paused' ? style.yellow('paused') : style.green('running')}  ${i.inFlight ?? 0} in flight  last used ${i.lastUsedAt}${usageText(i.usage)}`,
    ),
    '',
    table([
      ['VERSION', 'DEPLOYED', ''],
      ...fn.versions
        .slice()
        .reverse()
        .map((v) => [v.version, v.deployedAt, v.version === fn.activeVersion ? style.green('active') : '']),
    ]),
  ];
  return lines.join('\n');
}

function usageText(usage: FunctionState['instances'][number]['usage']): string {
  if (!usage) return '';
  const mib = (bytes: number) => `${Math.round((bytes / 1024 / 1024) * 10) / 10} MiB`;
  return `  ${mib(usage.memoryBytes)} of ${mib(usage.memoryLimitBytes)}, ${usage.cpuPercent}% CPU`;
}

function idle(seconds: number): string {
  return seconds === 0 ? 'never' : `${seconds} s`;
}

/** plat remove NAME */
export async function remove(api: Api, name: string, json: boolean): Promise<string> {
  const { removed } = await api.json<{ removed: { name: string; removedContainers: number } }>(`/functions/${encodeURIComponent(name)}`, {
    method: 'DELETE',
  });
  if (json) return JSON.stringify(removed);
  return `Removed ${removed.name} (${removed.removedContainers} container${removed.removedContainers === 1 ? '' : 's'} stopped)`;
}
