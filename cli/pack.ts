import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { create } from 'tar';
import { isIgnored, parseIgnore } from './ignore';

/** Lists the files of a function folder that a deploy uploads, ignored ones and their subtrees left out. */
export async function listFiles(dir: string): Promise<string[]> {
  const rules = parseIgnore(await readFile(join(dir, '.platignore'), 'utf8').catch(() => ''));
  const files: string[] = [];
  async function walk(relative: string): Promise<void> {
    const entries = await readdir(join(dir, relative), { withFileTypes: true });
    for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      const path = relative ? `${relative}/${entry.name}` : entry.name;
      if (isIgnored(rules, path, entry.isDirectory())) continue;
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) files.push(path);
    }
  }
  await walk('');
  return files;
}

/** Packs the function folder as a tar.gz in memory. */
export async function packFolder(dir: string): Promise<{ archive: Uint8Array; files: string[] }> {
  const files = await listFiles(dir);
  const chunks: Buffer[] = [];
  const stream = create({ gzip: true, cwd: dir, portable: true, noDirRecurse: true }, files);
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return { archive: new Uint8Array(Buffer.concat(chunks)), files };
}
