//! sqlx's `migrate!` embeds migrations/sqlite and migrations/postgres at compile time, but stable
//! Rust cannot tell cargo that a macro read those files: without this, editing a migration would
//! leave the tests running the old one.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
