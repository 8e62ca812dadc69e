import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { makeSocketFolder, sealedPathOf, sealSocket, socketPathOf } from '../../lib/sockets';

/**
 * An instance's socket folder is the function's until its start is over: what it holds then is used
 * only if it is a socket, and the folder is closed to the function first (lib/sockets.ts).
 */
const settings = { taskQueue: 'unit' };
let root: string;
let listening: ReturnType<typeof Bun.listen> | undefined;
const given = process.env.PLAT_SOCKETS_RUN_DIR;

/** The instance's socket path, its folder made (as the function's user would have it: open to it). */
function folderOf(instanceId: string): string {
  const path = socketPathOf(settings, instanceId) as string;
  mkdirSync(dirname(path), { recursive: true, mode: 0o777 });
  return path;
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'plat-sockets-'));
  process.env.PLAT_SOCKETS_RUN_DIR = root;
});

afterAll(() => {
  listening?.stop(true);
  if (given === undefined) delete process.env.PLAT_SOCKETS_RUN_DIR;
  else process.env.PLAT_SOCKETS_RUN_DIR = given;
  rmSync(root, { recursive: true, force: true });
});

describe('sealing an instance socket folder', () => {
  it("gives a link to the socket a runtime bound there, in root's folder, and closes the instance's folder", async () => {
    const path = folderOf('served');
    listening = Bun.listen({ unix: path, socket: { data() {} } });
    const sealed = await sealSocket(settings, 'served');
    expect(sealed).toBe(sealedPathOf(settings, 'served'));
    expect(lstatSync(sealed as string).ino).toBe(lstatSync(path).ino);
    for (const folder of [dirname(path), dirname(sealed as string)].map((dir) => statSync(dir))) {
      expect([folder.uid, folder.mode & 0o777]).toEqual([0, 0o700]);
    }
    // Were the folder handed back and the socket swapped for a symlink, the link still leads to the socket.
    chmodSync(dirname(path), 0o777);
    rmSync(path);
    symlinkSync('/var/run/docker.sock', path);
    expect(lstatSync(sealed as string).isSocket()).toBe(true);
  });

  it('never hands a sealed folder back to the function when a retried start makes it again', async () => {
    const dir = (await makeSocketFolder(settings, 'retried', 10001)) as string;
    expect(statSync(dir).uid).toBe(10001);
    await sealSocket(settings, 'retried');
    expect(await makeSocketFolder(settings, 'retried', 10001)).toBe(dir);
    expect([statSync(dir).uid, statSync(dir).mode & 0o777]).toEqual([0, 0o700]);
  });

  it('gives nothing for a symlink, even to a socket: the gateway would follow it anywhere on the host', async () => {
    const path = folderOf('swapped');
    symlinkSync(socketPathOf(settings, 'served') as string, path);
    expect(await sealSocket(settings, 'swapped')).toBeUndefined();
    expect(statSync(dirname(path)).uid).toBe(0);
  });

  it('gives nothing for a file, or for no socket at all (a runtime from before sockets)', async () => {
    writeFileSync(folderOf('file'), 'not a socket');
    folderOf('none');
    expect(await sealSocket(settings, 'file')).toBeUndefined();
    expect(await sealSocket(settings, 'none')).toBeUndefined();
    expect(await sealSocket(settings, 'no-folder')).toBeUndefined();
  });
});
