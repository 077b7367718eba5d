//! PostgreSQL's warnings during COMMIT. When a COMMIT's wait for the synchronous standby is
//! cancelled (`pg_cancel_backend`, a failover tool), PostgreSQL answers success with a WARNING
//! ("canceling wait for synchronous replication … The transaction has already committed locally,
//! but might not have been replicated to the standby"): not durable as a 250 promises. sqlx hands
//! notices to no caller; it only emits them as tracing events (target `sqlx::postgres::notice`)
//! on the thread that polls the connection, which for the writer is the writer thread itself
//! (`Handle::block_on`). So the writer runs COMMIT under [`Watch::run`]: a dispatcher that passes
//! every call on to the process's own subscriber and notes warnings and errors from that target.

use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Level, Metadata, Subscriber};

const NOTICE_TARGET: &str = "sqlx::postgres::notice";

/// Created once per writer (creating a dispatcher re-evaluates every callsite's interest).
pub(super) struct Watch {
    dispatch: Dispatch,
    seen: Arc<Mutex<Option<String>>>,
}

impl Watch {
    pub(super) fn new() -> Watch {
        let outer = tracing::dispatcher::get_default(Dispatch::clone);
        let seen = Arc::new(Mutex::new(None));
        Watch { dispatch: Dispatch::new(Catcher { outer, hint: LevelFilter::current().max(LevelFilter::WARN), seen: seen.clone() }), seen }
    }

    /// Runs `f` on this thread and returns its result with the first warning (or error) the
    /// PostgreSQL server sent meanwhile.
    pub(super) fn run<R>(&self, f: impl FnOnce() -> R) -> (R, Option<String>) {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).take();
        let result = tracing::dispatcher::with_default(&self.dispatch, f);
        (result, self.seen.lock().unwrap_or_else(|e| e.into_inner()).take())
    }
}

fn is_warning(meta: &Metadata<'_>) -> bool {
    meta.target() == NOTICE_TARGET && *meta.level() <= Level::WARN
}

/// Forwards everything to `outer`, noting server warnings on the way.
struct Catcher {
    outer: Dispatch,
    /// The process's most verbose level (when the writer started), or WARN if that is less.
    hint: LevelFilter,
    seen: Arc<Mutex<Option<String>>>,
}

impl Subscriber for Catcher {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if is_warning(meta) { Interest::sometimes() } else { self.outer.register_callsite(meta) }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        is_warning(meta) || self.outer.enabled(meta)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.hint)
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.outer.new_span(span)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        self.outer.record(span, values)
    }

    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.outer.record_follows_from(span, follows)
    }

    fn event(&self, event: &Event<'_>) {
        if is_warning(event.metadata()) {
            let mut message = Message(String::new());
            event.record(&mut message);
            self.seen.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(message.0);
        }
        if self.outer.enabled(event.metadata()) {
            self.outer.event(event);
        }
    }

    fn enter(&self, span: &Id) {
        self.outer.enter(span)
    }

    fn exit(&self, span: &Id) {
        self.outer.exit(span)
    }

    fn clone_span(&self, id: &Id) -> Id {
        self.outer.clone_span(id)
    }

    fn try_close(&self, id: Id) -> bool {
        self.outer.try_close(id)
    }
}

/// The `message` field of an event (the server's text; it never holds customer data: our
/// statements bind every value as a parameter).
struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}
