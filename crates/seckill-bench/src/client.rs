//! One keep-alive HTTP/1.1 connection per simulated client, as wrk keeps
//! it: the request is written straight to the socket and the answer parsed
//! in place with httparse. Hand-rolled because it is the generator's hot
//! path and must not be the bottleneck; hyper's client adds a task and
//! channels per request (figures: bench/RESULTS.md). A failed request is
//! counted by the caller, the connection dropped and opened again.

use anyhow::{Context, Result, bail};
use bytes::{Buf, Bytes, BytesMut};
use http::Uri;
use std::io::Write;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where the requests go: the address to connect to and the `Host` header.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    host: String,
    /// The path of the URL as given (`/` when it has none); the `get` scenario requests it.
    pub path: String,
    /// The URL as given, for reports.
    pub url: String,
}

impl Endpoint {
    /// Parses `http://HOST:PORT[/path]` and resolves the host once.
    pub fn parse(url: &str) -> Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("{url:?} is not a URL"))?;
        if uri.scheme_str() != Some("http") {
            bail!("{url:?}: only http:// URLs are supported");
        }
        let authority = uri
            .authority()
            .with_context(|| format!("{url:?} has no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(authority.host(), port))
            .with_context(|| format!("resolving {}", authority.host()))?
            .next()
            .with_context(|| format!("{} resolves to no address", authority.host()))?;
        Ok(Self {
            addr,
            host: authority.as_str().to_string(),
            path: uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
            url: url.trim_end_matches('/').to_string(),
        })
    }
}

/// Whether an id can go into a request path as it is (the engine's ids
/// are UUIDs); anything else is refused rather than escaped.
pub fn is_plain_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A request to send: the path must be a valid request target (the
/// caller builds it from ids it checked), `bearer` the whole
/// `Authorization` value.
pub struct Request<'a> {
    pub method: &'static str,
    pub path: &'a str,
    pub bearer: Option<&'a [u8]>,
    pub json: Option<&'a [u8]>,
}

impl<'a> Request<'a> {
    pub fn get(path: &'a str, bearer: Option<&'a [u8]>) -> Self {
        Self {
            method: "GET",
            path,
            bearer,
            json: None,
        }
    }

    pub fn post(path: &'a str, bearer: Option<&'a [u8]>, json: &'a [u8]) -> Self {
        Self {
            method: "POST",
            path,
            bearer,
            json: Some(json),
        }
    }
}

/// What came back: the status and the whole body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// Most answers of the API fit in one read of this size.
const READ_CHUNK: usize = 8 * 1024;
/// An answer's head larger than this is refused (a misbehaving server).
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;

/// A connection that opens itself on first use and again after a failure.
pub struct Connection {
    addr: SocketAddr,
    host: String,
    stream: Option<TcpStream>,
    out: Vec<u8>,
    input: BytesMut,
}

impl Connection {
    pub fn new(endpoint: &Endpoint) -> Self {
        Self {
            addr: endpoint.addr,
            host: endpoint.host.clone(),
            stream: None,
            out: Vec::with_capacity(512),
            input: BytesMut::with_capacity(READ_CHUNK),
        }
    }

    /// Sends one request and reads the whole answer. Any error (connect,
    /// write, read, a malformed answer) leaves the connection closed.
    pub async fn send(&mut self, request: &Request<'_>) -> Result<Answer> {
        let result = self.exchange(request).await;
        if !matches!(result, Ok((_, true))) {
            self.stream = None;
        }
        result.map(|(answer, _)| answer)
    }

    /// The answer, and whether the connection can be used again.
    async fn exchange(&mut self, request: &Request<'_>) -> Result<(Answer, bool)> {
        self.encode(request);
        let stream = match &mut self.stream {
            Some(stream) => stream,
            closed => {
                let stream = TcpStream::connect(self.addr)
                    .await
                    .with_context(|| format!("connecting to {}", self.addr))?;
                stream.set_nodelay(true)?;
                self.input.clear();
                closed.insert(stream)
            }
        };
        stream.write_all(&self.out).await?;
        read_answer(stream, &mut self.input).await
    }

