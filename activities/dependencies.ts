import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises';
import { devNull, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure, heartbeat } from '@temporalio/activity';
import { lockfileProblems, packageJsonProblems, requirementsProblems } from '../lib/dependency-rules';
import type { RuntimeInfo } from '../lib/runtimes';
import { BUN_BIN } from './deps';

/** Wheel platforms that run on Debian bookworm's glibc 2.36 (pip does not widen an explicit --platform). */
const MANYLINUX_TAGS = [
  ...[36, 35, 34, 31, 28, 27, 24, 17, 12, 5].map((minor) => `manylinux_2_${minor}_x86_64`),
  'manylinux2014_x86_64',
  'manylinux2010_x86_64',
  'manylinux1_x86_64',
];

/** Lines of an installer's output quoted when it fails, each at most this wide; and what is kept of it while it runs. */
const QUOTED_LINES = 25;
const QUOTED_LINE_CHARS = 300;
const OUTPUT_KEPT_CHARS = 64 * 1024;

/** What each language's dependencies are declared in; the first file is the manifest. */
const MANIFESTS = {
  js: ['package.json', 'bun.lock', 'bun.lockb', 'package-lock.json'],
  python: ['requirements.txt'],
} as const;

function installFailed(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: 'DependencyInstallFailed', message, nonRetryable: true });
}

/**
 * Resolves a function's dependencies on the worker host (containers have no network) into depsDir,
 * never running third-party code here: `bun install --ignore-scripts` for package.json, wheels only
 * (`pip --only-binary=:all:`) for requirements.txt. Results are cached by the manifest's and
 * lockfile's content, so a code-only redeploy neither reinstalls nor changes the image layer.
 * Returns the number of declared dependencies.
 */
