//! The client connections: each request served here (a warm one) or sent to the gateway's servers.

use std::cell::Cell;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::http::{
    bearer, find_head_end, json_string, parse_answer, parse_request, put_lower, valid_request_id, Answer, Chunks, Framing, Kind, Request,
    MAX_BODY, MAX_HEAD,
};
use crate::upstream::{Drain, Upstream};
use crate::{Instance, InstanceState, Pool, Shared, LATENCY_BUCKETS};

/** An idle client connection is closed after this, as the gateway's servers do. */
const IDLE: Duration = Duration::from_secs(255);
/** A kept container connection idle longer than this is not used again (the runtimes close theirs after a few seconds). */
const UPSTREAM_IDLE: Duration = Duration::from_millis(2000);
/** The same for connections to the Bun front (Bun closes them after 255 s). */
const FRONT_IDLE: Duration = Duration::from_secs(200);
/** Bytes a client may send ahead while its request is served (pipelining) before it is no longer read. */
const MAX_AHEAD: usize = MAX_BODY + MAX_HEAD;
const READ: usize = 16 * 1024;
/** How long a tunnel's client address is kept after it closed, for requests its server has yet to read. */
const TUNNEL_ADDRESS_KEPT: Duration = Duration::from_secs(10);
/** How often a request still waiting for its answer checks that its container still takes connections (as the gateway's LIVENESS_MS). */
const LIVENESS: Duration = Duration::from_millis(1000);
const LIVENESS_PROBE: Duration = Duration::from_millis(500);

pub async fn serve(listener: std::net::TcpListener, shared: Arc<Shared>) {
    let listener = TcpListener::from_std(listener).expect("the listening socket");
    tokio::spawn(sweep(shared.clone()));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((sock, peer)) => {
                    let _ = sock.set_nodelay(true);
                    let ip = peer.ip().to_canonical().to_string();
                    let conn = Conn { sock, ip, sh: shared.clone(), buf: Vec::new(), token: None, free: Vec::new(), spare: Vec::new(), out: Vec::new() };
                    tokio::spawn(conn.run());
                }
                // Out of descriptors, say: accept again shortly rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            _ = shared.stopped.notified() => break,
        }
    }
    drop(listener);
    // The connections open go on until their clients close them (the process ends first, at shutdown).
    std::future::pending::<()>().await;
}

/**
 * Closes the kept connections idle past their time, every UPSTREAM_IDLE. Taking one drops only those
 * above it: after a burst, a trickle of requests keeps reusing the newest while the rest, closed by the
 * container meanwhile, would stay open on this side (one descriptor each) as long as the trickle lasts.
 */
async fn sweep(shared: Arc<Shared>) {
    let mut every = tokio::time::interval(UPSTREAM_IDLE);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let states: Vec<Arc<InstanceState>> = shared.instances.lock().unwrap().values().cloned().collect();
        for state in states {
            state.idle.lock().unwrap().retain(|(_, since)| since.elapsed() < UPSTREAM_IDLE);
        }
        shared.front_idle.lock().unwrap().retain(|(_, since)| since.elapsed() < FRONT_IDLE);
        shared.server_idle.lock().unwrap().retain(|(_, since)| since.elapsed() < FRONT_IDLE);
    }
}

/** Why an exchange with a container ended without an answer. */
enum Failure {
    Timeout,
    ClientGone,
    /** The container failed it; `reached` says whether the function may have seen the request. */
    Instance {
        message: &'static str,
        reached: bool,
    },
}

struct Conn {
    sock: TcpStream,
    ip: String,
    sh: Arc<Shared>,
    /** Bytes received and not yet served. */
    buf: Vec<u8>,
    /** The last bearer token seen on this connection, and its SHA-256 (a keep-alive client sends the same one). */
    token: Option<(Vec<u8>, [u8; 32])>,
    /** Buffers kept from one request to the next: a served request's bytes, an answer's, a request to a container. */
    free: Vec<u8>,
    spare: Vec<u8>,
    out: Vec<u8>,
}

