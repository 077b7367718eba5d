//! The staff HTTP API (to be written).

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::access::Access;
use crate::config::Settings;
use crate::shutdown::Shutdown;

/// What every HTTP request shares.
pub struct HttpContext {
    pub settings: Arc<Settings>,
    pub access: Access,
    /// Some when `http.tls = true`.
    pub tls: Option<TlsAcceptor>,
    pub shutdown: Shutdown,
}

/// Serves the API on `listener` until shutdown.
pub async fn serve(listener: TcpListener, ctx: Arc<HttpContext>) {
    let _ = (listener, ctx);
}