    fn encode(&mut self, request: &Request<'_>) {
        let out = &mut self.out;
        out.clear();
        // Writes into a Vec cannot fail.
        let _ = write!(
            out,
            "{} {} HTTP/1.1\r\nHost: {}\r\n",
            request.method, request.path, self.host
        );
        if let Some(bearer) = request.bearer {
            out.extend_from_slice(b"Authorization: ");
            out.extend_from_slice(bearer);
            out.extend_from_slice(b"\r\n");
        }
        match request.json {
            Some(json) => {
                let _ = write!(
                    out,
                    "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    json.len()
                );
                out.extend_from_slice(json);
            }
            None => out.extend_from_slice(b"\r\n"),
        }
    }
}

/// Reads one whole answer from `stream`, `input` holding what was read
/// before and keeping what is read past it; also whether the connection
/// can carry another request. Every byte comes from the server, so nothing
/// here may trust it.
pub async fn read_answer<R: AsyncRead + Unpin>(
    stream: &mut R,
    input: &mut BytesMut,
) -> Result<(Answer, bool)> {
    let head = read_head(stream, input).await?;
    let body = match head.framing {
        Framing::Length(length) => {
            fill(stream, input, length).await?;
            input.split_to(length).freeze()
        }
        Framing::Chunked => read_chunked(stream, input).await?,
        Framing::UntilClose => {
            while stream.read_buf(input).await? > 0 {}
            let body = input.split().freeze();
            return Ok((
                Answer {
                    status: head.status,
                    body,
                },
                false,
            ));
        }
    };
    Ok((
        Answer {
            status: head.status,
            body,
        },
        head.keep_alive,
    ))
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

struct Head {
    status: u16,
    framing: Framing,
    keep_alive: bool,
}

/// Reads until a whole response head is buffered, parses it and removes it
/// from `input`.
async fn read_head<R: AsyncRead + Unpin>(stream: &mut R, input: &mut BytesMut) -> Result<Head> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(length) = response.parse(input)? {
            let status = response.code.context("a response without a status")?;
            let mut framing = match status {
                100..=199 | 204 | 304 => Framing::Length(0),
                _ => Framing::UntilClose,
            };
            let mut keep_alive = response.version == Some(1);
            for header in response.headers.iter() {
                if header.name.eq_ignore_ascii_case("content-length") {
                    let text = std::str::from_utf8(header.value)?;
                    framing = Framing::Length(text.trim().parse().context("Content-Length")?);
                } else if header.name.eq_ignore_ascii_case("transfer-encoding")
                    && contains_token(header.value, b"chunked")
                {
                    framing = Framing::Chunked;
                } else if header.name.eq_ignore_ascii_case("connection") {
                    keep_alive = !contains_token(header.value, b"close");
                }
            }
            input.advance(length);
            if (100..=199).contains(&status) {
                continue; // an interim answer; the real one follows
            }
            return Ok(Head {
                status,
                framing,
                keep_alive,
            });
        }
        if input.len() > MAX_HEAD {
            bail!("a response head over {MAX_HEAD} bytes");
        }
        read_more(stream, input).await?;
    }
}

fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|part| part.trim_ascii().eq_ignore_ascii_case(token))
}

/// Reads once more into `input`; the peer closing is an error here.
async fn read_more<R: AsyncRead + Unpin>(stream: &mut R, input: &mut BytesMut) -> Result<()> {
    input.reserve(READ_CHUNK);
    if stream.read_buf(input).await? == 0 {
        bail!("the server closed the connection mid-answer");
    }
    Ok(())
}

/// Reads until `input` holds at least `length` bytes.
async fn fill<R: AsyncRead + Unpin>(
    stream: &mut R,
    input: &mut BytesMut,
    length: usize,
) -> Result<()> {
    while input.len() < length {
        read_more(stream, input).await?;
    }
    Ok(())
}

