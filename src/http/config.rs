//! `[http]`: the staff HTTP listeners and limits.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: Vec<SocketAddr>,
    /// Serve HTTPS with the [tls] certificate. Plain HTTP is only allowed on loopback addresses
    /// (passwords never cross a network in clear).
    pub tls: bool,
    /// Largest request body (JSON actions, replies).
    pub max_body: usize,
    /// Per-request time limit.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Concurrent HTTP connections over all HTTP listeners.
    pub max_connections: usize,
    /// Concurrent HTTP connections from one address (IPv6: one /64); a browser opens about six.
    pub max_connections_per_source: usize,
    /// How long a connection may take to send a request's headers, counted from connect or from
    /// the previous response (so idle keep-alive connections and silent ones are closed).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// The web page's presence marker ("olga is viewing") lasts this long after a heartbeat.
    #[serde(with = "humantime_serde")]
    pub presence_expiry: Duration,
    /// How often an open case page sends its presence heartbeat (keep it below the expiry).
    #[serde(with = "humantime_serde")]
    pub presence_heartbeat: Duration,
    /// How often the queue list asks whether new cases arrived ("N new — refresh").
    #[serde(with = "humantime_serde")]
    pub new_cases_poll: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: vec![],
            tls: false,
            max_body: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            max_connections: 1000,
            max_connections_per_source: 100,
            idle_timeout: Duration::from_secs(30),
            presence_expiry: Duration::from_secs(60),
            presence_heartbeat: Duration::from_secs(20),
            new_cases_poll: Duration::from_secs(30),
        }
    }
}

impl HttpConfig {
    /// (key within `[http]`, reason) for the first value that is wrong.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.idle_timeout < Duration::from_secs(1) {
            return Err(("idle_timeout".into(), "must be at least 1s".into()));
        }
        for (key, value) in [("presence_heartbeat", self.presence_heartbeat), ("new_cases_poll", self.new_cases_poll)] {
            if value < Duration::from_secs(1) {
                return Err((key.into(), "must be at least 1s".into()));
            }
        }
        if self.presence_expiry <= self.presence_heartbeat {
            return Err(("presence_expiry".into(), "must be longer than presence_heartbeat".into()));
        }
        for (key, value) in [("max_connections", self.max_connections), ("max_connections_per_source", self.max_connections_per_source)] {
            if value == 0 {
                return Err((key.into(), "must be at least 1".into()));
            }
        }
        if !self.tls
            && let Some(addr) = self.listen.iter().find(|a| !a.ip().is_loopback())
        {
            return Err((
                "listen".into(),
                format!("{addr} is not a loopback address: set http.tls = true (passwords never cross a network in clear)"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_must_outlive_its_heartbeat_and_polls_are_at_least_a_second() {
        assert!(HttpConfig::default().validate().is_ok());
        let short = HttpConfig { presence_expiry: Duration::from_secs(20), ..HttpConfig::default() };
        assert_eq!(short.validate().unwrap_err().0, "presence_expiry");
        let busy = HttpConfig { new_cases_poll: Duration::from_millis(200), ..HttpConfig::default() };
        assert_eq!(busy.validate().unwrap_err().0, "new_cases_poll");
    }
}
