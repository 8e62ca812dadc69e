import { describe, expect, it } from 'bun:test';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readArchive } from '../../activities/archive';
import { isIgnored, parseIgnore } from '../../cli/ignore';
import { listFiles, packFolder } from '../../cli/pack';

describe('.platignore rules', () => {
  const rules = parseIgnore('# comment\n*.log\n/secret.txt\nbuild/\ndocs/**/*.md\n');
  it.each([
    ['node_modules', true, true],
    ['.git', true, true],
    ['a/node_modules', true, true],
    ['debug.log', false, true],
    ['deep/x.log', false, true],
    ['secret.txt', false, true],
    ['sub/secret.txt', false, false],
    ['build', true, true],
    ['build', false, false],
    ['docs/a/b.md', false, true],
    ['index.ts', false, false],
  ])('%p (dir: %p) ignored: %p', (path, isDir, ignored) => {
    expect(isIgnored(rules, path, isDir)).toBe(ignored);
  });
});

describe('packFolder', () => {
  it('packs the folder without node_modules, .git and what .platignore lists', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'plat-pack-'));
    await mkdir(join(dir, 'node_modules/dep'), { recursive: true });
    await mkdir(join(dir, '.git'));
    await mkdir(join(dir, 'src'));
    await writeFile(join(dir, 'node_modules/dep/index.js'), 'x');
    await writeFile(join(dir, '.git/HEAD'), 'x');
    await writeFile(join(dir, '.platignore'), '*.log\n');
    await writeFile(join(dir, 'index.ts'), 'export default {}');
    await writeFile(join(dir, 'src/util.ts'), 'export {}');
    await writeFile(join(dir, 'debug.log'), 'noise');

    expect(await listFiles(dir)).toEqual(['.platignore', 'index.ts', 'src/util.ts']);
    const { archive } = await packFolder(dir);
    const files = await readArchive(archive);
    expect(files.map((f) => f.path).sort()).toEqual(['.platignore', 'index.ts', 'src/util.ts']);
  });
});
