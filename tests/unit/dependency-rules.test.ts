import { describe, expect, it } from 'bun:test';
import { lockfileProblems, packageJsonProblems, requirementsProblems } from '../../lib/dependency-rules';

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

const NPM = 'https://registry.npmjs.org/';
const LOCAL = 'http://localhost:4873';

/** A package-lock.json v3 as npm 10 writes it, with `entries` added to its packages. */
function packageLock(entries: Record<string, unknown> = {}): string {
  return JSON.stringify({
    name: 'fn',
    version: '1.0.0',
    lockfileVersion: 3,
    requires: true,
    packages: {
      '': { name: 'fn', version: '1.0.0', dependencies: { hono: '^4.6.0', '@types/ms': '^0.7.34' } },
      'node_modules/hono': {
        version: '4.6.3',
        resolved: 'https://registry.npmjs.org/hono/-/hono-4.6.3.tgz',
        integrity: 'sha512-0LeEuBNFeSHGqZ9sNVVgZjB1V5fmhkBSB0hZrpqStSMLOWgfLy0dHOvrjbJh0H2khsjet6rbHfWTHY0kpYThKQ==',
        license: 'MIT',
        engines: { node: '>=16.9.0' },
      },
      'node_modules/@types/ms': {
        version: '0.7.34',
        resolved: 'https://registry.npmjs.org/@types/ms/-/ms-0.7.34.tgz',
        integrity: 'sha512-nG96G3Wp6acyAgJqGasjODb+acrI7KltPiRxzHPXnP3NgI28bpQDRv53olbqGXbfcgF5aiiHmO3xpwEpS5Ld9g==',
      },
      'node_modules/hono/node_modules/nested': { version: '1.0.0', resolved: 'http://localhost:4873/nested/-/nested-1.0.0.tgz' },
      ...entries,
    },
  });
}

/** A bun.lock as bun 1.2 writes it (trailing commas, a comment added), with `entries` added to its packages. */
function bunLock(entries = ''): string {
  return `{
  "lockfileVersion": 1,
  "workspaces": {
    "": {
      "name": "fn",
      "dependencies": {
        "hono": "^4.6.0",
        "@types/ms": "^0.7.34",
      },
    },
  },
  // "packages": { "x": ["x@file:/etc", ""] },
  "packages": {
    "@types/ms": ["@types/ms@0.7.34", "", {}, "sha512-nG96G3Wp6acyAgJqGasjODb+acrI7KltPiRxzHPXnP3NgI28bpQDRv53olbqGXbfcgF5aiiHmO3xpwEpS5Ld9g=="],

    "hono": ["hono@4.6.3", "https://registry.npmjs.org/hono/-/hono-4.6.3.tgz", {}, "sha512-0LeEuBNFeSHGqZ9sNVVgZjB1V5fmhkBSB0hZrpqStSMLOWgfLy0dHOvrjbJh0H2khsjet6rbHfWTHY0kpYThKQ=="],

    "hono/nested": ["nested@1.0.0", "http://localhost:4873/nested/-/nested-1.0.0.tgz", { "dependencies": { "a": "^1" } }, "sha512-x/*y*/z=="],
${entries}
  },
}
`;
}

