//! HTTP/1.1 heads, read strictly: a request the front serves itself must be plainly a keep-alive
//! HTTP/1.1 request to /function/<name> (the rules of the Bun front's `parseHead`, gateway/invoke/front.ts);
//! anything else is left to the gateway's own servers, which check everything.

/** A head without its end past this is left to Bun's server. */
pub const MAX_HEAD: usize = 64 * 1024;
/** Request bodies the front reads itself (by Content-Length); larger ones go to the gateway's servers. */
pub const MAX_BODY: usize = 1024 * 1024;

use std::io::Write;

const PREFIX: &[u8] = b"/function/";

/** What the invoke path does with a request header. */
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Authorization,
    Host,
    ForwardedFor,
    RequestId,
    ContentLength,
    /** Hop-by-hop (RFC 9110 §7.6.1): never forwarded. */
    HopByHop,
    /** What the client says of where it came from, but X-Forwarded-For: the front sets its own (headers.ts FORWARDING). */
    Forwarding,
    /** `x-plat-attempt` and `x-plat-call-id`: passed on from a trusted caller only. */
    PlatformPassed,
    /** Any other `x-plat-*`: only the gateway sets those. */
    Platform,
    Other,
}

pub struct Header {
    pub name: (usize, usize),
    pub value: (usize, usize),
    pub kind: Kind,
}

/** A request the front may serve (to /function/) or pass on whole (anything else), as offsets into its bytes. */
pub struct Request {
    /** A request to /function/<name>: else, one for the gateway's API, passed to Bun's server as it is. */
    pub function: bool,
    pub method: (usize, usize),
    /** The function's name (or `name@version`), percent-decoded as Bun's router does. */
    pub target: String,
    /** The path and query after the name (the function sees it, with a leading `/`). */
    pub rest: (usize, usize),
    pub headers: Vec<Header>,
    pub content_length: Option<usize>,
    /** What the headers add up to: name, value and 4 bytes each. */
    pub header_bytes: usize,
}

pub fn find_head_end(bytes: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    bytes[start..].windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + start)
}

fn is_token(b: u8) -> bool {
    matches!(b, b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
        || b.is_ascii_alphanumeric()
}

/** What JavaScript's `trim` takes off a latin1 string's ends. */
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | 0x0b | 0x0c | 0xa0)
}

pub fn trim(bytes: &[u8], mut start: usize, mut end: usize) -> (usize, usize) {
    while start < end && is_space(bytes[start]) {
        start += 1;
    }
    while end > start && is_space(bytes[end - 1]) {
        end -= 1;
    }
    (start, end)
}

/** A header name in lower case, on the stack when it is short (as nearly all are). */
fn lowered<'a>(name: &'a [u8], room: &'a mut [u8; 64]) -> std::borrow::Cow<'a, [u8]> {
    if !name.iter().any(u8::is_ascii_uppercase) {
        return std::borrow::Cow::Borrowed(name);
    }
    if name.len() <= room.len() {
        let out = &mut room[..name.len()];
        out.copy_from_slice(name);
        out.make_ascii_lowercase();
        return std::borrow::Cow::Borrowed(out);
    }
    std::borrow::Cow::Owned(name.to_ascii_lowercase())
}

/** Writes a header name in lower case. */
pub fn put_lower(out: &mut Vec<u8>, name: &[u8]) {
    let at = out.len();
    out.extend_from_slice(name);
    out[at..].make_ascii_lowercase();
}

fn kind_of(lower: &[u8]) -> Kind {
    match lower {
        b"authorization" => Kind::Authorization,
        b"host" => Kind::Host,
        b"x-forwarded-for" => Kind::ForwardedFor,
        b"x-request-id" => Kind::RequestId,
        b"content-length" => Kind::ContentLength,
        b"connection"
        | b"keep-alive"
        | b"proxy-authenticate"
        | b"proxy-authorization"
        | b"proxy-connection"
        | b"te"
        | b"trailer"
        | b"transfer-encoding"
        | b"upgrade" => Kind::HopByHop,
        b"x-forwarded-host" | b"x-forwarded-proto" | b"forwarded" | b"x-real-ip" => Kind::Forwarding,
        b"x-plat-attempt" | b"x-plat-call-id" => Kind::PlatformPassed,
        _ if lower.starts_with(b"x-plat-") => Kind::Platform,
        _ => Kind::Other,
    }
}