export async function resolveDependencies(runtime: RuntimeInfo, appDir: string, depsDir: string, dataDir: string): Promise<number> {
  const files = MANIFESTS[runtime.language];
  const present: Array<{ name: string; text: string }> = [];
  for (const name of files) {
    const text = await readFile(join(appDir, name), 'utf8').catch(() => undefined);
    if (text !== undefined) present.push({ name, text });
  }
  const manifest = present.find((f) => f.name === files[0]);
  const count = manifest ? countDependencies(runtime.language, manifest.text) : 0;
  const problems: string[] = [];
  if (manifest) {
    problems.push(
      ...(runtime.language === 'python' ? requirementsProblems(manifest.text) : packageJsonProblems(JSON.parse(manifest.text) as unknown)),
    );
  }
  // A lockfile tells the installer where each package comes from: only from the registry it is given.
  if (runtime.language === 'js') {
    for (const { name, text } of present) if (name !== files[0]) problems.push(...lockfileProblems(name, text, npmRegistry()));
  }
  if (problems.length > 0) throw installFailed(problems.join('\n'));
  if (runtime.language === 'python' && count === 0) {
    throw installFailed('a python-flask function needs a requirements.txt that lists Flask (e.g. Flask==3.0.3)');
  }
  if (count === 0) return 0;

  const key = createHash('sha256')
    .update(JSON.stringify([runtime.language, runtime.pythonVersion ?? '', present]))
    .digest('hex')
    .slice(0, 32);
  const cached = join(dataDir, 'cache', 'deps', key);
  if (!(await exists(cached))) {
    await mkdir(join(dataDir, 'cache', 'deps'), { recursive: true });
    const work = await mkdtemp(join(dataDir, 'cache', 'deps', 'work-'));
    try {
      for (const { name } of present) await cp(join(appDir, name), join(work, name));
      if (runtime.language === 'js') await installJs(work, present, dataDir);
      else await installPython(work, runtime, dataDir);
      await rename(work, cached).catch(async (error) => {
        // Another deploy cached the same dependencies first: theirs are as good as ours.
        if (!(await exists(cached))) throw error;
      });
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
  await cp(cached, depsDir, { recursive: true });
  return count;
}

/** The npm registry the installer uses: the one the worker's environment configures (passed through to bun), or npm's. */
function npmRegistry(): string {
  return process.env.BUN_CONFIG_REGISTRY || process.env.NPM_CONFIG_REGISTRY || 'https://registry.npmjs.org/';
}

function countDependencies(language: RuntimeInfo['language'], text: string): number {
  if (language === 'python') {
    return text.split('\n').filter((line) => line.trim() && !line.trim().startsWith('#')).length;
  }
  try {
    return Object.keys((JSON.parse(text) as { dependencies?: Record<string, string> }).dependencies ?? {}).length;
  } catch (error) {
    throw installFailed(`package.json is not valid JSON: ${(error as Error).message}`);
  }
}

async function installJs(dir: string, present: Array<{ name: string }>, dataDir: string): Promise<void> {
  const locked = present.some((f) => f.name !== 'package.json');
  const args = ['install', '--production', '--ignore-scripts', '--no-progress', ...(locked ? ['--frozen-lockfile'] : [])];
  const result = await run(BUN_BIN, args, dir, { BUN_INSTALL_CACHE_DIR: join(dataDir, 'cache', 'bun'), NO_COLOR: '1' });
  if (result.code !== 0)
    throw installFailed(`installing the package.json dependencies failed (bun ${args.join(' ')}):\n${tail(result.text)}`);
}

async function installPython(dir: string, runtime: RuntimeInfo, dataDir: string): Promise<void> {
  const target = join(dir, 'site-packages');
  await mkdir(target);
  // Wheels for the container's interpreter and platform, whatever the host's.
  const args = [
    '-m',
    'pip',
    'install',
    '--requirement',
    'requirements.txt',
    '--target',
    target,
    '--only-binary=:all:',
    ...MANYLINUX_TAGS.flatMap((tag) => ['--platform', tag]),
    '--python-version',
    runtime.pythonVersion ?? '3.11',
    '--implementation',
    'cp',
    '--no-compile',
    '--disable-pip-version-check',
    '--no-input',
  ];
  // --target never touches the system's packages, so Debian's "externally managed" guard does not apply.
  const result = await run(await pythonExecutable(), args, dir, {
    PIP_CACHE_DIR: join(dataDir, 'cache', 'pip'),
    PIP_BREAK_SYSTEM_PACKAGES: '1',
  });
  if (result.code !== 0) throw installFailed(`installing requirements.txt failed (pip install):\n${tail(result.text)}`);
  if (!(await exists(join(target, 'flask'))))
    throw installFailed('requirements.txt must list Flask: the python-flask runtime serves a Flask app');
}

let python: Promise<string> | undefined;
/**
 * The host's python3 as a path: found with the worker's own environment (a pyenv shim needs its
 * HOME to find the interpreter), then run with the installer's scratch one.
 */
function pythonExecutable(): Promise<string> {
  python ??= new Promise((resolve) => {
    const child = spawn('python3', ['-c', 'import sys; print(sys.executable)'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.on('error', () => resolve('python3'));
    child.on('close', () => resolve(out.trim() || 'python3'));
  });
  return python;
}

/**
 * What an installer may see of the worker's environment: how to find programs, the locale, proxies
 * it may need to reach the registry, and the registry itself when one is configured. Nothing else:
 * not the worker's credentials (AUTH_TOKEN and the like), nor its home folder, whose config files
 * (.npmrc, pip.conf) could point it elsewhere: it gets a scratch one.
 */
const PASSED_THROUGH =
  /^(PATH|LANG|LC_ALL|TZ|HTTPS?_PROXY|NO_PROXY|https?_proxy|no_proxy|NPM_CONFIG_REGISTRY|BUN_CONFIG_REGISTRY|PIP_INDEX_URL|SSL_CERT_FILE|SSL_CERT_DIR)$/;

async function run(command: string, args: string[], cwd: string, env: Record<string, string>) {
  const home = await mkdtemp(join(tmpdir(), 'plat-installer-home-'));
  const passed = Object.fromEntries(Object.entries(process.env).filter(([key]) => PASSED_THROUGH.test(key))) as Record<string, string>;
  try {
    return await spawnInstaller(command, args, cwd, { ...passed, HOME: home, TMPDIR: home, PIP_CONFIG_FILE: devNull, ...env });
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

function spawnInstaller(command: string, args: string[], cwd: string, env: Record<string, string>) {
  return new Promise<{ code: number; text: string }>((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    const collect = (chunk: Buffer) => {
      // Only the end is ever quoted: what came long before it is dropped as it comes.
      text = (text + chunk.toString()).slice(-OUTPUT_KEPT_CHARS);
      heartbeat();
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, text }));
  });
}

/** The end of an installer's output, as quoted to the user: its last lines, each cut to a bounded width. */
export function tail(text: string, lines = QUOTED_LINES): string {
  return text
    .trimEnd()
    .split('\n')
    .slice(-lines)
    .map((line) => (line.length > QUOTED_LINE_CHARS ? `${line.slice(0, QUOTED_LINE_CHARS)}…` : line))
    .join('\n');
}

export async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