describe('package-lock.json', () => {
  it('accepts packages resolved from npm or the configured registry', () => {
    expect(lockfileProblems('package-lock.json', packageLock(), LOCAL)).toEqual([]);
    expect(lockfileProblems('package-lock.json', packageLock(), `${LOCAL}/`)).toEqual([]);
  });

  it('accepts a lockfileVersion 1 lockfile with nested dependencies and npm: aliases', () => {
    const lock = {
      lockfileVersion: 1,
      dependencies: {
        hono: { version: '4.6.3', resolved: 'https://registry.npmjs.org/hono/-/hono-4.6.3.tgz', integrity: 'sha512-x' },
        alias: { version: 'npm:ms@2.1.3', resolved: 'https://registry.npmjs.org/ms/-/ms-2.1.3.tgz' },
        a: { version: '1.0.0', dependencies: { b: { version: '2.0.0', resolved: 'https://registry.npmjs.org/b/-/b-2.0.0.tgz' } } },
      },
    };
    expect(lockfileProblems('package-lock.json', JSON.stringify(lock), NPM)).toEqual([]);
  });

  it.each([
    ['another host', { version: '1.0.0', resolved: 'https://evil.example/x/-/x-1.0.0.tgz' }],
    ['a look-alike host', { version: '1.0.0', resolved: 'https://registry.npmjs.org.evil.example/x/-/x-1.0.0.tgz' }],
    ['credentials before another host', { version: '1.0.0', resolved: 'https://registry.npmjs.org@evil.example/x.tgz' }],
    ['a backslash', { version: '1.0.0', resolved: 'https://registry.npmjs.org\\@evil.example/x.tgz' }],
    ['the registry over plain http', { version: '1.0.0', resolved: 'http://registry.npmjs.org/x/-/x-1.0.0.tgz' }],
    ['a file: path', { version: '1.0.0', resolved: 'file:../../etc' }],
    ['a relative path', { version: '1.0.0', resolved: '../../etc' }],
    ['a link', { resolved: '../../etc', link: true }],
    ['a link without resolved', { link: true }],
    ['git+ssh', { version: '1.0.0', resolved: 'git+ssh://git@github.com/a/b.git#0123456' }],
    ['a git version', { version: 'git+https://github.com/a/b.git' }],
    ['a file: version', { version: 'file:/etc' }],
    ['a resolved that is not a string', { version: '1.0.0', resolved: { url: 'x' } }],
  ])('refuses %s, naming the entry', (_, entry) => {
    const problems = lockfileProblems('package-lock.json', packageLock({ 'node_modules/x': entry }), LOCAL);
    expect(problems.length).toBeGreaterThan(0);
    for (const problem of problems) expect(problem).toStartWith('package-lock.json packages["node_modules/x"]');
  });

  it.each(['packages/a', '../../etc', 'node_modules/../../etc', 'node_modules/', 'node_modules/a/./b'])(
    'refuses the package folder %p outside node_modules',
    (path) => {
      const problems = lockfileProblems('package-lock.json', packageLock({ [path]: { version: '1.0.0' } }), LOCAL);
      expect(problems).toHaveLength(1);
      expect(problems[0]).toContain('outside node_modules');
    },
  );

  it('refuses what lockfileVersion 1 resolves elsewhere, at any depth', () => {
    const lock = {
      lockfileVersion: 1,
      dependencies: {
        a: {
          version: '1.0.0',
          dependencies: { b: { version: 'file:../b' }, c: { version: '1.0.0', resolved: 'https://evil.example/c.tgz' } },
        },
        d: { version: 'github:user/repo#abc', from: 'github:user/repo' },
      },
    };
    const problems = lockfileProblems('package-lock.json', JSON.stringify(lock), NPM);
    expect(problems.map((p) => p.split(' ')[1])).toEqual([
      'dependencies.a.dependencies.b',
      'dependencies.a.dependencies.c',
      'dependencies.d',
    ]);
  });

  it('cuts long entries at 80 characters', () => {
    const [problem] = lockfileProblems(
      'package-lock.json',
      packageLock({ 'node_modules/x': { resolved: `https://evil.example/${'a'.repeat(200)}` } }),
      LOCAL,
    );
    expect(problem).toContain(`${'a'.repeat(59)}…`);
    expect(problem).not.toContain('a'.repeat(100));
  });

  it('accepts only the configured registry besides npm', () => {
    const text = packageLock();
    const problems = lockfileProblems('package-lock.json', text, NPM);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('node_modules/hono/node_modules/nested');
    expect(problems[0]).toContain('https://registry.npmjs.org/');
  });

  it("never shows the configured registry's credentials", () => {
    const problems = lockfileProblems(
      'package-lock.json',
      packageLock({ 'node_modules/x': { resolved: 'https://evil.example/x.tgz' } }),
      'https://user:secret@npm.internal/',
    );
    expect(problems.join('\n')).not.toContain('secret');
    expect(problems.join('\n')).toContain('https://npm.internal/');
  });

  it.each(['{', '', 'null', '[]', '{"a": 1,}'])('refuses %p with one problem naming the file', (text) => {
    const problems = lockfileProblems('package-lock.json', text, NPM);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toStartWith('package-lock.json ');
  });
});