/** The byte two hex digits spell; None for anything else (u8::from_str_radix would take "+1"). */
pub fn hex_byte(pair: &[u8]) -> Option<u8> {
    let [high, low] = pair else { return None };
    Some(((*high as char).to_digit(16)? * 16 + (*low as char).to_digit(16)?) as u8)
}

fn percent_decode(raw: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            // As the Bun front's decodeURIComponent reads it: a name the two read apart would make it
            // tunnel a shared connection.
            out.push(hex_byte(raw.get(i + 1..i + 3)?)?);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/**
 * Reads a request's head (without its final CRLF CRLF); None when the front leaves it to the
 * gateway's servers.
 */
pub fn parse_request(head: &[u8]) -> Option<Request> {
    let line_end = head.windows(2).position(|w| w == b"\r\n").unwrap_or(head.len());
    let line = &head[..line_end];
    let space = line.iter().position(|&b| b == b' ')?;
    let space2 = space + 1 + line[space + 1..].iter().position(|&b| b == b' ')?;
    if space == 0 || &line[space2 + 1..] != b"HTTP/1.1" {
        return None;
    }
    let method = &line[..space];
    if !matches!(method, b"GET" | b"HEAD" | b"POST" | b"PUT" | b"DELETE" | b"PATCH" | b"OPTIONS") {
        return None;
    }
    let target = &line[space + 1..space2];
    if target.iter().any(|&b| !(0x21..=0x7e).contains(&b)) {
        return None;
    }
    let function = target.starts_with(PREFIX);
    if target.windows(2).any(|w| w == b"/.") || target.windows(3).any(|w| w[0] == b'%' && w[1] == b'2' && (w[2] | 0x20) == b'e') {
        return None;
    }
    let mut name_end = PREFIX.len();
    let mut name = String::new();
    if function {
        while name_end < target.len() && target[name_end] != b'/' && target[name_end] != b'?' {
            name_end += 1;
        }
        if name_end == PREFIX.len() {
            return None;
        }
        let raw_name = &target[PREFIX.len()..name_end];
        name = if raw_name.contains(&b'%') { percent_decode(raw_name)? } else { String::from_utf8(raw_name.to_vec()).ok()? };
    }
    let target_start = space + 1;
    let mut request = Request {
        function,
        method: (0, space),
        target: name,
        rest: (target_start + name_end, space2),
        headers: Vec::with_capacity(12),
        content_length: None,
        header_bytes: 0,
    };
    let mut at = if line_end < head.len() { line_end + 2 } else { head.len() };
    while at < head.len() {
        let end = head[at..].windows(2).position(|w| w == b"\r\n").map(|p| p + at).unwrap_or(head.len());
        let colon = head[at..end].iter().position(|&b| b == b':').map(|p| p + at)?;
        if colon == at {
            return None;
        }
        let field = &head[at..colon];
        if !field.iter().all(|&b| is_token(b)) {
            return None;
        }
        let value = trim(head, colon + 1, end);
        if head[value.0..value.1].iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') {
            return None;
        }
        let mut room = [0u8; 64];
        let lower = lowered(field, &mut room);
        let kind = kind_of(&lower);
        let text = &head[value.0..value.1];
        match &*lower {
            b"content-length" => {
                if request.content_length.is_some() || text.is_empty() || text.len() > 10 || !text.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                let length: usize = std::str::from_utf8(text).ok()?.parse().ok()?;
                if length > MAX_BODY {
                    return None;
                }
                request.content_length = Some(length);
            }
            b"transfer-encoding" | b"expect" | b"upgrade" => return None,
            b"connection" if !text.eq_ignore_ascii_case(b"keep-alive") => return None,
            _ => {}
        }
        // JavaScript counts UTF-16 units of the latin1 string: one per byte, as here.
        request.header_bytes += field.len() + (value.1 - value.0) + 4;
        request.headers.push(Header { name: (at, colon), value, kind });
        at = end + 2;
    }
    Some(request)
}