/// A chunked body, decoded; trailers are skipped.
async fn read_chunked<R: AsyncRead + Unpin>(stream: &mut R, input: &mut BytesMut) -> Result<Bytes> {
    let mut body = BytesMut::new();
    loop {
        let line = read_line(stream, input).await?;
        let size_text = std::str::from_utf8(&line)?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).context("a chunk size")?;
        if size == 0 {
            while !read_line(stream, input).await?.is_empty() {}
            return Ok(body.freeze());
        }
        // The chunk and its CRLF; a size near usize::MAX is the server's lie.
        let with_crlf = size.checked_add(2).context("a chunk size past usize")?;
        fill(stream, input, with_crlf).await?;
        body.extend_from_slice(&input[..size]);
        input.advance(with_crlf);
    }
}

/// One CRLF-terminated line, without its CRLF.
async fn read_line<R: AsyncRead + Unpin>(stream: &mut R, input: &mut BytesMut) -> Result<Bytes> {
    loop {
        if let Some(end) = input.windows(2).position(|w| w == b"\r\n") {
            let line = input.split_to(end).freeze();
            input.advance(2);
            return Ok(line);
        }
        if input.len() > MAX_HEAD {
            bail!("a chunk header over {MAX_HEAD} bytes");
        }
        read_more(stream, input).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that answers each request with the next canned response
    /// and records what it received.
    async fn serve(responses: Vec<&'static [u8]>) -> (Endpoint, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint =
            Endpoint::parse(&format!("http://{}/x", listener.local_addr().unwrap())).unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut received = Vec::new();
            for response in responses {
                let mut buf = [0u8; 4096];
                let n = socket.read(&mut buf).await.unwrap();
                received.extend_from_slice(&buf[..n]);
                socket.write_all(response).await.unwrap();
            }
            received
        });
        (endpoint, server)
    }

    #[tokio::test]
    async fn reads_length_chunked_and_interim_answers_on_one_connection() {
        let (endpoint, server) = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\nETag: \"1\"\r\n\r\n",
        ])
        .await;
        let mut connection = Connection::new(&endpoint);
        let first = connection
            .send(&Request::post("/buy", Some(b"Bearer t"), b"{}"))
            .await
            .unwrap();
        assert_eq!((first.status, &first.body[..]), (200, &b"hello"[..]));
        let second = connection.send(&Request::get("/x", None)).await.unwrap();
        assert_eq!((second.status, &second.body[..]), (409, &b"abcde"[..]));
        let third = connection.send(&Request::get("/x", None)).await.unwrap();
        assert_eq!((third.status, third.body.len()), (304, 0));
        let received = String::from_utf8(server.await.unwrap()).unwrap();
        assert!(received.starts_with("POST /buy HTTP/1.1\r\nHost: 127.0.0.1:"));
        assert!(received.contains("Authorization: Bearer t\r\n"));
        assert!(received.contains("Content-Length: 2\r\n\r\n{}GET /x HTTP/1.1\r\n"));
    }

    /// The size plus its CRLF used to overflow (a panic); the `http_answer`
    /// fuzz target replays this input.
    #[tokio::test]
    async fn a_chunk_size_at_usize_max_is_refused() {
        let mut stream =
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n"[..];
        let error = read_answer(&mut stream, &mut BytesMut::new())
            .await
            .unwrap_err();
        assert!(error.to_string().contains("chunk size"), "{error:#}");
    }

    #[tokio::test]
    async fn a_connection_closed_mid_answer_is_an_error_and_reopens() {
        let (endpoint, _server) =
            serve(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"]).await;
        let mut connection = Connection::new(&endpoint);
        assert!(connection.send(&Request::get("/", None)).await.is_err());
        assert!(connection.stream.is_none());
        // The next request opens a new connection, which nobody accepts.
        assert!(connection.send(&Request::get("/", None)).await.is_err());
    }
}