describe('bun.lock', () => {
  it('accepts packages of npm or the configured registry, with comments and trailing commas', () => {
    expect(lockfileProblems('bun.lock', bunLock(), LOCAL)).toEqual([]);
  });

  it.each([
    ['file:', '["x@file:../../etc", { "dependencies": {} }]'],
    ['link:', '["x@link:x"]'],
    ['workspace:', '["x@workspace:packages/x"]'],
    ['github:', '["x@github:user/repo#0123456", {}, "user-repo-0123456"]'],
    ['git+ssh', '["x@git+ssh://git@github.com/user/repo.git#0123456", {}, "0123456"]'],
    ['a tarball URL', '["x@https://evil.example/x-1.0.0.tgz", {}]'],
    ['a path that ends like a version', '["x@file:/etc/x@1.0.0", "", {}, ""]'],
    ['no version', '["x", "", {}, ""]'],
    ['another registry', '["x@1.0.0", "https://evil.example/x/-/x-1.0.0.tgz", {}, "sha512-x"]'],
    ['a look-alike registry', '["x@1.0.0", "https://registry.npmjs.org.evil.example/x.tgz", {}, "sha512-x"]'],
    ['a registry that is not a string', '["x@1.0.0", {}, "sha512-x"]'],
    ['an entry that is not an array', '{ "version": "1.0.0" }'],
  ])('refuses %s, naming the entry', (_, entry) => {
    const problems = lockfileProblems('bun.lock', bunLock(`    "x": ${entry},`), LOCAL);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toStartWith('bun.lock packages["x"]');
  });

  it('accepts scoped names and refuses what follows them', () => {
    expect(lockfileProblems('bun.lock', bunLock('    "@s/x": ["@s/x@1.0.0", "", {}, "sha512-x"],'), NPM)).toHaveLength(1);
    expect(lockfileProblems('bun.lock', bunLock('    "@s/x": ["@s/x@1.0.0", "", {}, "sha512-x"],'), LOCAL)).toEqual([]);
    expect(lockfileProblems('bun.lock', bunLock('    "@s/x": ["@s/x@file:x", "", {}, ""],'), LOCAL)).toHaveLength(1);
  });

  it('refuses workspaces other than the root, and patched dependencies', () => {
    const lock = bunLock().replace(
      '"workspaces": {',
      '"patchedDependencies": { "hono@4.6.3": "/etc/passwd" },\n  "workspaces": {\n    "packages/a": { "name": "a" },',
    );
    const problems = lockfileProblems('bun.lock', lock, LOCAL);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toStartWith('bun.lock workspaces["packages/a"]');
    expect(problems[1]).toStartWith('bun.lock patchedDependencies');
  });

  it('keeps comment-like text inside strings', () => {
    const problems = lockfileProblems('bun.lock', bunLock('    "x": ["x@1.0.0", "https://evil.example//x.tgz", {}, "/*"],'), LOCAL);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('https://evil.example//x.tgz');
  });

  it.each(['{', '{ "packages": { "x": ["x@1.0.0" } }', '/* never closed', '[]'])('refuses %p with one problem naming the file', (text) => {
    const problems = lockfileProblems('bun.lock', text, NPM);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toStartWith('bun.lock ');
  });
});

describe('bun.lockb', () => {
  it('is refused, pointing to the text lockfile', () => {
    const problems = lockfileProblems('bun.lockb', '#!/usr/bin/env bun\nbun-lockfile-format-v0\n\u0000\u0002', NPM);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('bun.lock');
    expect(problems[0]).toContain('--save-text-lockfile');
  });
});