/** How an answer's body is framed. */
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Framing {
    None,
    Length(u64),
    /** Chunked: where its chunks stand, as far as they were read. */
    Chunked(Chunks),
    /** Until the connection closes. */
    Close,
}

/** Where something is in a head's bytes: start and end. */
pub type Span = (usize, usize);

/** An answer's head, as offsets into its bytes. */
pub struct Answer {
    pub status: u16,
    pub reason: (usize, usize),
    /** Header lines: name (as sent), value, and whether the client gets it (see `forwarded`). */
    pub headers: Vec<(Span, Span, bool)>,
    pub content_length: Option<u64>,
    pub chunked: bool,
    /** The connection cannot carry another request after this answer. */
    pub close: bool,
}

impl Answer {
    pub fn header<'a>(&self, bytes: &'a [u8], lower: &[u8]) -> Option<&'a [u8]> {
        self.headers.iter().find(|h| bytes[h.0 .0..h.0 .1].eq_ignore_ascii_case(lower)).map(|h| &bytes[h.1 .0..h.1 .1])
    }

    /** The body's framing for a request of `method`. */
    pub fn framing(&self, head_request: bool) -> Framing {
        if head_request || self.status == 204 || self.status == 304 || self.status < 200 {
            Framing::None
        } else if self.chunked {
            Framing::Chunked(Chunks::new())
        } else if let Some(length) = self.content_length {
            Framing::Length(length)
        } else {
            Framing::Close
        }
    }
}

/** A byte no answer's head may hold outside its line ends: a control other than HTAB (a bare CR or LF, NUL, DEL). */
fn is_control(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/** Whether a list header's value (`Connection`) names `token`, in any case. */
fn lists(value: &[u8], token: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|item| {
        let (start, end) = trim(item, 0, item.len());
        item[start..end].eq_ignore_ascii_case(token)
    })
}

/**
 * Reads an answer's head (without its final CRLF CRLF), as strictly as the Bun front's upstream
 * (gateway/invoke/upstream.ts `onHead`): what is wrong with it, else. Its status line and header lines
 * reach the client, so a bare LF, a control byte or a name that is not a token would let a function
 * forge headers or a second answer; the body's framing must be one, plainly.
 */
pub fn parse_answer(head: &[u8]) -> Result<Answer, &'static str> {
    let line_end = head.windows(2).position(|w| w == b"\r\n").unwrap_or(head.len());
    let line = &head[..line_end];
    let http10 = line.starts_with(b"HTTP/1.0 ");
    if !http10 && !line.starts_with(b"HTTP/1.1 ") || line.len() < 12 || !line[9..12].iter().all(u8::is_ascii_digit) {
        return Err("it answered something other than HTTP/1.1");
    }
    if line.len() > 12 && line[12] != b' ' || line.iter().any(|&b| is_control(b)) {
        return Err("its answer has a malformed status line");
    }
    let status = line[9..12].iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    if !(100..=599).contains(&status) {
        return Err("it answered something other than HTTP/1.1");
    }
    if status == 101 {
        return Err("it switched protocols (101), which the request did not ask for");
    }
    let reason = if line.len() > 13 { (13, line_end) } else { (line_end, line_end) };
    let mut answer = Answer { status, reason, headers: Vec::with_capacity(8), content_length: None, chunked: false, close: http10 };
    let mut encoded = false;
    let mut at = if line_end < head.len() { line_end + 2 } else { head.len() };
    while at < head.len() {
        let end = head[at..].windows(2).position(|w| w == b"\r\n").map(|p| p + at).unwrap_or(head.len());
        let colon = head[at..end].iter().position(|&b| b == b':').map(|p| p + at);
        let Some(colon) = colon.filter(|&c| c > at) else { return Err("its answer has a malformed header line") };
        if !head[at..colon].iter().all(|&b| is_token(b)) || head[colon..end].iter().any(|&b| is_control(b)) {
            return Err("its answer has a malformed header line");
        }
        let mut room = [0u8; 64];
        let lower = lowered(&head[at..colon], &mut room);
        let value = trim(head, colon + 1, end);
        let text = &head[value.0..value.1];
        match &*lower {
            b"content-length" => {
                if text.is_empty() || text.len() > 15 || !text.iter().all(u8::is_ascii_digit) {
                    return Err("its answer's Content-Length is not a number");
                }
                let length = text.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
                if answer.content_length.is_some_and(|seen| seen != length) {
                    return Err("its answer has conflicting Content-Length headers");
                }
                answer.content_length = Some(length);
            }
            b"transfer-encoding" => {
                if encoded || !text.eq_ignore_ascii_case(b"chunked") {
                    return Err("its answer uses a transfer coding other than chunked");
                }
                encoded = true;
                answer.chunked = true;
            }
            b"connection" => {
                if lists(text, b"close") {
                    answer.close = true;
                } else if http10 && lists(text, b"keep-alive") {
                    answer.close = false;
                }
            }
            _ => {}
        }
        let forwarded = forwarded(&lower);
        answer.headers.push(((at, colon), value, forwarded));
        at = end + 2;
    }
    if encoded && answer.content_length.is_some() {
        return Err("its answer has both Content-Length and Transfer-Encoding");
    }
    Ok(answer)
}

