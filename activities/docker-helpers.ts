import { Context, heartbeat } from '@temporalio/activity';

/** A heartbeat, where there is one to send: a local activity has none (its workflow task stands for it). */
export function beat(): void {
  if (!Context.current().info.isLocal) heartbeat();
}
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
      () => beat(),
    );
  });
}

export function errorOf(messages: DockerMessage[]): string | undefined {
  const failed = messages.find((m) => m.error || m.errorDetail?.message);
  return failed ? (failed.errorDetail?.message ?? failed.error) : undefined;
}

/** The HTTP status of an error the engine answered, if it answered at all. */
export function statusOf(error: unknown): number | undefined {
  return (error as { statusCode?: number } | undefined)?.statusCode;
}

/** Only a 404 means the image is missing: an engine that does not answer is not an empty engine. */
export async function hasImage(docker: Docker, reference: string): Promise<boolean> {
  try {
    await docker.getImage(reference).inspect();
    return true;
  } catch (error) {
    if (statusOf(error) === 404) return false;
    throw error;
  }
}

const HEARTBEAT_EVERY_MS = 2000;

/** Errors of a socket with no engine behind it (stopped, restarting, never started). */
const UNREACHABLE_CODES = new Set(['ENOENT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EACCES', 'ETIMEDOUT']);

/**
 * Whether an error says the Docker engine cannot be reached, as opposed to the engine refusing
 * something: those deploys wait for it, those cold starts answer 503.
 */
export function isEngineUnreachable(error: unknown): boolean {
  const e = error as { code?: string; syscall?: string; statusCode?: number; message?: string } | undefined;
  if (!e || e.statusCode !== undefined) return false;
  if (e.code && UNREACHABLE_CODES.has(e.code) && (e.syscall === 'connect' || e.syscall === undefined || e.syscall === 'read')) return true;
  return /socket hang up|docker\.sock/.test(e.message ?? '');
}

/**
 * Runs long work with a heartbeat every 2 s, whatever the work prints, so that the activity's
 * heartbeat timeout can be short: a worker that dies mid-step is noticed in seconds, and the step
 * is retried by the next worker, instead of after the step's whole start-to-close timeout.
 */
export async function heartbeating<T>(work: () => Promise<T>): Promise<T> {
  const timer = setInterval(() => beat(), HEARTBEAT_EVERY_MS);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

/**
 * Removes an image or a tag. One that is gone already (404, or the 500 "unrecognized image ID" the
 * engine answers for an image whose removal took it along just before) or still used by a container
 * or another image (409) is left alone: there is nothing of ours to reclaim now.
 */
export async function removeImage(docker: Docker, reference: string, options: { force?: boolean } = {}): Promise<void> {
  await docker
    .getImage(reference)
    .remove(options)
    .catch((error: { statusCode?: number; message?: string }) => {
      const gone = error.statusCode === 404 || (error.statusCode === 500 && /unrecognized image|no such image/i.test(error.message ?? ''));
      if (!gone && error.statusCode !== 409) throw error;
    });
}
