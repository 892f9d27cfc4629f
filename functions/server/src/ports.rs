//! udc-server's ports: SQLite, the in-process hub, the system clock, the OS's randomness,
//! reqwest for the object store.

use udc_core::{OsRandom, Ports, SystemClock};

use std::sync::Arc;

use crate::http_client::ServerHttp;
use crate::hub::ServerHub;
use crate::sqlite::SqliteSql;

pub struct ServerPorts {
    pub sql: SqliteSql,
    pub hub: Arc<ServerHub>,
    pub http: ServerHttp,
}

impl Ports for ServerPorts {
    type Sql = SqliteSql;
    type Directory = SqliteSql;
    type Clock = SystemClock;
    type Random = OsRandom;
    type Hub = ServerHub;
    type Http = ServerHttp;
    fn sql(&self) -> &SqliteSql {
        &self.sql
    }
    fn directory(&self) -> &SqliteSql {
        &self.sql
    }
    fn hub(&self) -> &ServerHub {
        &self.hub
    }
    fn http(&self) -> &ServerHttp {
        &self.http
    }
    fn clock(&self) -> &SystemClock {
        &SystemClock
    }
    fn random(&self) -> &OsRandom {
        &OsRandom
    }
}
