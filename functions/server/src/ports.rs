//! udc-server's ports: SQLite, the system clock, the OS's randomness.

use std::time::{SystemTime, UNIX_EPOCH};

use udc_core::{Clock, Ports, Random};

use std::sync::Arc;

use crate::hub::ServerHub;
use crate::sqlite::SqliteSql;

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), String> {
        getrandom::fill(buf).map_err(|e| e.to_string())
    }
}

pub struct ServerPorts {
    pub sql: SqliteSql,
    pub hub: Arc<ServerHub>,
}

impl Ports for ServerPorts {
    type Sql = SqliteSql;
    type Clock = SystemClock;
    type Random = OsRandom;
    type Hub = ServerHub;
    fn sql(&self) -> &SqliteSql {
        &self.sql
    }
    fn hub(&self) -> &ServerHub {
        &self.hub
    }
    fn clock(&self) -> &SystemClock {
        &SystemClock
    }
    fn random(&self) -> &OsRandom {
        &OsRandom
    }
}
