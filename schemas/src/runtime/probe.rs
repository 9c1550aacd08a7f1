//! `--probe HOST:PORT`: the container health check of every service. The images have no shell
//! and no curl (docs/operations.md#container-images), so each binary asks its own admin
//! listener's `/readyz` and exits 0 on a 200, 1 otherwise. Plain HTTP/1.0 over a std
//! `TcpStream` with a 2 s budget: it runs every few seconds, must not hang, and needs nothing
//! beyond the standard library.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(2);

/// Whether `GET http://{addr}/readyz` answers 200 within the budget; `Err` says why not.
pub fn ready(addr: &str) -> Result<(), String> {
    let target = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    let mut stream = TcpStream::connect_timeout(&target, TIMEOUT).map_err(|e| format!("{addr}: {e}"))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|_| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| e.to_string())?;
    stream.write_all(format!("GET /readyz HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).map_err(|e| e.to_string())?;
    // The status line is all we need; the body is a few bytes.
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).map_err(|e| format!("{addr}: {e}"))?;
    let status_line = String::from_utf8_lossy(&head[..n]);
    match status_line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(code) => Err(format!("{addr}/readyz answered {code}")),
        None => Err(format!("{addr}/readyz: no HTTP status line")),
    }
}

/// Runs the probe for a binary's `--probe` flag: prints why it failed, and returns the exit code.
pub fn exit_code(addr: &str) -> i32 {
    match ready(addr) {
        Ok(()) => 0,
        Err(why) => {
            eprintln!("not ready: {why}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    /// Serves one connection with `response`, on a free port; returns its address.
    fn answer_once(response: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut request = [0u8; 256];
            let n = s.read(&mut request).unwrap();
            assert!(String::from_utf8_lossy(&request[..n]).starts_with("GET /readyz HTTP/1.0\r\n"));
            s.write_all(response.as_bytes()).unwrap();
        });
        addr
    }

    #[test]
    fn ready_only_on_a_200() {
        assert_eq!(ready(&answer_once("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")), Ok(()));
        let unavailable = answer_once("HTTP/1.1 503 Service Unavailable\r\n\r\n");
        assert_eq!(ready(&unavailable), Err(format!("{unavailable}/readyz answered 503")));
        assert_eq!(exit_code(&answer_once("HTTP/1.1 503 Service Unavailable\r\n\r\n")), 1);
    }

    #[test]
    fn nothing_listening_is_not_ready() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        assert!(ready(&format!("127.0.0.1:{port}")).is_err());
        assert!(ready("not an address").is_err());
    }
}
