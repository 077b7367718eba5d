//! TCP connections from a chosen source address (to act as distinct clients).

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A blocking TCP connection from `source` (bound before connecting) to `addr`.
pub fn tcp_from(source: std::net::IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
    let stream = rt.block_on(async {
        let socket = if source.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.bind(SocketAddr::new(source, 0))?;
        tokio::time::timeout(Duration::from_secs(5), socket.connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
    })?;
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    Ok(stream)
}
