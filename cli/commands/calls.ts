import type { ScheduleSummary } from '../../lib/schedules';
import type { CallState } from '../../lib/types';
import { type Api, CliError } from '../api';
import { style, table } from '../output';

interface CallSummary {
  callId: string;
  trigger: 'api' | 'schedule';
  status: CallState['status'];
  startedAt: string;
  endedAt?: string;
}

const colored = (status: string) =>
  status === 'succeeded' ? style.green(status) : status === 'failed' ? style.red(status) : style.yellow(status);

/**
 * plat calls NAME [--failed]: a function's recent async calls; plat calls show ID: one call, its
 * attempts and result; plat calls retry ID: runs a failed call again (a dead-letter redrive).
 */
export async function callsCommand(
  api: Api,
  first: string,
  id: string | undefined,
  options: { failed?: boolean; limit?: string },
  json: boolean,
): Promise<string> {
  if (first === 'retry' && id) {
    const { retried } = await api.json<{ retried: { callId: string } }>(`/calls/${encodeURIComponent(id)}/retry`, { method: 'POST' });
    if (json) return JSON.stringify(retried);
    return `Call ${retried.callId} runs again from its first attempt: plat calls show ${retried.callId}`;
  }
  if (first === 'show' && id) {
    const { call } = await api.json<{ call: CallState }>(`/calls/${encodeURIComponent(id)}`);
    if (json) return JSON.stringify(call, null, 2);
    const lines = [
      `${style.bold(call.callId)}  ${colored(call.status)}  (${call.trigger}, accepted ${call.acceptedAt}${call.endedAt ? `, ended ${call.endedAt}` : ''})`,
    ];
    if (call.result) lines.push(`result: HTTP ${call.result.status}${call.result.body ? `, ${call.result.body.size} bytes` : ''}`);
    if (call.callback) lines.push(`callback: ${call.callback}`);
    if (call.attempts.length > 0) {
      lines.push(
        '',
        table([
          ['ATTEMPT', 'STARTED', 'MS', 'STATUS', 'ERROR'],
          ...call.attempts.map((a) => [
            String(a.attempt),
            a.startedAt,
            String(a.durationMs),
            a.status ? String(a.status) : '-',
            a.error ?? '',
          ]),
        ]),
      );
    }
    return lines.join('\n');
  }
  if (id !== undefined)
    throw new CliError(`unknown calls action "${first}": use plat calls NAME, plat calls show ID or plat calls retry ID`);
  const query = new URLSearchParams();
  if (options.failed) query.set('failed', 'true');
  if (options.limit) query.set('limit', options.limit);
  const { calls } = await api.json<{ calls: CallSummary[] }>(`/functions/${encodeURIComponent(first)}/calls?${query}`);
  if (json) return JSON.stringify(calls, null, 2);
  if (calls.length === 0) return options.failed ? `${first} has no failed calls` : `${first} has no async calls yet`;
  return table([
    ['CALL', 'TRIGGER', 'STATUS', 'STARTED', 'ENDED'],
    ...calls.map((c) => [c.callId, c.trigger, colored(c.status), c.startedAt, c.endedAt ?? '']),
  ]);
}

/** plat schedules NAME: the function's schedules and their next runs. */
export async function schedulesCommand(api: Api, name: string, json: boolean): Promise<string> {
  const { schedules } = await api.json<{ schedules: ScheduleSummary[] }>(`/functions/${encodeURIComponent(name)}/schedules`);
  if (json) return JSON.stringify(schedules, null, 2);
  if (schedules.length === 0) return `${name} has no schedules: add "schedules" to its function.json`;
  return schedules
    .map((s) =>
      [
        `${style.bold(s.id)}  ${s.cron ? `cron "${s.cron}"` : `every ${s.every}`}${s.timezone ? ` (${s.timezone})` : ''}  ${s.method} ${s.path}  overlap ${s.overlap}${s.paused ? `  ${style.yellow('paused')}` : ''}`,
        `  next: ${s.nextRuns.slice(0, 3).join(', ') || '-'}`,
        `  last: ${s.recentRuns.at(-1) ? `${s.recentRuns.at(-1)?.at} (${s.recentRuns.at(-1)?.callId})` : '-'}`,
      ].join('\n'),
    )
    .join('\n');
}