/**
 * Whether the client gets an answer's header: not the hop-by-hop ones, nor the platform's own
 * (`x-plat-*`, gateway/invoke/headers.ts), nor those the front sets itself.
 */
fn forwarded(lower: &[u8]) -> bool {
    !matches!(
        lower,
        b"connection"
            | b"keep-alive"
            | b"proxy-authenticate"
            | b"proxy-authorization"
            | b"proxy-connection"
            | b"te"
            | b"trailer"
            | b"transfer-encoding"
            | b"upgrade"
            | b"content-length"
            | b"x-request-id"
    ) && !lower.starts_with(b"x-plat-")
}

/** A chunk's size line (extensions included) or a trailer line past this is refused. */
const MAX_CHUNK_LINE: usize = 4096;

/**
 * Where a chunked body stands, fed as its bytes pass through. What the client gets is its data
 * chunked anew: extensions and trailers, which the function wrote and no one checked, are dropped
 * (as the Bun front does), and a control byte in them breaks the framing.
 */
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Chunks {
    /** Reading a chunk's size line: the size so far, whether a digit came, whether an extension began, the line's length. */
    Size(u64, bool, bool, usize),
    /** The size line's LF. */
    SizeEnd(u64),
    Data(u64),
    DataCr,
    DataLf,
    /** Trailer lines after the last chunk: whether the current line is empty so far, and its length. */
    Trailer(bool, usize),
    TrailerLf(bool),
    Done,
}

impl Chunks {
    pub fn new() -> Self {
        Chunks::Size(0, false, false, 0)
    }

