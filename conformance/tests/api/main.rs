//! The conformance suite: run against any udc by `UDC_BASE_URL` (see `udc_conformance`).

mod auth;
mod contract;
mod devices;
mod files;
mod input;
mod realtime;
mod remote;
mod sync;
mod web_app;
