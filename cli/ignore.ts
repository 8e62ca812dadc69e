/**
 * Which files `plat deploy` leaves out: node_modules and .git always (dependencies are resolved by
 * the platform), plus the patterns in .platignore, a subset of .gitignore's syntax: `#` comments,
 * `*`, `**` and `?` wildcards, a trailing `/` for folders only, a `/` elsewhere anchors the pattern
 * to the function folder; a pattern without `/` matches a name at any depth.
 */
export const ALWAYS_IGNORED = ['node_modules/', '.git/'];

interface Rule {
  regex: RegExp;
  anchored: boolean;
  dirOnly: boolean;
}

function globToRegex(glob: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        out += '.*';
        i++;
        if (glob[i + 1] === '/') i++;
      } else out += '[^/]*';
    } else if (c === '?') out += '[^/]';
    else out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}

export function parseIgnore(text: string): Rule[] {
  return [...ALWAYS_IGNORED, ...text.split(/\r?\n/)]
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#') && !line.startsWith('!'))
    .map((line) => {
      const dirOnly = line.endsWith('/');
      const body = line.replace(/\/+$/, '');
      const anchored = body.includes('/');
      return { regex: globToRegex(body.replace(/^\//, '')), anchored, dirOnly };
    });
}

/** Whether a path (relative, with `/`) is ignored; `isDir` tells folders apart for `dir/` patterns. */
export function isIgnored(rules: Rule[], path: string, isDir: boolean): boolean {
  const name = path.slice(path.lastIndexOf('/') + 1);
  return rules.some((rule) => (!rule.dirOnly || isDir) && rule.regex.test(rule.anchored ? path : name));
}
