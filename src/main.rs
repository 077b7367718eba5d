fn main() -> std::process::ExitCode {
    let cli = mailroom::cli::Cli::parse_noting_command();
    // Info by default: one line per transaction, never addresses or content. RUST_LOG overrides.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // `serve` sizes its runtime from the config; admin commands need little.
    let threads = match mailroom::cli::serve_settings(&cli) {
        Ok(Some(settings)) => settings.config.server.session_threads(),
        Ok(None) => 1,
        Err(e) => {
            eprintln!("mailroom: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().expect("starting the tokio runtime");
    match runtime.block_on(mailroom::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mailroom: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
