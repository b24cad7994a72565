//! Pure logic: no I/O, exhaustively unit-tested.

pub mod backup;
pub mod idle;
pub mod jsnum;
pub mod kofi;
pub mod lenient;
pub mod model;
pub mod money;
pub mod names;
pub mod notify;
pub mod retention;
pub mod schedule;
pub mod taskdef;
pub mod usage;