impl Conn {
    async fn run(mut self) {
        loop {
            let mut scanned = 0;
            let head_end = loop {
                if let Some(end) = find_head_end(&self.buf, scanned) {
                    break end;
                }
                scanned = self.buf.len();
                if self.buf.len() > MAX_HEAD {
                    return self.tunnel().await;
                }
                if !self.read_idle().await {
                    return;
                }
            };
            // A head past MAX_HEAD (with its end) goes to a tunnel of its own, as the Bun front would
            // send it: passed on a shared connection, it would turn that connection into a tunnel.
            if head_end + 4 > MAX_HEAD {
                return self.tunnel().await;
            }
            let Some(request) = parse_request(&self.buf[..head_end]) else { return self.tunnel().await };
            let body_end = head_end + 4 + request.content_length.unwrap_or(0);
            while self.buf.len() < body_end {
                if !self.read_idle().await {
                    return;
                }
            }
            let mut rest = std::mem::take(&mut self.free);
            rest.clear();
            rest.extend_from_slice(&self.buf[body_end..]);
            self.buf.truncate(body_end);
            let bytes = std::mem::replace(&mut self.buf, rest);
            self.sh.active.fetch_add(1, Ordering::AcqRel);
            let keep = if request.function {
                self.request(&bytes, request, head_end).await
            } else {
                let head_request = &bytes[request.method.0..request.method.1] == b"HEAD";
                self.pass(&bytes, head_request, self.sh.server, Pass::Server).await
            };
            self.sh.active.fetch_sub(1, Ordering::AcqRel);
            self.free = bytes;
            if !keep {
                let _ = self.sock.shutdown().await;
                return;
            }
        }
    }

    /** Reads more of the client's bytes; false when it is gone or idle too long. */
    async fn read_idle(&mut self) -> bool {
        matches!(tokio::time::timeout(IDLE, read_some(&mut self.sock, &mut self.buf)).await, Ok(Ok(n)) if n > 0)
    }

    /** Serves one request; false when the connection must close after it. */
    async fn request(&mut self, bytes: &[u8], request: Request, head_end: usize) -> bool {
        let started = Instant::now();
        let head_request = &bytes[request.method.0..request.method.1] == b"HEAD";
        let mut token: Option<(usize, usize)> = None;
        let mut given_id: Option<(usize, usize)> = None;
        for header in &request.headers {
            match header.kind {
                Kind::Authorization => {
                    token = bearer(&bytes[header.value.0..header.value.1]).map(|t| {
                        let at = t.as_ptr() as usize - bytes.as_ptr() as usize;
                        (at, at + t.len())
                    })
                }
                Kind::RequestId => given_id = Some(header.value),
                _ => {}
            }
        }
        let token = token.map(|t| &bytes[t.0..t.1]);
        let Some((pool, trusted)) = self.decide(&request, token) else {
            return self.pass(bytes, head_request, self.sh.front, Pass::Front).await;
        };
        let Some(index) = acquire(&self.sh, &pool) else { return self.pass(bytes, head_request, self.sh.front, Pass::Front).await };
        let instance = &pool.instances[index];
        let request_id = match given_id {
            Some(id) if valid_request_id(&bytes[id.0..id.1]) => String::from_utf8_lossy(&bytes[id.0..id.1]).into_owned(),
            _ => uuid(),
        };
        let mut out = std::mem::take(&mut self.out);
        self.upstream_request(&mut out, bytes, &request, head_end, instance, &request_id, trusted);
        let outcome = self.exchange(&pool, instance, &out).await;
        self.out = out;
        self.sh.counts[instance.slot].fetch_sub(1, Ordering::AcqRel);
        let (mut up, answer_bytes, answer_end, answer) = match outcome {
            Ok(found) => found,
            Err(failure) => {
                let method = &bytes[request.method.0..request.method.1];
                return self.failed(failure, &pool, instance, bytes, &request, method, &request_id, started, head_request).await;
            }
        };
        if answer.status == 421 && answer.header(&answer_bytes, b"x-plat-refused") == Some(b"instance") {
            // Another instance answers at its address: it is gone, and the request never reached it.
            self.gone(&pool, instance, "another instance answers at its address");
            return self.pass(bytes, head_request, self.sh.front, Pass::Front).await;
        }
        let mut framing = answer.framing(head_request);
        let mut head = Vec::with_capacity(answer_end + 128);
        let _ = write!(head, "HTTP/1.1 {} ", answer.status);
        head.extend_from_slice(&answer_bytes[answer.reason.0..answer.reason.1]);
        head.extend_from_slice(b"\r\n");
        for (name, value, forwarded) in &answer.headers {
            if *forwarded {
                put_lower(&mut head, &answer_bytes[name.0..name.1]);
                head.extend_from_slice(b": ");
                head.extend_from_slice(&answer_bytes[value.0..value.1]);
                head.extend_from_slice(b"\r\n");
            }
        }
        head.extend_from_slice(b"x-request-id: ");
        head.extend_from_slice(request_id.as_bytes());
        head.extend_from_slice(b"\r\n");
        match framing {
            Framing::None => {
                if let (true, Some(length)) = (head_request, answer.content_length) {
                    let _ = write!(head, "content-length: {length}\r\n");
                }
            }
            Framing::Length(length) => {
                let _ = write!(head, "content-length: {length}\r\n");
            }
            Framing::Chunked(_) | Framing::Close => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        }
        head.extend_from_slice(b"\r\n");
        // The part of a chunked body already here is chunked anew after the head, before anything is
        // sent: broken, the client gets the platform's error, not half an answer.
        let mut start = answer_end + 4;
        if let Framing::Chunked(chunks) = &mut framing {
            let Some(took) = chunks.feed(&answer_bytes[start..], &mut head) else {
                let failure = Failure::Instance { message: "its answer has a malformed chunk", reached: true };
                let method = &bytes[request.method.0..request.method.1];
                return self.failed(failure, &pool, instance, bytes, &request, method, &request_id, started, head_request).await;
            };
            start += took;
        }
        self.record(&pool, instance, bytes, &request, answer.status, started, &request_id, answer.content_length, true);
        let (reusable, client_ok) = self.relay(&mut up, head, answer_bytes, start, framing, true).await;
        if reusable && !answer.close {
            let mut idle = instance.state.idle.lock().unwrap();
            if !instance.state.gone.load(Ordering::Relaxed) {
                idle.push((up, Instant::now()));
            }
        }
        client_ok
    }

