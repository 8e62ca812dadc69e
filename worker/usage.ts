import type Docker from 'dockerode';
import type { InstanceUsage } from '../lib/events';

/**
 * A container's memory and CPU now, from the engine's stats (one sample; the engine measures the CPU
 * over its last interval, about a second). Memory leaves out the page cache, as `docker stats` does.
 */
export async function containerUsage(docker: Docker, containerId: string): Promise<InstanceUsage> {
  const stats = (await docker.getContainer(containerId).stats({ stream: false })) as unknown as {
    memory_stats: { usage?: number; limit?: number; stats?: { inactive_file?: number; total_inactive_file?: number } };
    cpu_stats: { cpu_usage: { total_usage: number }; system_cpu_usage?: number; online_cpus?: number };
    precpu_stats: { cpu_usage: { total_usage: number }; system_cpu_usage?: number };
  };
  const memory = stats.memory_stats;
  const cache = memory.stats?.inactive_file ?? memory.stats?.total_inactive_file ?? 0;
  const cpuDelta = stats.cpu_stats.cpu_usage.total_usage - (stats.precpu_stats.cpu_usage?.total_usage ?? 0);
  const systemDelta = (stats.cpu_stats.system_cpu_usage ?? 0) - (stats.precpu_stats.system_cpu_usage ?? 0);
  const cpus = stats.cpu_stats.online_cpus ?? 1;
  return {
    memoryBytes: Math.max(0, (memory.usage ?? 0) - cache),
    memoryLimitBytes: memory.limit ?? 0,
    cpuPercent: systemDelta > 0 && cpuDelta > 0 ? Math.round((cpuDelta / systemDelta) * cpus * 1000) / 10 : 0,
  };
}
