import type { Client } from '@temporalio/client';
import type Docker from 'dockerode';
import type { EventPublisher } from '../lib/events';
import { type LogWriter, lastLineTime, platformRecord } from '../lib/logs';
import { LABELS, workflowIds } from '../lib/names';
import type { Settings } from '../lib/settings';
import { describeQuery, instanceGoneSignal, instanceResumedSignal, WORKFLOW_TYPES } from '../workflows/definitions';
import type { LogCollector } from './log-collector';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { secretsDirOf, secretsRunDir } from '../lib/secrets';
import { removeSocket, sweepSockets } from '../lib/sockets';

const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 2000;
/** Containers already reported, so a die and a destroy of one container make one report. */
const REPORTED_KEPT = 1000;

interface DockerEvent {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  timeNano?: number;
}

/**
 * Watches the engine's events for this platform's function containers: a container that dies, is
 * killed or is removed is reported at once to its function's entity (so no new route is built on it)
 * and to this host's gateways (so they drop the routes they hold). Each time the watch (re)connects,
 * which is also after an engine restart, it reconciles: every container that stopped meanwhile and
 * every instance an entity lists without a running container is reported. Containers left created
 * or exited are removed after a grace period.
 */
export class EngineWatch {
  private readonly reported = new Set<string>();
  /** Containers the engine reported out of memory, until they die. */
  private readonly oomKilled = new Set<string>();
  private stopped = false;
  private stream?: NodeJS.ReadableStream & { destroy?: () => void };
  private reaper?: ReturnType<typeof setInterval>;

  constructor(
    private readonly docker: Docker,
    private readonly temporal: Client,
    private readonly settings: Settings,
    private readonly events: EventPublisher,
    private readonly collector: LogCollector,
    private readonly logs: LogWriter,
  ) {}

