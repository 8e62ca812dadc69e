import { spawn } from 'node:child_process';
import { cp, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ApplicationFailure, heartbeat } from '@temporalio/activity';
import type { FunctionConfig } from '../lib/function-config';
import { repositoryPath } from '../lib/names';
import { ArchiveError, readArchive, stripSingleTopFolder } from './archive';
import { type ActivityDeps, BUN_BIN, RUNTIMES_DIR } from './deps';
import { BlobNotFoundError } from './registry-api';

export interface PackageInput {
  name: string;
  version: string;
  config: FunctionConfig;
  sourceDigest: string;
}

export interface PackageResult {
  contextDir: string;
  files: number;
  bytes: number;
  dependencies: number;
}

/** Where a deploy's Docker build context is laid out on the worker host. */
export function buildDir(dataDir: string, name: string, version: string): string {
  return join(dataDir, 'builds', `${name}-${version}`);
}

function invalidArchive(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: 'InvalidArchive', message, nonRetryable: true });
}

export function createPackageActivities({ registry, settings }: ActivityDeps) {
  return {
    /**
     * Fetches the uploaded source from the registry, unpacks it safely and lays out the build context:
     * `app/` (the user's files), `deps/` (resolved dependencies, a layer of their own), `plat/` (the
     * runtime's bootstrap) and the generated Dockerfile.
     */
    async packageSource({ name, version, config, sourceDigest }: PackageInput): Promise<PackageResult> {
      const repository = repositoryPath(name);
      let archive: Uint8Array;
      try {
        archive = await registry.getBlob(repository, sourceDigest);
      } catch (error) {
        if (error instanceof BlobNotFoundError) throw invalidArchive(error.message);
        throw error;
      }

      let files: Awaited<ReturnType<typeof readArchive>>;
      try {
        files = stripSingleTopFolder(await readArchive(archive), config.entry);
      } catch (error) {
        if (error instanceof ArchiveError) throw invalidArchive(error.message);
        throw error;
      }
      if (!files.some((f) => f.path === config.entry)) {
        throw invalidArchive(`the entry file "${config.entry}" is not in the uploaded folder`);
      }

      const contextDir = buildDir(settings.dataDir, name, version);
      await rm(contextDir, { recursive: true, force: true });
      const appDir = join(contextDir, 'app');
      const depsDir = join(contextDir, 'deps');
      await mkdir(depsDir, { recursive: true });
      let bytes = 0;
      for (const file of files) {
        // node_modules is resolved here, never taken from the upload.
        if (file.path === 'node_modules' || file.path.startsWith('node_modules/')) continue;
        const target = join(appDir, file.path);
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, file.data, { mode: file.executable ? 0o755 : 0o644 });
        bytes += file.data.byteLength;
      }
      heartbeat('unpacked');

      const dependencies = await installJsDependencies(appDir, depsDir, settings.dataDir);
      const runtimeDir = join(RUNTIMES_DIR, config.runtime);
      await cp(join(runtimeDir, 'bootstrap.ts'), join(contextDir, 'plat', 'bootstrap.ts'));
      await writeFile(join(contextDir, 'Dockerfile'), await readFile(join(runtimeDir, 'Dockerfile')));
      return { contextDir, files: files.length, bytes, dependencies };
    },

    async cleanupBuild({ name, version }: { name: string; version: string }): Promise<void> {
      await rm(buildDir(settings.dataDir, name, version), { recursive: true, force: true });
    },
  };
}

/**
 * Installs package.json dependencies on the worker host (containers have no network) with install
 * scripts disabled, so no third-party code runs here. The result goes to deps/, a layer that Docker
 * reuses while package.json and the lockfile stay the same.
 */
async function installJsDependencies(appDir: string, depsDir: string, dataDir: string): Promise<number> {
  const manifestPath = join(appDir, 'package.json');
  if (!(await exists(manifestPath))) return 0;
  let manifest: { dependencies?: Record<string, string> };
  try {
    manifest = JSON.parse(await readFile(manifestPath, 'utf8'));
  } catch (error) {
    throw ApplicationFailure.create({
      type: 'DependencyInstallFailed',
      message: `package.json is not valid JSON: ${(error as Error).message}`,
      nonRetryable: true,
    });
  }
  const count = Object.keys(manifest.dependencies ?? {}).length;
  if (count === 0) return 0;

  const lockfiles = ['bun.lock', 'bun.lockb'];
  const hasLock = (await Promise.all(lockfiles.map((f) => exists(join(appDir, f))))).some(Boolean);
  const args = ['install', '--production', '--ignore-scripts', '--no-progress', ...(hasLock ? ['--frozen-lockfile'] : [])];
  const output = await run(BUN_BIN, args, appDir, { BUN_INSTALL_CACHE_DIR: join(dataDir, 'cache', 'bun') });
  if (output.code !== 0) {
    throw ApplicationFailure.create({
      type: 'DependencyInstallFailed',
      message: `installing dependencies failed (bun ${args.join(' ')}):\n${tail(output.text, 25)}`,
      nonRetryable: true,
    });
  }
  await rename(join(appDir, 'node_modules'), join(depsDir, 'node_modules'));
  for (const file of ['package.json', ...lockfiles]) {
    if (await exists(join(appDir, file))) await cp(join(appDir, file), join(depsDir, file));
  }
  return count;
}

function run(command: string, args: string[], cwd: string, env: Record<string, string>) {
  return new Promise<{ code: number; text: string }>((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    const collect = (chunk: Buffer) => {
      text += chunk.toString();
      heartbeat();
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, text }));
  });
}

export function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
