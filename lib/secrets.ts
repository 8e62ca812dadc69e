/**
 * Secrets: values a function reads from files (/var/plat/secrets/<name>), kept out of its image,
 * its config, Temporal's history and every log. Stored under `<PLAT_HOME>/secrets/`, each value
 * encrypted (AES-256-GCM, the secret's name as associated data) with a key the platform creates on
 * first use at `<PLAT_HOME>/secrets.key` (mode 0600; back it up with PLAT_HOME, or the secrets are
 * lost). The gateway writes them (the /secrets API), the worker reads them when it starts a container.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SECRET_NAME_PATTERN } from './names';

export const SECRET_MAX_BYTES = 64 * 1024;
/** Where a function finds its secrets, one file each. */
export const SECRETS_MOUNT = '/var/plat/secrets';

export interface SecretInfo {
  name: string;
  createdAt: string;
  updatedAt: string;
}

interface SealedSecret extends SecretInfo {
  iv: string;
  tag: string;
  data: string;
}

export class SecretStore {
  private key?: Promise<Buffer>;

  constructor(private readonly dataDir: string) {}

  private get dir(): string {
    return join(this.dataDir, 'secrets');
  }

  private path(name: string): string {
    return join(this.dir, `${name}.json`);
  }

  /** The store's key: read, or made on first use (32 random bytes, 0600). */
  private loadKey(): Promise<Buffer> {
    this.key ??= (async () => {
      const file = join(this.dataDir, 'secrets.key');
      const existing = await readFile(file).catch(() => undefined);
      if (existing) {
        if (existing.length !== 32) throw new Error(`${file} is not a secrets key (32 bytes); restore it from your backup`);
        return existing;
      }
      await mkdir(this.dataDir, { recursive: true });
      const key = randomBytes(32);
      // Written under another name first, then renamed: a crash never leaves half a key.
      const partial = `${file}.${process.pid}.tmp`;
      await writeFile(partial, key, { mode: 0o600, flag: 'wx' });
      await rename(partial, file);
      return key;
    })();
    return this.key;
  }

  async list(): Promise<SecretInfo[]> {
    const files = await readdir(this.dir).catch(() => [] as string[]);
    const infos: SecretInfo[] = [];
    for (const file of files.filter((f) => f.endsWith('.json')).sort()) {
      const sealed = await this.sealed(file.slice(0, -5));
      if (sealed) infos.push({ name: sealed.name, createdAt: sealed.createdAt, updatedAt: sealed.updatedAt });
    }
    return infos;
  }

  async exists(name: string): Promise<boolean> {
    return (await this.sealed(name)) !== undefined;
  }

  /** Writes a secret; `mode` says whether it must be new (create) or exist already (update). Returns false when that does not hold. */
  async write(name: string, value: Uint8Array, mode: 'create' | 'update'): Promise<SecretInfo | false> {
    const previous = await this.sealed(name);
    if ((mode === 'create') === (previous !== undefined)) return false;
    const key = await this.loadKey();
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(name));
    const data = Buffer.concat([cipher.update(value), cipher.final()]);
    const now = new Date().toISOString();
    const sealed: SealedSecret = {
      name,
      createdAt: previous?.createdAt ?? now,
      updatedAt: now,
      iv: iv.toString('base64'),
      tag: cipher.getAuthTag().toString('base64'),
      data: data.toString('base64'),
    };
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const partial = `${this.path(name)}.${process.pid}.tmp`;
    await writeFile(partial, JSON.stringify(sealed), { mode: 0o600 });
    await rename(partial, this.path(name));
    return { name, createdAt: sealed.createdAt, updatedAt: sealed.updatedAt };
  }

  async remove(name: string): Promise<boolean> {
    if (!(await this.exists(name))) return false;
    await rm(this.path(name), { force: true });
    return true;
  }

  /** The value, decrypted; undefined when there is no such secret. */
  async read(name: string): Promise<Buffer | undefined> {
    const sealed = await this.sealed(name);
    if (!sealed) return undefined;
    const decipher = createDecipheriv('aes-256-gcm', await this.loadKey(), Buffer.from(sealed.iv, 'base64'));
    decipher.setAAD(Buffer.from(name));
    decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(sealed.data, 'base64')), decipher.final()]);
  }

  private async sealed(name: string): Promise<SealedSecret | undefined> {
    if (!SECRET_NAME_PATTERN.test(name)) return undefined;
    const text = await readFile(this.path(name), 'utf8').catch(() => undefined);
    return text ? (JSON.parse(text) as SealedSecret) : undefined;
  }
}

/**
 * Where an instance's secrets are put on the host for its container to mount: a tmpfs
 * (PLAT_SECRETS_RUN_DIR, default /dev/shm/plat-secrets), a folder per platform and instance.
 */
export function secretsDirOf(settings: { taskQueue: string }, instanceId: string): string {
  return join(secretsRunDir(), settings.taskQueue, instanceId);
}

export function secretsRunDir(): string {
  return process.env.PLAT_SECRETS_RUN_DIR || '/dev/shm/plat-secrets';
}
