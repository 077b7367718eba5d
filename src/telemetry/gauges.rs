//! The gauges read at scrape time: queue depth, overdue cases and outbox rows (one grouped count
//! each, at most once a second however often scrapers come), connections open (the pools'
//! counters), the store's size and the data dir's free disk.

use std::time::{Duration, Instant};

use super::Telemetry;

/// Scrapes closer together than this share the store's counts.
const MIN_REFRESH: Duration = Duration::from_secs(1);

pub(super) async fn refresh(t: &Telemetry) {
    for (service, pools) in &t.connections {
        let open: usize = pools.iter().map(|p| p.in_use()).sum();
        metrics::gauge!("mailroom_connections_open", "service" => *service).set(open as f64);
    }
    if let Ok(free) = super::health::free_disk(&t.data_dir) {
        metrics::gauge!("mailroom_disk_free_bytes").set(free as f64);
    }
    let mut last = t.refreshed.lock().await;
    if last.is_some_and(|at| at.elapsed() < MIN_REFRESH) {
        return;
    }
    *last = Some(Instant::now());
    match t.store.operational_counts(crate::store::now_millis()).await {
        Ok(counts) => {
            // Every configured queue and status has a series, 0 included; a queue no longer
            // configured counts as "other" (labels come from the config, never from mail).
            let label = |queue: &str| t.queues.iter().find(|q| *q == queue).cloned().unwrap_or_else(|| "other".into());
            let mut cases = std::collections::BTreeMap::new();
            let mut overdue = std::collections::BTreeMap::new();
            for queue in &t.queues {
                overdue.insert(queue.clone(), 0);
                for status in crate::store::cases::ACTIVE {
                    cases.insert((queue.clone(), status.to_string()), 0);
                }
            }
            for (queue, status, n) in counts.cases {
                *cases.entry((label(&queue), status)).or_default() += n;
            }
            for (queue, n) in counts.overdue {
                *overdue.entry(label(&queue)).or_default() += n;
            }
            for ((queue, status), n) in cases {
                metrics::gauge!("mailroom_queue_cases", "queue" => queue, "status" => status).set(n as f64);
            }
            for (queue, n) in overdue {
                metrics::gauge!("mailroom_queue_overdue_cases", "queue" => queue).set(n as f64);
            }
            let mut outbox: std::collections::BTreeMap<String, i64> =
                ["pending", "sending", "failed"].into_iter().map(|s| (s.to_string(), 0)).collect();
            outbox.extend(counts.outbox);
            for (status, n) in outbox {
                metrics::gauge!("mailroom_outbox_messages", "status" => status).set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: counting cases and outbox rows failed"),
    }
    match t.store.size().await {
        Ok(size) => {
            metrics::gauge!("mailroom_store_size_bytes").set(size.bytes as f64);
            metrics::gauge!("mailroom_store_used_bytes").set(size.used_bytes as f64);
            if let Some(max) = size.max_bytes {
                metrics::gauge!("mailroom_store_max_bytes").set(max as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: reading the store's size failed"),
    }
}
