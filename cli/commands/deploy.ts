import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describeProblems, parseFunctionConfig } from '../../lib/function-config';
import { lines } from '../../lib/ndjson';
import type { DeployEvent, DeployResult } from '../../lib/types';
import { type Api, CliError, errorFrom } from '../api';
import { seconds, style } from '../output';
import { packFolder } from '../pack';

/** The deploy's events, one JSON object a line. */
async function* ndjson(body: ReadableStream<Uint8Array>): AsyncGenerator<DeployEvent> {
  for await (const line of lines(body)) if (line) yield JSON.parse(line) as DeployEvent;
}

/** plat deploy [dir]: packs the folder, uploads it and shows each step of the deploy as it happens. */
export async function deploy(
  api: Api,
  dir: string | undefined,
  options: { json?: boolean; log: (line: string) => void },
): Promise<DeployResult> {
  const folder = resolve(dir ?? '.');
  const configText = await readFile(join(folder, 'function.json'), 'utf8').catch(() => {
    throw new CliError(`no function.json in ${folder}; create a function with \`plat init NAME\``);
  });
  const parsed = parseFunctionConfig(configText);
  if (!parsed.ok) throw new CliError(describeProblems(parsed.problems), 'INVALID_FUNCTION_CONFIG');
  const { config } = parsed;

  const started = Date.now();
  const { archive, files } = await packFolder(folder);
  const form = new FormData();
  form.set('function', configText);
  form.set('archive', new Blob([archive as Uint8Array<ArrayBuffer>], { type: 'application/gzip' }), 'function.tar.gz');
  const { log } = options;
  log(`Deploying ${style.bold(config.name)} (${config.runtime}, ${files.length} files, ${(archive.byteLength / 1024).toFixed(1)} KiB)`);

  const response = await api.request('/functions?wait=true', { method: 'POST', body: form });
  if (!response.ok || !response.body) throw await errorFrom(response);

  const stepStarted = new Map<string, number>();
  for await (const event of ndjson(response.body)) {
    if (options.json) log(JSON.stringify(event));
    switch (event.type) {
      case 'accepted':
        if (!options.json) log(style.dim(`  version ${event.version} (workflow ${event.workflowId})`));
        break;
      case 'step':
        if (options.json) break;
        if (event.status === 'running') {
          if (!stepStarted.has(event.step)) stepStarted.set(event.step, Date.now());
          log(`  ${style.cyan('…')} ${event.step}${event.detail ? ` ${style.yellow(event.detail)}` : ''}`);
        } else {
          const took = Date.now() - (stepStarted.get(event.step) ?? Date.now());
          const mark = event.status === 'done' ? style.green('✓') : style.red('✗');
          const detail = event.status === 'done' && event.detail ? ` ${style.dim(event.detail)}` : '';
          log(`  ${mark} ${event.step}${detail} ${style.dim(seconds(took))}`);
        }
        break;
      case 'notice':
        if (!options.json) log(`  ${style.yellow('!')} ${event.message}`);
        break;
      case 'done':
        if (!options.json && !event.result.activated) {
          log(
            `${style.yellow('Kept')} ${config.name} ${event.result.version}, but ${event.result.activeVersion} serves: its deploy started later`,
          );
        } else if (!options.json) {
          log(`${style.green('Deployed')} ${config.name} ${event.result.version} in ${seconds(Date.now() - started)}`);
          log(`  ${api.url(`/function/${config.name}`)}`);
        }
        return event.result;
      case 'error':
        throw new CliError(`deploy failed: ${event.error.message}`, event.error.code);
    }
  }
  throw new CliError('the gateway closed the deploy stream before the deploy ended; check `plat describe`');
}
