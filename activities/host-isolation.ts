import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The platform's own chain: INPUT jumps to it for packets from the functions' bridge. */
export const ISOLATION_CHAIN = 'PLAT-FUNCTIONS-HOST';

/**
 * Keeps function containers from opening connections to the host itself (whatever the host binds
 * on 0.0.0.0, the bridge's gateway address reaches it): packets that come in from the functions'
 * bridge and are addressed to the host go through a chain of the platform's own, which lets
 * through only the answers to connections the host opened (the gateway's requests, the health
 * checks) and rejects the rest. Traffic the host forwards (the functions' outbound internet) never
 * meets INPUT and is untouched. Idempotent, and safe to run from several workers at once: every
 * rule is checked (-C) before it is added, nothing is flushed.
 *
 * Returns a warning when it cannot (no iptables, not root, a worker in a container without the
 * host's network): the platform works, but functions can reach the host.
 */
export async function isolateHostFromBridge(bridge: string): Promise<string | undefined> {
  const iptables = async (...args: string[]) => run('iptables', ['-w', '5', ...args]);
  const ensure = async (table: string[], rule: string[], insert = false) => {
    try {
      await iptables(...table, '-C', ...rule);
    } catch {
      await iptables(...table, insert ? '-I' : '-A', ...(insert ? [rule[0] as string, '1', ...rule.slice(1)] : rule));
    }
  };
  try {
    await iptables('-N', ISOLATION_CHAIN).catch((error: Error) => {
      if (!/exists/i.test(`${(error as Error & { stderr?: string }).stderr ?? error.message}`)) throw error;
    });
    await ensure([], [ISOLATION_CHAIN, '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'RETURN']);
    await ensure([], [ISOLATION_CHAIN, '-p', 'tcp', '-j', 'REJECT', '--reject-with', 'tcp-reset']);
    await ensure([], [ISOLATION_CHAIN, '-j', 'REJECT', '--reject-with', 'icmp-port-unreachable']);
    await ensure([], ['INPUT', '-i', bridge, '-j', ISOLATION_CHAIN], true);
    return undefined;
  } catch (error) {
    const detail = ((error as Error & { stderr?: string }).stderr || (error as Error).message).trim().split('\n')[0];
    return `functions can reach this host's services: the iptables rules that keep them out could not be set (${detail})`;
  }
}
