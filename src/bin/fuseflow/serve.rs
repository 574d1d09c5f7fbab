//! `fuseflow publish` and `fuseflow serve`.

use std::net::SocketAddr;
use std::path::PathBuf;

use fuseflow::backend::DeviceChoice;
use fuseflow::data::parse_bytes;
use fuseflow::serve::{ServeOptions, Server, publish_file};
use fuseflow::{Error, Workspace};

/// `fuseflow publish SPEC`.
#[derive(clap::Args)]
pub(crate) struct PublishArgs {
    /// The spec file (its relative paths stay relative to where it is).
    spec: PathBuf,
    /// Keep the current default version (a new pipeline's first version is
    /// its default all the same).
    #[arg(long)]
    no_default: bool,
}

impl PublishArgs {
    pub(crate) fn publish(self, ws: &Workspace) -> Result<(), Error> {
        let published = publish_file(ws, &self.spec, !self.no_default)?;
        let v = &published.version;
        let what = if published.created {
            "published"
        } else {
            "unchanged:"
        };
        let default = if v.is_default { " (default)" } else { "" };
        println!("{what} {} version {}{default}", v.pipeline, v.version);
        Ok(())
    }
}

/// `fuseflow serve`.
#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// The address to listen on; any but a loopback one needs a token.
    #[arg(long, default_value = "127.0.0.1:7878")]
    bind: SocketAddr,
    /// The bearer token requests must carry (default on a non-loopback
    /// address: one generated and stored in the workspace).
    #[arg(long)]
    token: Option<String>,
    /// Another name the Host header may give (repeatable).
    #[arg(long, value_name = "NAME")]
    allow_host: Vec<String>,
    /// The directory the files of triggered runs must lie under (default:
    /// the directory holding the workspace).
    #[arg(long, value_name = "DIR")]
    data_root: Option<PathBuf>,
    /// Runs at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Runs waiting at most; more triggers are refused with 503.
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// The largest request body (a spec is one), e.g. 1MiB.
    #[arg(long, value_parser = parse_bytes, default_value = "1MiB")]
    max_body: u64,
    /// The device of triggered runs, as `run --device`.
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
}

impl ServeArgs {
    pub(crate) fn serve(self, ws: Workspace) -> Result<(), Error> {
        let options = ServeOptions {
            bind: self.bind,
            token: self.token,
            allowed_hosts: self.allow_host,
            data_root: self.data_root,
            concurrency: self.concurrency.max(1),
            queue_capacity: self.queue,
            max_body: usize::try_from(self.max_body).unwrap_or(usize::MAX),
            device: self.device,
        };
        let token_file = ws.root().join(fuseflow::serve::TOKEN_FILE);
        let server = Server::bind(ws, options)?;
        let addr = server.local_addr()?;
        println!("fuseflow serve: http://{addr}/ (dashboard), http://{addr}/openapi.json");
        if server.token().is_some() {
            println!(
                "requests need `Authorization: Bearer TOKEN` (generated ones are in {}); \
                 the dashboard: http://{addr}/#token=TOKEN",
                token_file.display()
            );
        }
        server.run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
