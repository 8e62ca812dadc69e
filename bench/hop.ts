/**
 * The cost of the gateway's invoke hop, side by side with nginx from Debian as the reference proxy,
 * against a running stack (`npm start`). Deploys a hello function (bun), then load-tests with wrk,
 * in interleaved rounds (this machine's throughput drifts from one second to the next, so each
 * target is measured in every round and the median is kept):
 *
 *   - straight to the function's container (what any proxy costs is measured against this),
 *   - nginx, one worker, upstream keepalive: the figure the gateway's hop is held to; and nginx again
 *     writing a JSON access log line a request (buffered, flushed every 100 ms), as the gateway writes
 *     its invocation records, for a like-for-like figure,
 *   - Go's httputil.ReverseProxy (the proxy core of OpenFaaS, Fission and Knative), built by the
 *     bench from a few lines of Go, as the second reference,
 *   - a reverse proxy on Rust's tokio and hyper that only forwards, on one thread
 *     (bench/native-proxy, built by the bench with cargo when it is installed): the floor of a
 *     native data plane, for deciding whether one would reach nginx here,
 *   - a proxy on Bun's own TCP sockets on both sides, with the gateway's header work per request
 *     and nothing else (bench/bun-socket-proxy.ts): the floor of the hop on Bun once neither side
 *     makes a Request or a Response,
 *   - the gateway's /function/<name>, with the bearer token (the running one, metrics on: the
 *     native invoke front when it is built, as by default),
 *   - five more gateways of this checkout that the bench starts alike: two with the native invoke
 *     front (PLAT_INVOKE_FRONT=native, gateway/native: the figure held to nginx; and with PLAT_METRICS=off,
 *     no invocation records, as the nginx that logs nothing), and three with the
 *     Bun front (PLAT_INVOKE_FRONT=on): metrics and invocation records on, PLAT_METRICS=off, and
 *     PLAT_INVOKE_FRONT=off (Bun's HTTP server takes the port), so the cost of metrics and the gains
 *     of the fronts are measured in the same run;
 *   - the metrics-off Bun-front gateway again with an invoke key of the function instead of the admin token,
 *     so the cost of checking a key (hashed, against the gateway's cache) is measured too.
 *
 * Each target's CPU time per request (user + system of its processes, from /proc: the container's, the
 * proxies', the gateways the bench starts) is printed beside its throughput, with each proxy's ratio to
 * nginx's: on a shared machine it drifts far less than requests per second.
 *
 *   bun bench/hop.ts [--rounds 5] [--seconds 3] [--connections 1,10]
 *
 * Needs wrk and nginx (`apt-get install wrk nginx-light`), Go and cargo; nginx and the Go and Rust
 * proxies are skipped with a note when missing. Uses API_URL and AUTH_TOKEN like the CLI; removes its function at the end.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Api } from '../cli/api';
import { deploy } from '../cli/commands/deploy';
import { DEFAULT_API_URL, DEV_TOKEN, GATEWAY_BUN_FLAGS, GATEWAY_ENV } from '../lib/settings';
import type { FunctionState } from '../lib/types';

const apiUrl = process.env.API_URL ?? DEFAULT_API_URL;
const token = process.env.AUTH_TOKEN ?? DEV_TOKEN;
const option = (flag: string, fallback: string) => {
  const at = process.argv.indexOf(flag);
  return at > 0 ? (process.argv[at + 1] ?? fallback) : fallback;
};
const rounds = Number(option('--rounds', '5'));
const seconds = Number(option('--seconds', '3'));
const connections = option('--connections', '1,10').split(',').map(Number);
const name = 'bench-hop';
const NATIVE = 'Rust hyper, forward only';
const SOCKETS = 'Bun sockets, header work only';
const NATIVE_FRONT = 'gateway, native front';
const NGINX = 'nginx (1 worker, keepalive)';
const NGINX_LOGGED = 'nginx, JSON access log';
const NGINX_SOCKET = "nginx to the instance's socket";
const NATIVE_UNLOGGED = 'native front, metrics off';
const api = new Api({ apiUrl, token });

interface Sample {
  rps: number;
  p50us: number;
  p99us: number;
  errors: number;
  requests: number;
  /** CPU time (user + system) the proxy's processes spent per request, when the bench knows them. */
  cpuUs?: number;
  /** The same for the container's process: what the hop makes the function spend. */
  fnUs?: number;
}

