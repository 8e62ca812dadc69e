import { describe, expect, it } from 'bun:test';
import { zipSync } from 'fflate';
import { Header } from 'tar';
import { ArchiveError, readArchive, safeEntryPath, stripSingleTopFolder } from '../../activities/archive';

/** A tar.gz built by hand, so tests can make entries no well-behaved tool would write. */
function tarGz(
  entries: Array<{ path: string; body?: string; type?: 'File' | 'SymbolicLink' | 'Directory'; linkpath?: string }>,
): Uint8Array {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const body = Buffer.from(entry.body ?? '');
    const header = new Header({
      path: entry.path,
      mode: 0o644,
      size: body.length,
      type: entry.type ?? 'File',
      linkpath: entry.linkpath,
      mtime: new Date(0),
    });
    const block = Buffer.alloc(512);
    header.encode(block, 0);
    blocks.push(block, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return new Uint8Array(Bun.gzipSync(Buffer.concat(blocks)));
}

describe('safeEntryPath', () => {
  it('normalizes harmless paths', () => {
    expect(safeEntryPath('./src/../index.ts')).toBe('index.ts');
    expect(safeEntryPath('dir/')).toBe('dir');
  });
  for (const bad of ['../evil', '/etc/passwd', 'a/../../evil', 'C:\\evil', 'a\\b']) {
    it(`refuses ${bad}`, () => {
      expect(() => safeEntryPath(bad)).toThrow(ArchiveError);
    });
  }
});

describe('readArchive', () => {
  it('reads a tar.gz', async () => {
    const files = await readArchive(
      tarGz([
        { path: 'index.ts', body: 'hi' },
        { path: 'lib/', type: 'Directory' },
        { path: 'lib/a.ts', body: 'a' },
      ]),
    );
    expect(files.map((f) => [f.path, new TextDecoder().decode(f.data)])).toEqual([
      ['index.ts', 'hi'],
      ['lib/a.ts', 'a'],
    ]);
  });

  it('reads a zip', async () => {
    const files = await readArchive(zipSync({ 'index.ts': new TextEncoder().encode('zip!'), 'sub/': new Uint8Array() }));
    expect(files.map((f) => f.path)).toEqual(['index.ts']);
  });

  it('refuses a tar entry that climbs out of the folder', async () => {
    await expect(readArchive(tarGz([{ path: '../../etc/cron.d/evil', body: 'x' }]))).rejects.toThrow('points outside the function folder');
  });

  it('refuses symbolic links', async () => {
    await expect(readArchive(tarGz([{ path: 'link', type: 'SymbolicLink', linkpath: '/etc/passwd' }]))).rejects.toThrow(
      'is a SymbolicLink',
    );
  });

  it('refuses a zip entry that climbs out of the folder', async () => {
    await expect(readArchive(zipSync({ '../evil.ts': new Uint8Array([1]) }))).rejects.toThrow(ArchiveError);
  });

  it('refuses archives over the size limit', async () => {
    const limits = { maxFiles: 10, maxBytes: 10 };
    await expect(readArchive(tarGz([{ path: 'big', body: 'x'.repeat(11) }]), limits)).rejects.toThrow('unpacks to more than');
  });

  it('refuses archives with too many files', async () => {
    const limits = { maxFiles: 2, maxBytes: 1000 };
    await expect(readArchive(tarGz([{ path: 'a' }, { path: 'b' }, { path: 'c' }]), limits)).rejects.toThrow('more than 2 files');
  });

  it('refuses something that is no archive', async () => {
    await expect(readArchive(new TextEncoder().encode('hello'))).rejects.toThrow('neither a tar.gz nor a zip');
  });

  it('refuses a truncated tar.gz', async () => {
    const whole = tarGz([{ path: 'index.ts', body: 'x'.repeat(5000) }]);
    await expect(readArchive(whole.slice(0, 40))).rejects.toThrow(ArchiveError);
  });
});

describe('stripSingleTopFolder', () => {
  const file = (path: string) => ({ path, data: new Uint8Array(), executable: false });
  it('drops the one folder a zipped folder puts around everything', () => {
    expect(stripSingleTopFolder([file('hello/index.ts'), file('hello/lib/a.ts')], 'index.ts').map((f) => f.path)).toEqual([
      'index.ts',
      'lib/a.ts',
    ]);
  });
  it('leaves archives whose entry is at the root alone', () => {
    expect(stripSingleTopFolder([file('index.ts'), file('lib/a.ts')], 'index.ts').map((f) => f.path)).toEqual(['index.ts', 'lib/a.ts']);
  });
});

describe('an archive whose paths clash', () => {
  it('refuses a file that is also a folder, naming both entries', async () => {
    const failure = await readArchive(
      tarGz([
        { path: 'a', body: 'file' },
        { path: 'a/b', body: 'inside' },
      ]),
    ).catch((error) => error);
    expect(failure).toBeInstanceOf(ArchiveError);
    expect((failure as Error).message).toBe('archive entry "a" is a file, but "a/b" puts it in a folder of that name');
  });

  it('refuses it in a zip too', async () => {
    const zip = zipSync({ 'x/y': new TextEncoder().encode('file'), 'x/y/z': new TextEncoder().encode('inside') });
    await expect(readArchive(zip)).rejects.toBeInstanceOf(ArchiveError);
  });

  it('keeps the last of two entries with one path, as tar does', async () => {
    const files = await readArchive(
      tarGz([
        { path: 'index.ts', body: 'first' },
        { path: 'index.ts', body: 'second' },
      ]),
    );
    expect(files.map((f) => [f.path, new TextDecoder().decode(f.data)])).toEqual([['index.ts', 'second']]);
  });
});
