import { stat } from 'node:fs/promises';
import { ApplicationFailure } from '@temporalio/activity';
import type { FunctionConfig } from '../lib/function-config';
import { imageRepository, LABELS } from '../lib/names';
import { RUNTIMES } from '../lib/runtimes';
import type { ActivityDeps } from './deps';
import { type DockerMessage, errorOf, followDocker, hasImage, heartbeating, removeImage } from './docker-helpers';

export interface BuildInput {
  name: string;
  version: string;
  config: FunctionConfig;
  contextDir: string;
}

/** Lines of build output quoted in the message of a failed build. */
const QUOTED_LINES = 30;
// biome-ignore lint/suspicious/noControlCharactersInRegex: terminal colour codes are control characters
const ANSI_ESCAPES = /\x1b\[[0-9;]*[A-Za-z]/g;
const DOCKER_NOISE = /^( ---> |Removing intermediate container )/;

export function createBuildActivities({ docker, settings }: ActivityDeps) {
  /**
   * The base image configured for the runtime (PLAT_BASE_IMAGE_<RUNTIME>); else the official one when
   * the engine has it (or can pull it), else the offline equivalent the set-up built.
   */
  async function baseImageFor(runtime: string): Promise<string> {
    const info = RUNTIMES[runtime];
    if (!info) throw ApplicationFailure.create({ type: 'InvalidConfig', message: `unknown runtime ${runtime}`, nonRetryable: true });
    const configured = settings.baseImages[runtime];
    if (configured) {
      if (await hasImage(docker, configured)) return configured;
      throw ApplicationFailure.create({
        type: 'BaseImageMissing',
        message: `the ${runtime} runtime's base image ${configured} (PLAT_BASE_IMAGE_${runtime.toUpperCase().replaceAll('-', '_')}) is not on the Docker engine`,
        nonRetryable: true,
      });
    }
    for (const image of [info.baseImage, info.offlineBaseImage]) {
      if (await hasImage(docker, image)) return image;
    }
    // With internet access (e.g. under docker compose) the official image is a pull away.
    const pulled = await docker
      .pull(info.baseImage)
      .then((stream) => followDocker(docker, stream))
      .then(
        (messages) => !errorOf(messages),
        () => false,
      );
    if (pulled) return info.baseImage;
    throw ApplicationFailure.create({
      type: 'BaseImageMissing',
      message: `no base image for the ${runtime} runtime: neither ${info.baseImage} nor ${info.offlineBaseImage} is on the Docker engine; run \`npm start\` to build it`,
      nonRetryable: true,
    });
  }

  /**
   * A failed build leaves the images of the steps that succeeded, untagged and unlabelled. Only the
   * ones this build made go, newest first: an image that existed before it (the base image, whose id
   * the build prints first, or a layer it took from the cache) stays, and so does one that another
   * image has been built on meanwhile (the engine refuses that with 409).
   */
  async function removeStepImages(messages: DockerMessage[], before: Set<string>): Promise<void> {
    const printed = messages.flatMap((m) =>
      [...(m.stream ?? '').matchAll(/^ ---> ([0-9a-f]{12,64})$/gm)].map((match) => match[1] as string),
    );
    const existed = (id: string) => [...before].some((full) => full.startsWith(`sha256:${id}`));
    for (const id of printed.reverse()) {
      if (!existed(id)) await removeImage(docker, id);
    }
  }

  return {
    buildImage: (input: BuildInput) => heartbeating(() => build(input)),
    pushImage: ({ tag }: { tag: string }) => heartbeating(() => push(tag)),
  };

  async function build({ name, version, config, contextDir }: BuildInput): Promise<{ tag: string }> {
    // The context lives on the host that packaged it; without it, retrying here cannot help.
    await stat(contextDir).catch(() => {
      throw ApplicationFailure.create({
        type: 'BuildContextMissing',
        message: `the build context of ${name} ${version} is not on this worker's host any more`,
        nonRetryable: true,
      });
    });
    const tag = `${imageRepository(settings.registry, name)}:${version}`;
    const baseImage = await baseImageFor(config.runtime);
    const before = new Set((await docker.listImages({ all: true })).map((image) => image.Id));
    const stream = await docker.buildImage(
      { context: contextDir, src: ['Dockerfile', 'app', 'deps', 'plat'] },
      {
        t: tag,
        buildargs: { BASE_IMAGE: baseImage, PLAT_ENTRY: config.entry },
        labels: { [LABELS.managed]: 'true', [LABELS.function]: name, [LABELS.version]: version },
        rm: true,
        forcerm: true,
      },
    );
    const messages = await followDocker(docker, stream);
    const error = errorOf(messages);
    if (error) {
      await removeStepImages(messages, before);
      // A RUN step that exits non-zero is the user's code failing to build: no retry will fix it.
      const userError = /returned a non-zero code/.test(error);
      const output = failingStepOutput(messages);
      const message = `the build failed: ${error}${output ? `\n${output}` : ''}`;
      if (userError) throw ApplicationFailure.create({ type: 'BuildFailed', message, nonRetryable: true });
      throw new Error(message);
    }
    return { tag };
  }

  async function push(tag: string): Promise<{ image: string; digest: string }> {
    // The engine insists on an X-Registry-Auth header even for a registry without auth.
    const stream = await docker.getImage(tag).push({ authconfig: {} });
    const messages = await followDocker(docker, stream);
    const error = errorOf(messages);
    if (error) throw new Error(`pushing ${tag} failed: ${error}`);
    const digest = messages.find((m) => m.aux?.Digest)?.aux?.Digest;
    if (!digest) throw new Error(`pushing ${tag} reported no digest`);
    const repository = tag.slice(0, tag.lastIndexOf(':'));
    return { image: `${repository}@${digest}`, digest };
  }
}

/** The output of the build step that failed (after its last "Step N/M" line), Docker's own lines left out. */
export function failingStepOutput(messages: DockerMessage[]): string {
  // The engine sends output in chunks as the step writes it, not a line per message: a line may span several.
  const lines = messages
    .map((m) => m.stream ?? '')
    .join('')
    .split('\n')
    .map((l) => l.replace(ANSI_ESCAPES, '').trimEnd())
    .filter((l) => l.length > 0 && !DOCKER_NOISE.test(l));
  const lastStep = lines.findLastIndex((l) => /^Step \d+\/\d+ :/.test(l));
  return lines
    .slice(lastStep + 1)
    .slice(-QUOTED_LINES)
    .join('\n');
}
