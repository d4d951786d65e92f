//! The connection to the SMTP relay: one connection, kept open between notifications (the
//! email worker sends one at a time), on a socket of our own that closes *abortively*.
//!
//! Fed by [`super::EmailSink::send`] with a built message; feeds the relay. The protocol —
//! greeting, EHLO, STARTTLS, AUTH, MAIL/RCPT/DATA — stays lettre's ([`AsyncSmtpConnection`]);
//! this module only owns the socket and when a connection is reused.
//!
//! Why a socket of our own. A relay takes a message for delivery when it reads the final
//! `<CRLF>.<CRLF>`, whether or not the client lives to read its `250` (RFC 1047, "Duplicate
//! messages and SMTP"). lettre writes that line as its own small write after the body, and
//! Nagle's algorithm keeps it in the kernel until the relay acknowledges the body — on Linux
//! the relay's delayed acknowledgement, some 40 ms, most of the time one email takes. A
//! daemon killed in that time has not sent the line, yet on a normal close the kernel sends
//! it for the dead process: the relay accepts a message nobody recorded, and the restarted
//! daemon sends it again. With `SO_LINGER` zero the kernel instead resets the connection and
//! drops what it still held, so the relay discards the unfinished transaction and the one
//! copy sent after the restart is the only one. What stays at risk is the time from the line
//! leaving this host to the outbox recording the `250`: the relay's own processing and one
//! read — the window SMTP itself leaves open.
//!
//! Nagle stays on: turning it off (`TCP_NODELAY`) makes a burst faster but leaves that
//! window as it is, and this service sends emails by the dozen, not by the thousand.

use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::Message;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// How long an idle connection is kept for the next notification; longer, and the relay
/// (Postfix drops idle clients after 300 s) may have hung up. The value lettre's pool uses.
const IDLE: Duration = Duration::from_secs(60);

/// How the connection is secured.
pub enum Security {
    Plain,
    /// STARTTLS after the greeting; a relay without it is refused.
    StartTls(TlsParameters),
    /// TLS from the first byte (`smtps://`).
    Tls(TlsParameters),
}

/// Why a send failed: no connection, or what lettre reports of the dialogue.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("cannot connect to the SMTP relay {host}:{port}: {source}")]
    Connect {
        host: String,
        port: u16,
        source: io::Error,
    },
    #[error("connecting to the SMTP relay {host}:{port} took longer than {timeout:?}")]
    ConnectTimeout {
        host: String,
        port: u16,
        timeout: Duration,
    },
    #[error(transparent)]
    Smtp(#[from] lettre::transport::smtp::Error),
}

/// The relay and the connection kept to it.
pub struct Relay {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
    /// Bound on connecting to one of the host's addresses.
    connect_timeout: Duration,
    /// The open connection and when it was last used. Taken out while a message is on it,
    /// so a send cut short (its future dropped on a timeout) drops the connection too.
    open: tokio::sync::Mutex<Option<(AsyncSmtpConnection, Instant)>>,
}

impl Relay {
    pub fn new(
        host: String,
        port: u16,
        security: Security,
        credentials: Option<Credentials>,
        connect_timeout: Duration,
    ) -> Relay {
        Relay {
            host,
            port,
            security,
            credentials,
            hello: ClientId::default(),
            connect_timeout,
            open: tokio::sync::Mutex::new(None),
        }
    }

    /// Sends one message; `Ok` once the relay answered the end of its data with 2xx.
    pub async fn send(&self, message: &Message) -> Result<(), RelayError> {
        let mut slot = self.open.lock().await;
        let mut conn = match slot.take() {
            Some((mut conn, used)) if used.elapsed() < IDLE && !conn.has_broken() => {
                if conn.test_connected().await {
                    conn
                } else {
                    self.connect().await?
                }
            }
            Some((mut conn, _)) => {
                // Idle too long: say goodbye, briefly, rather than reset a relay that may
                // still be listening.
                let _ = tokio::time::timeout(Duration::from_secs(2), conn.quit()).await;
                self.connect().await?
            }
            None => self.connect().await?,
        };
        conn.send(message.envelope(), &message.formatted()).await?;
        if !conn.has_broken() {
            *slot = Some((conn, Instant::now()));
        }
        Ok(())
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, RelayError> {
        let tcp = self.tcp().await?;
        let mut conn = match &self.security {
            Security::Tls(tls) => {
                #[allow(deprecated)]
                let mut stream =
                    lettre::transport::smtp::client::AsyncNetworkStream::use_existing_tokio1(
                        Box::new(tcp),
                    );
                stream.upgrade_tls(tls.clone()).await?;
                let stream = tokio_util::compat::FuturesAsyncReadCompatExt::compat(stream);
                AsyncSmtpConnection::connect_with_transport(
                    Box::new(ImplicitTls(stream)),
                    &self.hello,
                )
                .await?
            }
            Security::Plain | Security::StartTls(_) => {
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await?
            }
        };
        if let Security::StartTls(tls) = &self.security {
            conn.starttls(tls.clone(), &self.hello).await?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(conn)
    }

    /// A TCP connection to the first of the host's addresses that answers, each tried
    /// within the connect timeout, on a socket whose close resets the connection.
    async fn tcp(&self) -> Result<TcpStream, RelayError> {
        let failed = |source| RelayError::Connect {
            host: self.host.clone(),
            port: self.port,
            source,
        };
        let addrs = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(failed)?;
        let mut last = None;
        for addr in addrs {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }
            .map_err(failed)?;
            // The reason for this module: see its documentation.
            socket.set_zero_linger().map_err(failed)?;
            match tokio::time::timeout(self.connect_timeout, socket.connect(addr)).await {
                Ok(Ok(stream)) => return Ok(stream),
                Ok(Err(e)) => last = Some(failed(e)),
                Err(_) => {
                    last = Some(RelayError::ConnectTimeout {
                        host: self.host.clone(),
                        port: self.port,
                        timeout: self.connect_timeout,
                    })
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            failed(io::Error::new(
                io::ErrorKind::NotFound,
                "the name resolves to no address",
            ))
        }))
    }
}

/// A TLS stream over our own socket, as lettre takes a stream of the caller's: lettre does
/// the handshake (`AsyncNetworkStream::upgrade_tls`, with the same parameters as STARTTLS),
/// `tokio_util`'s compat turns its `futures` I/O back into tokio's.
#[allow(deprecated)]
#[derive(Debug)]
struct ImplicitTls(tokio_util::compat::Compat<lettre::transport::smtp::client::AsyncNetworkStream>);

impl AsyncRead for ImplicitTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().peer_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::sync::oneshot;

