//! One async function per action: validates, orchestrates the store and the managers,
//! and answers with a typed response (serialized to its JSON body).

pub mod admin;
pub mod automation;
pub mod billing;
pub mod instance;
pub mod kofi;
pub mod licenses;
pub mod notify;
pub mod sessions;
