//! udc-server's ports: SQLite, the system clock, the OS's randomness.

use std::time::{SystemTime, UNIX_EPOCH};

use udc_core::{Clock, Ports, Random};

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
}

impl Ports for ServerPorts {
    type Sql = SqliteSql;
    type Clock = SystemClock;
    type Random = OsRandom;
    fn sql(&self) -> &SqliteSql {
        &self.sql
    }
    fn clock(&self) -> &SystemClock {
        &SystemClock
    }
    fn random(&self) -> &OsRandom {
        &OsRandom
    }
}
