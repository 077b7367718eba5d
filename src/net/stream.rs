//! A connection that starts in clear text and may be upgraded to TLS by STARTTLS.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while the handshake owns the socket.
    Upgrading,
}

impl Stream {
    /// "TLSv1.3 TLS13_AES_256_GCM_SHA384" for the Received header and the logs.
    pub fn tls_description(&self) -> Option<String> {
        match self {
            Stream::Tls(tls) => {
                let (_, conn) = tls.get_ref();
                let version = conn.protocol_version().map(|v| format!("{v:?}").replace("TLSv1_", "TLSv1.")).unwrap_or_default();
                let suite = conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default();
                Some(format!("{version} {suite}"))
            }
            _ => None,
        }
    }

    /// Resolves once the peer has closed its side of the connection or reset it, without
    /// reading: for a session that has stopped reading on purpose (waiting for memory, so that
    /// TCP holds the sender back) and would otherwise learn of a disconnect only when it reads
    /// again. Looks at the socket's readiness as the runtime last saw it: a hang-up is noticed at
    /// once when nothing is waiting to be read, else within [`HANG_UP_POLL`].
    pub async fn peer_closed(&self) {
        let socket = match self {
            Stream::Plain(socket) => socket,
            Stream::Tls(tls) => tls.get_ref().0,
            Stream::Upgrading => return std::future::pending().await,
        };
        loop {
            match socket.ready(Interest::READABLE).await {
                Ok(ready) if !ready.is_read_closed() && !ready.is_error() => tokio::time::sleep(HANG_UP_POLL).await,
                _ => return,
            }
        }
    }
}

/// How often [`Stream::peer_closed`] looks again while unread data keeps the socket readable.
const HANG_UP_POLL: std::time::Duration = std::time::Duration::from_millis(500);

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
            Stream::Tls($s) => {
                let $s = Pin::new($s.as_mut());
                $e
            }
            Stream::Upgrading => Poll::Ready(Err(io::Error::from(io::ErrorKind::NotConnected))),
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}
