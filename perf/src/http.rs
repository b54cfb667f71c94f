//! A small HTTP/1.1 client for chorus-load's Janus target: one request at a time on a
//! keep-alive connection over tokio's `TcpStream` (without tokio's io-util), responses with
//! a Content-Length, chunked, or running to the end of the connection. Sans-IO parsing
//! (`parse_response`) so malformed responses are errors, never panics.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tokio::net::TcpStream;

/// The largest response head, and body, taken.
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One complete HTTP response.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body (de-chunked).
    pub body: Vec<u8>,
    /// Bytes of the buffer it took.
    pub used: usize,
    /// The server keeps the connection open for the next request.
    pub keep_alive: bool,
}

/// The response at the start of `buf`, or `Ok(None)` when more bytes are needed; `eof`:
/// the connection is closed, so a body without a length ends here.
pub fn parse_response(buf: &[u8], eof: bool) -> Result<Option<Response>> {
    let Some(head_len) = find(buf, b"\r\n\r\n").map(|i| i + 4) else {
        if buf.len() > MAX_HEAD {
            bail!("HTTP response head over {MAX_HEAD} bytes");
        }
        if eof {
            bail!("connection closed before a complete HTTP response");
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_len]).context("HTTP response head not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (version, status) = (parts.next().unwrap_or_default(), parts.next());
    let status: u16 = match (version.starts_with("HTTP/1."), status.map(str::parse)) {
        (true, Some(Ok(s))) => s,
        _ => bail!("not an HTTP/1.x status line: {status_line:?}"),
    };
    let mut length = None;
    let mut chunked = false;
    let mut keep_alive = version == "HTTP/1.1";
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            bail!("bad HTTP header line {line:?}");
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value.parse().context("bad Content-Length")?;
            if n > MAX_BODY {
                bail!("HTTP body of {n} bytes is over {MAX_BODY}");
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
            if !chunked {
                bail!("unsupported Transfer-Encoding {value:?}");
            }
        } else if name.eq_ignore_ascii_case("connection") {
            keep_alive = !value.eq_ignore_ascii_case("close");
        }
    }
    let rest = &buf[head_len..];
    if chunked {
        return Ok(dechunk(rest)?.map(|(body, n)| Response {
            status,
            body,
            used: head_len + n,
            keep_alive,
        }));
    }
    match length {
        Some(n) if rest.len() >= n => Ok(Some(Response {
            status,
            body: rest[..n].to_vec(),
            used: head_len + n,
            keep_alive,
        })),
        Some(_) if eof => bail!("connection closed inside an HTTP body"),
        Some(_) => Ok(None),
        // Neither a length nor chunks: the body runs to the end of the connection.
        None if eof => Ok(Some(Response {
            status,
            body: rest.to_vec(),
            used: buf.len(),
            keep_alive: false,
        })),
        None if rest.len() > MAX_BODY => bail!("HTTP body over {MAX_BODY} bytes"),
        None => Ok(None),
    }
}

/// A chunked body (RFC 9112 7.1) at the start of `buf`: the body and the bytes it took, or
/// `Ok(None)` when more bytes are needed.
fn dechunk(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(eol) = find(&buf[at..], b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&buf[at..at + eol]).context("bad chunk size line")?;
        let size_hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .with_context(|| format!("bad chunk size {size_hex:?}"))?;
        if size > MAX_BODY - body.len() {
            bail!("HTTP body over {MAX_BODY} bytes");
        }
        at += eol + 2;
        if size == 0 {
            // Trailer lines, if any, then the empty line.
            loop {
                let Some(eol) = find(&buf[at..], b"\r\n") else {
                    return Ok(None);
                };
                at += eol + 2;
                if eol == 0 {
                    return Ok(Some((body, at)));
                }
            }
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[at..at + size]);
        if &buf[at + size..at + size + 2] != b"\r\n" {
            bail!("chunk not followed by CRLF");
        }
        at += size + 2;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A keep-alive HTTP/1.1 connection to Janus.
pub struct HttpConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl HttpConn {
    /// Connects (2 s at most), Nagle off.
    pub async fn connect(addr: SocketAddr) -> Result<HttpConn> {
        let stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("connecting to {addr} timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        let _ = stream.set_nodelay(true);
        Ok(HttpConn {
            stream,
            buf: Vec::new(),
        })
    }

    /// One request and its response. An `Err` from a connection that gave no byte back is
    /// a [`Stale`] (a reused connection the server had closed: the request may go again on
    /// a new one).
    pub async fn request(
        &mut self,
        method: &str,
        host: SocketAddr,
        path: &str,
        body: &[u8],
    ) -> Result<Response> {
        let mut out =
            format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n")
                .into_bytes();
        if method == "POST" {
            out.extend_from_slice(
                format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n",
                    body.len()
                )
                .as_bytes(),
            );
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        let mut sent = 0;
        while sent < out.len() {
            self.stream.writable().await.map_err(stale)?;
            match self.stream.try_write(&out[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(stale(e)),
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(r) = parse_response(&self.buf, false)? {
                self.buf.drain(..r.used);
                return Ok(r);
            }
            self.stream.readable().await?;
            match self.stream.try_read(&mut chunk) {
                Ok(0) if self.buf.is_empty() => return Err(stale("closed")),
                Ok(0) => {
                    let r = parse_response(&self.buf, true)?
                        .ok_or_else(|| anyhow!("connection closed inside a response"))?;
                    self.buf.clear();
                    return Ok(Response {
                        keep_alive: false,
                        ..r
                    });
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if self.buf.is_empty() => return Err(stale(e)),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A connection that failed before any of the response came back.
#[derive(Debug)]
pub struct Stale(String);

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connection closed before the response: {}", self.0)
    }
}

impl std::error::Error for Stale {}

fn stale(e: impl std::fmt::Display) -> anyhow::Error {
    Stale(e.to_string()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_with_a_length_or_chunks_parse_whole_and_only_whole() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1";
        let got = parse_response(r, false).unwrap().unwrap();
        assert_eq!(
            (got.status, &got.body[..], got.used, got.keep_alive),
            (200, &b"hello"[..], 43, true)
        );
        for cut in 0..43 {
            assert_eq!(
                parse_response(&r[..cut], false).unwrap(),
                None,
                "cut at {cut}"
            );
        }
        let c = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n";
        let got = parse_response(c, false).unwrap().unwrap();
        assert_eq!((&got.body[..], got.used), (&b"{\"a\":1}"[..], c.len()));
        for cut in 0..c.len() {
            assert_eq!(
                parse_response(&c[..cut], false).unwrap(),
                None,
                "cut at {cut}"
            );
        }
        let close = b"HTTP/1.0 404 Not Found\r\n\r\ngone";
        assert_eq!(parse_response(close, false).unwrap(), None);
        let got = parse_response(close, true).unwrap().unwrap();
        assert_eq!(
            (got.status, &got.body[..], got.keep_alive),
            (404, &b"gone"[..], false)
        );
    }

    #[test]
    fn malformed_responses_are_errors_not_panics() {
        for bad in [
            &b"SIP/2.0 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
        ] {
            assert!(
                parse_response(bad, false).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab", true).is_err());
        assert!(parse_response(&[b'x'; MAX_HEAD + 1], false).is_err());
    }
}
