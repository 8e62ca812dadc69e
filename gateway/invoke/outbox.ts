/**
 * Bytes on their way out of a socket, in order: written at once as far as the socket takes them, the
 * rest kept (copied: Bun may reuse a buffer it handed over) until its `drain`. The invoke front, its
 * tunnels and the upstream client each write through one.
 */
export class Outbox {
  private readonly kept: Buffer[] = [];

  get empty(): boolean {
    return this.kept.length === 0;
  }

  /** Writes `bytes` as far as `socket` takes them (none while it is not there yet); false when some are kept. */
  write(socket: { write(bytes: Buffer): number } | undefined, bytes: Buffer): boolean {
    if (!socket || this.kept.length > 0) {
      this.kept.push(Buffer.from(bytes));
      return false;
    }
    const written = socket.write(bytes);
    if (written >= bytes.byteLength) return true;
    this.kept.push(Buffer.from(bytes.subarray(Math.max(written, 0))));
    return false;
  }

  /** Writes what was kept, as far as `socket` takes it (on its drain); true once nothing is left. */
  flush(socket: { write(bytes: Buffer): number }): boolean {
    while (this.kept.length > 0) {
      const bytes = this.kept[0] as Buffer;
      const written = socket.write(bytes);
      if (written < bytes.byteLength) {
        this.kept[0] = bytes.subarray(Math.max(written, 0));
        return false;
      }
      this.kept.shift();
    }
    return true;
  }
}
