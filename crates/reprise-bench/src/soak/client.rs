//! A minimal blocking HTTP/1.1 client for the soak's misbehaving clients:
//! GET over one keep-alive connection, reconnecting only when the server
//! closes it (after `connection: close`, or a body read to its end), with
//! `content-length` and chunked bodies. Every way of getting no answer is
//! reported in a few stable words, which become the answer's kind.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Why a GET got no answer, in the few stable words that become the
/// answer's kind.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoAnswer {
    #[error("connect failed ({0:?})")]
    Connect(ErrorKind),
    #[error("socket setup failed ({0:?})")]
    SocketSetup(ErrorKind),
    #[error("write failed ({0:?})")]
    Write(ErrorKind),
    /// No byte of the answer within the timeout.
    #[error("nothing within {}s", .0.as_secs())]
    Timeout(Duration),
    #[error("read failed ({0:?})")]
    Read(ErrorKind),
    #[error("closed before answering")]
    ClosedBeforeAnswering,
    #[error("closed mid-answer")]
    ClosedMidAnswer,
    #[error("not an HTTP answer")]
    NotHttp,
}

pub struct Client {
    addr: SocketAddr,
    /// How long an answer may take, and any read of it.
    timeout: Duration,
    connection: Option<BufReader<TcpStream>>,
}

impl Client {
    pub fn new(addr: SocketAddr, timeout: Duration) -> Self {
        Self {
            addr,
            timeout,
            connection: None,
        }
    }

    /// `GET path`: the status and body, or why there was no answer.
    pub fn get(&mut self, path: &str) -> Result<(u16, Vec<u8>), NoAnswer> {
        let mut connection = match self.connection.take() {
            Some(connection) => connection,
            None => {
                let stream = TcpStream::connect_timeout(&self.addr, self.timeout)
                    .map_err(|e| NoAnswer::Connect(e.kind()))?;
                stream
                    .set_read_timeout(Some(self.timeout))
                    .and_then(|()| stream.set_write_timeout(Some(self.timeout)))
                    .and_then(|()| stream.set_nodelay(true))
                    .map_err(|e| NoAnswer::SocketSetup(e.kind()))?;
                BufReader::new(stream)
            }
        };
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
        connection
            .get_mut()
            .write_all(request.as_bytes())
            .map_err(|e| NoAnswer::Write(e.kind()))?;
        let (status, body, keep) = read_response(&mut connection, self.timeout)?;
        if keep {
            self.connection = Some(connection);
        }
        Ok((status, body))
    }
}

/// Reads one response: status, body, and whether the connection may serve
/// another request.
fn read_response(
    reader: &mut impl BufRead,
    timeout: Duration,
) -> Result<(u16, Vec<u8>, bool), NoAnswer> {
    let failed = |e: std::io::Error| match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => NoAnswer::Timeout(timeout),
        ErrorKind::UnexpectedEof => NoAnswer::ClosedMidAnswer,
        kind => NoAnswer::Read(kind),
    };
    let mut line = String::new();
    if reader.read_line(&mut line).map_err(failed)? == 0 {
        return Err(NoAnswer::ClosedBeforeAnswering);
    }
    let mut words = line.split_whitespace();
    let version = words.next().unwrap_or_default().to_string();
    let status: u16 = words
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or(NoAnswer::NotHttp)?;
    let (mut length, mut chunked, mut close) = (None, false, version == "HTTP/1.0");
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(failed)? == 0 {
            return Err(NoAnswer::ClosedMidAnswer);
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(NoAnswer::NotHttp);
        };
        let value = value.trim().to_ascii_lowercase();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                length = Some(value.parse::<usize>().map_err(|_| NoAnswer::NotHttp)?)
            }
            "transfer-encoding" => chunked = value.contains("chunked"),
            "connection" => close = value.contains("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            if reader.read_line(&mut line).map_err(failed)? == 0 {
                return Err(NoAnswer::ClosedMidAnswer);
            }
            let size = line.trim_end().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size.trim(), 16).map_err(|_| NoAnswer::NotHttp)?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    line.clear();
                    if reader.read_line(&mut line).map_err(failed)? == 0
                        || line.trim_end().is_empty()
                    {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..]).map_err(failed)?;
            let mut crlf = [0; 2];
            reader.read_exact(&mut crlf).map_err(failed)?;
        }
    } else if let Some(length) = length {
        body.resize(length, 0);
        reader.read_exact(&mut body).map_err(failed)?;
    } else if status != 204 && status != 304 {
        // Delimited by the end of the connection.
        reader.read_to_end(&mut body).map_err(failed)?;
        close = true;
    }
    Ok((status, body, !close))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn read(text: &str) -> Result<(u16, String, bool), NoAnswer> {
        read_response(
            &mut Cursor::new(text.as_bytes().to_vec()),
            Duration::from_secs(1),
        )
        .map(|(status, body, keep)| (status, String::from_utf8(body).unwrap(), keep))
    }

    #[test]
    fn a_sized_answer_keeps_the_connection() {
        assert_eq!(
            read("HTTP/1.1 500 Internal Server Error\r\ncontent-length: 3\r\n\r\nabcNEXT"),
            Ok((500, "abc".into(), true))
        );
    }

    #[test]
    fn a_chunked_answer_is_put_together() {
        assert_eq!(
            read(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n1;x=y\r\n\n\r\n0\r\n\r\n"
            ),
            Ok((200, "ok\n".into(), true))
        );
    }

    #[test]
    fn connection_close_and_unsized_bodies_end_the_connection() {
        assert_eq!(
            read("HTTP/1.1 504 Gateway Timeout\r\nConnection: close\r\ncontent-length: 0\r\n\r\n"),
            Ok((504, String::new(), false))
        );
        assert_eq!(
            read("HTTP/1.1 200 OK\r\n\r\nto the end"),
            Ok((200, "to the end".into(), false))
        );
    }

    #[test]
    fn no_answer_says_why() {
        assert_eq!(read(""), Err(NoAnswer::ClosedBeforeAnswering));
        assert_eq!(
            read("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab"),
            Err(NoAnswer::ClosedMidAnswer)
        );
        assert_eq!(read("SSH-2.0-OpenSSH\r\n"), Err(NoAnswer::NotHttp));
    }
}