    /**
     * Takes bytes until the body ends, writing its data to `out` as chunks (and the last chunk once
     * it ends); returns how many bytes belong to it (all of them unless it ended inside), or None
     * when the framing is broken.
     */
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            *self = match *self {
                Chunks::Size(size, digits, ext, length) => {
                    if length >= MAX_CHUNK_LINE {
                        return None;
                    }
                    match b {
                        b'\r' if digits => Chunks::SizeEnd(size),
                        _ if is_control(b) => return None,
                        _ if ext => Chunks::Size(size, digits, true, length + 1),
                        b';' | b' ' | b'\t' if digits => Chunks::Size(size, digits, true, length + 1),
                        _ => {
                            let digit = (b as char).to_digit(16)? as u64;
                            // Fifteen digits at most (as the Bun front reads them): never past u64.
                            if length >= 15 {
                                return None;
                            }
                            Chunks::Size(size * 16 + digit, true, false, length + 1)
                        }
                    }
                }
                Chunks::SizeEnd(size) => {
                    if b != b'\n' {
                        return None;
                    }
                    if size == 0 {
                        Chunks::Trailer(true, 0)
                    } else {
                        Chunks::Data(size)
                    }
                }
                Chunks::Data(left) => {
                    let take = ((bytes.len() - i) as u64).min(left);
                    let _ = write!(out, "{take:x}\r\n");
                    out.extend_from_slice(&bytes[i..i + take as usize]);
                    out.extend_from_slice(b"\r\n");
                    i += take as usize;
                    *self = if take == left { Chunks::DataCr } else { Chunks::Data(left - take) };
                    continue;
                }
                Chunks::DataCr => {
                    if b != b'\r' {
                        return None;
                    }
                    Chunks::DataLf
                }
                Chunks::DataLf => {
                    if b != b'\n' {
                        return None;
                    }
                    Chunks::new()
                }
                Chunks::Trailer(empty, length) => {
                    if length >= MAX_CHUNK_LINE {
                        return None;
                    }
                    match b {
                        b'\r' => Chunks::TrailerLf(empty),
                        _ if is_control(b) => return None,
                        _ => Chunks::Trailer(false, length + 1),
                    }
                }
                Chunks::TrailerLf(empty) => {
                    if b != b'\n' {
                        return None;
                    }
                    if empty {
                        out.extend_from_slice(b"0\r\n\r\n");
                        Chunks::Done
                    } else {
                        Chunks::Trailer(true, 0)
                    }
                }
                Chunks::Done => return Some(i),
            };
            i += 1;
            if *self == Chunks::Done {
                return Some(i);
            }
        }
        Some(i)
    }
}

/** Whether a request id given by the client is kept (lib/logs.ts REQUEST_ID_PATTERN). */
pub fn valid_request_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'/' | b'+' | b'=' | b'-'))
}

/** The token of `Bearer <token>` (scheme in any case), as the gateway's `tokenOf` reads it. */
pub fn bearer(value: &[u8]) -> Option<&[u8]> {
    if value.len() < 7 || !value[..6].eq_ignore_ascii_case(b"bearer") || !is_space(value[6]) && value[6] != b'\r' {
        return None;
    }
    let (start, end) = trim(value, 6, value.len());
    if start == 6 || start >= end {
        return None;
    }
    Some(&value[start..end])
}

