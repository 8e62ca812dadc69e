//! plat's native invoke front: the gateway's public port, served by a Rust thread inside the gateway's
//! Bun process (loaded with bun:ffi; gateway/invoke/native.ts is its other half).
//!
//! A warm request to a function is served here from end to end: who may call (the admin token, a
//! public function, an invoke key's hash), a place on the instance with the fewest requests (the
//! counts are shared with the gateway's pools: one Int32Array in this library's memory), the
//! exchange with the container on a kept-alive connection, its timeout, a client that goes away, a
//! container that dies. Everything else goes to the gateway's JavaScript as it would without this
//! library: a request it cannot decide alone (a cold start, a full pool, a paused instance, a JWT, a
//! token it does not know) is sent to the Bun invoke front on loopback, one request at a time, and
//! its answer relayed; a connection that is not plainly HTTP/1.1 to /function/ (the API, an upgrade,
//! chunked or large bodies) is passed through to Bun's server, byte for byte. The gateway tells this
//! library what it decides with (pools, access, the admin token) and drains what happened (each
//! invocation, instances found gone, timeouts) every few milliseconds for its metrics, records, logs,
//! use reports and entities.

mod http;
mod proxy;
mod upstream;

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::Notify;
use upstream::Upstream;

/** Slots of the shared counts: requests on each instance, requests waiting in each pool. */
pub const SLOTS: usize = 1 << 16;
/** The public port's backlog of connections not yet accepted (the kernel holds it to net.core.somaxconn). */
const LISTEN_BACKLOG: i32 = 4096;

extern "C" {
    fn listen(fd: i32, backlog: i32) -> i32;
}

/** What is kept of what happened before the gateway drains it; past this, invocations are dropped (and counted). */
const EVENTS_MAX: usize = 16 * 1024 * 1024;

/** One instance of a pool, as the gateway published it. */
pub struct Instance {
    pub slot: usize,
    pub container_id: String,
    pub instance_id: String,
    pub addr: SocketAddr,
    /** `host:port`, for the request's Host header. */
    pub host: String,
    /** The instance's Unix socket, when its runtime serves one: requests go there instead of `addr`, with no instance check. */
    pub socket: Option<PathBuf>,
    pub paused: bool,
    pub state: Arc<InstanceState>,
}

/** What outlives a publication of a pool: the container's kept connections, and whether it is gone. */
pub struct InstanceState {
    pub gone: AtomicBool,
    pub died: Notify,
    pub idle: Mutex<Vec<(Upstream, Instant)>>,
}

pub struct Pool {
    pub key: String,
    pub name: String,
    pub version: String,
    pub concurrency: i32,
    pub timeout: Duration,
    /** The slot that holds how many requests wait in the gateway's pool: while any do, requests go to it. */
    pub waiting_slot: usize,
    pub instances: Vec<Instance>,
}

pub struct Access {
    pub public: bool,
    pub hashes: Vec<[u8; 32]>,
}

/** The latency histogram's bounds, in seconds (gateway/metrics.ts LATENCY_BUCKETS). */
pub const LATENCY_BUCKETS: [f64; 15] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/** One function's invocations since the last drain, as gateway/metrics.ts tallies them. */
#[derive(Default)]
pub struct Tally {
    pub codes: Vec<(u16, u64)>,
    /** Each counts the durations above the bound before it, up to its own. */
    pub buckets: [u64; 15],
    pub sum: f64,
    pub count: u64,
}

/** What the gateway counts, records and reports of the invocations served here, until it drains them. */
#[derive(Default)]
pub struct Stats {
    pub tallies: HashMap<String, Tally>,
    /** Invocation records, JSON lines as the gateway writes its own. */
    pub records: Vec<u8>,
    /** Which instances of which functions served requests (for the idle rules). */
    pub used: HashSet<(String, String)>,
}