  start(): void {
    void this.watch();
    const every = Math.min(30_000, Math.max(1000, this.settings.reapAfterMs / 2));
    this.reaper = setInterval(() => {
      this.reap().catch((error) => console.warn(`reaping containers failed: ${(error as Error).message}`));
    }, every);
    this.reaper.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.reaper);
    this.stream?.destroy?.();
  }

  private async watch(): Promise<void> {
    let backoff = RECONNECT_MIN_MS;
    let lost = false;
    while (!this.stopped) {
      try {
        const stream = (await this.docker.getEvents({
          filters: {
            type: ['container'],
            event: ['start', 'die', 'destroy', 'pause', 'unpause', 'oom'],
            label: [`${LABELS.queue}=${this.settings.taskQueue}`],
          },
        })) as NodeJS.ReadableStream & { destroy?: () => void };
        this.stream = stream;
        if (lost) console.log('the Docker engine answers again; reconciling the instances');
        lost = false;
        backoff = RECONNECT_MIN_MS;
        // Events from here on are seen; what happened before is caught up with by the reconciliation.
        await this.reconcile().catch((error) => console.warn(`reconciling instances failed: ${(error as Error).message}`));
        await this.follow(stream);
      } catch (error) {
        if (!lost && !this.stopped) console.warn(`lost the Docker engine's events (${(error as Error).message}); retrying`);
        lost = true;
      }
      if (this.stopped) return;
      lost = true;
      await new Promise((resolve) => setTimeout(resolve, backoff));
      backoff = Math.min(backoff * 2, RECONNECT_MAX_MS);
    }
  }

  /** Reads the event stream until it ends (the engine stopped, or the watch did). */
  private follow(stream: NodeJS.ReadableStream): Promise<void> {
    return new Promise((resolve) => {
      let buffered = '';
      stream.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('utf8');
        let newline = buffered.indexOf('\n');
        while (newline >= 0) {
          const line = buffered.slice(0, newline).trim();
          buffered = buffered.slice(newline + 1);
          if (line) this.onEvent(JSON.parse(line) as DockerEvent);
          newline = buffered.indexOf('\n');
        }
      });
      stream.on('end', () => resolve());
      stream.on('close', () => resolve());
      stream.on('error', () => resolve());
    });
  }

  private onEvent(event: DockerEvent): void {
    const id = event.Actor?.ID;
    const name = event.Actor?.Attributes?.[LABELS.function];
    if (!id || !name) return;
    const at = event.timeNano ? Math.floor(event.timeNano / 1e6) : Date.now();
    const about = { containerId: id, version: event.Actor?.Attributes?.[LABELS.version] };
    switch (event.Action) {
      case 'start':
        this.collector.follow({ name, ...about });
        return;
      case 'oom':
        this.oomKilled.add(id);
        void this.describeOom(id).then((text) => this.logs.append(name, platformRecord(text, about)));
        return;
      case 'pause':
        this.logs.append(name, platformRecord('instance paused: idle (the next request resumes it)', about));
        this.events.publish({ type: 'instance-paused', name, containerId: id });
        return;
      case 'unpause':
        this.logs.append(name, platformRecord('instance resumed', about));
        // A gateway had it resumed for a request: the entity's idle rules count from now.
        this.events.publish({ type: 'instance-resumed', name, containerId: id });
        this.temporal.workflow
          .getHandle(workflowIds.entity(name))
          .signal(instanceResumedSignal, { containerId: id, at: new Date(at).toISOString() })
          .catch(() => {});
        return;
      case 'die': {
        const code = event.Actor?.Attributes?.exitCode ?? '?';
        const oom = this.oomKilled.delete(id) ? ' (killed: out of memory)' : '';
        this.logs.append(name, platformRecord(`instance exited with code ${code}${oom}`, about));
        this.report(name, id, `exited with code ${code}`, at);
        return;
      }
      default: {
        this.report(name, id, 'removed', at);
        // The instance's secrets and socket folder (on tmpfs) go with its container.
        const instanceId = event.Actor?.Attributes?.[LABELS.instance];
        if (instanceId) {
          void rm(secretsDirOf(this.settings, instanceId), { recursive: true, force: true }).catch(() => undefined);
          void removeSocket(this.settings, instanceId);
        }
      }
    }
  }

  /** The OOM event's line: what the limit is and how to raise it. */
  private async describeOom(containerId: string): Promise<string> {
    const memory = await this.docker
      .getContainer(containerId)
      .inspect()
      .then((info) => info.HostConfig.Memory ?? 0)
      .catch(() => 0);
    const limit = memory ? `its memory limit of ${Math.round(memory / 1024 / 1024)} MiB` : 'its memory limit';
    return `instance killed for memory: it reached ${limit}; raise "memory" (MiB) in function.json and deploy again`;
  }

  /** Tells the gateways (at once) and the entity (durably) that a container no longer serves. */
  private report(name: string, containerId: string, reason: string, at = Date.now()): void {
    if (this.reported.has(containerId)) return;
    this.reported.add(containerId);
    if (this.reported.size > REPORTED_KEPT) this.reported.delete(this.reported.values().next().value as string);
    this.events.publish({ type: 'instance-gone', name, containerId, reason, at });
    this.temporal.workflow
      .getHandle(workflowIds.entity(name))
      .signal(instanceGoneSignal, containerId)
      .catch(() => {
        // The function is gone, or Temporal is away: the entity's instance is then caught at the next reconciliation.
      });
  }

  /** Reports every container that stopped and every listed instance whose container is not running. */
  private async reconcile(): Promise<void> {
    const containers = await this.containers();
    const running = new Set(containers.filter((c) => c.State === 'running' || c.State === 'paused').map((c) => c.Id));
    for (const c of containers) {
      const name = c.Labels[LABELS.function];
      if (!name) continue;
      if (c.State !== 'running' && c.State !== 'paused') this.report(name, c.Id, `found ${c.State}`);
      else {
        // Followed again from its last line collected (this worker restarted, or the engine did).
        const since = lastLineTime(this.settings.dataDir, name, c.Id);
        this.collector.follow({ name, containerId: c.Id, version: c.Labels[LABELS.version] }, since);
      }
    }
    // Secrets and socket folders of instances whose containers went while no one watched.
    const instances = new Set(containers.map((c) => c.Labels[LABELS.instance]));
    const secretsRoot = join(secretsRunDir(), this.settings.taskQueue);
    for (const instanceId of await readdir(secretsRoot).catch(() => [] as string[])) {
      if (!instances.has(instanceId)) await rm(join(secretsRoot, instanceId), { recursive: true, force: true }).catch(() => undefined);
    }
    await sweepSockets(this.settings, instances);
    const query = `WorkflowType = '${WORKFLOW_TYPES.entity}' AND ExecutionStatus = 'Running' AND TaskQueue = '${this.settings.taskQueue}'`;
    for await (const execution of this.temporal.workflow.list({ query })) {
      const state = await this.temporal.workflow
        .getHandle(execution.workflowId)
        .query(describeQuery)
        .catch(() => undefined);
      for (const instance of state?.instances ?? []) {
        if (!running.has(instance.containerId)) this.report(state?.name as string, instance.containerId, 'not running');
      }
    }
  }

  /** Removes containers that exited a while ago (settings.reapAfterMs), and those created but never started (twice that). */
  private async reap(): Promise<void> {
    const now = Date.now();
    for (const c of await this.containers()) {
      if (c.State === 'running' || c.State === 'restarting' || c.State === 'paused') continue;
      const container = this.docker.getContainer(c.Id);
      let since = c.Created * 1000;
      let grace = this.settings.reapAfterMs * 2;
      if (c.State !== 'created') {
        since = Date.parse((await container.inspect()).State.FinishedAt);
        grace = this.settings.reapAfterMs;
      }
      if (now - since > grace) await container.remove({ force: true }).catch(() => undefined);
    }
  }

  private containers(): Promise<Docker.ContainerInfo[]> {
    return this.docker.listContainers({ all: true, filters: { label: [`${LABELS.queue}=${this.settings.taskQueue}`] } });
  }
}
