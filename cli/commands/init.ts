import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { functionNameProblem } from '../../lib/names';
import { DEFAULT_RUNTIME, RUNTIME_NAMES } from '../../lib/runtimes';
import { CliError } from '../api';
import { style } from '../output';

const RUNTIMES_DIR = new URL('../../runtimes/', import.meta.url);

/** plat init [name] --runtime bun: a new function folder from the runtime's template. */
export async function init(name: string | undefined, options: { runtime?: string; dir?: string }): Promise<string> {
  const fnName = name ?? 'my-function';
  const problem = functionNameProblem(fnName);
  if (problem) throw new CliError(problem);
  const runtime = options.runtime ?? DEFAULT_RUNTIME;
  if (!RUNTIME_NAMES.includes(runtime)) {
    throw new CliError(`unknown runtime "${runtime}"; choose one of: ${RUNTIME_NAMES.join(', ')}`);
  }
  const target = resolve(options.dir ?? fnName);
  const existing = await readdir(target).catch(() => undefined);
  if (existing && existing.length > 0) throw new CliError(`${target} already exists and is not empty; choose another name or folder`);

  const templateDir = new URL(`${runtime}/template/`, RUNTIMES_DIR);
  await mkdir(target, { recursive: true });
  for (const file of await readdir(templateDir)) {
    const source = new URL(file, templateDir);
    if (!(await stat(source)).isFile()) continue;
    const text = (await readFile(source, 'utf8')).replaceAll('{{name}}', fnName);
    await writeFile(join(target, file), text);
  }
  return `Created ${style.bold(fnName)} (${runtime}) in ${target}\n  cd ${options.dir ?? fnName} && plat deploy`;
}