    /**
     * Whether this request can be served here, and by which pool: the gateway has the function's
     * pool, no request waits in it, and the caller may invoke it (`trusted` when it holds the admin
     * token). None sends it to the gateway, which decides everything else.
     */
    fn decide(&mut self, request: &Request, token: Option<&[u8]>) -> Option<(Arc<Pool>, bool)> {
        if request.header_bytes > self.sh.header_limit {
            return None;
        }
        let pool = self.sh.pools.read().unwrap().get(&request.target).cloned()?;
        if self.sh.counts[pool.waiting_slot].load(Ordering::Acquire) > 0 {
            return None;
        }
        let admin = token.is_some_and(|t| same(t, &self.sh.admin));
        if admin {
            return Some((pool, true));
        }
        let access = self.sh.access.read().unwrap().get(&pool.name).cloned()?;
        if access.public {
            return Some((pool, false));
        }
        let token = token?;
        let hash = match &self.token {
            Some((seen, hash)) if seen.as_slice() == token => *hash,
            _ => {
                let hash: [u8; 32] = Sha256::digest(token).into();
                self.token = Some((token.to_vec(), hash));
                hash
            }
        };
        access.hashes.contains(&hash).then_some((pool, false))
    }

    /** The request as the container gets it (see readRequestHeaders in gateway/invoke/headers.ts). */
    #[allow(clippy::too_many_arguments)]
    fn upstream_request(
        &self,
        out: &mut Vec<u8>,
        bytes: &[u8],
        request: &Request,
        head_end: usize,
        instance: &Instance,
        request_id: &str,
        trusted: bool,
    ) {
        let body = &bytes[head_end + 4..];
        out.clear();
        out.reserve(head_end + 256 + body.len());
        out.extend_from_slice(&bytes[request.method.0..request.method.1]);
        out.push(b' ');
        let rest = &bytes[request.rest.0..request.rest.1];
        if !rest.starts_with(b"/") {
            out.push(b'/');
        }
        out.extend_from_slice(rest);
        out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        out.extend_from_slice(instance.host.as_bytes());
        out.extend_from_slice(b"\r\n");
        let mut forwarded_for: Option<&[u8]> = None;
        let mut host: Option<&[u8]> = None;
        let mut platform = Vec::new();
        for header in &request.headers {
            let value = &bytes[header.value.0..header.value.1];
            match header.kind {
                Kind::Host => host = Some(value),
                Kind::ForwardedFor => forwarded_for = Some(value),
                Kind::PlatformPassed if trusted => {
                    put_lower(&mut platform, &bytes[header.name.0..header.name.1]);
                    platform.extend_from_slice(b": ");
                    platform.extend_from_slice(value);
                    platform.extend_from_slice(b"\r\n");
                }
                Kind::Other => {
                    put_lower(out, &bytes[header.name.0..header.name.1]);
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(value);
                    out.extend_from_slice(b"\r\n");
                }
                _ => {}
            }
        }
        out.extend_from_slice(b"x-request-id: ");
        out.extend_from_slice(request_id.as_bytes());
        out.extend_from_slice(b"\r\nx-forwarded-for: ");
        if let Some(given) = forwarded_for.filter(|f| !f.is_empty()) {
            out.extend_from_slice(given);
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(self.ip.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(host) = host.filter(|h| !h.is_empty()) {
            out.extend_from_slice(b"x-forwarded-host: ");
            out.extend_from_slice(host);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"x-forwarded-proto: ");
        out.extend_from_slice(self.sh.scheme.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&platform);
        // On the instance's own socket, no other instance can answer: no check to ask for.
        if instance.socket.is_none() {
            out.extend_from_slice(b"x-plat-instance: ");
            out.extend_from_slice(instance.instance_id.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if let Some(length) = request.content_length {
            let _ = write!(out, "content-length: {length}\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    }

    /**
     * Sends the request to the container and reads its answer's head, within the function's timeout,
     * watching the client (gone: the exchange ends) and the container (reported dead: likewise). A
     * kept connection that the container closed meanwhile is replaced once.
     */
    async fn exchange(&mut self, pool: &Pool, instance: &Instance, out: &[u8]) -> Result<(Upstream, Vec<u8>, usize, Answer), Failure> {
        let died = instance.state.died.notified();
        tokio::pin!(died);
        let deadline = tokio::time::sleep(pool.timeout);
        tokio::pin!(deadline);
        // A container that stops taking connections without dying (its network gone, say) fails its
        // waiting requests within a second or so, not at their timeout.
        let probe = tokio::time::sleep(LIVENESS);
        tokio::pin!(probe);
        for attempt in 0..2 {
            if instance.state.gone.load(Ordering::Relaxed) {
                return Err(Failure::Instance { message: "its container is gone", reached: false });
            }
            let kept = take_idle(&instance.state.idle, UPSTREAM_IDLE);
            let reused = kept.is_some();
            let mut up = match kept {
                Some(up) => up,
                None => {
                    let connecting = Upstream::connect(instance);
                    tokio::select! {
                        connected = connecting => match connected {
                            Ok(up) => up,
                            Err(_) => return Err(Failure::Instance { message: "its container refused the connection", reached: false }),
                        },
                        _ = &mut deadline => return Err(Failure::Timeout),
                        _ = &mut died => return Err(Failure::Instance { message: "its container is gone", reached: false }),
                    }
                }
            };
            if up.write_all(out).await.is_err() {
                if reused && attempt == 0 {
                    continue;
                }
                return Err(Failure::Instance { message: "its container closed the connection", reached: false });
            }
            let mut answer = std::mem::take(&mut self.spare);
            answer.clear();
            let mut scanned = 0;
            loop {
                answer.reserve(READ);
                let room = answer.capacity() - answer.len();
                if self.buf.len() < MAX_AHEAD {
                    self.buf.reserve(READ);
                }
                let ahead = self.buf.capacity() - self.buf.len();
                tokio::select! {
                    biased;
                    read = up.read_buf(&mut answer) => match read {
                        Ok(n) if n > 0 => {
                            if n < room {
                                up.drained();
                            }
                            // Interim answers (100 Continue, 103 Early Hints) are dropped: the final one follows,
                            // maybe in the same read.
                            while let Some(end) = find_head_end(&answer, scanned) {
                                let head = parse_answer(&answer[..end]).map_err(|message| Failure::Instance { message, reached: true })?;
                                if head.status >= 200 {
                                    return Ok((up, answer, end, head));
                                }
                                answer.drain(..end + 4);
                                scanned = 0;
                            }
                            scanned = answer.len();
                            if answer.len() > MAX_HEAD {
                                return Err(Failure::Instance { message: "its answer's head is too large", reached: true });
                            }
                        }
                        _ => {
                            if reused && attempt == 0 && answer.is_empty() {
                                break;
                            }
                            return Err(Failure::Instance { message: "its container closed the connection before answering", reached: true });
                        }
                    },
                    read = self.sock.read_buf(&mut self.buf), if self.buf.len() < MAX_AHEAD => match read {
                        Ok(n) if n > 0 => {
                            if n < ahead {
                                self.sock.drained();
                            }
                        }
                        _ => return Err(Failure::ClientGone),
                    },
                    _ = &mut deadline => return Err(Failure::Timeout),
                    _ = &mut died => return Err(Failure::Instance { message: "its container is gone", reached: true }),
                    _ = &mut probe => {
                        if !matches!(tokio::time::timeout(LIVENESS_PROBE, Upstream::accepts(instance)).await, Ok(true)) {
                            return Err(Failure::Instance { message: "its container stopped accepting connections", reached: true });
                        }
                        probe.as_mut().reset(tokio::time::Instant::now() + LIVENESS);
                    }
                }
            }
        }
        Err(Failure::Instance { message: "its container closed the connection before answering", reached: true })
    }

    /** An exchange that ended without an answer: the gateway tries again where that is safe, else the error's answer. */
    #[allow(clippy::too_many_arguments)]
    async fn failed(
        &mut self,
        failure: Failure,
        pool: &Pool,
        instance: &Instance,
        bytes: &[u8],
        request: &Request,
        method: &[u8],
        request_id: &str,
        started: Instant,
        head_request: bool,
    ) -> bool {
        match failure {
            Failure::ClientGone => {
                self.record(pool, instance, bytes, request, 499, started, request_id, None, false);
                false
            }
            Failure::Timeout => {
                let seconds = pool.timeout.as_millis() as f64 / 1000.0;
                self.sh.event(
                    format!(
                        "t\t{}\t{}\t{}\t{}\t{}\n",
                        pool.name,
                        instance.container_id,
                        pool.version,
                        request_id,
                        pool.timeout.as_millis()
                    )
                    .as_bytes(),
                );
                self.record(pool, instance, bytes, request, 504, started, request_id, None, false);
                let message = format!("function {} did not answer within its timeout of {} s", pool.name, seconds);
                self.error(504, "Gateway Timeout", "UPSTREAM_TIMEOUT", &message, request_id, head_request).await
            }
            Failure::Instance { message, reached } => {
                self.gone(pool, instance, message);
                let idempotent = matches!(method, b"GET" | b"HEAD" | b"OPTIONS" | b"PUT" | b"DELETE");
                if !reached || idempotent {
                    // The gateway places it again (a cold start if need be), as it does its own.
                    return self.pass(bytes, head_request, self.sh.front, Pass::Front).await;
                }
                self.record(pool, instance, bytes, request, 502, started, request_id, None, false);
                let text = format!("function {} did not answer ({}); its instance is being replaced, try again", pool.name, message);
                self.error(502, "Bad Gateway", "UPSTREAM_UNAVAILABLE", &text, request_id, head_request).await
            }
        }
    }

    /** A container that failed (`failure` says how): nothing is sent to it again here, and the gateway drops it and tells its entity, which stops it. */
    fn gone(&self, pool: &Pool, instance: &Instance, failure: &str) {
        instance.state.gone.store(true, Ordering::Relaxed);
        instance.state.idle.lock().unwrap().clear();
        self.sh.event(format!("g\t{}\t{}\t{}\t{}\n", instance.container_id, pool.key, pool.name, failure).as_bytes());
    }

    /** The platform's error answer, in the JSON error shape (gateway/errors.ts); false: the connection closes when it cannot be written. */
    async fn error(&mut self, status: u16, reason: &str, code: &str, message: &str, request_id: &str, head_request: bool) -> bool {
        let mut body = Vec::with_capacity(message.len() + 64);
        body.extend_from_slice(b"{\"error\":{\"code\":");
        json_string(&mut body, code);
        body.extend_from_slice(b",\"message\":");
        json_string(&mut body, message);
        body.extend_from_slice(b"}}");
        let mut out = format!(
            "HTTP/1.1 {status} {reason}\r\nx-plat-error: {code}\r\ncontent-type: application/json\r\nx-request-id: {request_id}\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        if !head_request {
            out.extend_from_slice(&body);
        }
        self.sock.write_all(&out).await.is_ok()
    }

    /**
     * Counts the invocation and writes its record, as gateway/metrics.ts does for its own (drained
     * by gateway/invoke/native.ts); `answered`: the function answered, so its instance was used.
     */
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        pool: &Pool,
        instance: &Instance,
        bytes: &[u8],
        request: &Request,
        status: u16,
        started: Instant,
        request_id: &str,
        bytes_out: Option<u64>,
        answered: bool,
    ) {
        let seconds = started.elapsed().as_secs_f64();
        let mut stats = self.sh.stats.lock().unwrap();
        if answered && !stats.used.iter().any(|(n, c)| n == &pool.name && c == &instance.container_id) {
            stats.used.insert((pool.name.clone(), instance.container_id.clone()));
        }
        if !self.sh.metrics {
            return;
        }
        let tally = match stats.tallies.get_mut(&pool.name) {
            Some(tally) => tally,
            None => stats.tallies.entry(pool.name.clone()).or_default(),
        };
        match tally.codes.iter_mut().find(|(code, _)| *code == status) {
            Some((_, n)) => *n += 1,
            None => tally.codes.push((status, 1)),
        }
        if let Some(bucket) = LATENCY_BUCKETS.iter().position(|&bound| seconds <= bound) {
            tally.buckets[bucket] += 1;
        }
        tally.sum += seconds;
        tally.count += 1;
        let rest = &bytes[request.rest.0..request.rest.1];
        let path = &rest[..rest.iter().position(|&b| b == b'?').unwrap_or(rest.len())];
        let line = &mut stats.records;
        line.extend_from_slice(b"{\"time\":\"");
        iso_now(line);
        line.extend_from_slice(b"\",\"function\":\"");
        line.extend_from_slice(pool.name.as_bytes());
        line.extend_from_slice(b"\",\"version\":\"");
        line.extend_from_slice(pool.version.as_bytes());
        line.extend_from_slice(b"\",\"instance\":\"");
        line.extend_from_slice(&instance.container_id.as_bytes()[..instance.container_id.len().min(12)]);
        line.extend_from_slice(b"\",\"start\":\"warm\"");
        if let Some(length) = request.content_length {
            let _ = write!(line, ",\"bytesIn\":{length}");
        }
        if let Some(length) = bytes_out {
            let _ = write!(line, ",\"bytesOut\":{length}");
        }
        line.extend_from_slice(b",\"method\":\"");
        line.extend_from_slice(&bytes[request.method.0..request.method.1]);
        line.extend_from_slice(b"\",\"path\":\"");
        if !path.starts_with(b"/") {
            line.push(b'/');
        }
        // The target is visible ASCII (parse_request): only a quote and a backslash are escaped.
        for &b in path {
            if b == b'"' || b == b'\\' {
                line.push(b'\\');
            }
            line.push(b);
        }
        let ms = (seconds * 1e6).round() / 1000.0;
        let _ = writeln!(line, "\",\"status\":{status},\"durationMs\":{ms},\"requestId\":\"{request_id}\"}}");
    }

    /**
     * Writes an answer's head and relays its body as it comes (a body until close is sent chunked
     * when `rechunk`). A chunked body goes on from where its framing's state stands after
     * `data[..start]` (that part already chunked anew into `head`). Returns whether the upstream
     * connection can carry another request, and whether the client's can.
     */
    async fn relay<S: AsyncRead + Unpin + Drain>(
        &mut self,
        up: &mut S,
        head: Vec<u8>,
        mut data: Vec<u8>,
        start: usize,
        framing: Framing,
        rechunk: bool,
    ) -> (bool, bool) {
        let done = self.relay_body(up, head, &mut data, start, framing, rechunk).await;
        self.spare = data;
        done
    }

    async fn relay_body<S: AsyncRead + Unpin + Drain>(
        &mut self,
        up: &mut S,
        mut head: Vec<u8>,
        data: &mut Vec<u8>,
        start: usize,
        framing: Framing,
        rechunk: bool,
    ) -> (bool, bool) {
        let pending = data;
        match framing {
            Framing::None => {
                let ok = self.sock.write_all(&head).await.is_ok();
                (pending.len() == start, ok)
            }
            Framing::Length(length) => {
                let first = ((pending.len() - start) as u64).min(length) as usize;
                let extra = pending.len() - start > first;
                head.extend_from_slice(&pending[start..start + first]);
                if self.sock.write_all(&head).await.is_err() {
                    return (false, false);
                }
                let mut left = length - first as u64;
                let mut extra = extra;
                while left > 0 {
                    pending.clear();
                    match read_some(up, pending).await {
                        Ok(n) if n > 0 => {
                            let take = (n as u64).min(left) as usize;
                            left -= take as u64;
                            // Bytes past the body: the connection is out of step, and not used again.
                            extra = take < n;
                            if self.sock.write_all(&pending[..take]).await.is_err() {
                                return (false, false);
                            }
                        }
                        // The answer broke off: so does this one, whose framing can no longer end cleanly.
                        _ => return (false, false),
                    }
                }
                (!extra, true)
            }
            Framing::Chunked(mut chunks) => {
                // (Done already, the rest is taken as nothing and left: past the body.)
                let Some(took) = chunks.feed(&pending[start..], &mut head) else { return (false, false) };
                let mut extra = start + took < pending.len();
                if self.sock.write_all(&head).await.is_err() {
                    return (false, false);
                }
                let mut out = head;
                while chunks != Chunks::Done {
                    pending.clear();
                    match read_some(up, pending).await {
                        Ok(n) if n > 0 => {
                            out.clear();
                            let Some(took) = chunks.feed(pending, &mut out) else { return (false, false) };
                            extra = took < pending.len();
                            if self.sock.write_all(&out).await.is_err() {
                                return (false, false);
                            }
                        }
                        _ => return (false, false),
                    }
                }
                (!extra, true)
            }
            Framing::Close => {
                let mut out = head;
                if pending.len() > start {
                    chunk(&mut out, &pending[start..], rechunk);
                }
                if self.sock.write_all(&out).await.is_err() {
                    return (false, false);
                }
                loop {
                    pending.clear();
                    match read_some(up, pending).await {
                        Ok(n) if n > 0 => {
                            out.clear();
                            chunk(&mut out, pending, rechunk);
                            if self.sock.write_all(&out).await.is_err() {
                                return (false, false);
                            }
                        }
                        Ok(_) => break,
                        Err(_) => return (false, false),
                    }
                }
                if !rechunk {
                    return (false, false);
                }
                let ok = self.sock.write_all(b"0\r\n\r\n").await.is_ok();
                (false, ok)
            }
        }
    }

    /**
     * A request this front does not decide, sent on to the gateway's JavaScript on loopback as it
     * came, and its answer relayed as it comes: one to a function goes to the Bun invoke front (which
     * serves it as if it had come to it), one to the API to Bun's server.
     */
    async fn pass(&mut self, bytes: &[u8], head_request: bool, to: std::net::SocketAddr, kind: Pass) -> bool {
        let shared = self.sh.clone();
        let idle = match kind {
            Pass::Front => &shared.front_idle,
            Pass::Server => &shared.server_idle,
        };
        for attempt in 0..2 {
            let kept = take_idle(idle, FRONT_IDLE);
            let reused = kept.is_some();
            let mut conn = match kept {
                Some(conn) => conn,
                None => match TcpStream::connect(to).await {
                    Ok(conn) => {
                        let _ = conn.set_nodelay(true);
                        conn
                    }
                    Err(_) => return self.internal().await,
                },
            };
            if let Ok(local) = conn.local_addr() {
                self.sh.clients.lock().unwrap().insert(local.port(), self.ip.clone());
            }
            if conn.write_all(bytes).await.is_err() {
                if reused && attempt == 0 {
                    continue;
                }
                return self.internal().await;
            }
            let mut answer = Vec::with_capacity(READ);
            let mut scanned = 0;
            let end = loop {
                answer.reserve(READ);
                let room = answer.capacity() - answer.len();
                tokio::select! {
                    biased;
                    read = conn.read_buf(&mut answer) => match read {
                        Ok(n) if n > 0 => {
                            if n < room {
                                conn.drained();
                            }
                            if let Some(end) = find_head_end(&answer, scanned) {
                                break Some(end);
                            }
                            scanned = answer.len();
                            if answer.len() > MAX_HEAD {
                                break None;
                            }
                        }
                        _ => break None,
                    },
                    read = self.sock.read_buf(&mut self.buf), if self.buf.len() < MAX_AHEAD => match read {
                        // The gateway sees its connection close, as it would the client's.
                        Ok(n) if n > 0 => self.buf.reserve(READ),
                        _ => return false,
                    },
                }
            };
            let Some(end) = end else {
                if reused && attempt == 0 && answer.is_empty() {
                    continue;
                }
                return self.internal().await;
            };
            let Ok(head) = parse_answer(&answer[..end]) else { return self.internal().await };
            let framing = head.framing(head_request);
            let (reusable, client_ok) = self.relay(&mut conn, answer[..end + 4].to_vec(), answer, end + 4, framing, false).await;
            if reusable && !head.close {
                idle.lock().unwrap().push((conn, Instant::now()));
            }
            return client_ok && !head.close && framing != Framing::Close;
        }
        self.internal().await
    }

    /** The gateway's own servers could not be reached on loopback: a bug or a gateway shutting down. */
    async fn internal(&mut self) -> bool {
        let _ = self.error(500, "Internal Server Error", "INTERNAL", "internal error; see the gateway log", &uuid(), false).await;
        false
    }

    /** From now on the connection's bytes go both ways between the client and Bun's server, starting with those not served. */
    async fn tunnel(mut self) {
        let Ok(mut server) = TcpStream::connect(self.sh.server).await else { return };
        let _ = server.set_nodelay(true);
        let port = server.local_addr().map(|a| a.port()).unwrap_or(0);
        self.sh.clients.lock().unwrap().insert(port, self.ip.clone());
        if server.write_all(&self.buf).await.is_ok() {
            let _ = tokio::io::copy_bidirectional(&mut self.sock, &mut server).await;
        }
        let shared = self.sh.clone();
        let ip = self.ip;
        tokio::spawn(async move {
            tokio::time::sleep(TUNNEL_ADDRESS_KEPT).await;
            let mut clients = shared.clients.lock().unwrap();
            if clients.get(&port) == Some(&ip) {
                clients.remove(&port);
            }
        });
    }
}

/**
 * Reads what the socket has. A read that left room in the buffer took all there was: the socket is
 * marked as drained, so the next read waits for the poller instead of asking the kernel first and
 * being told to wait (a system call saved each time, two a request).
 */
async fn read_some<S: AsyncRead + Unpin + Drain>(sock: &mut S, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.reserve(READ);
    let room = buf.capacity() - buf.len();
    let n = sock.read_buf(buf).await?;
    if n > 0 && n < room {
        sock.drained();
    }
    Ok(n)
}

/** Where a request the front does not serve goes. */
#[derive(Clone, Copy)]
enum Pass {
    Front,
    Server,
}

/** A place on the instance with the fewest requests below the pool's concurrency (the counts the gateway shares). */
fn acquire(shared: &Shared, pool: &Pool) -> Option<usize> {
    loop {
        let mut best: Option<usize> = None;
        let mut best_active = 0;
        for (i, instance) in pool.instances.iter().enumerate() {
            if instance.paused || instance.state.gone.load(Ordering::Relaxed) {
                continue;
            }
            let active = shared.counts[instance.slot].load(Ordering::Acquire);
            if active < pool.concurrency && (best.is_none() || active < best_active) {
                best = Some(i);
                best_active = active;
            }
        }
        let i = best?;
        let slot = &shared.counts[pool.instances[i].slot];
        if slot.compare_exchange(best_active, best_active + 1, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            return Some(i);
        }
    }
}

fn take_idle<S>(idle: &std::sync::Mutex<Vec<(S, Instant)>>, max_idle: Duration) -> Option<S> {
    let mut idle = idle.lock().unwrap();
    while let Some((conn, since)) = idle.pop() {
        if since.elapsed() < max_idle {
            return Some(conn);
        }
    }
    None
}

fn chunk(out: &mut Vec<u8>, data: &[u8], rechunk: bool) {
    if !rechunk {
        out.extend_from_slice(data);
        return;
    }
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/** Compares in constant time (for the admin token). */
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

thread_local! {
    static RANDOM: Cell<(u64, u64)> = Cell::new({
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
        let salt = &nanos as *const u64 as u64;
        (nanos | 1, salt.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15)
    });
}

/** A random (version 4) UUID, for a request that came without a usable id. */
fn uuid() -> String {
    let next = || {
        RANDOM.with(|state| {
            let (mut s1, s0) = state.get();
            let result = s0.wrapping_add(s1);
            s1 ^= s1 << 23;
            let s1 = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
            state.set((s0, s1));
            result
        })
    };
    let a = next();
    let b = next();
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x4000;
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xffff, b >> 48, b & 0xffff_ffff_ffff)
}

thread_local! {
    /** The last millisecond written as an ISO string, and that string (requests in one millisecond share it). */
    static ISO: std::cell::RefCell<(u128, [u8; 24])> = const { std::cell::RefCell::new((0, [0; 24])) };
}

/** The time now as an ISO string (as JavaScript's toISOString: UTC, milliseconds). */
fn iso_now(out: &mut Vec<u8>) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    ISO.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != now {
            let mut text = Vec::with_capacity(24);
            iso(&mut text, now as i64);
            cached.1.copy_from_slice(&text[..24]);
            cached.0 = now;
        }
        out.extend_from_slice(&cached.1);
    });
}

fn iso(out: &mut Vec<u8>, ms: i64) {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, milli) = (in_day / 3_600_000, in_day / 60_000 % 60, in_day / 1000 % 60, in_day % 1000);
    let _ = write!(out, "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z");
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_times_as_javascript_does() {
        let mut out = Vec::new();
        super::iso(&mut out, 1_796_338_356_123);
        assert_eq!(String::from_utf8(out).unwrap(), "2026-12-03T22:52:36.123Z");
        let mut leap = Vec::new();
        super::iso(&mut leap, 951_782_400_000);
        assert_eq!(String::from_utf8(leap).unwrap(), "2000-02-29T00:00:00.000Z");
    }
}
