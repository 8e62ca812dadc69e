import { cac } from 'cac';
import pkg from '../package.json' with { type: 'json' };
import { RUNTIME_NAMES } from '../lib/runtimes';
import { DEFAULT_API_URL, DEV_TOKEN } from '../lib/settings';
import { Api, CliError } from './api';
import { deploy } from './commands/deploy';
import { init } from './commands/init';
import { callsCommand, schedulesCommand } from './commands/calls';
import { invoke, invokeAsync } from './commands/invoke';
import { keysCommand } from './commands/keys';
import { secretCommand } from './commands/secrets';
import { logs } from './commands/logs';
import { describe, list, remove } from './commands/manage';
import { rollback, versions } from './commands/versions';
import { style } from './output';

interface GlobalOptions {
  apiUrl?: string;
  token?: string;
  caFile?: string;
  json?: boolean;
}

function api(options: GlobalOptions): Api {
  return new Api({
    apiUrl: options.apiUrl ?? process.env.API_URL ?? DEFAULT_API_URL,
    token: options.token ?? process.env.AUTH_TOKEN ?? DEV_TOKEN,
    caFile: options.caFile ?? process.env.PLAT_CA_FILE,
  });
}

const print = (text: string) => console.log(text);
const cli = cac('plat');

cli
  .option('--api-url <url>', `Gateway URL (env API_URL, default ${DEFAULT_API_URL})`)
  .option('--token <token>', 'Bearer token (env AUTH_TOKEN, default the local dev token)')
  .option('--ca-file <path>', 'PEM file of the CA that signed an https:// gateway (env PLAT_CA_FILE)')
  .option('--json', 'Print JSON (errors too)');

cli
  .command('init [name]', 'Create a function folder from a runtime template (name defaults to my-function)')
  .option('--runtime <runtime>', `Runtime: ${RUNTIME_NAMES.join(', ')}`, { default: 'bun' })
  .option('--dir <dir>', 'Folder to create (defaults to the name)')
  .action(async (name: string | undefined, options: { runtime?: string; dir?: string }) => print(await init(name, options)));

cli
  .command('deploy [dir]', 'Package, build, push and register the function in dir (default: the current folder)')
  .action(async (dir: string | undefined, options: GlobalOptions) => {
    await deploy(api(options), dir, { json: options.json, log: print });
  });

cli
  .command('invoke <name> [path]', 'Call a function and print its answer')
  .option('-X, --method <method>', 'HTTP method (default GET, or POST with --data)')
  .option('-d, --data <data>', 'Request body; @file reads a file, @- reads stdin')
  .option('-H, --header <header>', 'Request header "Name: value" (repeatable)', { type: [String] })
  .option('-i, --include', 'Print the status line and headers too')
  .option('--async', 'Call it asynchronously: print the call id at once (see plat calls)')
  .option('--callback <url>', 'With --async: POST the result to this URL when the call ends')
  .option('--key <key>', 'With --async: an Idempotency-Key (the same key twice is one call)')
  .example('plat invoke hello --data \'{"x":1}\'')
  .example('plat invoke hello --async --callback https://example.com/done')
  .action(
    async (
      name: string,
      path: string | undefined,
      options: GlobalOptions & {
        method?: string;
        data?: string;
        header?: string[];
        include?: boolean;
        async?: boolean;
        callback?: string;
        key?: string;
      },
    ) => {
      if (options.async) {
        print(await invokeAsync(api(options), name, path, options, Boolean(options.json)));
        return;
      }
      if (options.callback || options.key) throw new CliError('--callback and --key go with --async');
      const status = await invoke(api(options), name, path, options);
      if (status >= 400) process.exitCode = 1;
    },
  );

cli
  .command('calls <name> [id]', 'Async calls: calls NAME [--failed] | calls show ID | calls retry ID')
  .option('--failed', 'Only the calls that failed')
  .option('--limit <n>', 'How many, newest first (default 50)')
  .example('plat calls hello --failed')
  .example('plat calls retry hello.3f2a…')
  .action(async (name: string, id: string | undefined, options: GlobalOptions & { failed?: boolean; limit?: string }) =>
    print(await callsCommand(api(options), name, id, options, Boolean(options.json))),
  );