/** A string as JSON. */
pub fn json_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
            c => {
                let mut tmp = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_plain_request() {
        let head =
            b"POST /function/echo/a/b?q=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer  t0k \r\ncontent-length: 3\r\nX-Plat-Attempt: 2";
        let request = parse_request(head).unwrap();
        assert_eq!(request.target, "echo");
        assert_eq!(&head[request.rest.0..request.rest.1], b"/a/b?q=1");
        assert_eq!(request.content_length, Some(3));
        assert_eq!(request.headers[1].kind, Kind::Authorization);
        assert_eq!(bearer(&head[request.headers[1].value.0..request.headers[1].value.1]), Some(&b"t0k"[..]));
        assert_eq!(request.headers[3].kind, Kind::PlatformPassed);
    }

    #[test]
    fn leaves_odd_requests() {
        assert!(!parse_request(b"GET /functions HTTP/1.1\r\nhost: x").unwrap().function);
        for head in [
            &b"GET /function/x HTTP/1.0"[..],
            b"GET /function/x/../y HTTP/1.1",
            b"GET /function/x/%2E HTTP/1.1",
            b"GET /function/ HTTP/1.1",
            b"POST /function/x HTTP/1.1\r\ntransfer-encoding: chunked",
            b"POST /function/x HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 1",
            b"POST /function/x HTTP/1.1\r\ncontent-length: 99999999",
            b"GET /function/x HTTP/1.1\r\nconnection: close",
            b"GET /function/x HTTP/1.1\r\n bad: fold",
            b"GET /function/%ZZ HTTP/1.1",
            b"GET /function/a%+1 HTTP/1.1",
            b"GET /function/a%-1 HTTP/1.1",
            b"BREW /function/x HTTP/1.1",
        ] {
            assert!(parse_request(head).is_none(), "{}", String::from_utf8_lossy(head));
        }
        assert_eq!(parse_request(b"GET /function/a%40b HTTP/1.1").unwrap().target, "a@b");
    }

    #[test]
    fn follows_chunks_and_chunks_their_data_anew() {
        let body = b"4;x=y\r\nWiki\r\n5\r\npedia\r\n0\r\ntrailer: 1\r\n\r\nNEXT";
        let end = body.len() - 4;
        for split in 0..body.len() {
            let mut chunks = Chunks::new();
            let mut out = Vec::new();
            let first = chunks.feed(&body[..split], &mut out).unwrap();
            assert_eq!(first, split.min(end));
            let second = chunks.feed(&body[split..], &mut out).unwrap();
            assert_eq!(first + second, end, "split at {split}");
            assert_eq!(chunks, Chunks::Done);
            // Chunked anew: the data alone, without the extension and the trailer.
            let mut data = Vec::new();
            let mut at = 0;
            loop {
                let line = out[at..].windows(2).position(|w| w == b"\r\n").unwrap() + at;
                let size = usize::from_str_radix(std::str::from_utf8(&out[at..line]).unwrap(), 16).unwrap();
                if size == 0 {
                    assert_eq!(&out[line..], b"\r\n\r\n");
                    break;
                }
                data.extend_from_slice(&out[line + 2..line + 2 + size]);
                assert_eq!(&out[line + 2 + size..line + 4 + size], b"\r\n");
                at = line + 4 + size;
            }
            assert_eq!(data, b"Wikipedia");
        }
    }

    #[test]
    fn refuses_broken_chunks() {
        for body in [
            &b"zz\r\n"[..],
            b"2;a\nx-forged: 1\r\nok\r\n0\r\n\r\n",
            b"2\nok\r\n0\r\n\r\n",
            b"2\r\nokX\r\n0\r\n\r\n",
            b"2\r\nok\r\n0\r\nx: 1\nforged: 1\r\n\r\n",
            b"\r\n",
            b"+2\r\nok\r\n0\r\n\r\n",
            b"1000000000000000\r\n",
        ] {
            assert!(Chunks::new().feed(body, &mut Vec::new()).is_none(), "{}", String::from_utf8_lossy(body));
        }
        let long = [b"2;".as_slice(), &[b'a'; MAX_CHUNK_LINE]].concat();
        assert!(Chunks::new().feed(&long, &mut Vec::new()).is_none());
    }

    #[test]
    fn reads_answers() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Plat-Refused: instance";
        let answer = parse_answer(head).unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.framing(false), Framing::Length(5));
        assert_eq!(answer.framing(true), Framing::None);
        assert_eq!(answer.header(head, b"x-plat-refused"), Some(&b"instance"[..]));
        assert_eq!(parse_answer(b"HTTP/1.1 200 OK").unwrap().framing(false), Framing::Close);
        assert_eq!(parse_answer(b"HTTP/1.1 200").unwrap().status, 200);
        assert!(parse_answer(b"HTTP/1.0 204 No Content").unwrap().close);
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\nconnection: keep-alive, Close").unwrap().close);
        assert!(!parse_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 2").unwrap().close);
        assert_eq!(parse_answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked").unwrap().framing(false), Framing::Chunked(Chunks::new()));
    }

    #[test]
    fn refuses_answers_that_could_forge_a_header_or_an_answer() {
        for head in [
            &b"HTTP/1.1 200 OK\nx-forged: 1"[..],
            b"HTTP/1.1 200 OK\r\nx-a: 1\nx-forged: 1",
            b"HTTP/1.1 200 OK\r\nx-a: 1\rx-forged: 1",
            b"HTTP/1.1 200 OK\r\nx-a: \x001",
            b"HTTP/1.1 200 OK\r\nx a: 1",
            b"HTTP/1.1 200 OK\r\n: 1",
            b"HTTP/1.1 200 OK\r\nno colon",
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 20",
            b"HTTP/1.1 200 OK\r\ncontent-length: +2",
            b"HTTP/1.1 200 OK\r\ncontent-length: 2, 2",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 2",
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x",
            b"HTTP/1.1 +20 OK",
            b"HTTP/1.1 099 Low",
            b"HTTP/1.1 200OK",
            b"HTTP/2 200 OK",
        ] {
            assert!(parse_answer(head).is_err(), "{}", String::from_utf8_lossy(head));
        }
    }
}
