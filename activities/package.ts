import { cp, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import type { FunctionConfig } from '../lib/function-config';
import { WorkflowNotFoundError } from '@temporalio/client';
import { repositoryPath, workflowIds } from '../lib/names';
import { describeQuery } from '../workflows/definitions';
import { ArchiveError, readArchive, stripSingleTopFolder } from './archive';
import { type RuntimeInfo, RUNTIMES } from '../lib/runtimes';
import { type ActivityDeps, REPO_ROOT, RUNTIMES_DIR } from './deps';
import { resolveDependencies } from './dependencies';
import { heartbeating, removeImage } from './docker-helpers';
import { BlobNotFoundError } from '../lib/registry-api';

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

/** Errors of writing an archive's file that come from the archive itself (a name too long, a clash). */
const UNWRITABLE = new Set(['ENOTDIR', 'EISDIR', 'EEXIST', 'ENAMETOOLONG', 'EINVAL']);

export function createPackageActivities({ docker, registry, settings, temporal }: ActivityDeps) {
  return {
    packageSource: (input: PackageInput) => heartbeating(() => packageSource(input)),

    /**
     * Removes the deploy's build context. After a failed deploy it also deletes what the deploy put
     * in the registry (the uploaded source; the image, when it failed after the push), unless a
     * registered version of the function has the same bytes.
     */
    async cleanupBuild({
      name,
      version,
      discardSource,
      discardImage,
    }: {
      name: string;
      version: string;
      discardSource?: string;
      discardImage?: { tag: string; digest: string };
    }): Promise<void> {
      await rm(buildDir(settings.dataDir, name, version), { recursive: true, force: true });
      if (!discardSource && !discardImage) return;
      await registry.untagSource(repositoryPath(name), version);
      const state = await temporal.workflow
        .getHandle(workflowIds.entity(name))
        .query(describeQuery)
        .catch((error) => {
          if (error instanceof WorkflowNotFoundError) return undefined;
          throw error;
        });
      const registered = state?.removed ? [] : (state?.versions ?? []);
      if (discardSource && !registered.some((v) => v.sourceDigest === discardSource)) {
        await registry.delete(repositoryPath(name), 'blobs', discardSource);
      }
      if (discardImage) {
        await removeImage(docker, discardImage.tag);
        if (!registered.some((v) => v.digest === discardImage.digest)) {
          await registry.delete(repositoryPath(name), 'manifests', discardImage.digest);
        }
      }
    },
  };

  /**
   * Fetches the uploaded source from the registry, unpacks it safely and lays out the build context:
   * `app/` (the user's files), `deps/` (resolved dependencies, a layer of their own), `plat/` (the
   * runtime's bootstrap) and the generated Dockerfile.
   */
  async function packageSource({ name, version, config, sourceDigest }: PackageInput): Promise<PackageResult> {
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
      try {
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, file.data, { mode: file.executable ? 0o755 : 0o644 });
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? '';
        if (UNWRITABLE.has(code)) throw invalidArchive(`archive entry "${file.path}" cannot be laid out as a file (${code})`);
        throw error;
      }
      bytes += file.data.byteLength;
    }

    const runtime = RUNTIMES[config.runtime];
    if (!runtime)
      throw ApplicationFailure.create({ type: 'InvalidConfig', message: `unknown runtime ${config.runtime}`, nonRetryable: true });
    const dependencies = await resolveDependencies(runtime, appDir, depsDir, settings.dataDir);
    await layOutRuntime(runtime, contextDir);
    return { contextDir, files: files.length, bytes, dependencies };
  }
}

/** Files of a runtime's folder that are not copied into plat/: the recipe and what users start from. */
const NOT_SHIPPED = new Set(['Dockerfile', 'base.Dockerfile', 'runtime.json', 'template']);

/** Where the static build tools a runtime's Dockerfile runs come from. */
const BUILD_TOOLS: Record<string, string> = {
  esbuild: join(REPO_ROOT, 'node_modules', '@esbuild', 'linux-x64', 'bin', 'esbuild'),
};

/** Copies the runtime's bootstrap (and build tools) into plat/ and its Dockerfile to the context's root. */
async function layOutRuntime(runtime: RuntimeInfo, contextDir: string): Promise<void> {
  const runtimeDir = join(RUNTIMES_DIR, runtime.name);
  const platDir = join(contextDir, 'plat');
  await mkdir(platDir, { recursive: true });
  for (const file of await readdir(runtimeDir)) {
    if (!NOT_SHIPPED.has(file)) await cp(join(runtimeDir, file), join(platDir, file));
  }
  // The contract the JS runtimes share (the instance check, the platform's routes, env and ctx).
  if (runtime.language === 'js') await cp(join(RUNTIMES_DIR, 'js-shared', 'contract.mjs'), join(platDir, 'contract.mjs'));
  for (const tool of runtime.buildTools ?? []) {
    const source = BUILD_TOOLS[tool];
    if (!source) throw new Error(`unknown build tool ${tool}`);
    await cp(source, join(platDir, tool));
  }
  await cp(join(runtimeDir, 'Dockerfile'), join(contextDir, 'Dockerfile'));
}
