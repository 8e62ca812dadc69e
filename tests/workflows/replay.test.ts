import { describe, expect, it } from 'bun:test';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';

/**
 * Histories that running functions wrote with an earlier version of the workflows: a worker that is
 * upgraded under them replays them, and must not fail them (a function's entity lives as long as the
 * function). Each fixture is a real history, read with `temporal workflow show -o json` (worker
 * identities blanked).
 */

const ROOT = join(import.meta.dir, '../..');
const FIXTURES = join(ROOT, 'tests/fixtures/histories');

// @temporalio/common's historyFromJSON cannot be used here: npm keeps a protobufjs per Temporal
// package (beside dockerode's older one at the top), and the history type is not a Type of common's
// copy. The same reading, with the proto package's own copy.
const require = createRequire(import.meta.url);
const fromProto = createRequire(require.resolve('@temporalio/proto'));
const { fromJson } = fromProto('protobufjs/ext/protojson') as {
  fromJson: (type: unknown, json: unknown, options: { ignoreUnknownFields: boolean }) => unknown;
};
const { patchProtobufRoot } = require('@temporalio/proto/lib/patch-protobuf-root') as {
  patchProtobufRoot: (root: unknown) => { lookupType: (name: string) => unknown };
};
const HISTORY = patchProtobufRoot(require('@temporalio/proto')).lookupType('temporal.api.history.v1.History');

/** A history as `temporal workflow show -o json` writes it. */
async function historyFile(file: string): Promise<temporal.api.history.v1.History> {
  return fromJson(HISTORY, await Bun.file(join(FIXTURES, file)).json(), { ignoreUnknownFields: true }) as temporal.api.history.v1.History;
}

describe('replaying histories from before a change', () => {
  it('replays an entity that started its instances in four activities, before launchInstance', async () => {
    const history = await historyFile('entity-before-launch-instance.json');
    // Rejects with a DeterminismViolationError when the workflow code no longer makes the recorded commands.
    const outcome = await Worker.runReplayHistory({ workflowsPath: join(ROOT, 'workflows/index.ts') }, history, 'function/cs-probe').then(
      () => 'replayed',
      (error: Error) => `${error.name}: ${error.message}`,
    );
    expect(outcome).toBe('replayed');
  }, 120_000);
});