pub struct Shared {
    pub counts: &'static [AtomicI32],
    /** Whether invocations are counted and recorded (PLAT_METRICS). */
    pub metrics: bool,
    pub stats: Mutex<Stats>,
    pub pools: RwLock<HashMap<String, Arc<Pool>>>,
    pub access: RwLock<HashMap<String, Arc<Access>>>,
    pub instances: Mutex<HashMap<String, Arc<InstanceState>>>,
    pub admin: Vec<u8>,
    pub scheme: String,
    pub header_limit: usize,
    /** The Bun invoke front (requests) and Bun's server (tunnels), on loopback. */
    pub front: SocketAddr,
    pub server: SocketAddr,
    pub front_idle: Mutex<Vec<(TcpStream, Instant)>>,
    pub server_idle: Mutex<Vec<(TcpStream, Instant)>>,
    /** Client addresses by the local port of the connection that carries them to the gateway's servers. */
    pub clients: Mutex<HashMap<u16, String>>,
    pub events: Mutex<Vec<u8>>,
    pub stopped: Notify,
    /** Requests being served or passed on now (the gateway waits for them when it stops). */
    pub active: AtomicI32,
}

static COUNTS: OnceLock<&'static [AtomicI32]> = OnceLock::new();
static SHARED: OnceLock<Arc<Shared>> = OnceLock::new();
static ERROR: Mutex<String> = Mutex::new(String::new());

fn counts() -> &'static [AtomicI32] {
    COUNTS.get_or_init(|| {
        let slots: Vec<AtomicI32> = (0..SLOTS).map(|_| AtomicI32::new(0)).collect();
        Box::leak(slots.into_boxed_slice())
    })
}

impl Shared {
    pub fn event(&self, line: &[u8]) {
        let mut events = self.events.lock().unwrap();
        if events.len() + line.len() <= EVENTS_MAX || line[0] != b'i' {
            events.extend_from_slice(line);
        }
    }

    pub fn state_of(&self, container_id: &str) -> Arc<InstanceState> {
        let mut instances = self.instances.lock().unwrap();
        instances
            .entry(container_id.to_string())
            .or_insert_with(|| Arc::new(InstanceState { gone: AtomicBool::new(false), died: Notify::new(), idle: Mutex::new(Vec::new()) }))
            .clone()
    }
}

fn text<'a>(ptr: *const u8, len: usize) -> &'a str {
    if ptr.is_null() || len == 0 {
        return "";
    }
    std::str::from_utf8(unsafe { std::slice::from_raw_parts(ptr, len) }).unwrap_or("")
}

fn fail(message: String) -> i32 {
    *ERROR.lock().unwrap() = message;
    -1
}

/** The shared counts: SLOTS Int32s, which the gateway wraps in an Int32Array. */
#[no_mangle]
pub extern "C" fn plat_front_counts() -> *mut i32 {
    counts().as_ptr() as *mut i32
}

#[no_mangle]
pub extern "C" fn plat_front_slots() -> u32 {
    SLOTS as u32
}

/** The last failure's message, copied into `buf`; its length. */
#[no_mangle]
pub extern "C" fn plat_front_error(buf: *mut u8, cap: usize) -> usize {
    copy_out(ERROR.lock().unwrap().as_bytes(), buf, cap)
}

/**
 * Takes the public port and starts serving it on a thread of its own. `config` is lines:
 * host, port, the Bun front's port, Bun's server's port, the admin token, the scheme clients use,
 * the headers' limit in bytes, and `on` when invocations are counted and recorded (PLAT_METRICS).
 * Returns the port taken, or -1 (see plat_front_error).
 */
