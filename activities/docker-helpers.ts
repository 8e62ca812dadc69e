import { heartbeat } from '@temporalio/activity';
import type Docker from 'dockerode';

/** One JSON message of a Docker build, push or pull stream. */
export interface DockerMessage {
  stream?: string;
  status?: string;
  error?: string;
  errorDetail?: { message?: string };
  aux?: { ID?: string; Digest?: string; Tag?: string; Size?: number };
}

/**
 * Follows a Docker progress stream to its end, heartbeating on every message so Temporal knows the
 * activity is alive. Resolves with every message; a message carrying `error` is left for the caller
 * to interpret (a build error is the user's, a push error is the platform's).
 */
export function followDocker(docker: Docker, stream: NodeJS.ReadableStream): Promise<DockerMessage[]> {
  return new Promise((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (error: Error | null, messages: DockerMessage[]) => (error ? reject(error) : resolve(messages)),
      () => heartbeat(),
    );
  });
}

export function errorOf(messages: DockerMessage[]): string | undefined {
  const failed = messages.find((m) => m.error || m.errorDetail?.message);
  return failed ? (failed.errorDetail?.message ?? failed.error) : undefined;
}

export async function hasImage(docker: Docker, reference: string): Promise<boolean> {
  try {
    await docker.getImage(reference).inspect();
    return true;
  } catch {
    return false;
  }
}

/**
 * Removes an image or a tag. One that is gone already (404) or still used by a container or another
 * image (409) is left alone: both mean there is nothing of ours to reclaim now.
 */
export async function removeImage(docker: Docker, reference: string, options: { force?: boolean } = {}): Promise<void> {
  await docker
    .getImage(reference)
    .remove(options)
    .catch((error: { statusCode?: number }) => {
      if (error.statusCode !== 404 && error.statusCode !== 409) throw error;
    });
}
