import { PlatError } from '../../lib/errors';
import type { FunctionState } from '../../lib/types';
import { setBounded } from '../bounded';
import { hashKey } from './keys';

/** What the gateway knows of a function's access: public or not, and its keys' hashes. */
export interface AccessEntry {
  public: boolean;
  hashes: Set<string>;
}

/** Functions not invoked for this long are dropped from the cache (and no longer re-read); unknown names are never cached. */
const FORGET_AFTER_MS = 10 * 60_000;

/**
 * Who may invoke a function, checked on every request without a call to Temporal: the admin token
 * (checked by the caller), anyone for a `public` function, else one of the function's invoke keys.
 * What each function allows is cached here and re-read from its entity every few seconds
 * (ROUTE_REVALIDATE_MS) for as long as it is invoked, so a revoked key stops working in every
 * gateway within that time; a change made through this gateway is read again at once.
 */
export class AccessPolicy {
  private readonly entries = new Map<string, AccessEntry & { usedAt: number }>();
  private readonly reading = new Map<string, Promise<AccessEntry | 'missing'>>();
  /** Hashes of the tokens seen lately, so a warm request with a key costs a map look-up, not a SHA-256. */
  private readonly hashes = new Map<string, string>();

  /** Told what a function allows each time that changes (the native front decides with it too); undefined: not known. */
  onChange?: (name: string, entry: AccessEntry | undefined) => void;

  constructor(private readonly read: (name: string) => Promise<FunctionState>) {}

  /**
   * Whether the request may invoke `name`: undefined when it may (decided at once from the cache, as
   * on every warm request), a 401 thrown when it may not, or a promise of either when the function
   * must be read first. `bearer` is the Authorization header's token, if any.
   */
  check(name: string, bearer: string | undefined): Promise<void> | undefined {
    const entry = this.entries.get(name);
    if (!entry) return this.checkFirst(name, bearer);
    entry.usedAt = Date.now();
    this.decide(name, entry, bearer);
    return undefined;
  }

  /** A first read: Temporal being away is a 503 here (thrown), a function that does not exist a 401. */
  private async checkFirst(name: string, bearer: string | undefined): Promise<void> {
    const fresh = await this.load(name);
    let entry: (AccessEntry & { usedAt: number }) | undefined;
    if (fresh !== 'missing') {
      entry = this.entries.get(name) ?? { ...fresh, usedAt: Date.now() };
      this.entries.set(name, entry);
      this.onChange?.(name, entry);
    }
    this.decide(name, entry, bearer);
  }

  private decide(name: string, entry: AccessEntry | undefined, bearer: string | undefined): void {
    if (entry?.public) return;
    if (bearer === undefined) {
      throw new PlatError('UNAUTHORIZED', 'missing bearer token: send "Authorization: Bearer <invoke key or AUTH_TOKEN>"');
    }
    let hash = this.hashes.get(bearer);
    if (hash === undefined) {
      hash = hashKey(bearer);
      setBounded(this.hashes, bearer, hash, HASHES_KEPT);
    }
    if (!entry?.hashes.has(hash)) throw new PlatError('UNAUTHORIZED', `this token may not invoke ${name}`);
  }

  /** Reads the function again now (its keys or its access changed through this gateway); resolves once it has. */
  invalidate(name: string): Promise<void> {
    return this.entries.has(name) ? this.refresh(name) : Promise.resolve();
  }

  /** Re-reads every function invoked lately; called every ROUTE_REVALIDATE_MS. */
  async refreshAll(): Promise<void> {
    const now = Date.now();
    await Promise.all(
      [...this.entries].map(async ([name, entry]) => {
        if (now - entry.usedAt > FORGET_AFTER_MS) {
          this.entries.delete(name);
          this.onChange?.(name, undefined);
        } else await this.refresh(name);
      }),
    );
  }

  /** A refresh that cannot reach Temporal keeps what it knew; one that finds the function gone forgets it. */
  private async refresh(name: string): Promise<void> {
    const fresh = await this.load(name).catch(() => undefined);
    const entry = this.entries.get(name);
    if (fresh === 'missing') {
      this.entries.delete(name);
      this.onChange?.(name, undefined);
    } else if (fresh && entry) {
      Object.assign(entry, fresh);
      this.onChange?.(name, entry);
    }
  }

  /** The function's access as its entity says, one read at a time per function; 'missing' when it does not exist. */
  private load(name: string): Promise<AccessEntry | 'missing'> {
    let pending = this.reading.get(name);
    if (!pending) {
      pending = this.read(name)
        .then(accessOf, (error: unknown) => {
          if (error instanceof PlatError && (error.code === 'FUNCTION_NOT_FOUND' || error.code === 'BAD_REQUEST'))
            return 'missing' as const;
          throw error;
        })
        .finally(() => this.reading.delete(name));
      this.reading.set(name, pending);
    }
    return pending;
  }
}

/** Tokens whose hashes are kept; past this the oldest is forgotten. */
const HASHES_KEPT = 1000;

function accessOf(state: FunctionState): AccessEntry {
  const active = state.versions.find((v) => v.version === state.activeVersion);
  return {
    public: active?.config.access === 'public',
    hashes: new Set((state.keys ?? []).map((k) => k.hash)),
  };
}