#[no_mangle]
pub extern "C" fn plat_front_start(config: *const u8, len: usize) -> i32 {
    let lines: Vec<&str> = text(config, len).split('\n').collect();
    if lines.len() < 8 {
        return fail("the native front's configuration is incomplete".into());
    }
    if SHARED.get().is_some() {
        return fail("the native front is started already".into());
    }
    let port: u16 = lines[1].parse().unwrap_or(0);
    let address = match (lines[0], port).to_socket_addrs().ok().and_then(|mut a| a.next()) {
        Some(address) => address,
        None => return fail(format!("{} is not an address to listen on", lines[0])),
    };
    let listener = match std::net::TcpListener::bind(address) {
        Ok(listener) => listener,
        Err(error) => return fail(format!("could not listen on {address}: {error}")),
    };
    // std listens with a backlog of 128: a burst of more new connections than that overflows it, and
    // the clients dropped wait a second for their SYN to be sent again (1,000 first requests at once:
    // p99 3.8x one cold start). Listening again sets a backlog as Bun's servers have and more; the
    // kernel holds it to net.core.somaxconn.
    unsafe {
        listen(listener.as_raw_fd(), LISTEN_BACKLOG);
    }
    let bound = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let loopback = |port: &str| SocketAddr::from(([127, 0, 0, 1], port.parse().unwrap_or(0)));
    let shared = Arc::new(Shared {
        counts: counts(),
        pools: RwLock::new(HashMap::new()),
        access: RwLock::new(HashMap::new()),
        instances: Mutex::new(HashMap::new()),
        front: loopback(lines[2]),
        server: loopback(lines[3]),
        admin: lines[4].as_bytes().to_vec(),
        scheme: lines[5].to_string(),
        header_limit: lines[6].parse().unwrap_or(64 * 1024),
        metrics: lines[7] == "on",
        stats: Mutex::new(Stats::default()),
        front_idle: Mutex::new(Vec::new()),
        server_idle: Mutex::new(Vec::new()),
        clients: Mutex::new(HashMap::new()),
        events: Mutex::new(Vec::with_capacity(1 << 20)),
        stopped: Notify::new(),
        active: AtomicI32::new(0),
    });
    let _ = SHARED.set(shared.clone());
    if listener.set_nonblocking(true).is_err() {
        return fail("could not make the listening socket non-blocking".into());
    }
    let started = std::thread::Builder::new().name("plat-front".into()).spawn(move || {
        // One thread, as nginx's one worker: a second costs more CPU a request than it gains here (measured).
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        runtime.block_on(proxy::serve(listener, shared));
    });
    match started {
        Ok(_) => bound as i32,
        Err(error) => fail(format!("could not start the native front's thread: {error}")),
    }
}

/** Requests being served or passed on now. */
#[no_mangle]
pub extern "C" fn plat_front_active() -> i32 {
    SHARED.get().map(|shared| shared.active.load(Ordering::Acquire)).unwrap_or(0)
}

/** Stops taking connections; those open go on. */
#[no_mangle]
pub extern "C" fn plat_front_stop() {
    if let Some(shared) = SHARED.get() {
        shared.stopped.notify_one();
    }
}

/**
 * A pool as the gateway has it now. Lines: `key name version concurrency timeoutMs waitingSlot`, then
 * one per instance: `slot containerId instanceId host:port paused(0|1) socket`, fields separated by
 * tabs (`socket` empty when the instance is reached at `host:port` alone).
 */
#[no_mangle]
pub extern "C" fn plat_front_pool(data: *const u8, len: usize) -> i32 {
    let Some(shared) = SHARED.get() else { return -1 };
    let body = text(data, len);
    let mut lines = body.split('\n').filter(|l| !l.is_empty());
    let Some(head) = lines.next() else { return -1 };
    let f: Vec<&str> = head.split('\t').collect();
    if f.len() < 6 {
        return -1;
    }
    let mut pool = Pool {
        key: f[0].to_string(),
        name: f[1].to_string(),
        version: f[2].to_string(),
        concurrency: f[3].parse().unwrap_or(1),
        timeout: Duration::from_millis(f[4].parse().unwrap_or(30_000)),
        waiting_slot: f[5].parse::<usize>().unwrap_or(0) % SLOTS,
        instances: Vec::new(),
    };
    for line in lines {
        let i: Vec<&str> = line.split('\t').collect();
        if i.len() < 5 {
            continue;
        }
        let Some(addr) = i[3].to_socket_addrs().ok().and_then(|mut a| a.next()) else { continue };
        let state = shared.state_of(i[1]);
        if state.gone.load(Ordering::Relaxed) {
            continue;
        }
        pool.instances.push(Instance {
            slot: i[0].parse::<usize>().unwrap_or(0) % SLOTS,
            container_id: i[1].to_string(),
            instance_id: i[2].to_string(),
            addr,
            host: i[3].to_string(),
            paused: i[4] == "1",
            socket: i.get(5).filter(|s| !s.is_empty()).map(PathBuf::from),
            state,
        });
    }
    shared.pools.write().unwrap().insert(pool.key.clone(), Arc::new(pool));
    0
}

/** The gateway dropped a pool: its requests go to the gateway until it publishes it again. */
#[no_mangle]
pub extern "C" fn plat_front_unpool(key: *const u8, len: usize) {
    if let Some(shared) = SHARED.get() {
        shared.pools.write().unwrap().remove(text(key, len));
    }
}

