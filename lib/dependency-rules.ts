/**
 * What a function may declare as dependencies: only what the configured registries (PyPI, npm)
 * resolve by name and version. Anything that names a file, a folder, a URL or another index would
 * make the installer, which runs on the worker's host, read the host's files or fetch what it is told.
 */

/** `name[extras] (specifiers) ; markers`, as PEP 508 writes a requirement without a URL. */
const REQUIREMENT =
  /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?(?:\s*\[\s*[A-Za-z0-9._-]+(?:\s*,\s*[A-Za-z0-9._-]+)*\s*\])?(?:\s*(?:~=|===|==|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+(?:\s*,\s*(?:~=|===|==|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+)*)?\s*(?:;[^@]*)?$/;
const HASH_OPTION = /^--hash[=\s]\s*[a-z0-9]+:[0-9a-fA-F]+$/;
const ACCEPTED_REQUIREMENT = 'only requirement specifiers such as Flask==3.0.3 (with --hash options) are accepted';

/** The problems of a requirements.txt, each naming its line; none when every line is a plain requirement. */
export function requirementsProblems(text: string): string[] {
  const problems: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const number = i + 1;
    let line = lines[i] as string;
    // A backslash at the end continues the line (pip's own rule).
    while (line.endsWith('\\') && i + 1 < lines.length) line = `${line.slice(0, -1)} ${lines[++i]}`;
    const code = line.replace(/(^|\s)#.*$/, '').trim();
    if (!code) continue;
    const [requirement = '', ...options] = code.split(/\s+(?=--)/);
    const shown = code.length > 80 ? `${code.slice(0, 80)}…` : code;
    if (requirement.startsWith('-')) {
      problems.push(
        `requirements.txt line ${number} (${shown}): options such as ${requirement.split(/[=\s]/)[0]} are not accepted; ${ACCEPTED_REQUIREMENT}`,
      );
    } else if (!REQUIREMENT.test(requirement) || options.some((o) => !HASH_OPTION.test(o))) {
      problems.push(`requirements.txt line ${number} (${shown}): paths, URLs and options are not accepted; ${ACCEPTED_REQUIREMENT}`);
    }
  }
  return problems;
}

/** `npm:name@range`: an alias to another package of the registry. */
const NPM_ALIAS = /^npm:(?:@[a-z0-9~][a-z0-9._~-]*\/)?[a-z0-9~][a-z0-9._~-]*(?:@[^\s:/#\\]*)?$/;
/** A version, a range or a tag: nothing that could name a path, a URL, a git repository or a workspace. */
const REGISTRY_SPEC = /^[^:/#\\]*$/;
const DEPENDENCY_FIELDS = ['dependencies', 'optionalDependencies', 'peerDependencies', 'devDependencies'] as const;
const ACCEPTED_SPEC = 'only registry versions, ranges, tags and npm: aliases are accepted';

/** The problems of a package.json's dependencies (and overrides), each naming the entry. */
export function packageJsonProblems(manifest: unknown): string[] {
  if (typeof manifest !== 'object' || manifest === null || Array.isArray(manifest)) return ['package.json must be a JSON object'];
  const problems: string[] = [];
  const check = (where: string, spec: unknown) => {
    if (typeof spec !== 'string') {
      problems.push(`package.json ${where}: must be a version string; ${ACCEPTED_SPEC}`);
      return;
    }
    const trimmed = spec.trim();
    if (!NPM_ALIAS.test(trimmed) && !REGISTRY_SPEC.test(trimmed)) {
      const shown = trimmed.length > 80 ? `${trimmed.slice(0, 80)}…` : trimmed;
      problems.push(
        `package.json ${where} ("${shown}"): file:, link:, workspace:, git and URL dependencies are not accepted; ${ACCEPTED_SPEC}`,
      );
    }
  };
  const record = manifest as Record<string, unknown>;
  for (const field of DEPENDENCY_FIELDS) {
    const deps = record[field];
    if (deps === undefined) continue;
    if (typeof deps !== 'object' || deps === null || Array.isArray(deps)) {
      problems.push(`package.json ${field} must be an object of names and versions`);
      continue;
    }
    for (const [name, spec] of Object.entries(deps)) check(`${field}.${name}`, spec);
  }
  // Overrides and resolutions replace versions anywhere in the tree: the same rules, at any depth.
  const walk = (where: string, value: unknown) => {
    if (typeof value === 'object' && value !== null) for (const [key, inner] of Object.entries(value)) walk(`${where}.${key}`, inner);
    else check(where, value);
  };
  for (const field of ['overrides', 'resolutions'] as const) if (record[field] !== undefined) walk(field, record[field]);
  return problems;
}

/** The registry every lockfile may fetch from, besides the configured one. */
const NPM_REGISTRY = 'https://registry.npmjs.org/';
/** A locked version: nothing after the name that could name a path, a URL, a git repository or a workspace. */
const LOCKED_VERSION = /^[^\s:/#\\@]+$/;
const ACCEPTED_LOCK = 'only packages of the registry are accepted';

/** `text` as quoted in a problem: cut at 80 characters. */
function shown(text: string): string {
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

/**
 * JSONC, as bun.lock is written, read as JSON: line and block comments outside strings dropped, and
 * the commas before a `}` or `]`. Not a validator: JSON.parse still decides what is well formed.
 */
function parseJsonc(text: string): unknown {
  const out: string[] = [];
  // Where the last comma went in out, while only blanks and comments followed it.
  let comma = -1;
  for (let i = 0; i < text.length; i++) {
    const char = text[i] as string;
    if (char === '/' && text[i + 1] === '/') {
      while (i + 1 < text.length && text[i + 1] !== '\n') i++;
    } else if (char === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      if (end < 0) throw new SyntaxError('unterminated comment');
      out.push(' ');
      i = end + 1;
    } else if (/\s/.test(char)) {
      out.push(char);
    } else {
      if ((char === '}' || char === ']') && comma >= 0) out[comma] = '';
      comma = char === ',' ? out.length : -1;
      if (char === '"') {
        let end = i + 1;
        while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
        out.push(text.slice(i, end + 1));
        i = end;
      } else out.push(char);
    }
  }
  return JSON.parse(out.join(''));
}

/** The problems of a lockfile shipped with a function, each naming the file and the entry. */
export function lockfileProblems(fileName: string, text: string, registryUrl: string): string[] {
  if (fileName === 'bun.lockb') {
    return [
      'bun.lockb: the binary lockfile is not accepted; ship the text lockfile bun.lock instead (bun >= 1.2 writes it, or run bun install --save-text-lockfile)',
    ];
  }
  const registries = [...new Set([NPM_REGISTRY, registryUrl].map(registryPrefix).filter((url) => url !== undefined))];
  const accepted = `${ACCEPTED_LOCK} (${registries.join(', ')})`;
  const fromRegistry = (url: string) => {
    const href = URL.canParse(url) ? new URL(url).href : '';
    // Both as written and as a URL parser reads it: a `..`, a backslash or a user@ cannot lead elsewhere.
    return !/[\s\\]/.test(url) && registries.some((registry) => url.startsWith(registry) && href.startsWith(registry));
  };
  let lock: unknown;
  try {
    lock = fileName === 'bun.lock' ? parseJsonc(text) : JSON.parse(text);
  } catch (error) {
    return [`${fileName} is not valid JSON: ${shown((error as Error).message)}`];
  }
  if (typeof lock !== 'object' || lock === null || Array.isArray(lock)) return [`${fileName} must be a JSON object`];
  return fileName === 'bun.lock'
    ? bunLockProblems(lock as Record<string, unknown>, fromRegistry, accepted)
    : packageLockProblems(lock as Record<string, unknown>, fromRegistry, accepted);
}

/** A package-lock.json `packages` key of a dependency: a folder under node_modules, without ., .. or empty segments. */
function isLockedPath(path: string): boolean {
  const segments = path.split('/');
  return (
    segments[0] === 'node_modules' &&
    segments.length > 1 &&
    !path.includes('\\') &&
    segments.every((s) => s !== '' && s !== '.' && s !== '..')
  );
}

/** A registry URL as the prefix of its packages' URLs: http(s), with a trailing slash, without credentials, query or fragment. */
function registryPrefix(url: string): string | undefined {
  if (!URL.canParse(url)) return undefined;
  const parsed = new URL(url);
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return undefined;
  parsed.username = '';
  parsed.password = '';
  parsed.search = '';
  parsed.hash = '';
  return parsed.href.endsWith('/') ? parsed.href : `${parsed.href}/`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** package-lock.json: `packages` (v2, v3) and `dependencies` (v1, nested), each resolved from the registry. */
function packageLockProblems(lock: Record<string, unknown>, fromRegistry: (url: string) => boolean, accepted: string): string[] {
  const problems: string[] = [];
  const check = (where: string, entry: unknown) => {
    if (!isRecord(entry)) {
      problems.push(`package-lock.json ${where}: must be an object; ${accepted}`);
      return;
    }
    if (entry.link === true) problems.push(`package-lock.json ${where}: links to folders are not accepted; ${accepted}`);
    if (entry.resolved !== undefined && (typeof entry.resolved !== 'string' || !fromRegistry(entry.resolved))) {
      problems.push(
        `package-lock.json ${where} (resolved "${shown(String(entry.resolved))}"): other hosts, files and git are not accepted; ${accepted}`,
      );
    }
    const version = entry.version;
    if (version !== undefined && (typeof version !== 'string' || (!NPM_ALIAS.test(version) && !REGISTRY_SPEC.test(version)))) {
      problems.push(
        `package-lock.json ${where} (version "${shown(String(version))}"): file:, git and URL versions are not accepted; ${accepted}`,
      );
    }
  };
  if (lock.packages !== undefined) {
    if (!isRecord(lock.packages)) problems.push(`package-lock.json packages must be an object; ${accepted}`);
    else
      for (const [path, entry] of Object.entries(lock.packages)) {
        // The root is the function's own package.json, checked as such.
        if (path === '') continue;
        if (!isLockedPath(path)) {
          problems.push(
            `package-lock.json packages["${shown(path)}"]: packages outside node_modules (workspaces, folders) are not accepted; ${accepted}`,
          );
        } else check(`packages["${shown(path)}"]`, entry);
      }
  }
  const walk = (where: string, deps: unknown) => {
    if (!isRecord(deps)) {
      problems.push(`package-lock.json ${where} must be an object; ${accepted}`);
      return;
    }
    for (const [name, entry] of Object.entries(deps)) {
      const at = `${where}.${shown(name)}`;
      check(at, entry);
      if (isRecord(entry) && entry.dependencies !== undefined) walk(`${at}.dependencies`, entry.dependencies);
    }
  };
  if (lock.dependencies !== undefined) walk('dependencies', lock.dependencies);
  return problems;
}

/** bun.lock: `packages` entries `["name@version", "registry url or empty", {...}, "integrity"]`, and only the root workspace. */
function bunLockProblems(lock: Record<string, unknown>, fromRegistry: (url: string) => boolean, accepted: string): string[] {
  const problems: string[] = [];
  if (lock.workspaces !== undefined) {
    if (!isRecord(lock.workspaces)) problems.push(`bun.lock workspaces must be an object; ${accepted}`);
    else
      for (const path of Object.keys(lock.workspaces))
        if (path !== '')
          problems.push(`bun.lock workspaces["${shown(path)}"]: workspaces other than the function's own are not accepted; ${accepted}`);
  }
  // Patches are files next to the lockfile, which the installer never gets: a path here could only name the host's.
  if (lock.patchedDependencies !== undefined && (!isRecord(lock.patchedDependencies) || Object.keys(lock.patchedDependencies).length > 0)) {
    problems.push(`bun.lock patchedDependencies: patched dependencies are not accepted; ${accepted}`);
  }
  if (lock.packages === undefined) return problems;
  if (!isRecord(lock.packages)) return [...problems, `bun.lock packages must be an object; ${accepted}`];
  for (const [key, entry] of Object.entries(lock.packages)) {
    const where = `bun.lock packages["${shown(key)}"]`;
    const [id, registry] = Array.isArray(entry) ? (entry as unknown[]) : [];
    if (typeof id !== 'string') {
      problems.push(`${where}: must be an array that starts with "name@version"; ${accepted}`);
      continue;
    }
    // The name ends at the first @ after a scope's: whatever follows is how the package is resolved.
    const at = id.indexOf('@', 1);
    const version = at < 0 ? '' : id.slice(at + 1);
    if (!LOCKED_VERSION.test(version)) {
      problems.push(`${where} ("${shown(id)}"): file:, link:, workspace:, git and URL packages are not accepted; ${accepted}`);
    } else if (registry !== undefined && registry !== '' && (typeof registry !== 'string' || !fromRegistry(registry))) {
      problems.push(`${where} (registry "${shown(String(registry))}"): other registries and hosts are not accepted; ${accepted}`);
    }
  }
  return problems;
}
