//! What every long-running command works with: the server, this device's files, its signed-in
//! session, and whether to print JSON. One value instead of four arguments.

use crate::client::Client;
use crate::store::{Session, Store};

pub struct Context<'a> {
    pub client: &'a Client,
    pub store: &'a Store,
    pub session: &'a mut Session,
    /// `--json`: machine-readable lines.
    pub json: bool,
}
