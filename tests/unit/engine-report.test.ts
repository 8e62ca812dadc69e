import { describe, expect, it } from 'bun:test';
import type Docker from 'dockerode';
import { engineAnswers, summarize } from '../support/engine-report';

// dockerd's SIGUSR1 dump, as 20.10 writes it: a header per goroutine, then function and file lines.
const dump = `goroutine 54 [running]:
github.com/docker/docker/pkg/signal.DumpStacks({0x55e9ac0ed6b3, 0xf})
\t/build/src/github.com/docker/docker/pkg/signal/trap.go:82 +0x90

goroutine 700 [semacquire, 14 minutes]:
sync.runtime_SemacquireMutex(0xc0009a1404, 0x0, 0x1)
\t/usr/local/go/src/runtime/sema.go:71 +0x49
sync.(*Mutex).Lock(...)
\t/usr/local/go/src/sync/mutex.go:81
github.com/docker/docker/container.(*State).GetPID(0xc0009a1400)
\t/build/src/github.com/docker/docker/container/state.go:248 +0x7b
github.com/docker/docker/daemon.killProcessDirectly(0xc000113440)
\t/build/src/github.com/docker/docker/daemon/container_operations_unix.go:346 +0x14e

goroutine 701 [semacquire, 13 minutes]:
sync.runtime_SemacquireMutex(0xc0009a1404, 0x0, 0x1)
\t/usr/local/go/src/runtime/sema.go:71 +0x49
github.com/docker/docker/container.(*State).GetPID(0xc0009a1400)
\t/build/src/github.com/docker/docker/container/state.go:248 +0x7b

goroutine 702 [select, 1 minute]:
github.com/docker/docker/daemon.(*Daemon).ContainerWait(0xc000113440, {0x0, 0x0})
\t/build/src/github.com/docker/docker/daemon/wait.go:20 +0x10

goroutine 703 [select]:
github.com/docker/docker/daemon.(*Daemon).loop()
\t/build/src/github.com/docker/docker/daemon/loop.go:1 +0x10
`;

describe("a summary of dockerd's goroutines", () => {
  it('counts the goroutines waiting a minute or more by state and by their first frame in the engine', () => {
    expect(summarize(dump).split('\n')).toEqual([
      '  2 × semacquire in github.com/docker/docker/container.(*State).GetPID',
      '  1 × select in github.com/docker/docker/daemon.(*Daemon).ContainerWait',
    ]);
  });

  it('says so when nothing has waited a minute', () => {
    expect(summarize('goroutine 1 [running]:\nmain.main()\n')).toBe('  (no goroutine has waited a minute)');
  });
});

describe('whether the engine answers', () => {
  const engine = (list: () => Promise<unknown>) => ({ listContainers: list }) as unknown as Docker;

  it('is no for a container list that has not come back in time', async () => {
    expect(
      await engineAnswers(
        engine(() => new Promise(() => {})),
        50,
      ),
    ).toBe(false);
  });

  it('is yes for a list, and for a refusal (an engine that refuses is not hung)', async () => {
    expect(
      await engineAnswers(
        engine(async () => []),
        1_000,
      ),
    ).toBe(true);
    expect(
      await engineAnswers(
        engine(async () => Promise.reject(new Error('connect ENOENT'))),
        1_000,
      ),
    ).toBe(true);
  });
});
