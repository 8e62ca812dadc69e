import { afterAll, setDefaultTimeout } from 'bun:test';
import { teardown } from './stack';

// Integration tests build images and start containers: minutes on a cold machine, not seconds.
setDefaultTimeout(300_000);

// One stack per `bun test` run, started by the first integration test that asks for it.
afterAll(teardown);
