import type { Socket } from 'bun';

/**
 * Whether anything accepts a connection at `target` (a URL's host and port, or a Unix socket's path)
 * within `ms`. The kernel completes a handshake even while the function's event loop is busy, so a
 * slow or CPU-bound function passes; a container that is gone (its bridge address unanswered, or
 * nothing listening) fails. A container reached at its bridge address that dies sends no reset, so
 * without this a request would wait for the function's whole timeout on a connection nobody holds any
 * more.
 */
export function acceptsConnections(target: string, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (alive: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(alive);
    };
    const timer = setTimeout(() => settle(false), ms);
    const socket = {
      open(socket: Socket) {
        settle(true);
        socket.end();
      },
      data() {},
      error: () => settle(false),
      connectError: () => settle(false),
    };
    // A path: the instance's Unix socket, which takes connections as long as its runtime listens.
    const url = target.startsWith('/') ? undefined : new URL(target);
    const connecting = url
      ? Bun.connect({ hostname: url.hostname, port: Number(url.port), socket })
      : Bun.connect({ unix: target, socket });
    connecting.catch(() => settle(false));
  });
}
