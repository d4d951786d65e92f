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
//!
//! Every close of this socket is a reset, also after a QUIT has been answered and at
//! shutdown: nothing is lost then (the 221 has been read), but a relay logs the reset.

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

/// Bound on the NOOP that checks a kept connection and on the QUIT that ends an expired
/// one, so a connection that died silently (a dropped NAT entry) costs seconds, not the
/// whole send's timeout.
const PROBE: Duration = Duration::from_secs(5);

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
                let alive = tokio::time::timeout(PROBE, conn.test_connected()).await;
                if matches!(alive, Ok(true)) {
                    conn
                } else {
                    self.connect().await?
                }
            }
            Some((mut conn, _)) => {
                // Idle too long: say goodbye, briefly, rather than reset a relay that may
                // still be listening.
                let _ = tokio::time::timeout(PROBE, conn.quit()).await;
                self.connect().await?
            }
            None => self.connect().await?,
        };
        let sent = conn.send(message.envelope(), &message.formatted()).await;
        // A refusal before any command (lettre's "no 8BITMIME" for a non-ASCII message)
        // leaves the connection usable for the quoted-printable retry; an error in the
        // dialogue has already ended it (lettre marks it broken).
        if !conn.has_broken() {
            *slot = Some((conn, Instant::now()));
        }
        sent?;
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
/// `tokio_util`'s compat turns its `futures` I/O back into tokio's. lettre sees it as a plain
/// stream, so the connection's `is_encrypted()` says false: nothing here asks it (STARTTLS
/// is only ever requested for [`Security::StartTls`]), and nothing may start to.
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

    /// A relay stalled in DATA: it answers up to DATA's 354 (and says so on `in_data`),
    /// then reads nothing until `go_on`, with a receive buffer so small that the end of a
    /// larger message waits in the sender's kernel. Finally it reads what comes.
    struct Stalled {
        port: u16,
        in_data: oneshot::Receiver<()>,
        go_on: oneshot::Sender<()>,
        received: tokio::task::JoinHandle<io::Result<Received>>,
    }

    async fn stalled_relay() -> Stalled {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(2048).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (go_on, wait) = oneshot::channel::<()>();
        let (said_354, in_data) = oneshot::channel::<()>();
        let received = tokio::spawn(async move {
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
            let _ = said_354.send(());
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
        Stalled {
            port,
            in_data,
            go_on,
            received,
        }
    }

    /// 12 KiB of body: more than the stalled relay's receive window, less than that plus the
    /// sender's send buffer, so lettre writes all of it, end line included, into the kernel.
    fn message() -> Message {
        Message::builder()
            .from("riverwatch <rw@example.org>".parse().unwrap())
            .to("duty@example.org".parse().unwrap())
            .subject("test")
            .body("x".repeat(12 * 1024))
            .unwrap()
    }

    /// Runs `send` against `relay` and stops it (drops its connection) once the relay is in
    /// DATA and lettre has written the message; returns what the relay then read.
    async fn stop_mid_data<F>(relay: Stalled, send: F) -> Received
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let sending = tokio::spawn(send);
        relay.in_data.await.expect("the relay reached DATA");
        // lettre's two writes (body, end line) go straight into the kernel's buffers; no
        // signal says they have, so give them a moment. The ordinary-socket case below
        // proves they had: its relay reads the end line.
        tokio::time::sleep(Duration::from_millis(200)).await;
        sending.abort();
        assert!(sending.await.is_err_and(|e| e.is_cancelled()));
        relay.go_on.send(()).expect("the relay waits");
        relay
            .received
            .await
            .expect("relay task")
            .expect("relay I/O")
    }

    /// The class of fault this module exists for: a sender that stops (killed, or its send
    /// cut short) after writing the end of the data but before the relay read it. lettre's
    /// own connection closes normally, and the kernel still delivers the end of the data —
    /// the relay takes a message nobody recorded. Ours resets: the relay never sees the end
    /// of the data, so it never takes the message.
    #[tokio::test]
    async fn data_still_in_the_kernel_when_the_sender_stops_never_reaches_the_relay() {
        let relay = stalled_relay().await;
        let port = relay.port;
        let received = stop_mid_data(relay, async move {
            let mut conn = AsyncSmtpConnection::connect_tokio1(
                ("127.0.0.1", port),
                Some(Duration::from_secs(5)),
                &ClientId::default(),
                None,
                None,
            )
            .await
            .expect("lettre connects");
            let m = message();
            let _ = conn.send(m.envelope(), &m.formatted()).await;
        })
        .await;
        assert!(
            received.has_end_of_data() && !received.reset,
            "lettre's own close delivers the held end of data ({} bytes, reset {})",
            received.bytes.len(),
            received.reset
        );

        let relay = stalled_relay().await;
        let ours = Relay::new(
            "127.0.0.1".into(),
            relay.port,
            Security::Plain,
            None,
            Duration::from_secs(5),
        );
        let received = stop_mid_data(relay, async move {
            let _ = ours.send(&message()).await;
        })
        .await;
        assert!(
            !received.has_end_of_data(),
            "the relay read the end of data after our close ({} bytes)",
            received.bytes.len()
        );
        assert!(received.reset, "our close resets the connection");
    }
}
