import { afterAll } from 'bun:test';
import { teardown } from './stack';

// One stack per `bun test` run, started by the first integration test that asks for it, torn down
// once after every file has run (an afterAll in a preload is global).
afterAll(teardown);
