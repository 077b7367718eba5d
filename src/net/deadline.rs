//! A stream whose writes must make progress within a time limit, and deadline arithmetic.
//!
//! A client that sends a request and then never reads the answer leaves the server's write
//! pending forever once the socket buffers are full, holding its connection slot. Wrapped in
//! [`WriteDeadline`], a write (or flush) that has made no progress for `limit` fails with
//! `TimedOut` and the connection ends.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// `from + d`, or a point decades away when a configured duration is absurdly long (adding it
/// would overflow the clock and panic).
pub fn after(from: Instant, d: Duration) -> Instant {
    from.checked_add(d).unwrap_or_else(|| from + Duration::from_secs(30 * 365 * 24 * 3600))
}

pub struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    /// Armed when a write first returns Pending; disarmed on any progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    pub fn new(inner: S, limit: Duration) -> WriteDeadline<S> {
        WriteDeadline { inner, limit, stalled: None }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Turns a Pending write into a timeout once the stall has lasted `limit`.
    fn check<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let limit = self.limit;
                let timer = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + limit)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the peer stopped reading"))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.check(cx, poll)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.check(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.check(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.check(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn an_absurd_duration_does_not_overflow_the_clock() {
        let now = Instant::now();
        assert!(after(now, Duration::MAX) > now + Duration::from_secs(10 * 365 * 24 * 3600));
        assert_eq!(after(now, Duration::from_secs(5)), now + Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_peer_that_never_reads_times_out_and_one_that_reads_does_not() {
        let (client, server) = tokio::io::duplex(1024);
        let mut writer = WriteDeadline::new(server, Duration::from_millis(200));
        let started = std::time::Instant::now();
        let err = writer.write_all(&vec![b'x'; 64 * 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(client);

        // A slow reader that keeps reading is never cut off, however long the whole write takes.
        let (mut client, server) = tokio::io::duplex(1024);
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let mut total = 0;
            while total < 16 * 1024 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                total += tokio::io::AsyncReadExt::read(&mut client, &mut buf).await.unwrap();
            }
        });
        let mut writer = WriteDeadline::new(server, Duration::from_millis(200));
        writer.write_all(&vec![b'y'; 16 * 1024]).await.unwrap();
        reader.await.unwrap();
    }
}
