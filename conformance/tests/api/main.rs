//! The conformance suite: run against any udc by `UDC_BASE_URL` (see `udc_conformance`).

mod account;
mod approval;
mod auth;
mod clipboard;
mod contract;
mod devices;
mod files;
mod handoff;
mod input;
mod numbers;
mod operations;
mod passkeys;
mod realtime;
mod remote;
mod settings;
mod web_app;
