//! The SQLite store against its real file: the Store contract, and the
//! engine's purchase when a commit fails. One test binary, a module each.

mod contract;
mod failed_commit;
