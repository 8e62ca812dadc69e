import { execFile } from 'node:child_process';
import { chmod, chown, link, lstat, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

/**
 * An instance's socket: a host folder mounted into its container alone, where the runtime serves the
 * function on a Unix socket beside its TCP port (the runtimes whose runtime.json says `servesSocket`).
 * The gateways on the host send the function's requests there: a Unix socket costs the front and the
 * runtime far less kernel time a request than TCP across the bridge (bench/hop.ts), and since the
 * path names the instance, no other container can ever answer on it (no instance check needed).
 */
export const SOCKET_MOUNT = '/run/plat';
export const SOCKET_ENV = 'PLAT_SOCKET';
const SOCKET_FILE = 'http.sock';
/** The longest path a Unix socket address holds (sun_path, less its NUL). */
const SOCKET_PATH_MAX = 107;

/** Where instances' socket folders are on the host: PLAT_SOCKETS_RUN_DIR, default /run/plat-sockets (a tmpfs). */
export function socketsRunDir(): string {
  return process.env.PLAT_SOCKETS_RUN_DIR || '/run/plat-sockets';
}

/** The platform's (task queue's) folder: its instances' folders, and their sealed links in SEALED. */
function queueDir(settings: { taskQueue: string }): string {
  return join(socketsRunDir(), settings.taskQueue);
}

/** An instance's socket folder, a folder per platform (task queue) and instance, as secrets'. */
export function socketDirOf(settings: { taskQueue: string }, instanceId: string): string {
  return join(queueDir(settings), instanceId);
}

/** The host path of the instance's socket in its folder, when it fits a socket address (else the instance is reached over TCP only). */
export function socketPathOf(settings: { taskQueue: string }, instanceId: string): string | undefined {
  const path = join(socketDirOf(settings, instanceId), SOCKET_FILE);
  return path.length <= SOCKET_PATH_MAX && sealedPathOf(settings, instanceId).length <= SOCKET_PATH_MAX ? path : undefined;
}

/**
 * Where the gateways reach the instance's socket: a hard link to it made by `sealSocket`, in a folder
 * of root's that no container has mounted, so nothing the function does later (nor an earlier start's
 * retry handing its folder back) can change what they connect to.
 */
export function sealedPathOf(settings: { taskQueue: string }, instanceId: string): string {
  return join(queueDir(settings), SEALED, `${instanceId}.sock`);
}

const SEALED = '.sealed';

/** The socket the runtime listens on inside the container. */
export const SOCKET_IN_CONTAINER = `${SOCKET_MOUNT}/${SOCKET_FILE}`;

/** The tmpfs the folders are on: small (a socket takes no space), bounded in files too. */
const MOUNT_OPTIONS = 'size=16m,nr_inodes=65536,mode=0700';

let ready: Promise<boolean> | undefined;

/**
 * Whether instances get sockets: the run folder is a tmpfs of its own, mounted here if it is not
 * yet (once per process; root only). False, and every instance is reached over TCP, when it cannot be.
 */
export function socketsReady(): Promise<boolean> {
  ready ??= (async () => {
    const root = socketsRunDir();
    try {
      await mkdir(root, { recursive: true, mode: 0o700 });
      if (await isMountPoint(root)) return true;
      await promisify(execFile)('mount', ['-t', 'tmpfs', '-o', MOUNT_OPTIONS, 'plat-sockets', root]);
      return await isMountPoint(root);
    } catch (error) {
      console.error(`instances are reached over TCP only: ${root} could not be made a tmpfs (${(error as Error).message.trim()})`);
      return false;
    }
  })();
  return ready;
}

async function isMountPoint(path: string): Promise<boolean> {
  const [self, parent] = await Promise.all([stat(path), stat(dirname(path))]);
  return self.dev !== parent.dev;
}

/**
 * Makes the instance's folder, the function's user's (`uid`) until its seal. One an earlier attempt
 * made (a retried start) is left as it is: sealed, it is never handed back to the function. A tmpfs
 * that is full (of what a function put in its folder before its seal, say) gives no folder: the
 * instance is reached over TCP, its start does not fail.
 */
export async function makeSocketFolder(settings: { taskQueue: string }, instanceId: string, uid: number): Promise<string | undefined> {
  const dir = socketDirOf(settings, instanceId);
  try {
    await mkdir(dirname(dir), { recursive: true, mode: 0o700 });
    try {
      await mkdir(dir, { mode: 0o700 });
    } catch (error) {
      if ((error as { code?: string }).code === 'EEXIST') return dir;
      throw error;
    }
    await chown(dir, uid, uid);
    return dir;
  } catch {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    return undefined;
  }
}

/**
 * Seals the instance's folder once its runtime answered (root's, mode 0700: the function can no
 * longer change what is in it) and, if a socket is there, links it where the gateways will reach it
 * (`sealedPathOf`; link() never follows a symlink, and the link is checked again). Anything else (a
 * symlink, a file, nothing: a runtime from before sockets) and the instance is reached over TCP alone.
 */
export async function sealSocket(settings: { taskQueue: string }, instanceId: string): Promise<string | undefined> {
  const path = socketPathOf(settings, instanceId);
  if (!path) return undefined;
  const sealed = sealedPathOf(settings, instanceId);
  try {
    await chown(dirname(path), 0, 0);
    await chmod(dirname(path), 0o700);
    if (!(await lstat(path)).isSocket()) return undefined;
    await mkdir(dirname(sealed), { recursive: true, mode: 0o700 });
    await rm(sealed, { force: true });
    await link(path, sealed);
    return (await lstat(sealed)).isSocket() ? sealed : undefined;
  } catch {
    return undefined;
  }
}

/** Removes what the instance had here: its folder and its sealed link. */
export async function removeSocket(settings: { taskQueue: string }, instanceId: string): Promise<void> {
  await rm(socketDirOf(settings, instanceId), { recursive: true, force: true }).catch(() => undefined);
  await rm(sealedPathOf(settings, instanceId), { force: true }).catch(() => undefined);
}

/** Removes the folders and links of instances other than `live` (their containers went while no worker watched). */
export async function sweepSockets(settings: { taskQueue: string }, live: Set<string | undefined>): Promise<void> {
  const root = queueDir(settings);
  for (const name of await readdir(root).catch(() => [] as string[])) {
    if (name !== SEALED && !live.has(name)) await removeSocket(settings, name);
  }
  for (const name of await readdir(join(root, SEALED)).catch(() => [] as string[])) {
    const instanceId = name.replace(/\.sock$/, '');
    if (!live.has(instanceId)) await removeSocket(settings, instanceId);
  }
}
