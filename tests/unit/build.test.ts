import { describe, expect, it } from 'bun:test';
import { failingStepOutput } from '../../activities/build';

describe('the build output quoted in a failed deploy', () => {
  it('keeps a line whole when the engine sent it in several chunks, and quotes only the failing step', () => {
    const output = failingStepOutput([
      { stream: 'Step 4/6 : COPY app/ /app/\n' },
      { stream: ' ---> 1a2b3c4d5e6f\n' },
      { stream: 'Step 5/6 : RUN bun build /app/index.ts\n' },
      { stream: ' ---> Running in 0f0e0d0c0b0a\n' },
      { stream: 'error: Expected ")" but found "}"\n    at /app/index.ts' },
      { stream: ':1' },
      { stream: ':52\n' },
      { stream: '\u001b[31mBun v1.4.5\u001b[0m\n' },
      { stream: 'Removing intermediate container 0f0e0d0c0b0a\n' },
    ]);
    expect(output).toBe('error: Expected ")" but found "}"\n    at /app/index.ts:1:52\nBun v1.4.5');
  });
});