/** A proxy the bench started: where it listens, its processes (for their CPU time), how to stop it. */
interface Started {
  url: string;
  pids: () => number[];
  stop: () => Promise<void>;
}

const CLOCK_TICKS = Number(Bun.spawnSync(['getconf', 'CLK_TCK']).stdout.toString().trim()) || 100;

/** CPU time (user + system, in clock ticks) the processes have used so far (/proc/PID/stat). */
function cpuTicks(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks;
}

/** The children of a process (nginx's workers). */
function childrenOf(pid: number): number[] {
  const list = readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1');
  return list.trim().split(/\s+/).filter(Boolean).map(Number);
}

/** One wrk run; its latency distribution is parsed from `--latency`. */
async function wrk(url: string, conns: number, headers: string[]): Promise<Sample> {
  const args = ['wrk', '-t1', `-c${conns}`, `-d${seconds}s`, '--latency', ...headers.flatMap((h) => ['-H', h]), url];
  const proc = Bun.spawn(args, { stdout: 'pipe', stderr: 'pipe' });
  const out = await new Response(proc.stdout).text();
  if ((await proc.exited) !== 0) throw new Error(`wrk failed: ${await new Response(proc.stderr).text()}`);
  const micros = (label: string) => {
    const match = new RegExp(`${label}\\s+([\\d.]+)(us|ms|s)`).exec(out);
    if (!match) throw new Error(`wrk printed no ${label} line:\n${out}`);
    const value = Number(match[1]);
    return match[2] === 'us' ? value : match[2] === 'ms' ? value * 1000 : value * 1e6;
  };
  const errors = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0) + Number(/Socket errors:.*?(\d+)/.exec(out)?.[1] ?? 0);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    p50us: micros('50%'),
    p99us: micros('99%'),
    errors,
    requests: Number(/(\d+) requests in/.exec(out)?.[1]),
  };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** Polls `url` until it answers 200; fails when `proc` exits first or `ms` pass. */
async function answering(url: string, proc: { exitCode: number | null }, ms: number, what: string, headers?: HeadersInit): Promise<void> {
  const deadline = Date.now() + ms;
  while (
    !(await fetch(url, { headers }).then(
      (r) => r.ok,
      () => false,
    ))
  ) {
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`${what} did not start`);
    await Bun.sleep(50);
  }
}

/**
 * nginx in the foreground with a throw-away config: one worker, keepalive to the container. With
 * `logged`, it writes a JSON line a request to a file, buffered and flushed every 100 ms, as the
 * gateway writes its invocation records (the reference the bench holds it to logs nothing). With
 * `socket`, it proxies to the instance's Unix socket, as the gateway does, instead of its address.
 */