    /// What a relay read of a message: its bytes, and how the connection ended.
    struct Received {
        bytes: Vec<u8>,
        reset: bool,
    }

    impl Received {
        /// Whether the end-of-data line arrived, the moment a relay takes the message.
        fn has_end_of_data(&self) -> bool {
            self.bytes.windows(5).any(|w| w == b"\r\n.\r\n")
        }
    }

    /// A relay that answers up to DATA's 354 and then stops reading until told to go on,
    /// with a receive buffer so small that the end of a larger message waits in the
    /// sender's kernel. Returns its port, the trigger, and what it finally read.
    async fn stalled_relay() -> (
        u16,
        oneshot::Sender<()>,
        tokio::task::JoinHandle<io::Result<Received>>,
    ) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(2048).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (go_on, wait) = oneshot::channel::<()>();
        let relay = tokio::spawn(async move {
            let (stream, _) = listener.accept().await?;
            let mut stream = BufReader::new(stream);
            stream.get_mut().write_all(b"220 relay\r\n").await?;
            let mut line = String::new();
            loop {
                line.clear();
                if stream.read_line(&mut line).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                let answer: &[u8] = match line.get(..4).unwrap_or("") {
                    "EHLO" => b"250-relay\r\n250 8BITMIME\r\n",
                    "DATA" => b"354 go on\r\n",
                    _ => b"250 OK\r\n",
                };
                stream.get_mut().write_all(answer).await?;
                if answer.starts_with(b"354") {
                    break;
                }
            }
            let _ = wait.await;
            let mut bytes = stream.buffer().to_vec();
            let mut stream = stream.into_inner();
            let mut chunk = [0u8; 4096];
            let reset = loop {
                match stream.read(&mut chunk).await {
                    Ok(0) => break false,
                    Ok(n) => bytes.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break true,
                    Err(e) => return Err(e),
                }
            };
            Ok(Received { bytes, reset })
        });
        (port, go_on, relay)
    }

    fn message(body_len: usize) -> Message {
        Message::builder()
            .from("riverwatch <rw@example.org>".parse().unwrap())
            .to("duty@example.org".parse().unwrap())
            .subject("test")
            .body("x".repeat(body_len))
            .unwrap()
    }

    /// The class of fault the module exists for: a sender that stops (killed, or its send
    /// cut short) after writing the end of the data but before the relay read it. Our
    /// connection resets and the relay never sees the end of the data, so it never takes
    /// the message; an ordinary socket in the same place still delivers it.
    #[tokio::test]
    async fn data_still_in_the_kernel_when_the_sender_stops_never_reaches_the_relay() {
        // 12 KiB: more than the stalled relay's receive window, less than that plus the
        // sender's send buffer, so the whole message, end line included, is written.
        const BODY: usize = 12 * 1024;

        // An ordinary socket: the kernel sends what it holds after the close.
        let (port, go_on, relay) = stalled_relay().await;
        let mut plain = BufReader::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
        let mut line = String::new();
        plain.read_line(&mut line).await.unwrap();
        for command in [
            "EHLO test",
            "MAIL FROM:<rw@example.org>",
            "RCPT TO:<duty@example.org>",
            "DATA",
        ] {
            plain
                .get_mut()
                .write_all(format!("{command}\r\n").as_bytes())
                .await
                .unwrap();
            loop {
                line.clear();
                plain.read_line(&mut line).await.unwrap();
                if line.as_bytes().get(3) != Some(&b'-') {
                    break;
                }
            }
        }
        let mut data = message(BODY).formatted();
        data.extend_from_slice(b"\r\n.\r\n");
        tokio::time::timeout(Duration::from_secs(5), plain.get_mut().write_all(&data))
            .await
            .expect("the whole message fits in the kernel's buffers")
            .unwrap();
        drop(plain);
        go_on.send(()).unwrap();
        let received = relay.await.unwrap().unwrap();
        assert!(
            received.has_end_of_data() && !received.reset,
            "an ordinary close delivers the held end of data ({} bytes, reset {})",
            received.bytes.len(),
            received.reset
        );

        // Our connection: the same message, the send cut short while the relay has not
        // read it.
        let (port, go_on, relay) = stalled_relay().await;
        let ours = Relay::new(
            "127.0.0.1".into(),
            port,
            Security::Plain,
            None,
            Duration::from_secs(5),
        );
        let cut = tokio::time::timeout(Duration::from_millis(500), ours.send(&message(BODY))).await;
        assert!(cut.is_err(), "the stalled relay never answers: {cut:?}");
        go_on.send(()).unwrap();
        let received = relay.await.unwrap().unwrap();
        assert!(
            !received.has_end_of_data(),
            "the relay read the end of data after our close ({} bytes)",
            received.bytes.len()
        );
        assert!(received.reset, "our close resets the connection");
    }
}
