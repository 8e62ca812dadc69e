import { beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WorkflowExecutionInfo } from '@temporalio/client';
import { plat } from '../support/functions';
import { INTEGRATION_TIMEOUT_MS, stack, type TestStack } from '../support/stack';
import { waitFor } from '../support/wait';

setDefaultTimeout(INTEGRATION_TIMEOUT_MS);

describe('the user path: plat init, deploy, curl, invoke', () => {
  let s: TestStack;
  let home: string;
  beforeAll(async () => {
    s = await stack();
    home = await mkdtemp(join(tmpdir(), 'plat-home-'));
  }, INTEGRATION_TIMEOUT_MS);

  it('creates my-function when init is given no name', async () => {
    const result = await plat(s, home, 'init');
    expect(result.code).toBe(0);
    const config = JSON.parse(await readFile(join(home, 'my-function', 'function.json'), 'utf8'));
    expect(config).toMatchObject({ name: 'my-function', runtime: 'bun', entry: 'index.ts' });
  });

  it('refuses an unknown runtime and names the known ones', async () => {
    const result = await plat(s, home, 'init', s.name('x'), '--runtime', 'cobol');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('unknown runtime "cobol"');
    expect(result.stderr).toContain('bun');
  });

  it('deploys a new function with each step shown, then serves it to curl and to plat invoke', async () => {
    const name = s.name('hello');
    expect((await plat(s, home, 'init', name, '--runtime', 'bun')).code).toBe(0);
    const dir = join(home, name);

    const deployed = await plat(s, dir, 'deploy');
    expect(deployed.stderr).toBe('');
    expect(deployed.code).toBe(0);
    for (const step of ['package', 'build', 'push', 'register']) expect(deployed.stdout).toContain(`✓ ${step}`);
    expect(deployed.stdout).toContain(`Deployed ${name}`);

    const curl = Bun.spawn(['curl', '-sS', '-H', `Authorization: Bearer ${s.token}`, `${s.apiUrl}/function/${name}`], { stdout: 'pipe' });
    const body = JSON.parse(await new Response(curl.stdout).text());
    expect(body).toMatchObject({ message: 'Hello from plat!', method: 'GET', path: '/' });

    const invoked = await plat(s, dir, 'invoke', name, '--data', '{"x":1}');
    expect(invoked.code).toBe(0);
    expect(JSON.parse(invoked.stdout)).toMatchObject({ method: 'POST', body: '{"x":1}' });

    const listed = await plat(s, dir, 'list');
    expect(listed.stdout).toMatch(new RegExp(`${name}\\s+v\\d{8}-\\d{6}-[0-9a-f]{4}\\s+bun`));

    const described = await plat(s, dir, 'describe', name, '--json');
    const state = JSON.parse(described.stdout);
    expect(state.instances).toHaveLength(1);
    expect(state.versions[0].image).toContain('@sha256:');
  });

  it('records the deploy in Temporal as a completed workflow named after the function', async () => {
    const name = s.name('hello');
    const query = `WorkflowType = 'deployFunction' AND PlatFunction = '${name}' AND ExecutionStatus = 'Completed'`;
    const deploys: WorkflowExecutionInfo[] = [];
    // Visibility is updated just after the workflow closes.
    await waitFor('the deploy in Temporal visibility', 10_000, async () => {
      deploys.length = 0;
      for await (const wf of s.temporal.workflow.list({ query })) deploys.push(wf);
      return deploys.length > 0;
    });
    expect(deploys).toHaveLength(1);
    expect(deploys[0]?.workflowId).toStartWith(`deploy/${name}/v`);
    expect(deploys[0]?.status.name).toBe('COMPLETED');
    const history = await s.temporal.workflow.getHandle(deploys[0]?.workflowId as string).fetchHistory();
    const activities = (history.events ?? [])
      .map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)
      .filter((n): n is string => Boolean(n));
    expect(activities).toEqual(['packageSource', 'buildImage', 'pushImage', 'registerVersion', 'cleanupBuild']);
  });

  it('says what is wrong, in one line, when invoked for a function that does not exist', async () => {
    const result = await plat(s, home, 'invoke', s.name('ghost'));
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe(`error: function ${s.name('ghost')} not found`);
  });
});
