/**
 * Whether anything accepts a TCP connection at the URL's host and port within `ms`. The kernel
 * completes a handshake even while the function's event loop is busy, so a slow or CPU-bound
 * function passes; a container that is gone (its bridge address unanswered, or nothing listening)
 * fails. A container reached at its bridge address that dies sends no reset, so without this a
 * request would wait for the function's whole timeout on a connection nobody holds any more.
 */
export function acceptsConnections(url: string, ms: number): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    let settled = false;
    const settle = (alive: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(alive);
    };
    const timer = setTimeout(() => settle(false), ms);
    Bun.connect({
      hostname,
      port: Number(port),
      socket: {
        open(socket) {
          settle(true);
          socket.end();
        },
        data() {},
        error: () => settle(false),
        connectError: () => settle(false),
      },
    }).catch(() => settle(false));
  });
}