/** Who may invoke a function: `name public(0|1) hash,hash,...` (SHA-256 hex of its keys), tabs between. */
#[no_mangle]
pub extern "C" fn plat_front_access(data: *const u8, len: usize) -> i32 {
    let Some(shared) = SHARED.get() else { return -1 };
    let f: Vec<&str> = text(data, len).split('\t').collect();
    if f.len() < 3 {
        return -1;
    }
    let hashes = f[2].split(',').filter_map(hex32).collect();
    shared.access.write().unwrap().insert(f[0].to_string(), Arc::new(Access { public: f[1] == "1", hashes }));
    0
}

#[no_mangle]
pub extern "C" fn plat_front_unaccess(name: *const u8, len: usize) {
    if let Some(shared) = SHARED.get() {
        shared.access.write().unwrap().remove(text(name, len));
    }
}

/** A container is gone: nothing is sent to it again, and the requests waiting on it end now. */
#[no_mangle]
pub extern "C" fn plat_front_forget(id: *const u8, len: usize) {
    if let Some(shared) = SHARED.get() {
        let id = text(id, len);
        let state = shared.state_of(id);
        state.gone.store(true, Ordering::Relaxed);
        state.idle.lock().unwrap().clear();
        state.died.notify_waiters();
        // The pools that still name it hold its state; the gateway publishes none that does again.
        shared.instances.lock().unwrap().remove(id);
    }
}

/**
 * Moves the tallies and the instances used since the last drain into the events, as lines:
 * `m name code:count,... bucket,... sum count` and `u name containerId`, tabs between.
 */
#[no_mangle]
pub extern "C" fn plat_front_tally() {
    let Some(shared) = SHARED.get() else { return };
    let (tallies, used) = {
        let mut stats = shared.stats.lock().unwrap();
        (std::mem::take(&mut stats.tallies), std::mem::take(&mut stats.used))
    };
    let mut out = String::new();
    for (name, tally) in tallies {
        let codes: Vec<String> = tally.codes.iter().map(|(code, n)| format!("{code}:{n}")).collect();
        let buckets: Vec<String> = tally.buckets.iter().map(|n| n.to_string()).collect();
        out += &format!("m\t{name}\t{}\t{}\t{}\t{}\n", codes.join(","), buckets.join(","), tally.sum, tally.count);
    }
    for (name, container) in used {
        out += &format!("u\t{name}\t{container}\n");
    }
    shared.events.lock().unwrap().extend_from_slice(out.as_bytes());
}

/** Copies the invocation records written since the last call (whole lines) into `buf`; how many bytes. */
#[no_mangle]
pub extern "C" fn plat_front_records(buf: *mut u8, cap: usize) -> usize {
    let Some(shared) = SHARED.get() else { return 0 };
    let mut stats = shared.stats.lock().unwrap();
    take_lines(&mut stats.records, buf, cap)
}

fn take_lines(from: &mut Vec<u8>, buf: *mut u8, cap: usize) -> usize {
    let mut n = from.len().min(cap);
    if n < from.len() {
        n = from[..n].iter().rposition(|&b| b == b'\n').map(|p| p + 1).unwrap_or(0);
    }
    unsafe { std::ptr::copy_nonoverlapping(from.as_ptr(), buf, n) };
    from.drain(..n);
    n
}

/** Copies what happened (whole lines) into `buf`; how many bytes. */
#[no_mangle]
pub extern "C" fn plat_front_drain(buf: *mut u8, cap: usize) -> usize {
    let Some(shared) = SHARED.get() else { return 0 };
    let mut events = shared.events.lock().unwrap();
    take_lines(&mut events, buf, cap)
}

/** The client whose requests a connection from this front to the gateway's servers carries now (by its local port). */
#[no_mangle]
pub extern "C" fn plat_front_client(port: u32, buf: *mut u8, cap: usize) -> usize {
    let Some(shared) = SHARED.get() else { return 0 };
    let clients = shared.clients.lock().unwrap();
    let Some(address) = clients.get(&(port as u16)) else { return 0 };
    copy_out(address.as_bytes(), buf, cap)
}

/** Copies what fits of `from` into the caller's `buf` of `cap` bytes; how many. */
fn copy_out(from: &[u8], buf: *mut u8, cap: usize) -> usize {
    let n = from.len().min(cap);
    unsafe { std::ptr::copy_nonoverlapping(from.as_ptr(), buf, n) };
    n
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks(2)) {
        *byte = http::hex_byte(pair)?;
    }
    Some(out)
}
