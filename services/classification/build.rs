//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds the files of
//! `migrations/` but cannot tell Cargo to watch the directory on a stable compiler.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
