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
