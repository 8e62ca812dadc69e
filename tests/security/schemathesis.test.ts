import { afterAll, beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { temporal } from '@temporalio/proto';
import { SEARCH_ATTRIBUTES } from '../../lib/names';
import { extraGateway, INTEGRATION_TIMEOUT_MS, stack, type TestStack } from '../support/stack';
import { waitFor } from '../support/wait';

setDefaultTimeout(INTEGRATION_TIMEOUT_MS);

/**
 * Schemathesis (from PyPI, installed by `npm test`: SCHEMATHESIS) reads the gateway's /openapi.json
 * and sends what it generates from it, valid and not, with the admin token: no answer may be a 5xx or
 * break the document (status, content type, headers, body schema), and data the document rules out
 * must be refused. The gateway is one of this run's, on the real Temporal server, in a namespace and
 * with a PLAT_HOME of its own, so whatever the fuzzer lists or removes is its own, and the secrets it
 * writes go away with it.
 */

const CHECKS = [
  'not_a_server_error',
  'status_code_conformance',
  'content_type_conformance',
  'response_headers_conformance',
  'response_schema_conformance',
  'negative_data_rejection',
];

let s: TestStack;
let home: string;
let namespace: string | undefined;
let gateway: Awaited<ReturnType<typeof extraGateway>>;
beforeAll(async () => {
  s = await stack();
  home = await mkdtemp(join(tmpdir(), 'plat-fuzz-'));
  namespace = `plat-fuzz-${crypto.randomUUID().slice(0, 8)}`;
  await createNamespace(s, namespace);
  gateway = await extraGateway(s, { PLAT_HOME: home, TEMPORAL_NAMESPACE: namespace });
}, INTEGRATION_TIMEOUT_MS);

afterAll(async () => {
  await gateway?.stop();
  if (home) await rm(home, { recursive: true, force: true });
  if (namespace) await s.temporal.connection.operatorService.deleteNamespace({ namespace });
});

/**
 * A Temporal namespace of the fuzzer's own, with the platform's search attributes: what it lists,
 * removes or rolls back can only be its own, never a function of this suite or of the machine's
 * user (it learns names from GET /functions and replays them). Deleted after.
 */
async function createNamespace(s: TestStack, name: string): Promise<void> {
  const { workflowService, operatorService } = s.temporal.connection;
  await workflowService.registerNamespace({ namespace: name, workflowExecutionRetentionPeriod: { seconds: 86_400 as never } });
  const keyword = temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
  await waitFor(`namespace ${name}`, 60_000, () =>
    operatorService
      .addSearchAttributes({
        namespace: name,
        searchAttributes: Object.fromEntries(Object.values(SEARCH_ATTRIBUTES).map((a) => [a.name, keyword])),
      })
      .then(
        () => true,
        (error: { code?: number }) => {
          if (error.code === 6) return true; // ALREADY_EXISTS: a retry after a slow answer
          if (error.code === 5) return false; // NOT_FOUND: the namespace is not in the server's cache yet
          throw error;
        },
      ),
  );
  await waitFor(`search attributes in ${name}`, 60_000, () =>
    workflowService.listWorkflowExecutions({ namespace: name, query: `${SEARCH_ATTRIBUTES.function.name} = "x"` }).then(
      () => true,
      () => false,
    ),
  );
}

describe('the API document', () => {
  it('passes Schemathesis: no 5xx, no answer outside the document, invalid input refused', async () => {
    const bin = process.env.SCHEMATHESIS;
    if (!bin) throw new Error('SCHEMATHESIS is not set: run the suite with npm test, which installs it');
    const run = Bun.spawn(
      [
        bin,
        'run',
        `${gateway.url}/openapi.json`,
        '--header',
        `Authorization: Bearer ${s.token}`,
        '--checks',
        CHECKS.join(','),
        '--max-examples',
        '50',
        '--workers',
        '1',
        '--request-timeout',
        '30',
        '--no-color',
      ],
      // Its cache (.schemathesis/) goes into the gateway's throwaway home, not the checkout.
      { stdout: 'pipe', stderr: 'pipe', cwd: home },
    );
    const [out, err, code] = await Promise.all([new Response(run.stdout).text(), new Response(run.stderr).text(), run.exited]);
    const summary = /(\d+) generated, (\d+) passed/.exec(out);
    console.log(`schemathesis: ${summary?.[0] ?? 'no summary'} (checks: ${CHECKS.join(', ')})`);
    if (code !== 0) {
      const log = (await gateway.log()).split('\n').filter((line) => !line.startsWith('{"time"'));
      throw new Error(
        `schemathesis failed (exit ${code}):\n${out.slice(-8000)}\n${err.slice(-2000)}\ngateway:\n${log.slice(-60).join('\n')}`,
      );
    }
    expect(Number(summary?.[1])).toBeGreaterThan(500);
    expect(summary?.[1]).toBe(summary?.[2]);
    // The gateway lived through it.
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
  });
});
