//! udc-spin-host: runs the udc Spin component the way `spin up` would, for tests. The Spin CLI
//! cannot be installed here, so this implements what the component imports on wasmtime:
//! WASI 0.2 and `wasi:http` (wasmtime-wasi, wasmtime-wasi-http), and Spin's `sqlite` and
//! `variables` (here, on rusqlite and the manifest's variables). Like Spin it instantiates the
//! component per request, sets the `spin-*` request headers, serves every component of the
//! manifest on its routes (the exact route, else the longest prefix), opens only the databases
//! a component lists, and lets it reach only its allowed hosts.
//!
//! Usage: udc-spin-host --manifest spin.toml --listen 127.0.0.1:PORT --data-dir DIR
//!        [--component ID=PATH ...] [--variable NAME=VALUE ...]

mod manifest;
mod spin;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use clap::Parser;
use hyper::server::conn::http1;
use tokio::net::TcpListener;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::manifest::Manifest;
use crate::spin::{Outbound, SpinHost};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "spin.toml")]
    manifest: PathBuf,
    /// A component's build, as ID=PATH (default: the manifest's `source`).
    #[arg(long = "component", value_parser = parse_variable)]
    components: Vec<(String, String)>,
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Where SQLite databases live (`default` is `DIR/default.sqlite3`).
    #[arg(long)]
    data_dir: PathBuf,
    /// An application variable, as `spin up --variable NAME=VALUE`.
    #[arg(long = "variable", value_parser = parse_variable)]
    variables: Vec<(String, String)>,
}

fn parse_variable(raw: &str) -> std::result::Result<(String, String), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{raw:?}: expected NAME=VALUE (ID=PATH)"))
}

/// wasmtime's errors as anyhow's.
fn wt<T>(r: wasmtime::Result<T>) -> Result<T> {
    r.map_err(|e| anyhow!("{e:?}"))
}

/// One request's store: WASI, WASI HTTP and the Spin interfaces.
struct State {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    outbound: Outbound,
    spin: SpinHost,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

struct Server {
    /// Each component with its manifest entry, in `manifests`' order.
    pres: Vec<ProxyPre<State>>,
    manifests: Vec<Arc<Manifest>>,
    data_dir: PathBuf,
}

impl Server {
    async fn handle(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
        client: SocketAddr,
        local: SocketAddr,
    ) -> Result<hyper::Response<HyperOutgoingBody>> {
        let path = req.uri().path().to_owned();
        let Some((at, route)) = manifest::route_for(&self.manifests, &path) else {
            return Ok(spin::not_found());
        };
        let (pre, manifest) = (&self.pres[at], &self.manifests[at]);
        let mut req = req;
        spin::set_request_headers(&mut req, route, client, local)?;
        let mut store = Store::new(
            pre.engine(),
            State {
                table: ResourceTable::new(),
                // As Spin does, the component's stdout and stderr are the host's log.
                wasi: WasiCtx::builder().inherit_stdout().inherit_stderr().build(),
                http: WasiHttpCtx::new(),
                outbound: Outbound::new(manifest.clone()),
                spin: SpinHost::new(manifest.clone(), self.data_dir.clone()),
            },
        );
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let incoming = wt(store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req))?;
        let out = wt(store.data_mut().http().new_response_outparam(sender))?;
        let pre = pre.clone();
        let task = tokio::task::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(store, incoming, out)
                .await
        });
        match receiver.await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => {
                let e = match task.await {
                    Ok(Ok(())) => anyhow!("the component never set a response"),
                    Ok(Err(e)) => anyhow!("{e:?}"),
                    Err(e) => e.into(),
                };
                Err(e.context("the component failed before answering"))
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let given: HashMap<String, String> = args.variables.into_iter().collect();
    let mut builds: HashMap<String, String> = args.components.into_iter().collect();
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;

    let engine = wt(Engine::new(&Config::new()))?;
    let mut linker: Linker<State> = Linker::new(&engine);
    wt(wasmtime_wasi::p2::add_to_linker_async(&mut linker))?;
    wt(wasmtime_wasi_http::p2::add_only_http_to_linker_async(
        &mut linker,
    ))?;
    wt(spin::Host_::add_to_linker::<State, HasSelf<SpinHost>>(
        &mut linker,
        |s: &mut State| &mut s.spin,
    ))?;
    let (mut pres, mut manifests, mut served) = (Vec::new(), Vec::new(), Vec::new());
    for id in Manifest::component_ids(&args.manifest)? {
        let manifest = Manifest::load(&args.manifest, &id, &given)?;
        let source = builds
            .remove(&id)
            .map(PathBuf::from)
            .unwrap_or_else(|| manifest.source.clone());
        let component = wt(Component::from_file(&engine, &source))
            .with_context(|| format!("loading {}", source.display()))?;
        pres.push(wt(ProxyPre::new(wt(linker.instantiate_pre(&component))?))?);
        served.push(format!("{} ({})", manifest.id, source.display()));
        manifests.push(Arc::new(manifest));
    }
    if let Some(id) = builds.keys().next() {
        return Err(anyhow!(
            "--component {id}=…: spin.toml has no such component"
        ));
    }
    let server = Arc::new(Server {
        pres,
        manifests,
        data_dir: args.data_dir,
    });

    let listener = TcpListener::bind(args.listen).await?;
    let local = listener.local_addr()?;
    println!(
        "udc-spin-host serving {} on http://{local}",
        served.join(", ")
    );
    loop {
        let (socket, client) = listener.accept().await?;
        let server = server.clone();
        tokio::task::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let server = server.clone();
                async move {
                    match server.handle(req, client, local).await {
                        Ok(resp) => Ok::<_, std::convert::Infallible>(resp),
                        Err(e) => {
                            eprintln!("udc-spin-host: {e:#}");
                            Ok(spin::internal_error())
                        }
                    }
                }
            });
            if let Err(e) = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(socket), service)
                .await
            {
                eprintln!("udc-spin-host: connection from {client}: {e}");
            }
        });
    }
}
