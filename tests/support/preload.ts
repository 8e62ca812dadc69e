import { afterAll } from 'bun:test';
import { INTEGRATION_TIMEOUT_MS, teardown } from './stack';

// One stack per `bun test` run, started by the first integration test that asks for it, torn down
// once after every file has run (an afterAll in a preload is global).
afterAll(teardown, INTEGRATION_TIMEOUT_MS);
