//! Intake and the store without the network: the bench's realistic mail registered in process,
//! `--concurrency` messages in flight at once on one tokio thread (as the server's session thread
//! runs them), through `Intake::register` (parse, classify, seal) and the writer's group commit
//! into a fresh data dir. Reports CPU per message by thread (the session thread's `prepare`, the
//! writer, the rest), messages per commit and bytes written per message: the store's cost without
//! the load generator's and the network's noise. `bench/intake.sh` runs it.
//!
//!   intakebench [--mix 10k|full] [--seed 1] [--messages 20000] [--warmup 1000]
//!               [--concurrency 32] [--data-dir DIR] [--config deploy/mailroom.toml]
//!               [--to support@example.com]

#[path = "../common/args.rs"]
mod args;
#[path = "../loadgen/corpus.rs"]
#[allow(dead_code)]
mod corpus;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use mailroom::config::Settings;
use mailroom::intake::{Directory, Envelope, Intake, Protocol};
use mailroom::store::Store;

/// CPU nanoseconds of each thread of this process, by thread name (summed over equal names).
fn cpu_by_thread() -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let path = task.expect("task").path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default().trim().to_string();
        // schedstat: time on CPU (ns), time waiting to run (ns), timeslices.
        let ns = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()))
            .unwrap_or(0);
        *out.entry(name).or_insert(0) += ns;
    }
    out
}

/// Bytes this process has written to files so far (`wchar`: the WAL, the checkpoint, logs).
fn written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| io.lines().find_map(|l| l.strip_prefix("wchar: ").and_then(|v| v.trim().parse().ok())))
        .unwrap_or(0)
}

/// Successful commits so far, from the writer's own metric.
fn commits(metrics: &metrics_exporter_prometheus::PrometheusHandle) -> u64 {
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("mailroom_store_commits_total{result=\"ok\"} ").and_then(|v| v.trim().parse::<f64>().ok()))
        .unwrap_or(0.0) as u64
}

fn main() {
    use args::{arg, number};
    let mail = Arc::new(args::mail());
    let (mix, messages) = (mail.mix.clone(), mail.messages);
    let warmup: u64 = number("--warmup", "1000");
    let concurrency: usize = number("--concurrency", "32");
    let config = PathBuf::from(arg("--config", "deploy/mailroom.toml"));
    let data_dir = PathBuf::from(arg("--data-dir", "target/bench-data/intakebench"));
    // The benchmark's recipient (bench/bench.py), one of deploy/mailroom.toml's queue addresses.
    let queue_address = arg("--to", "support@example.com");
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir).expect("creating the data dir");

    let metrics = mailroom::telemetry::recorder::install().expect("metrics recorder");
    // One thread, as `server.session_threads()` gives on 2 cores.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    rt.block_on(async move {
        let settings = Settings::load(Some(&config), &data_dir).expect("the configuration");
        let store = Store::open(settings.store_options()).await.expect("opening the store");
        let (writer, writer_thread) = mailroom::store::writer::spawn(
            store.clone(),
            Arc::new(settings.policy.reg_format.clone()),
            settings.config.registration.duplicate_window,
        )
        .expect("starting the writer");
        // The server's background checkpointer (`server::serve`): without it the writer would do
        // all of the checkpoint's copying itself.
        let checkpointer = {
            let store = store.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(mailroom::server::CHECKPOINT_EVERY).await;
                    let _ = store.checkpoint().await;
                }
            })
        };
        let intake = Intake::new(store.keys.clone(), writer, settings.policy.clone(), None, Directory::default());

        // The messages as a session hands them to intake: our trace header is added by intake.
        let message = |i: u64| mail.message(i, &queue_address).1;
        let check = intake.check_recipient(&queue_address);
        let mailroom::intake::RecipientCheck::Accept(queue) = check else { panic!("{queue_address} is not accepted: {check:?}") };
        let envelope = Envelope {
            mail_from: "customer@customer.example".into(),
            recipients: vec![(queue_address.clone(), queue)],
            helo: "mx.customer.example".into(),
            client_ip: [127, 0, 0, 1].into(),
            protocol: Protocol::Smtp,
            tls: None,
        };

        // `concurrency` tasks, each registering every concurrency-th message of the range.
        let run = |from: u64, to: u64| {
            let (intake, envelope) = (intake.clone(), envelope.clone());
            let message = &message;
            async move {
                let mut tasks = tokio::task::JoinSet::new();
                for lane in 0..concurrency as u64 {
                    let (intake, envelope) = (intake.clone(), envelope.clone());
                    let raws: Vec<Vec<u8>> = (from + lane..to).step_by(concurrency).map(message).collect();
                    tasks.spawn(async move {
                        for raw in raws {
                            intake.register(&envelope, raw).await.expect("registering a message");
                        }
                    });
                }
                while let Some(done) = tasks.join_next().await {
                    done.expect("a registering task");
                }
            }
        };
        run(0, warmup).await;
        let (cpu_before, written_before, commits_before) = (cpu_by_thread(), written(), commits(&metrics));
        let started = Instant::now();
        run(warmup, warmup + messages).await;
        let elapsed = started.elapsed();
        let (cpu_after, written_after, commits_after) = (cpu_by_thread(), written(), commits(&metrics));

        let per_message = |ns: u64| ns as f64 / 1e3 / messages as f64;
        let mut by_thread: Vec<(String, u64)> =
            cpu_after.iter().map(|(name, after)| (name.clone(), after.saturating_sub(*cpu_before.get(name).unwrap_or(&0)))).collect();
        by_thread.sort_by_key(|(_, ns)| std::cmp::Reverse(*ns));
        let total: u64 = by_thread.iter().map(|(_, ns)| ns).sum();
        let main_thread = std::fs::read_to_string("/proc/self/comm").unwrap_or_default().trim().to_string();
        let of = |name: &str| by_thread.iter().filter(|(n, _)| n == name).map(|(_, ns)| *ns).sum::<u64>();
        let writer = of(mailroom::store::writer::THREAD_NAME);
        let commits = commits_after - commits_before;
        println!(
            "| {mix} | {concurrency} | {messages} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            messages as f64 / elapsed.as_secs_f64(),
            messages as f64 / commits.max(1) as f64,
            per_message(total),
            per_message(of(&main_thread)),
            per_message(writer),
            per_message(total - of(&main_thread) - writer),
            (written_after - written_before) as f64 / 1024.0 / messages as f64,
        );
        if std::env::var_os("INTAKEBENCH_THREADS").is_some() {
            for (name, ns) in by_thread.iter().filter(|(_, ns)| *ns > 0) {
                eprintln!("  {name}: {:.1} µs/msg", per_message(*ns));
            }
        }
        checkpointer.abort();
        drop(intake);
        let _ = writer_thread.join();
    });
}