cli
  .command('schedules <name>', "A function's schedules (function.json schedules) and their next runs")
  .action(async (name: string, options: GlobalOptions) => print(await schedulesCommand(api(options), name, Boolean(options.json))));

cli
  .command('logs <name>', "Show what a function wrote (stdout, stderr) and the platform's events about it")
  .option('-f, --follow', 'Keep printing new lines until interrupted')
  .option('--since <when>', 'Only lines since a duration ago (10m, 2h) or an ISO time')
  .option('--tail <n>', 'Only the last N lines (default 100; 10 before --follow)')
  .option('--version <version>', 'Only lines of this version')
  .option('--request <id>', 'Only lines of this request (its x-request-id)')
  .example('plat logs hello --since 10m --request 5f0c…')
  .action(
    async (
      name: string,
      options: GlobalOptions & { follow?: boolean; since?: string; tail?: string; version?: string; request?: string },
    ) => logs(api(options), name, options, print),
  );

cli
  .command('keys <action> <name> [id]', 'Invoke keys of a function: keys create NAME | keys list NAME | keys revoke NAME ID')
  .example('plat keys create hello   # prints the key once')
  .action(async (action: string, name: string, id: string | undefined, options: GlobalOptions) =>
    print(await keysCommand(api(options), action, name, id, Boolean(options.json))),
  );

cli
  .command('secret <action> [name]', 'Secrets: secret create NAME | secret list | secret update NAME | secret remove NAME')
  .option('--from-file <path>', 'The value is this file (else --value, else standard input)')
  .option('--value <value>', 'The value (it stays in your shell history: prefer --from-file or stdin)')
  .example('plat secret create db-password --from-file ./password.txt')
  .action(async (action: string, name: string | undefined, options: GlobalOptions & { fromFile?: string; value?: string }) =>
    print(await secretCommand(api(options), action, name, options, Boolean(options.json))),
  );

cli
  .command('list', 'List deployed functions')
  .alias('ls')
  .action(async (options: GlobalOptions) => print(await list(api(options), Boolean(options.json))));

cli
  .command('describe <name>', 'Show a function: active version, image, instances, versions')
  .option('--usage', 'Also show the memory and CPU each instance uses now (asks the engine; about a second)')
  .action(async (name: string, options: GlobalOptions & { usage?: boolean }) =>
    print(await describe(api(options), name, Boolean(options.json), Boolean(options.usage))),
  );

cli
  .command('versions <name>', 'List the versions a function keeps, newest first, the active one marked')
  .action(async (name: string, options: GlobalOptions) => print(await versions(api(options), name, Boolean(options.json))));

cli
  .command('rollback <name> [version]', 'Make a kept version active again (default: the one active before)')
  .action(async (name: string, version: string | undefined, options: GlobalOptions) =>
    print(await rollback(api(options), name, version, Boolean(options.json))),
  );

cli
  .command('remove <name>', 'Remove a function, its containers and its images')
  .alias('rm')
  .action(async (name: string, options: GlobalOptions) => print(await remove(api(options), name, Boolean(options.json))));

cli.help();
cli.version(pkg.version);

async function main(): Promise<void> {
  try {
    cli.parse(process.argv, { run: false });
    if (!cli.matchedCommand && cli.args.length > 0) throw new CliError(`unknown command "${cli.args[0]}"; see \`plat --help\``);
    if (!cli.matchedCommand && !cli.options.help && !cli.options.version) {
      cli.outputHelp();
      return;
    }
    await cli.runMatchedCommand();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const code = error instanceof CliError ? error.code : 'CLI_ERROR';
    if (cli.options.json) console.error(JSON.stringify({ error: { code, message } }));
    else console.error(`${style.red('error:')} ${message}`);
    process.exit(1);
  }
}

await main();
