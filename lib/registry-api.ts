import { createHash } from 'node:crypto';
import { registryUrl } from './settings';

/**
 * The few calls of the registry HTTP API v2 the platform makes itself: uploaded sources are stored
 * as content-addressed blobs in the function's repository, and removal deletes manifests and blobs.
 * Used by the gateway (Bun) and the worker (Node); plain fetch, no Node-only APIs but hashing.
 */
export class RegistryApi {
  readonly base: string;
  constructor(registry: string) {
    this.base = registryUrl(registry);
  }

  static digestOf(data: Uint8Array): string {
    return `sha256:${createHash('sha256').update(data).digest('hex')}`;
  }

  async ping(): Promise<boolean> {
    try {
      return (await fetch(`${this.base}/v2/`, { signal: AbortSignal.timeout(2000) })).ok;
    } catch {
      return false;
    }
  }

  async hasBlob(repository: string, digest: string): Promise<boolean> {
    return (await fetch(`${this.base}/v2/${repository}/blobs/${digest}`, { method: 'HEAD' })).ok;
  }

  /** Uploads a blob unless the repository has it; `created` tells whether this call added it. */
  async uploadBlob(repository: string, data: Uint8Array): Promise<{ digest: string; created: boolean }> {
    const digest = RegistryApi.digestOf(data);
    if (await this.hasBlob(repository, digest)) return { digest, created: false };
    const start = await fetch(`${this.base}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
    const location = start.headers.get('location');
    if (start.status !== 202 || !location) throw new Error(`registry refused an upload: HTTP ${start.status}`);
    const url = new URL(location, this.base);
    url.searchParams.set('digest', digest);
    const put = await fetch(url, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: data as Uint8Array<ArrayBuffer>,
    });
    if (put.status !== 201) throw new Error(`registry refused the blob: HTTP ${put.status} ${await put.text()}`);
    return { digest, created: true };
  }

  async getBlob(repository: string, digest: string): Promise<Uint8Array> {
    const response = await fetch(`${this.base}/v2/${repository}/blobs/${digest}`);
    if (response.status === 404) throw new BlobNotFoundError(repository, digest);
    if (!response.ok) throw new Error(`registry answered HTTP ${response.status} for blob ${digest}`);
    const data = new Uint8Array(await response.arrayBuffer());
    if (RegistryApi.digestOf(data) !== digest) throw new Error(`blob ${digest} came back corrupted`);
    return data;
  }

  /**
   * Keeps an uploaded source in the registry as an artifact tagged `source-<version>`: an OCI
   * manifest whose one layer is the source blob. The registry's garbage collector deletes every blob
   * no manifest refers to; tagged, the source stays until its version is deleted. The version is an
   * annotation, so two versions with the same bytes still have a manifest (and a digest) each.
   */
  tagSource(repository: string, version: string, source: { digest: string; size: number }): Promise<string> {
    return this.tagBlob(repository, sourceTag(version), source, { [SOURCE_ANNOTATION]: version });
  }

  /** Deletes a version's source manifest (its blob goes with the next garbage collection, or at once by `delete`). */
  untagSource(repository: string, version: string): Promise<void> {
    return this.untag(repository, sourceTag(version));
  }

  /**
   * Keeps a blob under `tag`: an OCI manifest whose one layer is the blob (the garbage collector
   * deletes the blobs no manifest refers to). The annotations make the manifest unique to its tag.
   */
  async tagBlob(
    repository: string,
    tag: string,
    blob: { digest: string; size: number },
    annotations: Record<string, string>,
  ): Promise<string> {
    const config = new TextEncoder().encode('{}');
    const configBlob = await this.uploadBlob(repository, config);
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configBlob.digest, size: config.byteLength },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: blob.digest, size: blob.size }],
      annotations,
    });
    const response = await fetch(`${this.base}/v2/${repository}/manifests/${tag}`, {
      method: 'PUT',
      headers: { 'content-type': OCI_MANIFEST },
      body: manifest,
    });
    if (response.status !== 201)
      throw new Error(`registry refused the manifest of ${tag}: HTTP ${response.status} ${await response.text()}`);
    return response.headers.get('docker-content-digest') ?? RegistryApi.digestOf(new TextEncoder().encode(manifest));
  }

  /** Deletes the manifest under `tag` (its blob goes with the next garbage collection); an absent one counts as deleted. */
  async untag(repository: string, tag: string): Promise<void> {
    const head = await fetch(`${this.base}/v2/${repository}/manifests/${tag}`, {
      method: 'HEAD',
      headers: { accept: OCI_MANIFEST },
    });
    const digest = head.headers.get('docker-content-digest');
    if (head.status === 404 || !digest) return;
    await this.delete(repository, 'manifests', digest);
  }

  /** The registry's repositories, every page of them (the registry serves 1,000 at most a page). */
  catalog(): Promise<string[]> {
    return this.pages('/v2/_catalog?n=1000', 'repositories', 'its catalog');
  }

  /** The repository's tags (none for a repository the registry does not know). */
  tags(repository: string): Promise<string[]> {
    return this.pages(`/v2/${repository}/tags/list?n=1000`, 'tags', `the tags of ${repository}`);
  }

  /** A paginated list of the registry API: each page's `field`, following its `Link: <…>; rel="next"`. */
  private async pages(first: string, field: 'repositories' | 'tags', what: string): Promise<string[]> {
    const all: string[] = [];
    for (let path: string | undefined = first; path; ) {
      const response: Response = await fetch(`${this.base}${path}`);
      if (response.status === 404) return all;
      if (!response.ok) throw new Error(`registry answered HTTP ${response.status} for ${what}`);
      all.push(...(((await response.json()) as Record<string, string[] | null | undefined>)[field] ?? []));
      path = /<([^>]+)>;\s*rel="next"/.exec(response.headers.get('link') ?? '')?.[1];
    }
    return all;
  }

  /** Deletes a manifest or blob; absent ones count as deleted. */
  async delete(repository: string, kind: 'manifests' | 'blobs', digest: string): Promise<void> {
    const response = await fetch(`${this.base}/v2/${repository}/${kind}/${digest}`, { method: 'DELETE' });
    if (!response.ok && response.status !== 404) {
      throw new Error(`registry refused to delete ${kind} ${digest}: HTTP ${response.status}`);
    }
  }
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const SOURCE_ANNOTATION = 'dev.plat.source-of';

/** The tag a version's uploaded source is kept under, beside the version's image tag. */
export function sourceTag(version: string): string {
  return `source-${version}`;
}

export class BlobNotFoundError extends Error {
  constructor(repository: string, digest: string) {
    super(`source ${digest} is not in the registry (${repository})`);
  }
}