async function startNginx(upstream: string, logged = false, socket?: string): Promise<Started | null> {
  if (!Bun.which('nginx') && !Bun.which('/usr/sbin/nginx')) return null;
  const dir = await mkdtemp(join(tmpdir(), 'plat-bench-nginx-'));
  const port = await freePort();
  // The instance's socket is root's alone (lib/sockets.ts): the worker must be root to reach it.
  const host = socket ? `unix:${socket}` : new URL(upstream).host;
  await writeFile(
    join(dir, 'nginx.conf'),
    `worker_processes 1;
${socket ? 'user root;' : ''}
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 1024; }
http {
  ${
    logged
      ? `log_format plat escape=json '{"time":"$time_iso8601","status":$status,"method":"$request_method","path":"$uri","durationMs":$request_time,"requestId":"$request_id","bytesOut":$body_bytes_sent}';
  access_log ${dir}/access.log plat buffer=64k flush=100ms;`
      : 'access_log off;'
  }
  client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  upstream fn { server ${host}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / { proxy_pass http://fn; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`,
  );
  const proc = Bun.spawn([Bun.which('nginx') ?? '/usr/sbin/nginx', '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], {
    stdout: 'ignore',
    stderr: 'inherit',
  });
  const url = `http://127.0.0.1:${port}/`;
  await answering(url, proc, 5000, 'nginx');
  return {
    url,
    pids: () => childrenOf(proc.pid),
    stop: async () => {
      proc.kill('SIGQUIT');
      await proc.exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Go's httputil.ReverseProxy to the container, built from source here (the standard library only: no network needed). */
async function startGoProxy(upstream: string): Promise<Started | null> {
  const go = Bun.which('go') ?? Bun.which('/usr/local/go/bin/go');
  if (!go) return null;
  const dir = await mkdtemp(join(tmpdir(), 'plat-bench-go-'));
  await writeFile(
    join(dir, 'main.go'),
    `package main

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
)

func main() {
	target, err := url.Parse(os.Args[1])
	if err != nil {
		panic(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}
	panic(http.ListenAndServe(os.Args[2], proxy))
}
`,
  );
  const build = Bun.spawn([go, 'build', '-o', join(dir, 'proxy'), join(dir, 'main.go')], { cwd: dir, stdout: 'ignore', stderr: 'pipe' });
  if ((await build.exited) !== 0) throw new Error(`go build failed: ${await new Response(build.stderr).text()}`);
  return runProxy(
    (port) => [join(dir, 'proxy'), upstream, `127.0.0.1:${port}`],
    "Go's ReverseProxy",
    () => rm(dir, { recursive: true, force: true }),
  );
}

/** Runs a proxy built here on a free port (its output ignored: a line for every connection wrk drops at the end of a run). */
async function runProxy(
  command: (port: number) => string[],
  what: string,
  cleanup?: () => Promise<void>,
  probe: { path: string; headers?: HeadersInit } = { path: '' },
): Promise<Started> {
  const port = await freePort();
  // The token for the Bun socket proxy, which checks it as the gateway does.
  const proc = Bun.spawn(command(port), { stdout: 'ignore', stderr: 'ignore', env: { ...process.env, AUTH_TOKEN: token } });
  const url = `http://127.0.0.1:${port}/`;
  await answering(url + probe.path, proc, 5000, what, probe.headers);
  return {
    url,
    pids: () => [proc.pid],
    stop: async () => {
      proc.kill('SIGTERM');
      await proc.exited;
      await cleanup?.();
    },
  };
}

/** bench/native-proxy, built with cargo (its crates fetched once; the build is kept in ~/.cache/plat). */
async function startNativeProxy(upstream: string): Promise<Started | null> {
  const cargo = Bun.which('cargo') ?? Bun.which(`${process.env.HOME}/.cargo/bin/cargo`);
  if (!cargo) return null;
  const targetDir = join(process.env.HOME || '/root', '.cache', 'plat', 'bench-native-proxy');
  const build = Bun.spawn([cargo, 'build', '--release', '--quiet', '--target-dir', targetDir], {
    cwd: join(import.meta.dir, 'native-proxy'),
    stdout: 'ignore',
    stderr: 'pipe',
  });
  if ((await build.exited) !== 0) throw new Error(`cargo build of bench/native-proxy failed: ${await new Response(build.stderr).text()}`);
  return runProxy((port) => [join(targetDir, 'release', 'native-proxy'), `127.0.0.1:${port}`, new URL(upstream).host], 'the Rust proxy');
}

if (!Bun.which('wrk')) {
  console.error('error: wrk is not installed (apt-get install wrk)');
  process.exit(1);
}

const dir = await mkdtemp(join(tmpdir(), 'plat-bench-'));
await writeFile(join(dir, 'function.json'), JSON.stringify({ name, runtime: 'bun' }));
await writeFile(join(dir, 'index.ts'), 'export default { fetch() { return new Response("hello"); } };\n');
await deploy(api, dir, { log: () => {} });
await rm(dir, { recursive: true, force: true });
if ((await (await api.request(`/function/${name}`)).text()) !== 'hello') throw new Error('the function did not answer hello');
const { function: state } = await api.json<{ function: FunctionState }>(`/functions/${name}`);
const direct = state.instances[0]?.url;
if (!direct) throw new Error('no instance after the cold start');
// An invoke key of the function: what a client that is not the admin sends (checked from the gateway's cache).
const { key: invokeKey } = await api.json<{ key: { key: string } }>(`/functions/${name}/keys`, { method: 'POST' });

/**
 * A gateway of this checkout on a port of its own, with metrics and invocation records on (written to
 * a file, as under npm start) or off: the two differ in nothing else, so their ratio is the cost of metrics.
 */
async function startGateway(metrics: boolean, front: 'on' | 'off' | 'native' = 'on'): Promise<Started> {
  const port = await freePort();
  const logDir = await mkdtemp(join(tmpdir(), 'plat-bench-gateway-'));
  const proc = Bun.spawn([process.execPath, ...GATEWAY_BUN_FLAGS, join(import.meta.dir, '../gateway/main.ts')], {
    env: {
      ...process.env,
      ...GATEWAY_ENV,
      PORT: String(port),
      AUTH_TOKEN: token,
      PLAT_METRICS: metrics ? 'on' : 'off',
      PLAT_INVOKE_FRONT: front,
    },
    stdout: Bun.file(join(logDir, 'gateway.log')),
    stderr: 'inherit',
  });
  const url = `http://127.0.0.1:${port}`;
  await answering(`${url}/healthz`, proc, 10_000, 'a gateway of the bench');
  return {
    url,
    pids: () => [proc.pid],
    stop: async () => {
      proc.kill('SIGTERM');
      await proc.exited;
      await rm(logDir, { recursive: true, force: true });
    },
  };
}

const nginx = await startNginx(direct);
const nginxLogged = await startNginx(direct, true);
const socket = state.instances[0]?.socket;
const nginxSocket = socket && process.getuid?.() === 0 ? await startNginx(direct, false, socket) : null;
const goProxy = await startGoProxy(direct);
const nativeProxy = await startNativeProxy(direct);
const auth = [`Authorization: Bearer ${token}`];
const socketProxy = await runProxy(
  (port) => [
    process.execPath,
    join(import.meta.dir, 'bun-socket-proxy.ts'),
    String(port),
    new URL(direct).host,
    state.instances[0]?.instanceId ?? '',
  ],
  'the Bun socket proxy',
  undefined,
  { path: `function/${name}`, headers: { authorization: `Bearer ${token}` } },
);
const withMetrics = await startGateway(true);
const withoutMetrics = await startGateway(false);
const withoutFront = await startGateway(true, 'off');
// The native invoke front (gateway/native), built here if it is not yet (scripts/native-front.sh).
const built = Bun.spawnSync(['bash', join(import.meta.dir, '../scripts/native-front.sh')], { stdout: 'ignore', stderr: 'inherit' });
if (built.exitCode !== 0) throw new Error('the native invoke front did not build (scripts/native-front.sh)');
const withNative = await startGateway(true, 'native');
const withNativeUnlogged = await startGateway(false, 'native');
// The container's own process, for its CPU time (the engine's CLI; left out when there is none).
const inspected = Bun.which('docker')
  ? Bun.spawnSync(['docker', 'inspect', '-f', '{{.State.Pid}}', state.instances[0]?.containerId ?? ''])
  : undefined;
const containerPid = inspected?.exitCode === 0 ? Number(inspected.stdout.toString().trim()) : 0;
const targets: { label: string; url: string; headers: string[]; pids?: () => number[] }[] = [
  { label: 'straight to the container', url: `${direct}/`, headers: [], pids: containerPid ? () => [containerPid] : undefined },
  ...(nginx ? [{ label: NGINX, url: nginx.url, headers: [], pids: nginx.pids }] : []),
  ...(nginxLogged ? [{ label: NGINX_LOGGED, url: nginxLogged.url, headers: [], pids: nginxLogged.pids }] : []),
  ...(nginxSocket ? [{ label: NGINX_SOCKET, url: nginxSocket.url, headers: [], pids: nginxSocket.pids }] : []),
  ...(goProxy ? [{ label: 'Go httputil.ReverseProxy', url: goProxy.url, headers: [], pids: goProxy.pids }] : []),
  ...(nativeProxy ? [{ label: NATIVE, url: nativeProxy.url, headers: [], pids: nativeProxy.pids }] : []),
  { label: SOCKETS, url: `${socketProxy.url}function/${name}`, headers: auth, pids: socketProxy.pids },
  { label: 'plat gateway', url: `${apiUrl}/function/${name}`, headers: auth },
  { label: 'Bun front, metrics on', url: `${withMetrics.url}/function/${name}`, headers: auth, pids: withMetrics.pids },
  { label: 'Bun front, metrics off', url: `${withoutMetrics.url}/function/${name}`, headers: auth, pids: withoutMetrics.pids },
  { label: 'Bun server, front off', url: `${withoutFront.url}/function/${name}`, headers: auth, pids: withoutFront.pids },
  { label: NATIVE_FRONT, url: `${withNative.url}/function/${name}`, headers: auth, pids: withNative.pids },
  { label: NATIVE_UNLOGGED, url: `${withNativeUnlogged.url}/function/${name}`, headers: auth, pids: withNativeUnlogged.pids },
  {
    label: 'Bun front, invoke key',
    url: `${withoutMetrics.url}/function/${name}`,
    headers: [`Authorization: Bearer ${invokeKey.key}`],
    pids: withoutMetrics.pids,
  },
];

/** One wrk run at a target, with the CPU time its processes spent per request when they are known. */
async function measure(target: (typeof targets)[number], conns: number): Promise<Sample> {
  const pids = target.pids?.();
  const before = pids ? cpuTicks(pids) : 0;
  const fnBefore = containerPid ? cpuTicks([containerPid]) : 0;
  const sample = await wrk(target.url, conns, target.headers);
  const perRequest = (ticks: number) => ((ticks / CLOCK_TICKS) * 1e6) / sample.requests;
  if (pids && sample.requests > 0) sample.cpuUs = perRequest(cpuTicks(pids) - before);
  if (containerPid && sample.requests > 0) sample.fnUs = perRequest(cpuTicks([containerPid]) - fnBefore);
  return sample;
}

try {
  const skipped = [nginx ? '' : 'nginx', goProxy ? '' : 'Go', nativeProxy ? '' : 'Rust (cargo)'].filter(Boolean);
  console.log(
    `wrk -t1 -d${seconds}s, ${rounds} interleaved rounds, medians${skipped.length ? ` (not installed, skipped: ${skipped.join(', ')})` : ''}`,
  );
  for (const conns of connections) {
    const samples = new Map<string, Sample[]>(targets.map((t) => [t.label, []]));
    for (let round = 0; round < rounds; round++) {
      for (const target of targets) samples.get(target.label)?.push(await measure(target, conns));
    }
    console.log(`\n-c${conns}                              req/s      p50        p99     errors   CPU/request   function's`);
    const cpuOf = (label: string, of: 'cpuUs' | 'fnUs' = 'cpuUs') => {
      const values = (samples.get(label) ?? []).flatMap((s) => (s[of] === undefined ? [] : [s[of]]));
      return values.length ? median(values) : undefined;
    };
    const micros = (value: number | undefined) => (value === undefined ? '—' : `${value.toFixed(1)} µs`);
    for (const [label, list] of samples) {
      const rps = median(list.map((s) => s.rps));
      console.log(
        `  ${label.padEnd(30)} ${String(Math.round(rps)).padStart(7)} ${`${Math.round(median(list.map((s) => s.p50us)))} µs`.padStart(10)} ${`${Math.round(median(list.map((s) => s.p99us)))} µs`.padStart(10)} ${String(list.reduce((n, s) => n + s.errors, 0)).padStart(6)} ${micros(cpuOf(label)).padStart(13)} ${micros(cpuOf(label, 'fnUs')).padStart(12)}`,
      );
    }
    const rpsOf = (label: string) => median((samples.get(label) ?? []).map((s) => s.rps));
    const on = rpsOf('Bun front, metrics on');
    const off = rpsOf('Bun front, metrics off');
    console.log(
      `  Bun front on / off: ${(on / rpsOf('Bun server, front off')).toFixed(3)} (two gateways alike but for PLAT_INVOKE_FRONT=on/off, metrics on)`,
    );
    console.log(
      `  metrics on / off (Bun front): ${(on / off).toFixed(3)} (throughput ${((1 - on / off) * 100).toFixed(1)} % lower with metrics)`,
    );
    const keyed = rpsOf('Bun front, invoke key');
    console.log(`  invoke key / admin token: ${(keyed / off).toFixed(3)} (same Bun-front gateway, metrics off)`);
    if (nginx) console.log(`  gateway / nginx: ${(rpsOf('plat gateway') / rpsOf(NGINX)).toFixed(2)}`);
    if (nginx) {
      console.log(
        `  gateway with the native front / nginx: ${(rpsOf(NATIVE_FRONT) / rpsOf(NGINX)).toFixed(2)} (target ≥ 1.0 at -c10 and -c50); with the Bun front: ${(on / rpsOf(NGINX)).toFixed(2)}`,
      );
    }
    console.log(`  native front / Bun front: ${(rpsOf(NATIVE_FRONT) / on).toFixed(2)} (metrics on both)`);
    const cpuRatio = (label: string, reference: string) => {
      const [a, b] = [cpuOf(label), cpuOf(reference)];
      return a === undefined || b === undefined ? '—' : (a / b).toFixed(2);
    };
    if (nginx && nginxLogged) {
      // Like for like: each logging a line a request, or neither.
      console.log(
        `  native front / nginx with a JSON access log: ${(rpsOf(NATIVE_FRONT) / rpsOf(NGINX_LOGGED)).toFixed(2)}; native front, metrics off / nginx: ${(rpsOf(NATIVE_UNLOGGED) / rpsOf(NGINX)).toFixed(2)}; nginx logged / not: ${(rpsOf(NGINX_LOGGED) / rpsOf(NGINX)).toFixed(2)}`,
      );
    }
    if (nginxSocket) {
      // Like for like in transport: nginx to the socket the gateway uses.
      const fnRatio = (cpuOf(NATIVE_FRONT, 'fnUs') ?? Number.NaN) / (cpuOf(NGINX, 'fnUs') ?? Number.NaN);
      console.log(
        `  native front / nginx to the instance's socket: ${(rpsOf(NATIVE_FRONT) / rpsOf(NGINX_SOCKET)).toFixed(2)}, CPU per request ${cpuRatio(NATIVE_FRONT, NGINX_SOCKET)}; the function's CPU per request behind the native front / behind nginx: ${fnRatio.toFixed(2)}`,
      );
    }
    if (goProxy) console.log(`  gateway / Go ReverseProxy: ${(rpsOf('plat gateway') / rpsOf('Go httputil.ReverseProxy')).toFixed(2)}`);
    if (nativeProxy && nginx) console.log(`  Rust forward-only floor / nginx: ${(rpsOf(NATIVE) / rpsOf(NGINX)).toFixed(2)}`);
    if (nginx) console.log(`  Bun sockets floor / nginx: ${(rpsOf(SOCKETS) / rpsOf(NGINX)).toFixed(2)}`);
    if (nginx) {
      console.log(
        `  CPU per request / nginx's: native front ${cpuRatio(NATIVE_FRONT, NGINX)}, Bun front ${cpuRatio('Bun front, metrics on', NGINX)} (metrics off ${cpuRatio('Bun front, metrics off', NGINX)}), Bun sockets ${cpuRatio(SOCKETS, NGINX)}${nativeProxy ? `, Rust ${cpuRatio(NATIVE, NGINX)}` : ''}${goProxy ? `, Go ${cpuRatio('Go httputil.ReverseProxy', NGINX)}` : ''}`,
      );
    }
    const p50 = (label: string) => median((samples.get(label) ?? []).map((s) => s.p50us));
    const direct50 = p50('straight to the container');
    const added = (label: string) => `${Math.round(p50(label) - direct50)} µs`;
    console.log(
      `  p50 added over the container: native front ${added(NATIVE_FRONT)} (target ≤ 80 µs at -c1), gateway ${added('plat gateway')}${nginx ? `, nginx ${added(NGINX)}` : ''}${goProxy ? `, Go ${added('Go httputil.ReverseProxy')}` : ''}${nativeProxy ? `, Rust ${added(NATIVE)}` : ''}, Bun sockets ${added(SOCKETS)}`,
    );
  }
} finally {
  await nginx?.stop();
  await nginxLogged?.stop();
  await nginxSocket?.stop();
  await goProxy?.stop();
  await nativeProxy?.stop();
  await socketProxy.stop();
  await withMetrics.stop();
  await withoutMetrics.stop();
  await withoutFront.stop();
  await withNative.stop();
  await withNativeUnlogged.stop();
  await api.request(`/functions/${name}`, { method: 'DELETE' });
}
