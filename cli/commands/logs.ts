import type { LogRecord } from '../../lib/logs';
import { lines } from '../../lib/ndjson';
import { type Api, errorFrom } from '../api';
import { style } from '../output';

export interface LogsOptions {
  follow?: boolean;
  since?: string;
  tail?: string | number;
  version?: string;
  request?: string;
  json?: boolean;
}

/** One line as `plat logs` prints it: time, instance, version, stream, then the text. */
export function formatRecord(record: LogRecord): string {
  const stream = record.stream === 'plat' ? style.yellow('plat  ') : record.stream === 'stderr' ? style.red('stderr') : style.dim('stdout');
  const request = record.requestId ? style.dim(` [${record.requestId}]`) : '';
  return `${style.dim(record.time)} ${record.instance ?? '-'.padEnd(12)} ${record.version ?? '-'} ${stream}${request} ${record.text}`;
}

/** plat logs NAME: prints the function's log, and with --follow what it writes next, until interrupted. */
export async function logs(api: Api, name: string, options: LogsOptions, print: (line: string) => void): Promise<void> {
  const query = new URLSearchParams();
  if (options.follow) query.set('follow', 'true');
  if (options.since) query.set('since', options.since);
  if (options.tail !== undefined) query.set('tail', String(options.tail));
  if (options.version) query.set('version', options.version);
  if (options.request) query.set('request', options.request);
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  const response = await api.request(`/functions/${encodeURIComponent(name)}/logs?${query}`, { signal: abort.signal });
  if (!response.ok || !response.body) throw await errorFrom(response);
  try {
    for await (const line of lines(response.body)) {
      if (!line) continue; // keepalive
      print(options.json ? line : formatRecord(JSON.parse(line) as LogRecord));
    }
  } catch (error) {
    if (!abort.signal.aborted) throw error;
  }
}
