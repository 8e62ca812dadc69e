import { describe, expect, it } from 'bun:test';
import { packageJsonProblems, requirementsProblems } from '../../lib/dependency-rules';

describe('requirements.txt', () => {
  it('accepts requirement specifiers, extras, markers, comments and hashes', () => {
    const text = [
      '# pinned',
      'Flask==3.0.3',
      'requests[socks,security]>=2.31,<3  # inline comment',
      'tomli; python_version < "3.11"',
      'werkzeug==3.0.3 \\',
      '    --hash=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
      'itsdangerous',
      '',
    ].join('\n');
    expect(requirementsProblems(text)).toEqual([]);
  });

  it.each([
    ['-r /etc/passwd', '-r'],
    ['--requirement=/root/secret.txt', '--requirement'],
    ['-c constraints.txt', '-c'],
    ['-e ./local', '-e'],
    ['-i https://evil.example/simple', '-i'],
    ['--index-url https://evil.example/simple', '--index-url'],
    ['--extra-index-url https://evil.example/simple', '--extra-index-url'],
    ['--find-links /tmp', '--find-links'],
    ['--trusted-host evil.example', '--trusted-host'],
  ])('refuses the option line %p, naming the line', (line, option) => {
    const [problem] = requirementsProblems(`Flask==3.0.3\n${line}\n`);
    expect(problem).toContain('line 2');
    expect(problem).toContain(option);
  });

  it.each([
    './vendor/pkg',
    '/abs/path/pkg.whl',
    'pkg @ https://evil.example/pkg.tar.gz',
    'https://evil.example/pkg.whl',
    'git+https://github.com/a/b.git',
    'file:///etc/passwd',
    'Flask==3.0.3 --no-binary :all:',
  ])('refuses a path, a URL or a stray option: %p', (line) => {
    const problems = requirementsProblems(line);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('line 1');
  });
});

describe('package.json', () => {
  it('accepts registry versions, ranges, tags and npm: aliases', () => {
    expect(
      packageJsonProblems({
        dependencies: { hono: '^4.6.0', a: '1.2.3', b: 'latest', c: '>=1 <2', d: '*', e: '', f: 'npm:hono@^4', g: 'npm:@scope/pkg@1.0.0' },
        devDependencies: { typescript: '~5.9.0' },
        overrides: { foo: { bar: '1.0.0' } },
      }),
    ).toEqual([]);
  });

  it.each([
    'file:/some/host/dir',
    'file:../x',
    'link:../x',
    'workspace:*',
    'git+https://github.com/a/b.git',
    'git://github.com/a/b.git',
    'github:user/repo',
    'user/repo',
    'https://evil.example/pkg.tgz',
    'http://127.0.0.1:5001/v2/x/blobs/sha256:1',
  ])('refuses %p, naming the entry', (spec) => {
    const problems = packageJsonProblems({ dependencies: { s: spec } });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('dependencies.s');
  });

  it('checks optional, peer and dev dependencies, and overrides at any depth', () => {
    const problems = packageJsonProblems({
      optionalDependencies: { a: 'file:x' },
      peerDependencies: { b: 'link:y' },
      devDependencies: { c: 'git+ssh://x' },
      overrides: { d: { e: 'file:/etc' } },
      resolutions: { f: 'https://x' },
    });
    expect(problems.map((p) => p.split(' ')[1])).toEqual([
      'optionalDependencies.a',
      'peerDependencies.b',
      'devDependencies.c',
      'overrides.d.e',
      'resolutions.f',
    ]);
  });

  it('refuses dependencies that are not an object of strings', () => {
    expect(packageJsonProblems({ dependencies: ['hono'] })).toHaveLength(1);
    expect(packageJsonProblems({ dependencies: { hono: 4 } })).toHaveLength(1);
    expect(packageJsonProblems([])).toHaveLength(1);
  });
});
