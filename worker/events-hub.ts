import { chmod, mkdir, rm } from 'node:fs/promises';
import { createServer, type ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import { EVENTS_PATH, type EventPublisher, type InstanceUsage, type PlatformEvent } from '../lib/events';

/** lib/events.ts resumePath, with the container id captured. */
const RESUME_PATH = /^\/instances\/([0-9a-f]{12,64})\/resume$/;
/** lib/events.ts usagePath. */
const USAGE_PATH = /^\/instances\/([0-9a-f]{12,64})\/usage$/;

/** A line every so often, so a subscriber notices a worker that vanished without closing the socket. */
const KEEPALIVE_MS = 10_000;

/**
 * Where this host's gateways hear what the worker knows the moment it knows it: `GET /events` on a
 * Unix socket, answered with JSON lines that never end; and where they have it resume a paused
 * container (`POST /instances/<id>/resume`), which must not wait for a trip through Temporal. A Unix socket, because the gateways that can
 * use these events are the ones on this host (they reach containers at their bridge addresses), and
 * its file permissions keep everyone else out without a token.
 */
export class EventsHub implements EventPublisher {
  private readonly subscribers = new Set<ServerResponse>();
  private readonly server = createServer((request, response) => {
    const resume = request.method === 'POST' ? RESUME_PATH.exec(request.url ?? '') : null;
    if (resume?.[1]) {
      this.resume(resume[1]).then(
        () => response.writeHead(204).end(),
        (error: Error) => response.writeHead(502, { 'content-type': 'text/plain' }).end(error.message),
      );
      return;
    }
    const usage = request.method === 'GET' ? USAGE_PATH.exec(request.url ?? '') : null;
    if (usage?.[1] && this.usage) {
      this.usage(usage[1]).then(
        (body) => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body)),
        (error: Error) => response.writeHead(502, { 'content-type': 'text/plain' }).end(error.message),
      );
      return;
    }
    if (request.url !== EVENTS_PATH) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    response.write(`${JSON.stringify({ type: 'hello', maintenance: this.maintenance } satisfies PlatformEvent)}\n`);
    this.subscribers.add(response);
    response.on('close', () => this.subscribers.delete(response));
  });
  private keepalive?: ReturnType<typeof setInterval>;
  /** Told to subscribers that come while the registry's garbage is collected. */
  private maintenance = false;

  /** `resume` unpauses a container for a gateway (POST resumePath). */
  constructor(
    private readonly socketPath: string,
    private readonly resume: (containerId: string) => Promise<void>,
    /** What a container uses now (GET usagePath), for `plat describe --usage`. */
    private readonly usage?: (containerId: string) => Promise<InstanceUsage>,
  ) {}

  async listen(): Promise<void> {
    await mkdir(dirname(this.socketPath), { recursive: true });
    // A socket file left by a worker that was killed would refuse the bind.
    await rm(this.socketPath, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.socketPath, () => resolve());
    });
    await chmod(this.socketPath, 0o600);
    this.keepalive = setInterval(() => this.write('\n'), KEEPALIVE_MS);
    this.keepalive.unref();
  }

  publish(event: PlatformEvent): void {
    if (event.type === 'registry-maintenance') this.maintenance = event.active;
    this.write(`${JSON.stringify(event)}\n`);
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  private write(line: string): void {
    for (const subscriber of this.subscribers) subscriber.write(line);
  }

  async close(): Promise<void> {
    clearInterval(this.keepalive);
    for (const subscriber of this.subscribers) subscriber.end();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
