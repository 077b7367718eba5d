use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = mailroom::cli::Cli::parse();
    // Info by default: one line per transaction, never addresses or content. RUST_LOG overrides.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("starting the tokio runtime");
    match runtime.block_on(mailroom::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mailroom: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
